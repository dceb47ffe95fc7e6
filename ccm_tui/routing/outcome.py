"""What the engine returns for a request: Served (a reply to relay) or Refused (why no provider answered).

The builders at the bottom decide which refusal fits (pure); proxy/ renders outcomes as HTTP. A refusal's
status is a routing fact (history and metrics record it), so its table lives here; the Anthropic error type
follows from the status (core/errors.py).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from enum import StrEnum

from ccm_tui.core.contract import Route, UpstreamError
from ccm_tui.core.errors import error_type_for
from ccm_tui.core.events import AttemptRecord
from ccm_tui.core.states import AttemptOutcome, FailureKind, ProviderState
from ccm_tui.routing.limits import Failure
from ccm_tui.routing.plan import Candidate


class RefusalKind(StrEnum):
    PAUSED = "paused"  # the user paused the proxy
    UNKNOWN_MODEL = "unknown_model"  # no configured provider maps the requested model
    COOLING = "cooling"  # every candidate is cooling down: retry after the soonest recovery
    UNAVAILABLE = "unavailable"  # every candidate is switched off, disabled or without a key
    OVERLOADED = "overloaded"  # every candidate failed with a transient failure
    FAILED = "failed"  # every candidate failed otherwise
    CLIENT_ERROR = "client_error"  # an upstream said the request itself is bad: its 4xx, no failover
    BUDGET = "budget"  # the [budget] guard is at its cap (routing/budget.py): do not retry


REFUSAL_STATUS = {
    RefusalKind.PAUSED: 529,
    RefusalKind.UNKNOWN_MODEL: 404,
    RefusalKind.COOLING: 429,
    RefusalKind.UNAVAILABLE: 503,
    RefusalKind.OVERLOADED: 529,
    RefusalKind.FAILED: 503,
    RefusalKind.CLIENT_ERROR: 400,
    RefusalKind.BUDGET: 429,  # as Anthropic's own spend cap; x-should-retry: false says waiting will not help
}


@dataclass(frozen=True)
class Refused:
    kind: RefusalKind
    message: str
    retry_after: int | None = None  # whole seconds, for COOLING
    upstream_status: int | None = None  # for CLIENT_ERROR: the upstream's own 4xx
    should_retry: bool | None = None  # sent as x-should-retry when set (Claude Code honours it)

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

    route: Route
    failovers: int  # attempts that failed before this one
    body: bytes | None = None
    stream: AsyncIterator[bytes] | None = None


Outcome = Served | Refused


def cooling(soonest: float, now: float, message: str) -> Refused:
    wait = max(1, math.ceil(soonest - now))
    return Refused(RefusalKind.COOLING, f"{message} Retry in {wait} s.", retry_after=wait)


def blocked(model: str, candidates: Sequence[Candidate], soonest: float | None, now: float) -> Refused:
    """No candidate could even be tried: all cooling (retry after the soonest), or off / disabled / no key."""
    if soonest is not None:
        names = ", ".join(sorted({c.route.provider for c in candidates if c.state is ProviderState.COOLING}))
        return cooling(soonest, now, f"Every provider for {model!r} is cooling down ({names}).")
    reasons = "; ".join(sorted({f"{c.route.provider}: {c.reason}" for c in candidates}))
    return Refused(RefusalKind.UNAVAILABLE, f"No provider can take {model!r} now ({reasons}).")


def exhausted(
    records: Sequence[AttemptRecord], failure: Failure, error: UpstreamError, soonest: float | None, now: float
) -> Refused:
    """Every planned route failed; `failure` / `error` are the last attempt's, `soonest` the first recovery."""
    if failure.kind is FailureKind.CLIENT_ERROR or (
        failure.kind is FailureKind.SKIP and all(r.outcome is AttemptOutcome.SKIP for r in records)
    ):
        return Refused(RefusalKind.CLIENT_ERROR, error.message, upstream_status=error.status)
    message = "Every provider failed ({}).".format("; ".join(f"{r.provider}: {r.reason}" for r in records))
    if failure.kind is FailureKind.COOLDOWN:
        return cooling(soonest, now, message) if soonest is not None else Refused(RefusalKind.OVERLOADED, message)
    return Refused(RefusalKind.FAILED, message)
