"""Socket binding and hypercorn serving, shared by the TUI and headless mode.

The socket is bound before anything else starts (a busy port fails with one clear line, port 0 yields a
known port), then handed to hypercorn. hypercorn never installs signal handlers: the caller owns shutdown
through an asyncio.Event, and serve() returns after in-flight streams have drained or, at the drain
deadline, been ended as client disconnects (InFlight). The deadline is enforced here, not left to
hypercorn's `graceful_timeout`: on Python 3.12+ hypercorn first waits for every connection to close
(asyncio's Server.wait_closed), so a stream that never ends would hold the shutdown forever
(pgjones/hypercorn#308).
"""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import socket
from typing import Any

from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config
from quart import Quart

log = logging.getLogger(__name__)

# Allocations between two young-generation collections (CPython's default is 700). Every request leaves
# hundreds of container objects (futures, tasks, dicts) alive for the length of its stream; at 700 they are
# collected and promoted over and over, and the full collections that follow pause the loop for tens of ms.
GC_YOUNG_THRESHOLD = 10_000
DRAIN_SECONDS = 30.0
CLOSE_SECONDS = 5.0  # after the drain deadline, for ended requests to unwind and connections to close


class BindError(Exception):
    """The listening socket could not be bound; the message is one line for the user."""


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise BindError(f"Port {port} on {host} is already in use; choose another with --port.") from None
        if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT) or isinstance(exc, socket.gaierror):
            raise BindError(f"Cannot listen on {host}:{port}: {exc.strerror or exc}.") from None
        raise BindError(f"Cannot listen on {host}:{port}: {exc.strerror or exc}.") from None
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def is_loopback(host: str) -> bool:
    return host in ("127.0.0.1", "::1", "localhost") or host.startswith("127.")


def hypercorn_config(sock: socket.socket, drain_seconds: float = DRAIN_SECONDS) -> Config:
    config = Config()
    # hypercorn takes ownership of the descriptor and closes it at shutdown, which frees the port.
    config.bind = [f"fd://{sock.detach()}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = drain_seconds
    config.keep_alive_timeout = 75.0  # longer than typical client pool idle times, fewer reconnects
    config.backlog = 1024
    config.h11_max_incomplete_size = 64 * 1024
    return config


class InFlight:
    """Wraps the ASGI app so the drain deadline can end the requests still running.

    At the deadline every request's pending `receive` reports `http.disconnect`, exactly what a client
    hanging up delivers: Quart cancels the handler, the engine closes the upstream and records the request
    as a client disconnect (499), so nothing is lost. (Cancelling the ASGI call instead, as hypercorn's
    graceful timeout does, leaves Quart's handler task running on its own with the upstream open.)
    A waiting `receive` is interrupted by cancelling the task that awaits it, so a request costs no extra
    task or future per `receive` (racing each one against the deadline did: ~20–35 µs a call, bench/)."""

    def __init__(self, app: Quart) -> None:
        self.app = app
        self.deadline = asyncio.Event()
        self._receiving: set[asyncio.Task[Any]] = set()  # tasks awaiting a request's `receive`

    def end_all(self) -> None:
        """The drain deadline: every pending and later `receive` reports a client disconnect."""
        self.deadline.set()
        for task in list(self._receiving):
            task.cancel()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def receive_until_deadline() -> Any:
            if self.deadline.is_set():
                return _DISCONNECT
            task = asyncio.current_task()
            assert task is not None
            self._receiving.add(task)
            try:
                return await receive()
            except asyncio.CancelledError:
                if self.deadline.is_set() and task.uncancel() == 0:  # our cancel alone: the deadline's
                    return _DISCONNECT
                raise
            finally:
                self._receiving.discard(task)

        await self.app(scope, receive_until_deadline, send)


_DISCONNECT = {"type": "http.disconnect"}


def settle_collector() -> None:
    """Tune the cyclic garbage collector for serving: what start-up loaded (modules, config, the app: ~100k
    objects) lives as long as the process, so it is frozen out of every later collection, and young
    collections run less often. Measured (bench/): GC took 30–50% of the proxy's CPU under 64 streams, with
    full-collection pauses of 100–160 ms; reference counting still frees almost everything at once.
    Once per process (a test session serves many times: its later garbage must stay collectable)."""
    if gc.get_freeze_count():
        return
    gc.collect(1)  # the young garbage of start-up, not frozen with the rest
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


async def serve(app: Quart, sock: socket.socket, shutdown: asyncio.Event, drain_seconds: float = DRAIN_SECONDS) -> None:
    """Serve until `shutdown` is set, then stop accepting and return once in-flight requests have finished;
    those still running after `drain_seconds` are ended as if their clients had disconnected."""
    settle_collector()
    in_flight = InFlight(app)
    deadline: asyncio.TimerHandle | None = None

    async def stop_accepting() -> None:
        nonlocal deadline
        await shutdown.wait()
        deadline = asyncio.get_running_loop().call_later(drain_seconds, in_flight.end_all)

    config = hypercorn_config(sock, drain_seconds + CLOSE_SECONDS)
    try:
        await hypercorn_serve(in_flight, config, shutdown_trigger=stop_accepting, mode="asgi")
    finally:
        if deadline is not None:
            deadline.cancel()
