"""A terminal driver that survives its terminal going away (tmux pane or SSH session closed).

Textual's LinuxDriver writes through a thread fed by a bounded queue. When the terminal disappears, a write
raises (EIO): the thread dies, the queue fills, and the next frame blocks the event loop for good, so the
proxy never drains and the process hangs. Here every write and read failure is caught, output after it is
dropped, and the app is told once (`CcmApp.terminal_gone`, on the loop) so it drains, flushes and exits 0.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import IO, Any

from textual.drivers.linux_driver import LinuxDriver


class _GoneSafeOutput:
    """The driver's output file: a write or flush that fails marks the terminal gone; later ones are dropped."""

    def __init__(self, file: IO[str], on_gone: Callable[[], None]) -> None:
        self._file = file
        self._on_gone = on_gone
        self.gone = False

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                return self._file.write(text)
            except (OSError, ValueError):  # EIO / EPIPE, or the file was closed under us
                self._lost()
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self._file.flush()
            except (OSError, ValueError):
                self._lost()

    def _lost(self) -> None:
        self.gone = True
        self._on_gone()

    def __getattr__(self, name: str) -> Any:  # fileno, isatty, encoding, ...
        return getattr(self._file, name)


class HangupSafeDriver(LinuxDriver):
    def __init__(self, app: Any, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._output = _GoneSafeOutput(self._file, self._terminal_gone)  # type: ignore[arg-type]
        self._file = self._output  # type: ignore[assignment]
        self._told = threading.Event()

    def _terminal_gone(self) -> None:
        """Called from the writer or the input thread (or the loop): tell the app once."""
        if self._told.is_set():
            return
        self._told.set()
        on_gone = getattr(self._app, "terminal_gone", None)
        if on_gone is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: the app is exiting anyway
                self._loop.call_soon_threadsafe(on_gone)  # the app's loop, kept by Driver

    def _run_input_thread(self) -> None:
        try:
            self.run_input_thread()
        except OSError:  # reading a terminal that hung up (EIO): not a crash, the user left
            self._terminal_gone()
        except BaseException:  # anything else is a bug: Textual's own handling, a panic with the traceback
            import rich.traceback

            self._app.call_later(self._app.panic, rich.traceback.Traceback())
