"""The engine: plan a request's candidates, try them in turn, fail over, relay the reply, publish events.

`Engine.handle` is the only way a request reaches an upstream. Failover happens only before the first byte
reaches the client; after that an upstream failure becomes an `event: error` and the stream ends. The UI
changes routing only through the small public API at the bottom (toggle, strategy, pause, keys).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field

import httpx

from ccm_tui.config import STRATEGIES, Settings
from ccm_tui.core.contract import MessageReply, ProxyRequest, Route, StreamReply, UpstreamError
from ccm_tui.core.events import (
    AttemptFailed,
    AttemptRecord,
    EventBus,
    ProviderChanged,
    RequestFinished,
    RequestStarted,
    RoutingChanged,
    Usage,
)
from ccm_tui.core.states import FailureKind
from ccm_tui.providers.base import Provider, transport_error
from ccm_tui.proxy.errors import error_body, error_type_for
from ccm_tui.routing.health import HealthBook
from ccm_tui.routing.limits import Failure, classify, is_overload, quota_from_headers
from ccm_tui.routing.plan import Candidate, plan_routes
from ccm_tui.routing.strategies import CandidateStats
from ccm_tui.translate.sse import error_event

log = logging.getLogger(__name__)

COUNT_TOKENS_TIMEOUT = 10.0
_NOTABLE_HEADERS = (
    "request-id",
    "x-request-id",
    "x-amzn-requestid",
    "x-generation-id",
    "anthropic-ratelimit-requests-remaining",
    "anthropic-ratelimit-tokens-remaining",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-remaining-requests-day",
    "x-ratelimit-remaining-tokens-minute",
)


class CostLookup:
    """What the engine needs from telemetry.costs.PriceBook (kept as a protocol-like base for typing)."""

    def cost_usd(self, provider: str, model: str, usage: Usage) -> float | None:
        return None

    def price_per_mtok(self, provider: str, model: str) -> tuple[float, float] | None:
        return None


@dataclass
class ProxyResponse:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    stream: AsyncIterator[bytes] | None = None


@dataclass
class _Attempts:
    """The running record of one request's attempts."""

    request: ProxyRequest
    started_at: float  # wall clock
    t0: float  # perf counter at arrival
    records: list[AttemptRecord] = field(default_factory=list)


class Engine:
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
        self.prices = prices or CostLookup()
        self.clock = clock
        self.health = HealthBook(
            list(self.providers), settings.routing, {p.name: p.enabled for p in settings.providers}
        )
        for name, provider in self.providers.items():  # so /health and the UI list variants before first use
            for variants in provider.settings.models.values():
                for variant in variants:
                    self.health[name].variant(variant.key)
        self.strategy = settings.routing.strategy
        self.paused = False
        self.in_flight = 0

    # --- requests -------------------------------------------------------------------------------------------
    async def handle(self, request: ProxyRequest) -> ProxyResponse:
        run = _Attempts(request, self.clock(), time.perf_counter())
        self.bus.publish(RequestStarted(request.request_id, request.model, request.stream, run.started_at))
        if self.paused:
            return self._finish_error(
                run, 529, "ccm-tui is paused: new requests are refused until it is resumed (press p in the TUI)."
            )
        candidates = self._candidates(request)
        if not candidates:
            return self._finish_error(
                run,
                404,
                f"model: no configured provider serves {request.model!r}. Map it (or its tier: haiku, sonnet, "
                "opus, or `default`) in a provider's [providers.models] table.",
            )
        plan = plan_routes(candidates, self.strategy, self.clock())
        if not plan.routes:
            return self._blocked_error(run, candidates, plan.soonest_available)

        last: tuple[Failure, UpstreamError] | None = None
        try:
            for index, route in enumerate(plan.routes):
                next_route = plan.routes[index + 1] if index + 1 < len(plan.routes) else None
                outcome = await self._attempt(run, route, next_route)
                if isinstance(outcome, ProxyResponse):
                    return outcome
                last = outcome
                if outcome[0].kind is FailureKind.CLIENT_ERROR:
                    break
        except asyncio.CancelledError:
            # The client went away before the first byte: the upstream call is already closed; keep the record.
            self._publish_finished(run, 499, None, Usage(), None, None, error=("client_closed", "client disconnected"))
            raise
        assert last is not None
        return self._exhausted_error(run, last)

    async def _attempt(
        self, run: _Attempts, route: Route, next_route: Route | None
    ) -> ProxyResponse | tuple[Failure, UpstreamError]:
        provider = self.providers[route.provider]
        started = time.perf_counter()
        variant = self.health[route.provider].variant(route.variant.key)
        variant.start_attempt()
        self.in_flight += 1
        reply: MessageReply | StreamReply | None = None
        try:
            async with asyncio.timeout(
                provider.settings.first_byte_timeout or self.settings.routing.first_byte_timeout
            ):
                reply = await provider.send(run.request, route)
                first = await _first_chunk(reply) if isinstance(reply, StreamReply) else b""
        except (UpstreamError, httpx.TransportError, TimeoutError) as exc:
            self.in_flight -= 1
            if reply is not None and isinstance(reply, StreamReply):
                await reply.aclose()
            error = exc if isinstance(exc, UpstreamError) else transport_error(exc)
            failure = self._record_failure(run, route, error, started, next_route)
            return failure, error
        except BaseException:
            self.in_flight -= 1
            variant.probe_in_flight = False  # the client left: nothing was learned about the upstream
            if isinstance(reply, StreamReply):
                await reply.aclose()
            raise

        now = self.clock()
        self._note_quota(route.provider, reply.headers, now)
        if isinstance(reply, MessageReply):
            self.in_flight -= 1
            ttfb = time.perf_counter() - run.t0
            self._record_success(run, route, started, ttfb, reply.usage)
            self._publish_finished(run, 200, route, reply.usage, reply.model, ttfb, reply.headers)
            return ProxyResponse(200, {"content-type": "application/json"}, body=reply.body)
        return ProxyResponse(
            200,
            {"content-type": "text/event-stream", "cache-control": "no-cache"},
            stream=self._relay(run, route, reply, first, started),
        )

    async def _relay(
        self, run: _Attempts, route: Route, reply: StreamReply, first: bytes, started: float
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
        except (UpstreamError, httpx.TransportError, TimeoutError) as exc:
            upstream = exc if isinstance(exc, UpstreamError) else transport_error(exc)
            error_type = "overloaded_error" if is_overload(upstream) else "api_error"
            error = (error_type, f"upstream {route.provider} failed mid-stream: {upstream.message}")
            yield _separator(tail) + error_event(*error)
        except (asyncio.CancelledError, GeneratorExit):
            status = 499  # the client went away; the upstream is closed in `finally`
            error = ("client_closed", "client disconnected")
            raise
        finally:
            self.in_flight -= 1
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

        plan = plan_routes(self._candidates(request), self.strategy, self.clock())
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

    # --- candidates and state ---------------------------------------------------------------------------------
    def _candidates(self, request: ProxyRequest) -> list[Candidate]:
        now = self.clock()
        estimated_tokens = len(request.raw_body) // 4
        candidates: list[Candidate] = []
        order = 0
        for name, provider in self.providers.items():
            health = self.health[name]
            for variant in provider.settings.variants_for(request.model, request.tier):
                order += 1
                state, available_at, reason = "ok", None, ""
                vh = health.variant(variant.key)
                if not health.enabled:
                    state, reason = "off", "switched off"
                elif health.is_disabled(now):
                    state, available_at, reason = "disabled", health.disabled_until, health.disabled_reason
                elif not provider.has_credentials:
                    state, reason = "disabled", "no API key"
                else:
                    state = vh.state(now)
                    available_at = vh.cooldown_until if state == "cooling" else None
                    reason = vh.last_reason
                exhausted = None
                quota = health.quota
                if quota is not None:
                    exhausted = quota.exhausted_until(now)
                    tokens = quota.tokens
                    if (
                        exhausted is None
                        and tokens is not None
                        and tokens.remaining is not None
                        and tokens.remaining < estimated_tokens
                        and (tokens.reset_at or 0) > now
                    ):
                        exhausted = tokens.reset_at
                price = self.prices.price_per_mtok(name, variant.model)
                stats = CandidateStats(
                    order=order,
                    price_per_mtok=(price[0] * 3 + price[1]) / 4 if price else None,
                    latency_p50=health.latency_p50(now),
                    error_rate=health.error_rate(now),
                    quota_left=quota.fraction_left if quota else None,
                )
                route = Route(name, variant)
                candidates.append(Candidate(route, stats, state, available_at, exhausted, reason))
        return candidates

    def _note_quota(self, name: str, headers: Mapping[str, str], now: float) -> None:
        snapshot = quota_from_headers(headers, now)
        if snapshot is not None:
            self.health[name].quota = snapshot

    def _record_failure(
        self, run: _Attempts, route: Route, error: UpstreamError, started: float, next_route: Route | None
    ) -> Failure:
        now = self.clock()
        failure = classify(error, now)
        self.health[route.provider].variant(route.variant.key).probe_in_flight = False
        self._note_quota(route.provider, error.headers, now)
        if failure.kind is not FailureKind.CLIENT_ERROR and failure.kind is not FailureKind.SKIP:
            until = self.health.record_failure(route.provider, route.variant.key, failure, now)
            state = "disabled" if failure.kind is FailureKind.DISABLE else "cooling"
            self.bus.publish(ProviderChanged(route.provider, route.variant.key, state, until, failure.reason))
        record = AttemptRecord(
            provider=route.provider,
            model=route.model,
            variant=route.variant.key,
            status=error.status,
            outcome=failure.kind.value,
            reason=failure.reason,
            started_at=run.started_at + (started - run.t0),
            duration=time.perf_counter() - started,
            retry_after=failure.retry_after,
        )
        run.records.append(record)
        follow = next_route.provider if next_route and failure.kind is not FailureKind.CLIENT_ERROR else None
        self.bus.publish(AttemptFailed(run.request.request_id, record, follow))
        return failure

    def _record_success(self, run: _Attempts, route: Route, started: float, ttfb: float | None, usage: Usage) -> None:
        recovered = self.health.record_success(route.provider, route.variant.key, self.clock(), ttfb, usage)
        if recovered:
            self.bus.publish(ProviderChanged(route.provider, route.variant.key, "ok", None, "recovered"))
        run.records.append(
            AttemptRecord(
                provider=route.provider,
                model=route.model,
                variant=route.variant.key,
                status=200,
                outcome="ok",
                reason="",
                started_at=run.started_at + (started - run.t0),
                duration=time.perf_counter() - started,
            )
        )

    def _record_stream_failure(self, run: _Attempts, route: Route, started: float, error: tuple[str, str]) -> None:
        now = self.clock()
        kind = FailureKind.COOLDOWN if error[0] in ("overloaded_error", "rate_limit_error") else None
        if kind is not None:
            failure = Failure(kind, None, error[1])
            until = self.health.record_failure(route.provider, route.variant.key, failure, now)
            self.bus.publish(ProviderChanged(route.provider, route.variant.key, "cooling", until, error[1]))
        else:
            provider = self.health[route.provider]
            provider.variant(route.variant.key).probe_in_flight = False
            provider.requests += 1
            provider.errors += 1
            provider.recent.append((now, None, False))
        run.records.append(
            AttemptRecord(
                provider=route.provider,
                model=route.model,
                variant=route.variant.key,
                status=200,
                outcome="stream_error",
                reason=error[1],
                started_at=run.started_at + (started - run.t0),
                duration=time.perf_counter() - started,
            )
        )

    # --- finishing --------------------------------------------------------------------------------------------
    def _publish_finished(
        self,
        run: _Attempts,
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
        notable = tuple((k, headers[k]) for k in _NOTABLE_HEADERS if headers and k in headers)
        self.bus.publish(
            RequestFinished(
                request_id=run.request.request_id,
                requested_model=run.request.model,
                stream=run.request.stream,
                status=status,
                provider=route.provider if route else None,
                model=route.model if route else None,
                attempts=tuple(run.records),
                usage=usage,
                cost_usd=cost,
                started_at=run.started_at,
                ttfb=ttfb,
                duration=time.perf_counter() - run.t0,
                error_type=error[0] if error else None,
                error_message=error[1] if error else None,
                headers_of_note=notable,
            )
        )

    def _finish_error(
        self,
        run: _Attempts,
        status: int,
        message: str,
        error_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> ProxyResponse:
        kind = error_type or error_type_for(status)
        self._publish_finished(run, status, None, Usage(), None, None, error=(kind, message))
        body = error_body(status, message, run.request.request_id, kind)
        return ProxyResponse(status, {"content-type": "application/json", **(headers or {})}, body=body)

    def _retry_after_response(self, run: _Attempts, soonest: float, message: str) -> ProxyResponse:
        wait = max(1, math.ceil(soonest - self.clock()))
        return self._finish_error(run, 429, f"{message} Retry in {wait} s.", headers={"retry-after": str(wait)})

    def _blocked_error(self, run: _Attempts, candidates: list[Candidate], soonest: float | None) -> ProxyResponse:
        if soonest is not None:
            names = ", ".join(sorted({c.route.provider for c in candidates if c.state == "cooling"}))
            return self._retry_after_response(
                run, soonest, f"Every provider for {run.request.model!r} is cooling down ({names})."
            )
        reasons = "; ".join(sorted({f"{c.route.provider}: {c.reason}" for c in candidates}))
        return self._finish_error(run, 503, f"No provider can take {run.request.model!r} now ({reasons}).")

    def _exhausted_error(self, run: _Attempts, last: tuple[Failure, UpstreamError]) -> ProxyResponse:
        failure, error = last
        if failure.kind is FailureKind.CLIENT_ERROR or (
            failure.kind is FailureKind.SKIP and all(r.outcome == "skip" for r in run.records)
        ):
            status = error.status if error.status is not None and 400 <= error.status < 500 else 400
            return self._finish_error(run, status, error.message)
        tried = "; ".join(f"{r.provider}: {r.reason}" for r in run.records)
        soonest = min(
            (t for name in self.providers if (t := self.health[name].cooling_until(self.clock())) is not None),
            default=None,
        )
        if soonest is not None and failure.kind is FailureKind.COOLDOWN:
            return self._retry_after_response(run, soonest, f"Every provider failed ({tried}).")
        return self._finish_error(
            run, 529 if failure.kind is FailureKind.COOLDOWN else 503, f"Every provider failed ({tried})."
        )

    # --- public API for the UI and the app ----------------------------------------------------------------------
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

    def set_enabled(self, name: str, enabled: bool) -> None:
        self.health.set_enabled(name, enabled)
        self.bus.publish(
            ProviderChanged(name, None, "ok" if enabled else "off", None, "switched on" if enabled else "switched off")
        )

    def toggle(self, name: str) -> bool:
        enabled = not self.health[name].enabled
        self.set_enabled(name, enabled)
        return enabled

    def set_api_key(self, name: str, key: str | None) -> None:
        self.providers[name].set_api_key(key)
        health = self.health[name]
        health.disabled_until = 0.0  # a new key deserves a fresh try
        health.disabled_reason = ""
        self.bus.publish(ProviderChanged(name, None, "ok", None, "API key set"))

    def provider_state(self, name: str) -> tuple[str, float | None, str]:
        """(state, until, reason) for display: off, disabled, cooling, partial, probing, ok, or no-key."""
        now = self.clock()
        health = self.health[name]
        state = health.state(now)
        if state == "ok" and not self.providers[name].has_credentials:
            return "no-key", None, "no API key"
        if state == "disabled":
            return state, health.disabled_until, health.disabled_reason
        if state in ("cooling", "partial"):
            reasons = [v.last_reason for v in health.variants.values() if v.cooldown_until > now]
            return state, health.cooling_until(now), reasons[0] if reasons else ""
        return state, None, ""

    def health_report(self) -> dict[str, object]:
        now = self.clock()
        providers = []
        for name, provider in self.providers.items():
            state, until, reason = self.provider_state(name)
            health = self.health[name]
            quota = health.quota
            providers.append(
                {
                    "name": name,
                    "kind": provider.settings.kind,
                    "state": state,
                    "until": until,
                    "reason": reason,
                    "requests": health.requests,
                    "errors": health.errors,
                    "latency_p50_ms": round(p50 * 1000, 1) if (p50 := health.latency_p50(now)) is not None else None,
                    "variants": [
                        {"variant": v.key, "state": v.state(now), "cooldown_until": v.cooldown_until or None}
                        for v in health.variants.values()
                    ],
                    "quota": None
                    if quota is None
                    else {
                        "requests_remaining": quota.requests.remaining if quota.requests else None,
                        "requests_limit": quota.requests.limit if quota.requests else None,
                        "tokens_remaining": quota.tokens.remaining if quota.tokens else None,
                        "tokens_limit": quota.tokens.limit if quota.tokens else None,
                    },
                }
            )
        usable = any(p["state"] in ("ok", "probing", "partial") for p in providers)
        return {
            "ready": usable and not self.paused,
            "paused": self.paused,
            "strategy": self.strategy,
            "in_flight": self.in_flight,
            "providers": providers,
        }

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
