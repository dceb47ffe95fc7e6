"""The engine's bookkeeping: recording attempts into health and the attempt log, publishing, refusing.

A base class of routing.engine.Engine (with routing/legs.py and routing/control.py), so each module stays
small; it holds no state of its own beyond what Engine.__init__ sets.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from ccm_tui.config import Settings
from ccm_tui.core.contract import Route, UpstreamError
from ccm_tui.core.events import AttemptFailed, EventBus, ProviderChange, ProviderChanged, Usage
from ccm_tui.core.states import AttemptOutcome, FailureKind, ProviderState, TransportFailure
from ccm_tui.providers import Provider
from ccm_tui.routing.attempts import AttemptLog
from ccm_tui.routing.candidates import CostLookup
from ccm_tui.routing.health import HealthBook
from ccm_tui.routing.hold import Holds
from ccm_tui.routing.limits import Failure, classify, quota_from_headers
from ccm_tui.routing.outcome import Refused, forwarded_headers
from ccm_tui.routing.steering import Steering

log = logging.getLogger(__name__)

ANTHROPIC_PROTOCOL = ("anthropic", "vertex", "bedrock")  # kinds whose response headers are Anthropic's own


class EngineCore:
    settings: Settings
    providers: dict[str, Provider]
    bus: EventBus
    prices: CostLookup
    clock: Callable[[], float]
    strategy: str
    in_flight: int
    holds: Holds
    steer: Steering
    _health: HealthBook

    def _first_byte_timeout(self, route: Route) -> float:
        return self.providers[route.provider].settings.first_byte_timeout or self.settings.routing.first_byte_timeout

    def _forwarded(self, route: Route, headers: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
        return forwarded_headers(headers, self.providers[route.provider].settings.kind in ANTHROPIC_PROTOCOL)

    # --- recording --------------------------------------------------------------------------------------------
    def _note_quota(self, route: Route, headers: Mapping[str, str], now: float) -> None:
        snapshot = quota_from_headers(headers, now)
        if snapshot is not None:
            self._health.note_quota(route.provider, self.steer.note_quota(route, snapshot, now))

    def _changed(
        self, route: Route, state: ProviderState, change: ProviderChange, until: float | None, why: str
    ) -> None:
        self.bus.publish(ProviderChanged(route.provider, route.variant.key, state, change, until, why))

    def _record_failure(
        self, run: AttemptLog, route: Route, error: UpstreamError, started: float, next_route: Route | None
    ) -> Failure:
        now = self.clock()
        failure = classify(error, now)
        self._health.abandon_probe(route.provider, route.variant.key)
        self._note_quota(route, error.headers, now)
        if self.steer.key_failed(route, failure, error, now):  # the pool's next key takes it; provider healthy
            assert route.api_key is not None
            reason = f"key {route.api_key.label}: {failure.reason}"
            record = run.record(
                route, started, AttemptOutcome.of(failure.kind), error.status, reason, failure.retry_after
            )
            self.bus.publish(AttemptFailed(run.request.request_id, record, route.provider))
            return failure
        if failure.kind is FailureKind.COOLDOWN:
            until = self._health.record_failure(route.provider, route.variant.key, failure, now)
            self._changed(route, ProviderState.COOLING, ProviderChange.COOLING, until, failure.reason)
        elif failure.kind is FailureKind.DISABLE:
            until = self._health.record_failure(route.provider, route.variant.key, failure, now)
            self._changed(route, ProviderState.DISABLED, ProviderChange.DISABLED, until, failure.reason)
        outcome = AttemptOutcome.of(failure.kind)
        record = run.record(route, started, outcome, error.status, failure.reason, failure.retry_after)
        follow = next_route.provider if next_route and failure.kind is not FailureKind.CLIENT_ERROR else None
        self.bus.publish(AttemptFailed(run.request.request_id, record, follow))
        return failure

    def _record_success(
        self,
        run: AttemptLog,
        route: Route,
        started: float,
        ttfb: float | None,
        usage: Usage,
        first_token: float | None = None,
    ) -> None:
        if self._health.record_success(route.provider, route.variant.key, self.clock(), ttfb, usage, first_token):
            self._changed(route, ProviderState.OK, ProviderChange.RECOVERED, None, "recovered")
            self.holds.wake()
        self.steer.served(run.request, route, usage, self.clock())
        run.record(route, started, AttemptOutcome.OK, 200)

    def _cost(self, route: Route, usage: Usage) -> float | None:
        try:
            return self.prices.cost_usd(route.provider, route.model, usage)
        except Exception:
            log.exception("cost lookup failed for %s %s", route.provider, route.model)
            return None

    def _publish_finished(
        self,
        run: AttemptLog,
        status: int,
        route: Route | None,
        usage: Usage,
        model: str | None,
        ttfb: float | None,
        headers: Mapping[str, str] | None = None,
        error: tuple[str, str] | None = None,
    ) -> None:
        cost = self._cost(route, usage) if route is not None else None
        self.bus.publish(run.finished(status, route, usage, model, ttfb, cost, headers, error))

    # --- refusals ---------------------------------------------------------------------------------------------
    def _refuse(self, run: AttemptLog, refused: Refused) -> Refused:
        self._publish_finished(
            run, refused.status, None, Usage(), None, None, error=(refused.error_type, refused.message)
        )
        return refused

    def _soonest_recovery(self) -> float | None:
        now = self.clock()
        times = [t for name in self.providers if (t := self._health[name].cooling_until(now)) is not None]
        return min(times, default=None)


def as_upstream_error(exc: BaseException) -> UpstreamError:
    """Adapters raise UpstreamError for every upstream failure; a timeout here is the engine's own deadline, and
    anything else is an adapter bug, which must still fail over (and be logged), never reach the client as a 500."""
    if isinstance(exc, UpstreamError):
        return exc
    if isinstance(exc, TimeoutError):
        return UpstreamError.no_response(TransportFailure.TIMEOUT, "upstream timed out")
    log.error("provider adapter failed unexpectedly", exc_info=exc)
    return UpstreamError.bad_reply(f"the adapter failed on this reply ({type(exc).__name__})")
