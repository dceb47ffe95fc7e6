"""The proxy's life as a service, the one sequence `ccm-tui serve` and the TUI both run.

    bind (before any screen or banner) -> start the runtime -> serve -> stop: stop accepting, drain in-flight
    streams (bounded by the drain deadline), close upstream clients and flush history, free the port.

It lives in the runtime layer, beside runtime.py, because it orders the parts that layer owns in time:
runtime.py assembles them and binds nothing; proxy/server.py knows sockets and hypercorn, not what else must
stop. The callers keep only what differs: the headless banner and log lines, the TUI's screen. Signals are
the caller's choice (the TUI leaves SIGINT to Textual) but handlers installed here are removed on stop, and
hypercorn never installs its own.

A running instance announces itself in a small state file (`instance_path()`: its URL, pid and the name of
the proxy key's variable, never the key) so `ccm-tui claude` can find it; stop() removes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import platformdirs

from ccm_tui.config import Settings
from ccm_tui.proxy.server import DRAIN_SECONDS, bind_socket, serve
from ccm_tui.runtime import Runtime, check_proxy_key

if TYPE_CHECKING:
    from ccm_tui.demo.simulation import DemoUpstreams, SyntheticClient

log = logging.getLogger(__name__)


def bind(settings: Settings, environ: Mapping[str, str] | None = None) -> socket.socket:
    """Everything that can fail on the user's input, checked before the screen switches: the proxy key's
    variable, then the listening socket. Raises StartupError or BindError, each one line for the user."""
    check_proxy_key(settings, environ)
    return bind_socket(settings.server.host, settings.server.port)


@dataclass(frozen=True)
class Instance:
    """What a running ccm-tui tells `ccm-tui claude` about itself."""

    url: str
    pid: int
    auth_key_env: str | None  # the variable holding the proxy key clients must send, if one is required
    demo: bool


def instance_path() -> Path:
    """The state file of the running instance, in the user state dir (XDG_STATE_HOME on Linux)."""
    return Path(platformdirs.user_state_dir("ccm-tui")) / "instance.json"


def write_instance(path: Path, instance: Instance) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.{instance.pid}")
    scratch.write_text(json.dumps(instance.__dict__), encoding="utf-8")
    scratch.replace(path)  # atomic: a launcher never reads half a file


def read_instance(path: Path) -> Instance | None:
    """The instance the file describes while its process lives; None when there is none or it is stale."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        instance = Instance(str(data["url"]), int(data["pid"]), data.get("auth_key_env"), bool(data.get("demo")))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(instance.pid, 0)
    except ProcessLookupError:
        return None  # it died without cleaning up (SIGKILL, power loss)
    except PermissionError:
        pass  # alive, someone else's
    return instance


def remove_instance(path: Path, pid: int) -> None:
    """Remove the state file if it is still this process's (a newer instance may have replaced it)."""
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        if int(json.loads(path.read_text(encoding="utf-8"))["pid"]) == pid:
            path.unlink()


class Service:
    """One proxy on a bound socket: `start()`, then `stop()` exactly once in effect (it is idempotent and may
    be called from several places at once, e.g. a quit key and an unmount)."""

    def __init__(
        self,
        settings: Settings,
        sock: socket.socket,
        *,
        demo: bool = False,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        drain_seconds: float = DRAIN_SECONDS,
        state_file: Path | None = None,
    ) -> None:
        self.settings = settings
        self.sock = sock
        host, port = sock.getsockname()[:2]
        self.base_url = f"http://{host}:{port}"
        self.demo = demo
        self.environ = environ
        self.clock = clock
        self.drain_seconds = drain_seconds
        self.state_file = state_file  # None: do not announce this instance (tests, screenshots)
        self.runtime: Runtime | None = None
        self.stopping = asyncio.Event()  # set when a stop was asked for (signal, quit key) or has begun
        self._shutdown = asyncio.Event()  # tells hypercorn to stop accepting and drain
        self._server: asyncio.Task[None] | None = None
        self._demo_upstreams: DemoUpstreams | None = None
        self._client: SyntheticClient | None = None
        self._signals: list[int] = []
        self._stop_lock = asyncio.Lock()
        self._stopped = False

    async def start(self) -> Runtime:
        """Start the runtime (keys, prices, history: all off the loop) and begin serving on the socket."""
        settings = self.settings
        if self.demo:
            from ccm_tui.demo.simulation import start_demo_upstreams

            self._demo_upstreams = await start_demo_upstreams()
            settings = replace(settings, providers=self._demo_upstreams.settings_providers())
        runtime = Runtime(settings, environ=self.environ, clock=self.clock, demo=self.demo)
        self.runtime = runtime  # before start(): a start that fails half-way still gets closed by stop()
        await runtime.start()
        self._server = asyncio.create_task(
            serve(runtime.app, self.sock, self._shutdown, self.drain_seconds), name="ccm-proxy"
        )
        self._server.add_done_callback(self._server_ended)
        if self.state_file is not None:
            instance = Instance(self.base_url, os.getpid(), settings.server.auth_key_env, self.demo)
            try:
                await asyncio.to_thread(write_instance, self.state_file, instance)
            except OSError as exc:  # only the launcher needs it, and --url still works
                log.warning("could not write the instance file %s: %s", self.state_file, exc)
        return runtime

    def start_synthetic_client(self) -> None:
        """Demo mode's simulated user: steady requests to this proxy until stop()."""
        from ccm_tui.demo.simulation import SyntheticClient

        self._client = SyntheticClient(self.base_url)
        self._client.start()

    def stop_on_signals(self, signums: Iterable[signal.Signals], on_signal: Callable[[], object] | None = None) -> None:
        """Ask for a stop on these signals (`on_signal` replaces the default, `request_stop`); removed by stop()."""
        loop = asyncio.get_running_loop()
        for signum in signums:
            # Not available off the main thread (tests) or on some platforms: the caller's quit path remains.
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signum, on_signal or self.request_stop)
                self._signals.append(signum)

    def request_stop(self) -> None:
        self.stopping.set()

    async def wait(self) -> None:
        """Until a stop is asked for, or the server ends on its own (see `failure`)."""
        asked = asyncio.ensure_future(self.stopping.wait())
        waiting: set[asyncio.Future[Any]] = {asked}
        if self._server is not None:
            waiting.add(self._server)
        try:
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            asked.cancel()

    @property
    def failure(self) -> BaseException | None:
        """Why the server ended without being asked to, if it did."""
        server = self._server
        if server is None or not server.done() or server.cancelled():
            return None
        return server.exception()

    async def stop(self) -> None:
        """Stop accepting, drain in-flight streams (at most `drain_seconds`), close the upstream clients, flush
        history and free the port. Safe to call more than once, before start(), or after a failed start()."""
        async with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
            self.stopping.set()
            self._shutdown.set()
            if self._client is not None:
                await self._client.stop()
            if self.state_file is not None:
                await asyncio.to_thread(remove_instance, self.state_file, os.getpid())
            if self._server is not None:
                await asyncio.wait({self._server})  # serve() itself bounds the drain
            else:
                self.sock.close()  # never handed to hypercorn: free the port here
            if self.runtime is not None:
                await self.runtime.aclose()
            if self._demo_upstreams is not None:
                await self._demo_upstreams.stop()
            loop = asyncio.get_running_loop()
            for signum in self._signals:
                loop.remove_signal_handler(signum)
            self._signals.clear()

    def _server_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None and not self._shutdown.is_set():
            log.error("the proxy server stopped: %s", task.exception())
