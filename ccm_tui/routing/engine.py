"""The engine: plan a request's candidates, try them in turn, fail over, hold, relay the reply, publish events.

`Engine.handle` is the only way a request reaches an upstream; it returns a typed Outcome (routing/outcome.py)
that proxy/ renders as HTTP. Nothing is committed to the client before the first content: a stream's opening
events are held back until then (routing/relay.py), under the adaptive first-token deadline
(routing/deadlines.py), so a slow, silent or failing upstream fails over. After that, a failure is rescued on
the next candidate that accepts a prefill, or ends in one `event: error`. A reset before headers or a lone
500/502 is retried once on the same provider. When every candidate cools and one recovers within
`hold_seconds`, the request waits for it (routing/hold.py). Candidate state is built in candidates.py,
read-only views in views.py; the UI changes routing only through the control API at the bottom.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from enum import Enum

from ccm_tui.config import Settings
from ccm_tui.core.contract import MessageReply, ProxyRequest, Route, StreamReply, UpstreamError
from ccm_tui.core.events import AttemptFailed, EventBus, ProviderChange, ProviderChanged, RequestStarted, Usage
from ccm_tui.core.states import AttemptOutcome, FailureKind, ProviderState, TransportFailure
from ccm_tui.providers import Provider
from ccm_tui.routing.attempts import AttemptLog, InFlightSlot
from ccm_tui.routing.candidates import CostLookup, NoPrices, build_candidates
from ccm_tui.routing.control import EngineControl
from ccm_tui.routing.deadlines import FirstTokenBounds, first_token_deadline
from ccm_tui.routing.feed import Feed
from ccm_tui.routing.health import HealthBook
from ccm_tui.routing.hold import Holds
from ccm_tui.routing.limits import Failure, classify, quota_from_headers, retry_same_provider
from ccm_tui.routing.outcome import Outcome, RefusalKind, Refused, Served, blocked, exhausted, forwarded_headers
from ccm_tui.routing.plan import plan_routes
from ccm_tui.routing.relay import Leg, read_opening, relay, rescuable
from ccm_tui.routing.replies import add_usage, endpoint_of, sane_usage, served_body
from ccm_tui.routing.rescue import accepts_prefill
from ccm_tui.routing.stream import PING, EventSplitter, with_served_model
from ccm_tui.translate.sse import error_event

log = logging.getLogger(__name__)

COUNT_TOKENS_TIMEOUT = 10.0
_ANTHROPIC_PROTOCOL = ("anthropic", "vertex", "bedrock")
_HOLDABLE = (RefusalKind.COOLING, RefusalKind.OVERLOADED)


class _Retry(Enum):
    SAME_PROVIDER = "retry"


Attempted = Served | tuple[Failure, UpstreamError] | _Retry


class Engine(EngineControl):
    def __init__(
        self,
        settings: Settings,
        providers: Mapping[str, Provider],
        bus: EventBus,
        prices: CostLookup | None = None,
        clock: Callable[[], float] = time.time,
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
                    self._health[name].variant(variant.key)
        self.strategy = settings.routing.strategy
        self.paused = False
        self.in_flight = 0
        self.holds = Holds(bus, clock)

    # --- requests -------------------------------------------------------------------------------------------
    async def handle(self, request: ProxyRequest) -> Outcome:
        run = AttemptLog(request, self.clock(), time.perf_counter())
        self.bus.publish(RequestStarted(request.request_id, request.model, request.stream, run.started_at))
        if self.paused:
            message = "ccm-tui is paused: new requests are refused until it is resumed (press p in the TUI)."
            return self._refuse(run, Refused(RefusalKind.PAUSED, message))
        hold_end = self.clock() + self.settings.routing.hold_seconds
        try:
            while True:
                result = await self._route_once(run)
                if isinstance(result, Served):
                    return result
                until = self._hold_until(result, hold_end)
                if until is None:
                    return self._refuse(run, result)
                if request.stream:
                    return Served(None, len(run.records), stream=self._held_stream(run, result, until, hold_end))
                await self._hold(run, result, until)
        except asyncio.CancelledError:
            # The client went away before the first byte: the upstream call is already closed; keep the record.
            self.holds.end(request.request_id)
            self._publish_finished(run, 499, None, Usage(), None, None, error=("client_closed", "client disconnected"))
            raise

    async def _route_once(self, run: AttemptLog) -> Served | Refused:
        request = run.request
        candidates = build_candidates(request, self.providers, self._health, self.prices, self.clock())
        if not candidates:
            message = (
                f"model: no configured provider serves {request.model!r}. Map it (or its tier: haiku, sonnet, "
                "opus, or `default`) in a provider's [providers.models] table."
            )
            return Refused(RefusalKind.UNKNOWN_MODEL, message)
        plan = plan_routes(candidates, self.strategy, self.clock())
        if not plan.routes:
            causes = [self._health[c.route.provider].variant(c.route.variant.key).cause for c in plan.blocked]
            return blocked(request.model, candidates, plan.soonest_available, self.clock(), causes)
        failures: list[tuple[Route, Failure, UpstreamError]] = []
        for index, route in enumerate(plan.routes):
            next_route = plan.routes[index + 1] if index + 1 < len(plan.routes) else None
            result = await self._attempt(run, route, next_route, retry=True)
            if result is _Retry.SAME_PROVIDER:
                result = await self._attempt(run, route, next_route, retry=False)
            if isinstance(result, Served):
                return result
            assert isinstance(result, tuple)
            failures.append((route, *result))
            if result[0].kind is FailureKind.CLIENT_ERROR:
                break
        return self._exhausted(run, failures)

    def _exhausted(self, run: AttemptLog, failures: Sequence[tuple[Route, Failure, UpstreamError]]) -> Refused:
        _, failure, error = failures[-1]
        unreachable = [endpoint_of(self.providers[r.provider].settings) for r, f, _ in failures]
        headers: tuple[tuple[str, str], ...] = ()
        for route, _, upstream in failures:
            if self.providers[route.provider].settings.kind in _ANTHROPIC_PROTOCOL:
                headers = forwarded_headers(upstream.headers, anthropic_protocol=True)
        causes = [f.cause for _, f, _ in failures]
        soonest = self._soonest_recovery()
        return exhausted(run.records, failure, error, soonest, self.clock(), causes, unreachable, headers)

    # --- holding ----------------------------------------------------------------------------------------------
    def _hold_until(self, refused: Refused, hold_end: float) -> float | None:
        """When to try again instead of refusing: the soonest recovery, if it comes before the hold ends."""
        if refused.kind not in _HOLDABLE:
            return None
        soonest = self._soonest_recovery()
        return soonest if soonest is not None and soonest <= hold_end else None

    async def _hold(self, run: AttemptLog, refused: Refused, until: float) -> None:
        self.holds.start(run.request.request_id, until, refused.message)
        try:
            await self.holds.wait(until)
        finally:
            self.holds.end(run.request.request_id)

    async def _held_stream(
        self, run: AttemptLog, refused: Refused, until: float, hold_end: float
    ) -> AsyncIterator[bytes]:
        """A streaming request on hold: committed, kept alive with pings, then answered (or one error event)."""
        ping = self.settings.routing.ping_interval
        request_id = run.request.request_id
        try:
            yield PING
            while True:
                self.holds.start(request_id, until, refused.message)
                while self.clock() < until:
                    await self.holds.wait(until, at_most=ping)
                    if self._soonest_recovery() != until:
                        break  # woken: a provider may be usable now
                    yield PING
                self.holds.end(request_id)
                result = await self._route_once(run)
                if isinstance(result, Served):
                    assert result.stream is not None
                    async for chunk in result.stream:
                        yield chunk
                    return
                next_until = self._hold_until(result, hold_end)
                if next_until is None:
                    self._refuse(run, result)
                    yield error_event(result.error_type, result.message)
                    return
                refused, until = result, next_until
        except (asyncio.CancelledError, GeneratorExit):
            if self.holds.snapshot() and request_id in dict(self.holds.snapshot()):
                self.holds.end(request_id)
                self._publish_finished(run, 499, None, Usage(), None, None, error=("client_closed", "client gone"))
            raise

    # --- one attempt ------------------------------------------------------------------------------------------
    async def _attempt(self, run: AttemptLog, route: Route, next_route: Route | None, *, retry: bool) -> Attempted:
        provider = self.providers[route.provider]
        started = time.perf_counter()
        self._health[route.provider].variant(route.variant.key).start_attempt()
        slot = InFlightSlot(self)
        relaying = False  # once the stream relay owns the slot, it releases it
        sent = False  # the upstream answered with headers (a failure after this is not a reset before them)
        try:
            if not run.request.stream:
                async with asyncio.timeout(self._first_byte_timeout(route)):
                    reply = await provider.send(run.request, route)
                sent = True
                assert isinstance(reply, MessageReply)
                self._note_quota(route.provider, reply.headers, self.clock())
                body, model = served_body(reply, route)
                slot.release()  # before the success is published, so watchers see the count it leaves
                ttfb = time.perf_counter() - run.t0
                usage = sane_usage(reply.usage)
                self._record_success(run, route, started, ttfb, usage)
                self._publish_finished(run, 200, route, usage, model, ttfb, reply.headers)
                return Served(route, len(run.records) - 1, body=body, headers=self._forwarded(route, reply.headers))
            leg = await self._open_stream(run, route, run.request, started)
            relaying = True
            stream = relay(self, run, leg, slot, self.settings.routing.stall_seconds)
            return Served(route, len(run.records), stream=stream, headers=self._forwarded(route, leg.headers))
        except _Opening as opening:
            sent = opening.sent
            error = opening.error
        except Exception as exc:
            error = as_upstream_error(exc)
        except BaseException:
            self._health.abandon_probe(route.provider, route.variant.key)
            raise
        finally:
            if not relaying:
                slot.release()
        if retry and not sent and retry_same_provider(error):
            self._health.abandon_probe(route.provider, route.variant.key)
            record = run.record(route, started, AttemptOutcome.RETRIED, error.status, error.message)
            self.bus.publish(AttemptFailed(run.request.request_id, record, route.provider))
            return _Retry.SAME_PROVIDER
        return self._record_failure(run, route, error, started, next_route), error

    async def _open_stream(self, run: AttemptLog, route: Route, request: ProxyRequest, started: float) -> Leg:
        """Send a streaming request and read it up to its first content, within the first-token deadline."""
        provider = self.providers[route.provider]
        health = self._health[route.provider].variant(route.variant.key)
        bounds = FirstTokenBounds.of(self.settings.routing, provider.settings)
        deadline = first_token_deadline(tuple(health.first_tokens), bounds, missed_last=health.missed_deadline)
        limit = min(deadline, self._first_byte_timeout(route))
        reply: StreamReply | None = None
        feed: Feed | None = None
        try:
            async with asyncio.timeout(limit):
                answer = await provider.send(request, route)
                assert isinstance(answer, StreamReply)
                reply = answer
                routing = self.settings.routing
                feed = Feed(reply, ping_interval=routing.ping_interval, stall_seconds=routing.stall_seconds)
                splitter = EventSplitter()
                held = await read_opening(feed, splitter)
        except BaseException as exc:
            if feed is not None:
                await feed.aclose()
            elif reply is not None:
                await reply.aclose()
            if isinstance(exc, TimeoutError):
                if limit == deadline:
                    self._health.note_missed_deadline(route.provider, route.variant.key)
                what = "no first token" if limit == deadline else "no answer"
                error = UpstreamError.no_response(TransportFailure.TIMEOUT, f"{what} within {limit:g} s")
                raise _Opening(error, reply is not None) from None
            if isinstance(exc, Exception):
                raise _Opening(as_upstream_error(exc), reply is not None) from None
            raise
        self._note_quota(route.provider, reply.headers, self.clock())
        model = reply.meter.model or route.model
        events = [with_served_model(e, model) for e in held]
        first_token = time.perf_counter() - started
        return Leg(route, feed, splitter, events, model, started, first_token, reply.headers)

    def _first_byte_timeout(self, route: Route) -> float:
        return self.providers[route.provider].settings.first_byte_timeout or self.settings.routing.first_byte_timeout

    def _forwarded(self, route: Route, headers: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
        return forwarded_headers(headers, self.providers[route.provider].settings.kind in _ANTHROPIC_PROTOCOL)

    # --- the relay's host (routing/relay.py) ------------------------------------------------------------------
    async def open_leg(self, run: AttemptLog, route: Route, request: ProxyRequest, rescue: bool) -> Leg | None:
        """A rescue attempt: its failure is recorded; a rejected prefill costs the provider nothing."""
        started = time.perf_counter()
        self._health[route.provider].variant(route.variant.key).start_attempt()
        try:
            return await self._open_stream(run, route, request, started)
        except _Opening as opening:
            error = opening.error
        failure = classify(error, self.clock())
        if failure.kind is FailureKind.CLIENT_ERROR:
            self._health.abandon_probe(route.provider, route.variant.key)
            record = run.record(route, started, AttemptOutcome.SKIP, error.status, f"prefill refused: {failure.reason}")
            self.bus.publish(AttemptFailed(run.request.request_id, record, None))
        else:
            self._record_failure(run, route, error, started, None)
        return None

    def rescue_routes(self, run: AttemptLog) -> Sequence[Route]:
        failed = {(r.provider, r.variant) for r in run.records if r.outcome is not AttemptOutcome.OK}
        candidates = build_candidates(run.request, self.providers, self._health, self.prices, self.clock())
        routes = plan_routes(candidates, self.strategy, self.clock()).routes
        return [
            r
            for r in routes
            if (r.provider, r.variant.key) not in failed and accepts_prefill(self.providers[r.provider].settings)
        ]

    def leg_failed(self, run: AttemptLog, leg: Leg, error: UpstreamError) -> None:
        """A cut, a stall or an overload after content was sent: it counts against the provider's health."""
        now = self.clock()
        failure = classify(error, now)
        if failure.kind is FailureKind.COOLDOWN and rescuable(error):
            until = self._health.record_failure(leg.route.provider, leg.route.variant.key, failure, now)
            self._changed(leg.route, ProviderState.COOLING, ProviderChange.COOLING, until, failure.reason)
        else:
            self._health.record_stream_error(leg.route.provider, leg.route.variant.key, now)
        record = run.record(leg.route, leg.started, AttemptOutcome.STREAM_ERROR, 200, failure.reason)
        self.bus.publish(AttemptFailed(run.request.request_id, record, None))

    def leg_ended(self, run: AttemptLog, leg: Leg, ttfb: float | None, *, error: tuple[str, str] | None) -> None:
        route = leg.route
        if error is None:
            self._record_success(run, route, leg.started, ttfb, sane_usage(leg.meter.usage), leg.first_token)
            return
        # The upstream's own (non-overload) error event, passed through: counted, no cool-down.
        self._health.record_stream_error(route.provider, route.variant.key, self.clock())
        run.record(route, leg.started, AttemptOutcome.STREAM_ERROR, 200, error[1])

    def stream_finished(
        self, run: AttemptLog, legs: Sequence[Leg], status: int, ttfb: float | None, error: tuple[str, str] | None
    ) -> None:
        usage, cost = Usage(), None
        for leg in legs:
            used = sane_usage(leg.meter.usage)
            usage = add_usage(usage, used)
            leg_cost = self._cost(leg.route, used)
            cost = leg_cost if cost is None else cost + (leg_cost or 0.0)
        last = legs[-1]
        if error is None and last.meter.error_type is not None:
            error = (last.meter.error_type, last.meter.error_message or "upstream sent an error event")
        skipped = sum(leg.splitter.malformed + leg.meter.skipped_events for leg in legs)
        if skipped:
            log.warning("request %s: skipped %d malformed upstream events", run.request.request_id, skipped)
        finished = run.finished(
            status, last.route, usage, last.served_model, ttfb, cost, last.headers, error, skipped_events=skipped
        )
        self.bus.publish(finished)

    # --- recording --------------------------------------------------------------------------------------------
    def _note_quota(self, name: str, headers: Mapping[str, str], now: float) -> None:
        snapshot = quota_from_headers(headers, now)
        if snapshot is not None:
            self._health.note_quota(name, snapshot)

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
        self._note_quota(route.provider, error.headers, now)
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

    async def count_tokens(self, request: ProxyRequest) -> int:
        """The first candidate's native count when it has one, else the local estimate."""
        from ccm_tui.tokens import estimate_input_tokens

        candidates = build_candidates(request, self.providers, self._health, self.prices, self.clock())
        plan = plan_routes(candidates, self.strategy, self.clock())
        for route in plan.routes[:1]:
            try:
                async with asyncio.timeout(COUNT_TOKENS_TIMEOUT):
                    counted = await self.providers[route.provider].count_tokens(request, route)
            except Exception as exc:  # a counter is a nicety: any failure falls back to the estimate
                log.info("count_tokens on %s failed (%s); estimating locally", route.provider, exc)
                counted = None
            if counted is not None:
                return counted
        return await asyncio.to_thread(estimate_input_tokens, request.body)


class _Opening(Exception):
    """A stream attempt failed before its first content; `sent` = the upstream had answered with headers."""

    def __init__(self, error: UpstreamError, sent: bool) -> None:
        super().__init__(error.message)
        self.error = error
        self.sent = sent


def as_upstream_error(exc: BaseException) -> UpstreamError:
    """Adapters raise UpstreamError for every upstream failure; a timeout here is the engine's own deadline, and
    anything else is an adapter bug, which must still fail over (and be logged), never reach the client as a 500."""
    if isinstance(exc, UpstreamError):
        return exc
    if isinstance(exc, TimeoutError):
        return UpstreamError.no_response(TransportFailure.TIMEOUT, "upstream timed out")
    log.error("provider adapter failed unexpectedly", exc_info=exc)
    return UpstreamError.bad_reply(f"the adapter failed on this reply ({type(exc).__name__})")
