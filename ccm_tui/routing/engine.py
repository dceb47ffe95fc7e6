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
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from enum import Enum

from ccm_tui.config import Settings
from ccm_tui.core.contract import MessageReply, ProxyRequest, Route, UpstreamError
from ccm_tui.core.events import AttemptFailed, EventBus, RequestStarted, Usage
from ccm_tui.core.states import AttemptOutcome, FailureKind
from ccm_tui.providers import Provider
from ccm_tui.routing.attempts import AttemptLog, InFlightSlot
from ccm_tui.routing.budget import SpendSource
from ccm_tui.routing.candidates import CostLookup, NoPrices, build_candidates
from ccm_tui.routing.control import EngineControl
from ccm_tui.routing.health import HealthBook
from ccm_tui.routing.hold import Holds
from ccm_tui.routing.legs import Opening, StreamLegs
from ccm_tui.routing.limits import Failure, retry_same_provider
from ccm_tui.routing.outcome import Outcome, RefusalKind, Refused, Served, blocked, exhausted, forwarded_headers
from ccm_tui.routing.plan import plan_routes
from ccm_tui.routing.recording import ANTHROPIC_PROTOCOL, as_upstream_error
from ccm_tui.routing.relay import relay
from ccm_tui.routing.replies import endpoint_of, sane_usage, served_body
from ccm_tui.routing.steering import Steering
from ccm_tui.routing.stream import PING
from ccm_tui.translate.sse import error_event

log = logging.getLogger(__name__)

COUNT_TOKENS_TIMEOUT = 10.0
_HOLDABLE = (RefusalKind.COOLING, RefusalKind.OVERLOADED)


class _Retry(Enum):
    SAME_PROVIDER = "retry"


Attempted = Served | tuple[Failure, UpstreamError] | _Retry


class Engine(StreamLegs, EngineControl):
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
        self.paused = False
        self.in_flight = 0
        self.holds = Holds(bus, clock)
        # Quota thresholds, key pools, session affinity, request classes, budget guard (routing/steering.py).
        self.steer = Steering(settings, {n: p.settings for n, p in self.providers.items()}, bus.publish, spend)

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
        candidates = build_candidates(request, self.providers, self._health, self.prices, self.clock(), self.steer)
        if not candidates:
            message = (
                f"model: no configured provider serves {request.model!r}. Map it (or its tier: haiku, sonnet, "
                "opus, or `default`) in a provider's [providers.models] table."
            )
            return Refused(RefusalKind.UNKNOWN_MODEL, message)
        plan = self.steer.plan(request, candidates, self.strategy, self.clock())
        if isinstance(plan, Refused):
            return plan
        if not plan.routes:
            causes = [self._health[c.route.provider].variant(c.route.variant.key).cause for c in plan.blocked]
            return blocked(request.model, candidates, plan.soonest_available, self.clock(), causes)
        failures: list[tuple[Route, Failure, UpstreamError]] = []
        for index, route in enumerate(plan.routes):
            next_route = plan.routes[index + 1] if index + 1 < len(plan.routes) else None
            result = await self._attempt_keys(run, route, next_route)
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
            if self.providers[route.provider].settings.kind in ANTHROPIC_PROTOCOL:
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
                    assert isinstance(result.stream, AsyncGenerator)
                    async with contextlib.aclosing(result.stream) as stream:  # closed with this one
                        async for chunk in stream:
                            yield chunk
                    return
                next_until = self._hold_until(result, hold_end)
                if next_until is None:
                    self._refuse(run, result)
                    yield error_event(result.error_type, result.message)
                    return
                refused, until = result, next_until
        except (asyncio.CancelledError, GeneratorExit):
            if request_id in dict(self.holds.snapshot()):  # the client left while held
                self.holds.end(request_id)
                self._publish_finished(run, 499, None, Usage(), None, None, error=("client_closed", "client gone"))
            raise

    # --- one attempt ------------------------------------------------------------------------------------------
    async def _attempt_keys(
        self, run: AttemptLog, route: Route, next_route: Route | None
    ) -> Served | tuple[Failure, UpstreamError]:
        """Attempt `route` with its pool's keys in rotation: a key failure (429, rejected key) moves to the
        pool's next key before the next provider; a reset or a lone 500 is retried once on the same key."""
        tried: set[str] = set()
        keyed = self.steer.with_key(route, self.clock()) or route
        while True:
            result = await self._attempt(run, keyed, next_route, retry=True)
            if result is _Retry.SAME_PROVIDER:
                result = await self._attempt(run, keyed, next_route, retry=False)
            assert not isinstance(result, _Retry)
            if isinstance(result, Served) or keyed.api_key is None or not self.steer.key_down(keyed, self.clock()):
                return result
            tried.add(keyed.api_key.label)
            following = self.steer.with_key(route, self.clock(), tried)
            if following is None:
                return result
            keyed = following

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
                self._note_quota(route, reply.headers, self.clock())
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
        except Opening as opening:
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
