"""The engine: plan a request's candidates, try them in turn, fail over, relay the reply, publish events.

`Engine.handle` is the only way a request reaches an upstream; it returns a typed Outcome (routing/outcome.py)
that proxy/ renders as HTTP. Failover happens only before the first byte reaches the client; after that an
upstream failure becomes an `event: error` and the stream ends. Candidate state is built in candidates.py,
read-only views in views.py; the UI changes routing only through the control API at the bottom.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence

from ccm_tui.config import STRATEGIES, Settings
from ccm_tui.core.contract import MessageReply, ProxyRequest, Route, StreamReply, UpstreamError
from ccm_tui.core.events import (
    AttemptFailed,
    EventBus,
    ProviderChange,
    ProviderChanged,
    RequestFinished,
    RequestStarted,
    RoutingChanged,
    Usage,
)
from ccm_tui.core.states import AttemptOutcome, FailureKind, ProviderState, TransportFailure
from ccm_tui.providers import Provider
from ccm_tui.routing.attempts import AttemptLog, InFlightSlot
from ccm_tui.routing.budget import BudgetState, SpendSource
from ccm_tui.routing.candidates import CostLookup, NoPrices, build_candidates
from ccm_tui.routing.health import HealthBook
from ccm_tui.routing.limits import Failure, QuotaSnapshot, classify, is_overload, quota_from_headers
from ccm_tui.routing.outcome import Outcome, RefusalKind, Refused, Served, blocked, exhausted
from ccm_tui.routing.plan import plan_routes
from ccm_tui.routing.steering import KeyEntry, Steering
from ccm_tui.routing.views import EngineView, ProviderView, engine_view, provider_view
from ccm_tui.translate.sse import error_event

log = logging.getLogger(__name__)

COUNT_TOKENS_TIMEOUT = 10.0
_COOLING_STREAM_ERRORS = ("overloaded_error", "rate_limit_error")


class Engine:
    def __init__(
        self,
        settings: Settings,
        providers: Mapping[str, Provider],
        bus: EventBus,
        prices: CostLookup | None = None,
        clock: Callable[[], float] = time.time,
        spend: SpendSource | None = None,
    ) -> None:
        self.settings = settings
        self.providers = dict(providers)
        self.bus = bus
        self.prices: CostLookup = prices or NoPrices()
        self.clock = clock
        self._health = HealthBook(
            list(self.providers), settings.routing, {p.name: p.enabled for p in settings.providers}
        )
        for name, provider in self.providers.items():  # so /health and the UI list variants before first use
            for variants in provider.settings.models.values():
                for variant in variants:
                    self._health[name].variant(variant.key, configured=True)
        self.strategy = settings.routing.strategy
        # Quota thresholds, key pools, session affinity, request classes, budget guard (routing/steering.py).
        self.steer = Steering(settings, {n: p.settings for n, p in self.providers.items()}, bus.publish, spend)
        self.paused = False
        self.in_flight = 0

    # --- requests -------------------------------------------------------------------------------------------
    async def handle(self, request: ProxyRequest) -> Outcome:
        run = AttemptLog(request, self.clock(), time.perf_counter())
        self.bus.publish(RequestStarted(request.request_id, request.model, request.stream, run.started_at))
        if self.paused:
            message = "ccm-tui is paused: new requests are refused until it is resumed (press p in the TUI)."
            return self._refuse(run, Refused(RefusalKind.PAUSED, message))
        candidates = build_candidates(request, self.providers, self._health, self.prices, self.clock(), self.steer)
        if not candidates:
            message = (
                f"model: no configured provider serves {request.model!r}. Map it (or its tier: haiku, sonnet, "
                "opus, or `default`) in a provider's [providers.models] table."
            )
            return self._refuse(run, Refused(RefusalKind.UNKNOWN_MODEL, message))
        plan = self.steer.plan(request, candidates, self.strategy, self.clock())
        if isinstance(plan, Refused):
            return self._refuse(run, plan)
        if not plan.routes:
            return self._refuse(run, blocked(request.model, candidates, plan.soonest_available, self.clock()))

        last: tuple[Failure, UpstreamError] | None = None
        try:
            for index, route in enumerate(plan.routes):
                next_route = plan.routes[index + 1] if index + 1 < len(plan.routes) else None
                result = await self._attempt_keys(run, route, next_route)
                if isinstance(result, Served):
                    return result
                last = result
                if result[0].kind is FailureKind.CLIENT_ERROR:
                    break
        except asyncio.CancelledError:
            # The client went away before the first byte: the upstream call is already closed; keep the record.
            self._publish_finished(run, 499, None, Usage(), None, None, error=("client_closed", "client disconnected"))
            raise
        assert last is not None
        refused = exhausted(run.records, *last, soonest=self._soonest_recovery(), now=self.clock())
        return self._refuse(run, refused)

    async def _attempt_keys(
        self, run: AttemptLog, route: Route, next_route: Route | None
    ) -> Served | tuple[Failure, UpstreamError]:
        """Attempt `route` with its pool's keys in rotation: a key failure (429, rejected key) moves to the
        pool's next key before the next provider."""
        tried: set[str] = set()
        keyed = self.steer.with_key(route, self.clock()) or route
        while True:
            result = await self._attempt(run, keyed, next_route)
            if isinstance(result, Served) or keyed.api_key is None or not self.steer.key_down(keyed, self.clock()):
                return result
            tried.add(keyed.api_key.label)
            following = self.steer.with_key(route, self.clock(), tried)
            if following is None:
                return result
            keyed = following

    async def _attempt(
        self, run: AttemptLog, route: Route, next_route: Route | None
    ) -> Served | tuple[Failure, UpstreamError]:
        provider = self.providers[route.provider]
        started = time.perf_counter()
        self._health[route.provider].variant(route.variant.key).start_attempt()
        slot = InFlightSlot(self)
        relaying = False  # once the stream relay owns the slot, it releases it
        reply: MessageReply | StreamReply | None = None
        try:
            async with asyncio.timeout(
                provider.settings.first_byte_timeout or self.settings.routing.first_byte_timeout
            ):
                reply = await provider.send(run.request, route)
                first = await _first_chunk(reply) if isinstance(reply, StreamReply) else b""
            self._note_quota(route, reply.headers, self.clock())
            if isinstance(reply, MessageReply):
                slot.release()  # before the success is published, so watchers see the count it leaves
                ttfb = time.perf_counter() - run.t0
                self._record_success(run, route, started, ttfb, reply.usage)
                self._publish_finished(run, 200, route, reply.usage, reply.model, ttfb, reply.headers)
                return Served(route, len(run.records) - 1, body=reply.body)
            relaying = True
            return Served(route, len(run.records), stream=self._relay(run, route, reply, first, started, slot))
        except Exception as exc:
            if isinstance(reply, StreamReply):
                await reply.aclose()
            error = as_upstream_error(exc)
            slot.release()
            return self._record_failure(run, route, error, started, next_route), error
        except BaseException:
            self._health.abandon_probe(route.provider, route.variant.key)
            if isinstance(reply, StreamReply):
                await reply.aclose()
            raise
        finally:
            if not relaying:
                slot.release()

    async def _relay(
        self, run: AttemptLog, route: Route, reply: StreamReply, first: bytes, started: float, slot: InFlightSlot
    ) -> AsyncIterator[bytes]:
        ttfb: float | None = None
        error: tuple[str, str] | None = None
        status = 200
        tail = first
        try:
            ttfb = time.perf_counter() - run.t0
            yield first
            async for chunk in reply:
                tail = chunk
                yield chunk
            if not reply.meter.completed and reply.meter.error_type is None:
                error = ("api_error", "the upstream stream ended before message_stop")
                yield _separator(tail) + error_event(*error)
        except Exception as exc:
            upstream = as_upstream_error(exc)
            # By status and vendor error type only (limits.is_overload): an overload cools the provider down.
            error_type = "overloaded_error" if is_overload(upstream) else "api_error"
            error = (error_type, f"upstream {route.provider} failed mid-stream: {upstream.message}")
            yield _separator(tail) + error_event(*error)
        except (asyncio.CancelledError, GeneratorExit):
            status = 499  # the client went away; the upstream is closed in `finally`
            error = ("client_closed", "client disconnected")
            raise
        finally:
            slot.release()
            await reply.aclose()
            meter = reply.meter
            if error is None and meter.error_type is not None:
                error = (meter.error_type, meter.error_message or "upstream sent an error event")
            if error is None or status == 499:
                self._record_success(run, route, started, ttfb, meter.usage)
            else:
                self._record_stream_failure(run, route, started, error)
            self._publish_finished(run, status, route, meter.usage, meter.model, ttfb, reply.headers, error=error)

    async def count_tokens(self, request: ProxyRequest) -> int:
        """The first candidate's native count when it has one, else the local estimate."""
        from ccm_tui.tokens import estimate_input_tokens

        candidates = build_candidates(request, self.providers, self._health, self.prices, self.clock(), self.steer)
        plan = plan_routes(candidates, self.strategy, self.clock())
        for route in plan.routes[:1]:
            keyed = self.steer.with_key(route, self.clock()) or route
            try:
                async with asyncio.timeout(COUNT_TOKENS_TIMEOUT):
                    counted = await self.providers[route.provider].count_tokens(request, keyed)
            except Exception as exc:  # a counter is a nicety: any failure falls back to the estimate
                log.info("count_tokens on %s failed (%s); estimating locally", route.provider, exc)
                counted = None
            if counted is not None:
                return counted
        return await asyncio.to_thread(estimate_input_tokens, request.body)

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

    def _record_success(self, run: AttemptLog, route: Route, started: float, ttfb: float | None, usage: Usage) -> None:
        self.steer.served(run.request, route, usage, self.clock())
        if self._health.record_success(route.provider, route.variant.key, self.clock(), ttfb, usage):
            self._changed(route, ProviderState.OK, ProviderChange.RECOVERED, None, "recovered")
        run.record(route, started, AttemptOutcome.OK, 200)

    def _record_stream_failure(self, run: AttemptLog, route: Route, started: float, error: tuple[str, str]) -> None:
        now = self.clock()
        if error[0] in _COOLING_STREAM_ERRORS:
            failure = Failure(FailureKind.COOLDOWN, None, error[1])
            until = self._health.record_failure(route.provider, route.variant.key, failure, now)
            self._changed(route, ProviderState.COOLING, ProviderChange.COOLING, until, error[1])
        else:
            self._health.record_stream_error(route.provider, route.variant.key, now)
        run.record(route, started, AttemptOutcome.STREAM_ERROR, 200, error[1])

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
        cost = None
        if route is not None:
            try:
                cost = self.prices.cost_usd(route.provider, route.model, usage)
            except Exception:
                log.exception("cost lookup failed for %s %s", route.provider, route.model)
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

    # --- views ------------------------------------------------------------------------------------------------
    def view(self) -> EngineView:
        """A frozen snapshot of everything /health, /v1/models and the TUI show."""
        now = self.clock()
        return engine_view(
            self.providers,
            self._health,
            strategy=self.strategy,
            paused=self.paused,
            in_flight=self.in_flight,
            now=now,
            steering=self.steer.view({name: self._health[name].quota for name in self.providers}, now),
        )

    def provider_view(self, name: str) -> ProviderView:
        now = self.clock()
        steer = self.steer.view({name: self._health[name].quota}, now).providers.get(name)
        return provider_view(name, self.providers[name], self._health[name], now, steer)

    @property
    def provider_names(self) -> tuple[str, ...]:
        return tuple(self.providers)

    # --- control API: the only way the UI changes routing -------------------------------------------------------
    @property
    def strategies(self) -> tuple[str, ...]:
        return STRATEGIES

    def set_strategy(self, name: str) -> None:
        if name not in STRATEGIES:
            raise ValueError(f"unknown strategy {name!r}")
        self.strategy = name
        self.bus.publish(RoutingChanged(self.strategy, self.paused))

    def cycle_strategy(self) -> str:
        index = STRATEGIES.index(self.strategy)
        self.set_strategy(STRATEGIES[(index + 1) % len(STRATEGIES)])
        return self.strategy

    def set_paused(self, paused: bool) -> None:
        self.paused = paused
        self.bus.publish(RoutingChanged(self.strategy, self.paused))

    def toggle_paused(self) -> bool:
        self.set_paused(not self.paused)
        return self.paused

    def set_enabled(self, name: str, enabled: bool) -> None:
        self._health.set_enabled(name, enabled)
        if enabled:
            self.bus.publish(ProviderChanged(name, None, ProviderState.OK, ProviderChange.ON, None, "switched on"))
        else:
            self.bus.publish(ProviderChanged(name, None, ProviderState.OFF, ProviderChange.OFF, None, "switched off"))

    def toggle(self, name: str) -> bool:
        enabled = not self._health[name].enabled
        self.set_enabled(name, enabled)
        return enabled

    def set_api_key(self, name: str, key: str | None, label: str = "session key") -> None:
        """This key (or none) replaces the provider's whole pool."""
        self.providers[name].set_api_key(key)
        self.steer.set_keys(name, [(label, "session", key)] if key else [])
        self._health.clear_disable(name)  # a new key deserves a fresh try
        self.bus.publish(ProviderChanged(name, None, ProviderState.OK, ProviderChange.KEY_SET, None, "API key set"))

    def retry_now(self, name: str) -> None:
        """End the provider's cool-downs and disable, and forget a quota that said nothing is left: the next
        request tries it first (as the recovery probe); its reply brings fresh quota headers."""
        self._health.clear_waits(name)
        self._health.note_quota(name, None)
        self.steer.clear_waits(name)
        self.bus.publish(ProviderChanged(name, None, ProviderState.OK, ProviderChange.RETRY_NOW, None, "retry now"))

    def replay(self, finished: RequestFinished) -> None:
        """Apply a finished request's attempts to provider health as the engine recorded them when it served
        them (replaying a recorded session, e.g. the TUI's snapshot scene); publishes nothing."""
        for attempt in finished.attempts:
            if attempt.outcome is AttemptOutcome.OK:
                self._health.record_success(
                    attempt.provider, attempt.variant, attempt.started_at, finished.ttfb, finished.usage
                )
            elif attempt.outcome is AttemptOutcome.COOLDOWN:
                failure = Failure(FailureKind.COOLDOWN, attempt.retry_after, attempt.reason)
                self._health.record_failure(attempt.provider, attempt.variant, failure, attempt.started_at)

    def set_api_keys(self, name: str, keys: Sequence[KeyEntry]) -> None:
        """The provider's key pool, (label, source, secret) per key in rotation order (runtime resolves them
        from api_key_env and the keyring); the adapter keeps the first as its own."""
        self.providers[name].set_api_key(keys[0][2] if keys else None)
        self.steer.set_keys(name, keys)

    def add_api_key(self, name: str, key: str, label: str, source: str = "session") -> None:
        """One more key for the provider's pool (e.g. typed into the key modal)."""
        if not self.providers[name].has_credentials:
            self.providers[name].set_api_key(key)
        self.steer.add_key(name, label, source, key)
        self._health.clear_disable(name)
        self.bus.publish(
            ProviderChanged(name, None, ProviderState.OK, ProviderChange.KEY_SET, None, f"key {label} added")
        )

    def remove_api_key(self, name: str, label: str) -> bool:
        """Drop one key from the provider's pool (by its label); True when it was there."""
        return self.steer.remove_key(name, label)

    def lift_budget(self) -> BudgetState:
        """Lift the budget guard for the rest of the day (the TUI's key for it)."""
        return self.steer.lift_budget(self.clock())

    def set_session_affinity(self, enabled: bool) -> None:
        self.steer.session_affinity = enabled

    def forget_sessions(self, session_id: str | None = None) -> None:
        """Drop one session's pins (or all): its next request is placed by the strategy."""
        self.steer.affinity.forget(session_id)

    def note_quota(self, name: str, snapshot: QuotaSnapshot) -> None:
        """Set a provider's live quota as rate-limit headers would (replaying a recorded session)."""
        self._health.note_quota(name, snapshot)

    async def aclose(self) -> None:
        await asyncio.gather(*(p.aclose() for p in self.providers.values()), return_exceptions=True)


async def _first_chunk(reply: StreamReply) -> bytes:
    async for chunk in reply:
        if chunk:
            return chunk
    raise UpstreamError.bad_reply("the upstream stream ended without any event")


def _separator(tail: bytes) -> bytes:
    """Bytes that end a partially forwarded SSE event so the error event that follows parses on its own."""
    if tail.endswith(b"\n\n") or tail.endswith(b"\r\n\r\n"):
        return b""
    return b"\n\n" if not tail.endswith(b"\n") else b"\n"


def as_upstream_error(exc: BaseException) -> UpstreamError:
    """Adapters raise UpstreamError for every upstream failure; a timeout here is the engine's own deadline, and
    anything else is an adapter bug, which must still fail over (and be logged), never reach the client as a 500."""
    if isinstance(exc, UpstreamError):
        return exc
    if isinstance(exc, TimeoutError):
        return UpstreamError.no_response(TransportFailure.TIMEOUT, "upstream timed out")
    log.error("provider adapter failed unexpectedly", exc_info=exc)
    return UpstreamError.bad_reply(f"the adapter failed on this reply ({type(exc).__name__})")
