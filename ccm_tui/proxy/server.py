"""Socket binding and hypercorn serving, shared by the TUI and headless mode.

The socket is bound before anything else starts (a busy port fails with one clear line, port 0 yields a
known port), then handed to hypercorn. hypercorn never installs signal handlers: the caller owns shutdown
through an asyncio.Event, and serve() returns after in-flight streams have drained (or the grace period).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket

from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config
from quart import Quart

log = logging.getLogger(__name__)

DRAIN_SECONDS = 30.0


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


async def serve(app: Quart, sock: socket.socket, shutdown: asyncio.Event, drain_seconds: float = DRAIN_SECONDS) -> None:
    """Serve until `shutdown` is set, then drain in-flight requests and return."""
    config = hypercorn_config(sock, drain_seconds)
    await hypercorn_serve(app, config, shutdown_trigger=shutdown.wait, mode="asgi")
