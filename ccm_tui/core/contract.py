"""The contract between the engine and provider adapters: what goes in, what comes back, how it fails.

An adapter's `send` returns once the upstream's status and headers are known: a MessageReply (non-streaming)
or a StreamReply (Anthropic SSE bytes, metered as they pass). Any failure before that is an UpstreamError;
a failure while a StreamReply is being read is raised from its iterator as an UpstreamError too. Adapters
never retry: the engine owns retries and failover.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ccm_tui.core.events import Usage
from ccm_tui.core.hints import NO_HINTS, ClientHints
from ccm_tui.core.scrub import scrub
from ccm_tui.core.states import ErrorOrigin, TransportFailure

# A trailing `@region` on a model id picks another region for that variant. Vertex ids carry `@date`
# (claude-sonnet-4@20250514), so only a suffix that looks like a region counts.
_REGION_SUFFIX = re.compile(r"^(?:global|us|eu|[a-z]{2,}(?:-[a-z0-9]+)+)$")


@dataclass(frozen=True)
class Variant:
    """One way a provider can serve a tier: a model id, optionally in a region other than the provider's."""

    model: str
    region: str | None = None

    @property
    def key(self) -> str:
        return f"{self.model}@{self.region}" if self.region else self.model

    @classmethod
    def parse(cls, text: str) -> Variant:
        head, sep, tail = text.rpartition("@")
        if sep and head and _REGION_SUFFIX.match(tail):
            return cls(model=head, region=tail)
        return cls(model=text)


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
    hints: ClientHints = NO_HINTS


@dataclass(frozen=True)
class ApiKey:
    """One of a provider's keys, as an attempt carries it: the secret and the label logs and history show."""

    label: str  # never the key (routing/keys.py masks it)
    secret: str = field(repr=False)


@dataclass(frozen=True)
class Route:
    """Where one attempt goes: a provider and one of its variants for the request's model.

    `api_key` is the pool key this attempt uses (routing/keys.py chooses it); adapters send it instead of
    their own key. Two routes to the same variant are the same route whichever key they carry.
    """

    provider: str
    variant: Variant
    api_key: ApiKey | None = field(default=None, compare=False, repr=False)

    def credential(self, default: str | None) -> str | None:
        """The key to send: this attempt's pool key, else the adapter's own."""
        return self.api_key.secret if self.api_key is not None else default

    @property
    def model(self) -> str:
        return self.variant.model

    @property
    def key(self) -> str:
        return f"{self.provider}/{self.variant.key}"


class UpstreamError(Exception):
    """An upstream failure, normalised by the adapter; routing.limits classifies it.

    `origin` says what kind of failure it is: an HTTP error status (`status` is set), no response at all
    (`transport` says why), an unusable 2xx reply, or an error event inside a stream. error_type / error_code
    are the vendor's own words (rate_limit_error, insufficient_quota, RESOURCE_EXHAUSTED, ThrottlingException,
    enforced_spend_limit_reached, tokens_limit_reached ...).
    """

    def __init__(
        self,
        status: int | None,
        message: str,
        *,
        origin: ErrorOrigin = ErrorOrigin.HTTP,
        error_type: str | None = None,
        error_code: str | None = None,
        headers: Mapping[str, str] | None = None,
        retry_after: float | None = None,
        transport: TransportFailure | None = None,
        long_quota: bool = False,
    ) -> None:
        # Every upstream-originated text passes here on its way to clients, logs, history and the screen.
        message = scrub(message)
        super().__init__(message)
        self.status = status
        self.message = message
        self.origin = origin
        self.error_type = _vendor_word(error_type)
        self.error_code = _vendor_word(error_code)
        self.headers: Mapping[str, str] = headers if headers is not None else {}
        self.retry_after = retry_after
        self.transport = transport
        self.long_quota = long_quota

    @classmethod
    def no_response(cls, cause: TransportFailure, message: str) -> UpstreamError:
        """No HTTP response: refused, timed out, or the connection was lost (also mid-stream)."""
        return cls(None, message, origin=ErrorOrigin.TRANSPORT, transport=cause, error_type=cause.value)

    @classmethod
    def bad_reply(cls, message: str, headers: Mapping[str, str] | None = None) -> UpstreamError:
        """A 2xx whose body or stream cannot be used (malformed JSON, no choices, ended early)."""
        return cls(None, message, origin=ErrorOrigin.REPLY, error_type="api_error", headers=headers)

    def __repr__(self) -> str:
        label = self.status if self.origin is ErrorOrigin.HTTP else self.origin.value
        return f"UpstreamError({label}, {self.error_type!r}, {self.message!r})"


_MAX_VENDOR_WORD = 64


def _vendor_word(word: str | None) -> str | None:
    """A vendor's error type or code: upstream text too, so scrubbed and bounded like the message."""
    return scrub(word)[:_MAX_VENDOR_WORD] if word else word


@dataclass
class StreamMeter:
    """What the engine learns from a stream as it passes: usage, served model, how it ended."""

    usage: Usage = field(default_factory=Usage)
    model: str | None = None
    stop_reason: str | None = None
    completed: bool = False  # message_stop seen
    error_type: str | None = None  # an upstream `event: error` passed through
    error_message: str | None = None
    skipped_events: int = 0  # malformed upstream events a translator skipped (invalid JSON, no content)


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
