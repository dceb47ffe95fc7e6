"""What the engine returns for a request: Served (a reply to relay) or Refused (why no provider answered).

The builders at the bottom decide which refusal fits (pure); proxy/ renders outcomes as HTTP. A refusal's
status is a routing fact (history and metrics record it), so its table lives here; the Anthropic error type
follows from the status (core/errors.py).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from ccm_tui.core.contract import Route, UpstreamError
from ccm_tui.core.errors import error_type_for
from ccm_tui.core.events import AttemptRecord
from ccm_tui.core.states import AttemptOutcome, FailureKind, ProviderState
from ccm_tui.routing.limits import Failure, FailureCause
from ccm_tui.routing.plan import Candidate

# Upstream response headers a client of an Anthropic-protocol upstream relies on (PROTOCOLS.md §9): passed
# through on success and on error. Names are lower-case.
FORWARDED_HEADERS = ("request-id", "x-should-retry")
FORWARDED_PREFIX = "anthropic-ratelimit-"  # also the unified-* plan-usage headers


def forwarded_headers(headers: Mapping[str, str], anthropic_protocol: bool) -> tuple[tuple[str, str], ...]:
    """What of an upstream's response headers the client sees: anthropic-ratelimit-* from anyone that sends
    them, request-id and x-should-retry only from Anthropic-protocol upstreams (their words, not a translator's)."""
    kept = [(k, v) for k, v in headers.items() if k.startswith(FORWARDED_PREFIX)]
    if anthropic_protocol:
        kept += [(k, headers[k]) for k in FORWARDED_HEADERS if k in headers]
    return tuple(kept)


class RefusalKind(StrEnum):
    PAUSED = "paused"  # the user paused the proxy
    UNKNOWN_MODEL = "unknown_model"  # no configured provider maps the requested model
    COOLING = "cooling"  # every candidate is rate-limited (now or cooling from it): retry after the soonest
    UNAVAILABLE = "unavailable"  # every candidate is switched off, disabled or without a key
    OVERLOADED = "overloaded"  # every candidate is overloaded or failed transiently
    UNREACHABLE = "unreachable"  # no candidate could be connected to
    FAILED = "failed"  # every candidate failed otherwise
    CLIENT_ERROR = "client_error"  # an upstream said the request itself is bad: its 4xx, no failover
    BUDGET = "budget"  # the [budget] guard is at its cap (routing/budget.py): do not retry


REFUSAL_STATUS = {
    RefusalKind.PAUSED: 529,
    RefusalKind.UNKNOWN_MODEL: 404,
    RefusalKind.COOLING: 429,
    RefusalKind.UNAVAILABLE: 503,
    RefusalKind.OVERLOADED: 529,
    RefusalKind.UNREACHABLE: 502,
    RefusalKind.FAILED: 503,
    RefusalKind.CLIENT_ERROR: 400,
    RefusalKind.BUDGET: 429,  # as Anthropic's own spend cap; x-should-retry: false says waiting will not help
}


@dataclass(frozen=True)
class Refused:
    kind: RefusalKind
    message: str
    retry_after: int | None = None  # whole seconds, when waiting helps
    upstream_status: int | None = None  # for CLIENT_ERROR: the upstream's own 4xx
    # Upstream headers the client sees (forwarded_headers); an upstream's own x-should-retry among them wins.
    headers: tuple[tuple[str, str], ...] = ()
    retryable: bool | None = None  # None: as the kind says (should_retry)

    @property
    def should_retry(self) -> bool:
        """`x-should-retry`: false when retrying cannot help (a client error, every candidate disabled)."""
        if self.retryable is not None:
            return self.retryable
        return self.kind not in (RefusalKind.CLIENT_ERROR, RefusalKind.UNKNOWN_MODEL, RefusalKind.UNAVAILABLE)

    @property
    def status(self) -> int:
        upstream = self.upstream_status
        if self.kind is RefusalKind.CLIENT_ERROR and upstream is not None and 400 <= upstream < 500:
            return upstream
        return REFUSAL_STATUS[self.kind]

    @property
    def error_type(self) -> str:
        return error_type_for(self.status)


@dataclass(frozen=True)
class Served:
    """A provider answered: `body` is an Anthropic Message (JSON) or `stream` yields Anthropic SSE bytes."""

    route: Route | None  # None: a held stream, whose provider is chosen once one recovers
    failovers: int  # attempts that failed before this one
    body: bytes | None = None
    stream: AsyncIterator[bytes] | None = None
    headers: tuple[tuple[str, str], ...] = field(default=())  # forwarded upstream headers (forwarded_headers)


Outcome = Served | Refused


# Largest retry-after the proxy advertises: a cool-down is capped at cooldown_max anyway, and a value the
# client reads as a whole number of seconds must stay one.
MAX_RETRY_AFTER = 86_400


def wait_seconds(soonest: float, now: float) -> int:
    """A recovery time as an integer `retry-after`: at least 1 s, never inf or absurd."""
    wait = soonest - now
    if not math.isfinite(wait):
        return MAX_RETRY_AFTER if wait > 0 else 1
    return max(1, min(MAX_RETRY_AFTER, math.ceil(wait)))


def cooling(soonest: float, now: float, message: str, kind: RefusalKind = RefusalKind.COOLING) -> Refused:
    wait = wait_seconds(soonest, now)
    return Refused(kind, f"{message} Retry in {wait} s.", retry_after=wait)


def _transient_kind(causes: Sequence[FailureCause | None]) -> RefusalKind:
    """429 only when every cause is a rate limit (or unknown, as before); any overload or other transient
    failure makes it 529 (PROTOCOLS.md §9: Claude Code tells them apart)."""
    known = [c for c in causes if c is not None]
    if not known or all(c is FailureCause.RATE_LIMIT for c in known):
        return RefusalKind.COOLING
    return RefusalKind.OVERLOADED


def blocked(
    model: str,
    candidates: Sequence[Candidate],
    soonest: float | None,
    now: float,
    causes: Sequence[FailureCause | None] = (),
) -> Refused:
    """No candidate could even be tried: all cooling (retry after the soonest), or off / disabled / no key.
    `causes` are why the cooling candidates last failed."""
    if soonest is not None:
        names = ", ".join(sorted({c.route.provider for c in candidates if c.state is ProviderState.COOLING}))
        return cooling(
            soonest, now, f"Every provider for {model!r} is cooling down ({names}).", _transient_kind(causes)
        )
    reasons = "; ".join(sorted({f"{c.route.provider}: {c.reason}" for c in candidates}))
    return Refused(RefusalKind.UNAVAILABLE, f"No provider can take {model!r} now ({reasons}).")


def exhausted(
    records: Sequence[AttemptRecord],
    failure: Failure,
    error: UpstreamError,
    soonest: float | None,
    now: float,
    causes: Sequence[FailureCause] = (),
    unreachable: Sequence[str] = (),
    headers: tuple[tuple[str, str], ...] = (),
) -> Refused:
    """Every planned route failed; `failure` / `error` are the last attempt's, `soonest` the first recovery,
    `causes` every failed attempt's cause, `unreachable` the host:port of each that refused a connection and
    `headers` the last Anthropic-protocol upstream's forwarded headers."""
    if failure.kind is FailureKind.CLIENT_ERROR or (
        failure.kind is FailureKind.SKIP and all(r.outcome is AttemptOutcome.SKIP for r in records)
    ):
        return Refused(RefusalKind.CLIENT_ERROR, error.message, upstream_status=error.status, headers=headers)
    own = tuple((k, v) for k, v in headers if k != "x-should-retry")  # the proxy decides whether to retry
    if causes and all(c is FailureCause.UNREACHABLE for c in causes):
        where = ", ".join(dict.fromkeys(unreachable)) or "every upstream"
        message = f"Could not connect to {where}: connection refused or unreachable."
        return Refused(RefusalKind.UNREACHABLE, message, headers=own)
    message = "Every provider failed ({}).".format("; ".join(f"{r.provider}: {r.reason}" for r in records))
    transient = [c for c in causes if c is not FailureCause.DISABLED and c is not FailureCause.REQUEST]
    if failure.kind is FailureKind.COOLDOWN or (causes and transient and len(transient) == len(causes)):
        kind = _transient_kind(causes)
        if soonest is not None:
            return _with_headers(cooling(soonest, now, message, kind), own)
        return Refused(RefusalKind.OVERLOADED, message, headers=own)
    return Refused(RefusalKind.FAILED, message, headers=own, retryable=bool(transient))


def _with_headers(refused: Refused, headers: tuple[tuple[str, str], ...]) -> Refused:
    return Refused(refused.kind, refused.message, refused.retry_after, refused.upstream_status, headers)
