"""One request's attempts: the single place an AttemptRecord or a RequestFinished is built, and the in-flight slot.

An attempt holds an `InFlightSlot` from the moment it is sent until its reply is finished (a stream's relay
owns it until the stream ends); `release` is idempotent and the only place the count goes down.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from ccm_tui.core.contract import ProxyRequest, Route
from ccm_tui.core.events import AttemptRecord, RequestFinished, Usage
from ccm_tui.core.states import AttemptOutcome

# Upstream headers kept with a finished request: request ids and rate-limit counters.
NOTABLE_HEADERS = (
    "request-id",
    "x-request-id",
    "x-should-retry",
    "x-amzn-requestid",
    "x-generation-id",
    "anthropic-ratelimit-requests-remaining",
    "anthropic-ratelimit-tokens-remaining",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-remaining-requests-day",
    "x-ratelimit-remaining-tokens-minute",
)


@dataclass
class AttemptLog:
    """The running record of one request's attempts."""

    request: ProxyRequest
    started_at: float  # wall clock
    t0: float  # perf counter at arrival
    records: list[AttemptRecord] = field(default_factory=list)

    def record(
        self,
        route: Route,
        started: float,
        outcome: AttemptOutcome,
        status: int | None,
        reason: str = "",
        retry_after: float | None = None,
    ) -> AttemptRecord:
        record = AttemptRecord(
            provider=route.provider,
            model=route.model,
            variant=route.variant.key,
            status=status,
            outcome=outcome,
            reason=reason,
            started_at=self.started_at + (started - self.t0),
            duration=time.perf_counter() - started,
            retry_after=retry_after,
        )
        self.records.append(record)
        return record

    def finished(
        self,
        status: int,
        route: Route | None,
        usage: Usage,
        model: str | None,
        ttfb: float | None,
        cost: float | None,
        headers: Mapping[str, str] | None = None,
        error: tuple[str, str] | None = None,
        skipped_events: int = 0,
    ) -> RequestFinished:
        """The request's final event: what the client got, who served it, every attempt."""
        return RequestFinished(
            request_id=self.request.request_id,
            requested_model=self.request.model,
            stream=self.request.stream,
            status=status,
            provider=route.provider if route else None,
            model=route.model if route else None,
            attempts=tuple(self.records),
            usage=usage,
            cost_usd=cost,
            started_at=self.started_at,
            ttfb=ttfb,
            duration=time.perf_counter() - self.t0,
            error_type=error[0] if error else None,
            error_message=error[1] if error else None,
            headers_of_note=tuple((k, headers[k]) for k in NOTABLE_HEADERS if headers and k in headers),
            hints=self.request.hints,
            key_label=route.api_key.label if route and route.api_key else None,
            skipped_events=skipped_events,
        )


class Counted(Protocol):
    in_flight: int


class InFlightSlot:
    """One attempt's place in the in-flight count."""

    def __init__(self, owner: Counted) -> None:
        self._owner = owner
        self._held = True
        owner.in_flight += 1

    def release(self) -> None:
        if self._held:
            self._held = False
            self._owner.in_flight -= 1
