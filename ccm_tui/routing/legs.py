"""Stream attempts: sending a streaming request and reading it to its first content, and the relay's host.

A base class of routing.engine.Engine. `_open_stream` holds a stream's opening events back until the first
content arrives, under the adaptive first-token deadline (routing/deadlines.py); the RelayHost methods
(routing/relay.py) open rescue attempts and record how each leg of a relayed stream ended.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from ccm_tui.core.contract import ProxyRequest, Route, StreamReply, UpstreamError
from ccm_tui.core.events import AttemptFailed, ProviderChange, Usage
from ccm_tui.core.states import AttemptOutcome, FailureKind, ProviderState, TransportFailure
from ccm_tui.routing.attempts import AttemptLog
from ccm_tui.routing.candidates import build_candidates
from ccm_tui.routing.deadlines import FirstTokenBounds, first_token_deadline
from ccm_tui.routing.feed import Feed
from ccm_tui.routing.limits import classify
from ccm_tui.routing.plan import plan_routes
from ccm_tui.routing.recording import EngineCore, as_upstream_error, log
from ccm_tui.routing.relay import Leg, read_opening, rescuable
from ccm_tui.routing.replies import add_usage, sane_usage
from ccm_tui.routing.rescue import accepts_prefill
from ccm_tui.routing.stream import EventSplitter, with_served_model


class Opening(Exception):
    """A stream attempt failed before its first content; `sent` = the upstream had answered with headers."""

    def __init__(self, error: UpstreamError, sent: bool) -> None:
        super().__init__(error.message)
        self.error = error
        self.sent = sent


class StreamLegs(EngineCore):
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
                raise Opening(error, reply is not None) from None
            if isinstance(exc, Exception):
                raise Opening(as_upstream_error(exc), reply is not None) from None
            raise
        self._note_quota(route, reply.headers, self.clock())
        model = reply.meter.model or route.model
        events = [with_served_model(e, model) for e in held]
        first_token = time.perf_counter() - started
        return Leg(route, feed, splitter, events, model, started, first_token, reply.headers)

    # --- the relay's host (routing/relay.py) ------------------------------------------------------------------
    async def open_leg(self, run: AttemptLog, route: Route, request: ProxyRequest, rescue: bool) -> Leg | None:
        """A rescue attempt: its failure is recorded; a rejected prefill costs the provider nothing."""
        started = time.perf_counter()
        self._health[route.provider].variant(route.variant.key).start_attempt()
        try:
            return await self._open_stream(run, route, request, started)
        except Opening as opening:
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
            if (r.provider, r.variant.key) not in failed
            and accepts_prefill(self.providers[r.provider].settings, r.model)
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
