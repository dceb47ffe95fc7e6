"""The base of every mock upstream: a real aiohttp HTTP server on loopback, with scripted scenarios.

Used by the tests (faithful wire formats over real sockets) and by demo mode (simulated providers in the
same event loop as the proxy). A subclass registers its routes in `routes()` and answers according to
`next_scenario()`: the head of the script if one was queued, else the standing `scenario`. With `echo_key`
set, every error message (error statuses and error events inside streams) quotes the credential the request
carried, as some real upstreams do ("Incorrect API key provided: ..."): the proxy must scrub it everywhere.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

_MESSAGE_START = re.compile(rb'("message"\s*:\s*")')


def credential_of(request: web.Request) -> str:
    """The key a request carried, however its API sends it."""
    authorization = request.headers.get("authorization") or ""
    bearer = authorization[7:].strip() if authorization.lower().startswith("bearer ") else ""
    return (
        request.headers.get("x-api-key")
        or bearer
        or request.headers.get("x-goog-api-key")
        or request.query.get("key", "")
    )


def echo_credential(payload: bytes, credential: str) -> bytes:
    """`payload` (JSON or SSE) with every error message starting by quoting `credential`."""
    quoted = orjson.dumps(f"key {credential} was used: ")[1:-1]
    return _MESSAGE_START.sub(lambda match: match.group(1) + quoted, payload)


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes
    scenario: str
    at: float = field(default_factory=time.monotonic)

    def json(self) -> Any:
        return orjson.loads(self.body) if self.body else None


class MockServer:
    """Start with `await server.start()` (port 0 = ephemeral), stop with `await server.stop()`."""

    def __init__(self, scenario: str = "text", *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.scenario = scenario
        self.host, self.port = host, port
        self.requests: list[RecordedRequest] = []
        self.aborts = 0  # client disconnects observed while streaming
        self.aborted = asyncio.Event()
        self.chunk_delay = 0.0  # seconds between streamed chunks
        self.first_byte_delay = 0.0  # seconds before the response starts (slow scenarios use more)
        self.echo_key = False  # error messages quote the request's credential (see the module docstring)
        self._script: deque[str] = deque()
        self._runner: web.AppRunner | None = None

    # --- lifecycle -------------------------------------------------------------------------------------
    def routes(self) -> Iterable[web.RouteDef]:
        raise NotImplementedError

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> MockServer:
        @web.middleware
        async def echo_key(request: web.Request, handler: Any) -> web.StreamResponse:
            response = await handler(request)
            error = isinstance(response, web.Response) and response.status >= 400
            if self.echo_key and error and isinstance(response.body, bytes):
                response.body = echo_credential(response.body, credential_of(request))
            return response

        app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[echo_key])
        app.add_routes(list(self.routes()))
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        # asyncio's or uvloop's Server (ccm-tui runs on uvloop): both expose the bound sockets.
        sockets = getattr(site._server, "sockets", None)
        if not sockets:
            raise RuntimeError(f"mock upstream {type(self).__name__} did not bind {self.host}:{self.port}")
        self.port = sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> MockServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- scenarios ---------------------------------------------------------------------------------------
    def script(self, *scenarios: str) -> None:
        """Queue scenarios for the next requests, in order; afterwards the standing `scenario` applies."""
        self._script.extend(scenarios)

    def next_scenario(self) -> str:
        return self._script.popleft() if self._script else self.scenario

    async def record(self, request: web.Request, scenario: str) -> RecordedRequest:
        recorded = RecordedRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=await request.read(),
            scenario=scenario,
        )
        self.requests.append(recorded)
        return recorded

    def note_abort(self) -> None:
        self.aborts += 1
        self.aborted.set()

    # --- helpers for subclasses -------------------------------------------------------------------------
    @staticmethod
    def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> web.Response:
        return web.Response(
            status=status, body=orjson.dumps(payload), content_type="application/json", headers=headers or {}
        )

    async def stream(
        self,
        request: web.Request,
        chunks: Iterable[bytes],
        *,
        content_type: str = "text/event-stream",
        headers: dict[str, str] | None = None,
        cut_after: int | None = None,
    ) -> web.StreamResponse:
        """Write chunks one by one (chunked encoding); `cut_after=N` drops the connection after N chunks."""
        if self.echo_key:
            key = credential_of(request)
            chunks = [echo_credential(c, key) if b'"error"' in c else c for c in chunks]
        response = web.StreamResponse(status=200, headers={"Content-Type": content_type, **(headers or {})})
        response.enable_chunked_encoding()
        try:
            await response.prepare(request)
            for index, chunk in enumerate(chunks):
                if cut_after is not None and index >= cut_after:
                    transport = request.transport
                    if transport is not None:
                        transport.abort()
                    return response
                await response.write(chunk)
                if self.chunk_delay:
                    await asyncio.sleep(self.chunk_delay)
            await response.write_eof()
        except ConnectionError:
            # The client hung up: that is a scenario tests observe, not a server error to log.
            self.note_abort()
        except asyncio.CancelledError:
            self.note_abort()
            raise
        return response
