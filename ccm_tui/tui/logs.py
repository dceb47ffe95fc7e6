"""Logging while the TUI owns the terminal: everything goes to a rotating file; warnings also to the screen.

Textual captures stdout/stderr, so Quart's and hypercorn's loggers would otherwise vanish. The screen
handler may be called from any thread (the history writer logs too): it hands records to the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import logging.handlers
from collections.abc import Callable
from pathlib import Path

import platformdirs

from ccm_tui.core.scrub import ScrubbingFilter


def log_path() -> Path:
    return Path(platformdirs.user_log_dir("ccm-tui")) / "ccm-tui.log"


def configure_file_logging() -> Path:
    path = log_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=2_000_000, backupCount=3, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(ScrubbingFilter())
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    root.addHandler(handler)
    for noisy in ("hypercorn.error", "httpx"):  # one INFO line per upstream request is noise here
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return path


class TuiLogHandler(logging.Handler):
    """Warnings and errors from any logger become notice lines in the request stream: `sink(level, message)`
    is called on the loop's thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sink: Callable[[str, str], None]) -> None:
        super().__init__(level=logging.WARNING)
        self.loop = loop
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage().splitlines()[0][:200]
        except Exception:
            return
        level = "error" if record.levelno >= logging.ERROR else "warning"
        with contextlib.suppress(RuntimeError):  # the loop has closed: the file log still has it
            self.loop.call_soon_threadsafe(self.sink, level, f"{record.name}: {message}")
