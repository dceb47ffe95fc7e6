"""The HTTP plumbing every adapter shares: one client per provider, transport errors, opening responses,
reading a streamed body.

Requests go through httpx (on aiohttp's transport); a streamed body is read straight from aiohttp's
StreamReader (`body_chunks`), one chunk per read of whatever has arrived: httpx's and httpx-aiohttp's
iterator layers (generator, exception-mapping context manager and re-chunking per chunk) cost more per
relayed event than everything ccm-tui does with it. The types adapters exchange with the engine
(ProxyRequest, Route, replies, UpstreamError) live in ccm_tui.core.contract, so translate/ and routing/ can
use them without importing HTTP clients.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from ccm_tui.config import ProviderSettings, RoutingSettings
from ccm_tui.core.contract import UpstreamError
from ccm_tui.core.states import TransportFailure


def make_http_client(provider: ProviderSettings, routing: RoutingSettings) -> httpx.AsyncClient:
    """One client per provider: aiohttp transport (httpcore's pool degrades past ~50 streams), no retries,
    explicit timeouts. `read` is the idle gap allowed between two chunks; the engine enforces the
    first-byte deadline itself."""
    timeout = httpx.Timeout(
        connect=provider.connect_timeout or routing.connect_timeout,
        read=routing.idle_timeout,
        write=30.0,
        pool=provider.connect_timeout or routing.connect_timeout,
    )
    limits = httpx.Limits(max_connections=512, max_keepalive_connections=128, keepalive_expiry=30.0)
    # trust_env=False: proxies/netrc from the environment must not silently reroute API keys.
    transport = ReaderTransport(limits=limits, trust_env=False)
    # No cookie jar that keeps anything: an upstream's cookie must not ride along on later calls.
    no_cookies = CookieJar(policy=DefaultCookiePolicy(allowed_domains=()))
    return ProviderClient(transport, timeout=timeout, trust_env=False, follow_redirects=False, cookies=no_cookies)


# The httpx.Response extension under which ReaderTransport hands over aiohttp's body reader.
READER_EXTENSION = "ccm_tui.aiohttp_reader"


class ReaderTransport(AiohttpTransport):
    """httpx-aiohttp's transport, plus the aiohttp StreamReader of each response in its extensions, so a
    streamed body can be read without httpx's iterator layers (`body_chunks`); its aiohttp session keeps no
    cookies (aiohttp's own jar would store an upstream's cookies and send them on every later request)."""

    def get_client(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self.limits.max_connections or 0, keepalive_timeout=self.limits.keepalive_expiry, ssl=self.ssl_context
        )
        return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        upstream = getattr(response.stream, "_aiohttp_response", None)  # httpx-aiohttp's AiohttpResponseStream
        if isinstance(upstream, aiohttp.ClientResponse):
            response.extensions[READER_EXTENSION] = upstream.content
        return response


class ProviderClient(httpx.AsyncClient):
    """An httpx client whose `send_direct` hands a built request straight to its transport.

    `AsyncClient.send` around the transport adds auth and redirect flows, a response-stream wrapper and a
    cookie jar (parsing every response's headers through the stdlib's cookie machinery): none of which a
    provider call uses (no auth flow, no redirects, and a cookie one upstream sets must not ride along on
    later requests anyway). About 4% of the proxy's CPU per streamed request (bench/README.md)."""

    def __init__(self, transport: ReaderTransport, **kwargs: Any) -> None:
        super().__init__(transport=transport, **kwargs)
        self._direct = transport

    async def send_direct(self, request: httpx.Request) -> httpx.Response:
        return await self._direct.handle_async_request(request)


def transport_error(exc: BaseException) -> UpstreamError:
    """A failure with no HTTP response, worded for the request log (never includes a URL with a key).

    `exc` is an httpx error or an aiohttp one (read by `body_chunks`). httpx-aiohttp maps every aiohttp
    connection error to httpx.ConnectTimeout, so the aiohttp cause decides.
    """
    cause = exc if isinstance(exc, aiohttp.ClientError) else exc.__cause__
    if isinstance(cause, aiohttp.ClientConnectorError) or isinstance(exc, httpx.ConnectError):
        return UpstreamError.no_response(TransportFailure.CONNECT, "connection refused or unreachable")
    if isinstance(cause, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError | aiohttp.ClientOSError):
        return UpstreamError.no_response(TransportFailure.READ, f"connection lost ({type(cause).__name__})")
    if isinstance(exc, httpx.TimeoutException | asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return UpstreamError.no_response(TransportFailure.TIMEOUT, "upstream timed out")
    return UpstreamError.no_response(TransportFailure.READ, f"connection lost ({type(exc).__name__})")


def body_chunks(response: httpx.Response) -> AsyncIterator[bytes]:
    """The body of a response opened with `open_response`, one chunk per read of everything that has
    arrived (several events when the upstream is ahead of us: fewer, larger writes downstream).

    Transport failures raise UpstreamError. An unencoded body (we ask for identity) is read straight from
    aiohttp; a compressed one, or a response from another transport, goes through httpx's decoders."""
    reader = response.extensions.get(READER_EXTENSION)
    if isinstance(reader, aiohttp.StreamReader) and response.headers.get("content-encoding", "identity") == "identity":
        return _read_all_arrived(reader)
    return _decoded_chunks(response)


async def _read_all_arrived(reader: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    try:
        while chunk := await reader.readany():
            yield chunk
    except aiohttp.ClientError as exc:
        raise transport_error(exc) from None


async def _decoded_chunks(response: httpx.Response) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.aiter_bytes():
            yield chunk
    except httpx.TransportError as exc:
        raise transport_error(exc) from None


def header_items(headers: httpx.Headers) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


ErrorParser = Callable[[int, bytes, dict[str, str]], UpstreamError]


async def open_response(client: httpx.AsyncClient, request: httpx.Request, parse_error: ErrorParser) -> httpx.Response:
    """Send `request`; return as soon as a 2xx status and its headers are known (the body is not read).

    A transport failure becomes a transport_error; any other status reads the error body, closes the
    response and raises the vendor's `parse_error(status, body, headers)`.
    """
    try:
        if isinstance(client, ProviderClient):
            response = await client.send_direct(request)
        else:
            response = await client.send(request, stream=True)
    except httpx.TransportError as exc:
        raise transport_error(exc) from None
    if not 200 <= response.status_code < 300:
        try:
            body = await read_all(response)
        except UpstreamError:
            body = b""
        raise parse_error(response.status_code, body, header_items(response.headers))
    return response


async def read_all(response: httpx.Response) -> bytes:
    """The whole body of a response opened with `open_response`; it is closed either way."""
    try:
        return await response.aread()
    except httpx.TransportError as exc:
        raise transport_error(exc) from None
    finally:
        await response.aclose()
