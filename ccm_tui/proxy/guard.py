"""Who may talk to the proxy at all: Host, Origin, Content-Type and header-size checks, ahead of Quart.

Browsers are the threat: any web page can send a "simple" cross-site POST (text/plain, form or multipart
body, no preflight) to a loopback port, and DNS rebinding lets a page read the answers as well. So:

- the Host must be one the server answers to: an IP address (a rebinding attack always needs a DNS name),
  `localhost` (and `*.localhost`), the bound host name, or `[server] allowed_hosts`; the port is not checked
  (port forwards and reverse proxies change it);
- a request carrying an `Origin` (only browsers send one) is refused unless it is in
  `[server] allowed_origins`; CORS headers are sent only to those origins, preflights included;
- POST bodies must be `application/json`, which a browser cannot send cross-site without a preflight.

The checks run as ASGI middleware because a malformed Host (a label over 63 characters) makes Quart fail
while building the request context, before any error handler exists, and hypercorn then answers an empty
500. Every refusal here is an Anthropic-shaped error. What does not live here: the proxy key (app.py) and
the request body's shape (validate.py).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any

from ccm_tui.core.hosts import host_of, normal_host, normal_origin
from ccm_tui.proxy.errors import error_body
from ccm_tui.proxy.validate import shown

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger(__name__)

# Well above what any API client sends (Claude Code: about 2 KiB), below hypercorn's own limit (64 KiB, past
# which it answers a bare 431 this middleware never sees).
MAX_HEADER_BYTES = 32 * 1024
JSON_MEDIA_TYPE = "application/json"
_CORS_METHODS = b"GET, POST, OPTIONS"
_CORS_MAX_AGE = b"600"


@dataclass(frozen=True)
class Refusal:
    status: int
    message: str


@dataclass(frozen=True)
class GuardPolicy:
    bound_host: str = "127.0.0.1"
    allowed_hosts: frozenset[str] = frozenset()
    allowed_origins: frozenset[str] = frozenset()

    @classmethod
    def create(
        cls, bound_host: str, allowed_hosts: Iterable[str] = (), allowed_origins: Iterable[str] = ()
    ) -> GuardPolicy:
        return cls(
            bound_host=normal_host(bound_host) or bound_host.lower(),
            allowed_hosts=frozenset(normal_host(host) or host.lower() for host in allowed_hosts),
            allowed_origins=frozenset(normal_origin(origin) for origin in allowed_origins),
        )


# --- pure decisions -------------------------------------------------------------------------------------------


def host_refusal(header: str | None, policy: GuardPolicy) -> Refusal | None:
    if header is None:
        return None  # HTTP/1.0 without Host: not something a browser sends
    host = host_of(header)
    if host is None:
        return Refusal(400, f"Host header {shown(header)} is not a valid host name.")
    if host in ("localhost", policy.bound_host) or host.endswith(".localhost") or host in policy.allowed_hosts:
        return None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return Refusal(
            403,
            f"Host {shown(host)} is not one this ccm-tui proxy answers to; add it to [server] allowed_hosts "
            "if you reach the proxy under that name.",
        )
    return None


def origin_refusal(origin: str | None, policy: GuardPolicy) -> Refusal | None:
    if origin is None or normal_origin(origin) in policy.allowed_origins:
        return None
    return Refusal(
        403,
        f"Requests from the browser origin {shown(origin)} are refused; add it to [server] allowed_origins "
        "to allow a web page to use this proxy.",
    )


def content_type_refusal(method: str, content_type: str | None) -> Refusal | None:
    if method != "POST":
        return None
    media_type = (content_type or "").partition(";")[0].strip().lower()
    if media_type == JSON_MEDIA_TYPE:
        return None
    got = shown(content_type) if content_type else "none"
    return Refusal(415, f"Content-Type must be {JSON_MEDIA_TYPE}, got {got}.")


def header_size_refusal(headers: Iterable[tuple[bytes, bytes]]) -> Refusal | None:
    size = sum(len(name) + len(value) + 4 for name, value in headers)
    if size <= MAX_HEADER_BYTES:
        return None
    return Refusal(431, f"Request headers are larger than the proxy's limit of {MAX_HEADER_BYTES // 1024} KiB.")


# --- the ASGI middleware --------------------------------------------------------------------------------------


class RequestGuard:
    """Wraps the Quart ASGI app: refuses what the policy forbids, answers allowed CORS preflights itself."""

    def __init__(
        self,
        app: AsgiApp,
        policy: GuardPolicy,
        new_request_id: Callable[[], str],
        on_refusal: Callable[[str, str, int, str, str], None] | None = None,
    ) -> None:
        self.app = app
        self.policy = policy
        self.new_request_id = new_request_id
        self.on_refusal = on_refusal  # (method, path, status, message, request id): the proxy publishes it

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            decision = self._decide(scope)
        except Exception:  # hostile header bytes the checks did not foresee: refuse, never an empty 500
            log.warning("request guard could not read the request headers", exc_info=True)
            decision = Refusal(400, "The request headers could not be read."), {}, None
        refusal, headers, origin = decision
        method = str(scope.get("method", "GET"))
        if refusal is not None:
            request_id = await self._refuse(send, refusal)
            if self.on_refusal is not None:
                self.on_refusal(method, str(scope.get("path", "")), refusal.status, refusal.message, request_id)
            return
        if origin is None:
            await self.app(scope, receive, send)
            return
        cors = [(b"access-control-allow-origin", origin.encode("latin-1")), (b"vary", b"Origin")]
        if method == "OPTIONS" and "access-control-request-method" in headers:
            await self._preflight(send, cors, headers.get("access-control-request-headers"))
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", ()),
                    *cors,
                    (b"access-control-expose-headers", b"request-id"),
                ]
            await send(message)

        await self.app(scope, receive, send_with_cors)

    def _decide(self, scope: Scope) -> tuple[Refusal | None, dict[str, str], str | None]:
        """(refusal or None, the single-valued headers, the browser Origin if any)."""
        raw_headers: list[tuple[bytes, bytes]] = list(scope.get("headers") or ())
        refusal = header_size_refusal(raw_headers)
        headers = _single_headers(raw_headers)
        if isinstance(headers, Refusal):
            refusal = refusal or headers
            headers = {}
        method = str(scope.get("method", "GET"))
        origin = headers.get("origin")
        refusal = (
            refusal
            or host_refusal(headers.get("host"), self.policy)
            or origin_refusal(origin, self.policy)
            or content_type_refusal(method, headers.get("content-type"))
        )
        return refusal, headers, origin

    async def _refuse(self, send: Send, refusal: Refusal) -> str:
        request_id = self.new_request_id()
        body = error_body(refusal.status, refusal.message, request_id)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"request-id", request_id.encode()),
        ]
        await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return request_id

    async def _preflight(self, send: Send, cors: list[tuple[bytes, bytes]], requested: str | None) -> None:
        headers = [
            *cors,
            (b"access-control-allow-methods", _CORS_METHODS),
            (b"access-control-max-age", _CORS_MAX_AGE),
            (b"content-length", b"0"),
        ]
        if requested:
            headers.append((b"access-control-allow-headers", requested.encode("latin-1")))
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


_SINGLE = (b"host", b"origin", b"content-type")


def _single_headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str] | Refusal:
    """Header values by lower-case name; Host, Origin and Content-Type must not repeat."""
    headers: dict[str, str] = {}
    for name, value in raw:
        key = name.lower()
        text = value.decode("latin-1")
        if key in _SINGLE and key.decode() in headers:
            return Refusal(400, f"The {key.decode()} header must appear once.")
        headers[key.decode("latin-1")] = text
    return headers
