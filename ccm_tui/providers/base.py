"""The provider contract: what the engine hands an adapter, what an adapter hands back, how it fails.

An adapter's `send` returns once the upstream's status and headers are known: a MessageReply (non-streaming)
or a StreamReply (Anthropic SSE bytes, metered as they pass). Any failure before that is an UpstreamError;
a failure while a StreamReply is being read is raised from its iterator as an UpstreamError too. Adapters
never retry: the engine owns retries and failover.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
from httpx_aiohttp import AiohttpTransport

from ccm_tui.config import ProviderSettings, RoutingSettings, Variant
from ccm_tui.events import Usage


@dataclass(frozen=True)
class ProxyRequest:
    """An inbound Anthropic Messages request, validated and parsed once."""

    request_id: str
    body: dict[str, Any]
    raw_body: bytes
    model: str
    tier: str | None
    stream: bool
    anthropic_version: str = "2023-06-01"
    betas: tuple[str, ...] = ()


@dataclass(frozen=True)
class Route:
    """Where one attempt goes: a provider and one of its variants for the request's model."""

    provider: str
    variant: Variant

    @property
    def model(self) -> str:
        return self.variant.model

    @property
    def key(self) -> str:
        return f"{self.provider}/{self.variant.key}"


class UpstreamError(Exception):
    """An upstream failure, normalised by the adapter; routing.limits classifies it.

    status 0 means there was no HTTP response (`transport` says why: "timeout", "connect", "read").
    error_type / error_code are the vendor's own words (rate_limit_error, insufficient_quota,
    RESOURCE_EXHAUSTED, ThrottlingException / enforced_spend_limit_reached, tokens_limit_reached ...).
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_type: str | None = None,
        error_code: str | None = None,
        headers: Mapping[str, str] | None = None,
        retry_after: float | None = None,
        transport: str | None = None,
        long_quota: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type
        self.error_code = error_code
        self.headers: Mapping[str, str] = headers if headers is not None else {}
        self.retry_after = retry_after
        self.transport = transport
        self.long_quota = long_quota

    def __repr__(self) -> str:
        return f"UpstreamError({self.status}, {self.error_type!r}, {self.message!r})"


@dataclass
class StreamMeter:
    """What the engine learns from a stream as it passes: usage, served model, how it ended."""

    usage: Usage = field(default_factory=Usage)
    model: str | None = None
    stop_reason: str | None = None
    completed: bool = False  # message_stop seen
    error_type: str | None = None  # an upstream `event: error` passed through
    error_message: str | None = None


@dataclass
class MessageReply:
    body: bytes  # Anthropic Message JSON
    usage: Usage
    headers: Mapping[str, str]
    model: str | None = None


class StreamReply:
    """Anthropic SSE bytes from an upstream. Iterate once; always `aclose()` (closes the upstream at once)."""

    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        headers: Mapping[str, str],
        meter: StreamMeter,
        close: Callable[[], Awaitable[None]],
    ) -> None:
        self._chunks = chunks
        self.headers = headers
        self.meter = meter
        self._close = close
        self._closed = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            aclose = getattr(self._chunks, "aclose", None)
            if aclose is not None:
                await aclose()
        finally:
            await self._close()


Reply = MessageReply | StreamReply


class Provider(Protocol):
    settings: ProviderSettings

    def set_api_key(self, key: str | None) -> None: ...

    @property
    def has_credentials(self) -> bool: ...

    async def send(self, request: ProxyRequest, route: Route) -> Reply: ...

    async def count_tokens(self, request: ProxyRequest, route: Route) -> int | None:
        """The upstream's native count, or None when it has none (the caller estimates locally)."""
        ...

    async def aclose(self) -> None: ...


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
    transport = AiohttpTransport(limits=limits, trust_env=False)
    return httpx.AsyncClient(transport=transport, timeout=timeout, trust_env=False, follow_redirects=False)


def transport_error(exc: BaseException) -> UpstreamError:
    """A failure with no HTTP response, worded for the request log (never includes a URL with a key).

    httpx-aiohttp maps every aiohttp connection error to httpx.ConnectTimeout, so the aiohttp cause decides.
    """
    import aiohttp

    cause = exc.__cause__
    if isinstance(cause, aiohttp.ClientConnectorError) or isinstance(exc, httpx.ConnectError):
        return UpstreamError(0, "connection refused or unreachable", transport="connect", error_type="connect")
    if isinstance(cause, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError | aiohttp.ClientOSError):
        return UpstreamError(0, f"connection lost ({type(cause).__name__})", transport="read", error_type="read")
    if isinstance(exc, httpx.TimeoutException | asyncio.TimeoutError):
        return UpstreamError(0, "upstream timed out", transport="timeout", error_type="timeout")
    return UpstreamError(0, f"connection lost ({type(exc).__name__})", transport="read", error_type="read")


def header_items(headers: httpx.Headers) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


ErrorParser = Callable[[int, bytes, dict[str, str]], UpstreamError]


async def open_response(client: httpx.AsyncClient, request: httpx.Request, parse_error: ErrorParser) -> httpx.Response:
    """Send `request`; return as soon as a 2xx status and its headers are known (the body is not read).

    A transport failure becomes a transport_error; any other status reads the error body, closes the
    response and raises the vendor's `parse_error(status, body, headers)`.
    """
    try:
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
