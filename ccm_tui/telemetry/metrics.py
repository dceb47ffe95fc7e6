"""Prometheus metrics fed by the event bus, rendered for a `/metrics` endpoint.

Each `Metrics` owns its registry (no global state: tests and several app instances don't collide). The subscriber
only bumps counters; rendering happens when /metrics is scraped. Serving the endpoint is the proxy app's job.

Series:
  ccm_requests_total{provider,status_class}          finished requests; provider "none" when nobody served it
  ccm_attempt_failures_total{provider,outcome}       failed attempts (cooldown, disable, skip, client_error, ...)
  ccm_tokens_total{provider,direction}               direction: input, output, cache_read, cache_write
  ccm_cost_usd_total{provider}                       priced requests only
  ccm_failovers_total                                attempts that failed before a request finished
  ccm_ttfb_seconds{provider}                         time to the first byte sent to the client
  ccm_request_duration_seconds{provider}             whole request, including failovers and streaming
  ccm_provider_up{provider}                          1 ok, 0.5 cooling/probing, 0 disabled/off
  ccm_routing_paused                                 1 while the proxy is paused
  ccm_spend_alerts_total{window}                     spend alerts raised (hour, day)
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ccm_tui.core.events import (
    AttemptFailed,
    Event,
    ProviderChanged,
    RequestFinished,
    RoutingChanged,
    SpendAlert,
)
from ccm_tui.core.states import ProviderState

# Claude Code turns: first bytes from ~0.3 s (small models) to a minute or two (a model that thinks first).
TTFB_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0, 60.0, 120.0)
# Whole requests: count_tokens in milliseconds, long streamed answers in minutes.
DURATION_BUCKETS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)

# ccm_provider_up: 1 serving, 0.5 recovering or partly cooling, 0 not serving.
UP_VALUES = {
    ProviderState.OK: 1.0,
    ProviderState.PROBING: 0.5,
    ProviderState.PARTIAL: 0.5,
    ProviderState.COOLING: 0.5,
    ProviderState.DISABLED: 0.0,
    ProviderState.OFF: 0.0,
    ProviderState.NO_KEY: 0.0,
}
NO_PROVIDER = "none"
# Variants seen per provider (made-up model names on pass-through providers included): bounded like routing state.
MAX_TRACKED_VARIANTS = 64


def status_class(status: int) -> str:
    return f"{status // 100}xx" if 100 <= status < 600 else "other"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.requests = Counter("ccm_requests", "Finished requests", ("provider", "status_class"), registry=r)
        self.attempt_failures = Counter(
            "ccm_attempt_failures", "Failed attempts by outcome", ("provider", "outcome"), registry=r
        )
        self.tokens = Counter("ccm_tokens", "Tokens by direction", ("provider", "direction"), registry=r)
        self.cost = Counter("ccm_cost_usd", "Spend in USD (priced requests only)", ("provider",), registry=r)
        self.failovers = Counter("ccm_failovers", "Failed attempts before a request finished", registry=r)
        self.ttfb = Histogram(
            "ccm_ttfb_seconds", "Time to first byte sent to the client", ("provider",), buckets=TTFB_BUCKETS, registry=r
        )
        self.duration = Histogram(
            "ccm_request_duration_seconds",
            "Request duration including failovers and streaming",
            ("provider",),
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.provider_up = Gauge(
            "ccm_provider_up", "1 ok, 0.5 cooling or probing, 0 disabled or off", ("provider",), registry=r
        )
        self.paused = Gauge("ccm_routing_paused", "1 while the proxy is paused", registry=r)
        self.spend_alerts = Counter("ccm_spend_alerts", "Spend alerts raised", ("window",), registry=r)
        # provider -> (provider-level state, {variant: state}); a provider is as up as its best variant allows.
        self._states: dict[str, tuple[ProviderState, dict[str, ProviderState]]] = {}
        # labels() takes a lock and builds a key on every call; the label sets are few, so keep the children.
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    def _child(self, metric: Counter | Histogram | Gauge, *labels: str) -> Any:
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def subscriber(self, event: Event) -> None:
        if isinstance(event, RequestFinished):
            self._on_finished(event)
        elif isinstance(event, AttemptFailed):
            self._child(self.attempt_failures, event.attempt.provider, event.attempt.outcome).inc()
        elif isinstance(event, ProviderChanged):
            self._on_provider_changed(event)
        elif isinstance(event, RoutingChanged):
            self.paused.set(1.0 if event.paused else 0.0)
        elif isinstance(event, SpendAlert):
            self._child(self.spend_alerts, event.window).inc()

    def render(self) -> tuple[bytes, str]:
        """(body, content type) for the /metrics response."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def _on_finished(self, event: RequestFinished) -> None:
        provider = event.provider or NO_PROVIDER
        self._child(self.requests, provider, status_class(event.status)).inc()
        if event.failovers:
            self.failovers.inc(event.failovers)
        if event.ttfb is not None:
            self._child(self.ttfb, provider).observe(event.ttfb)
        self._child(self.duration, provider).observe(event.duration)
        if event.provider is None:
            return
        usage = event.usage
        for direction, count in (
            ("input", usage.input_tokens),
            ("output", usage.output_tokens),
            ("cache_read", usage.cache_read_input_tokens),
            ("cache_write", usage.cache_creation_input_tokens),
        ):
            if count:
                self._child(self.tokens, provider, direction).inc(count)
        if event.cost_usd:
            self._child(self.cost, provider).inc(event.cost_usd)

    def _on_provider_changed(self, event: ProviderChanged) -> None:
        provider_state, variants = self._states.get(event.provider, (ProviderState.OK, {}))
        if event.variant is None:
            provider_state = event.state
        else:
            variants.pop(event.variant, None)  # re-inserted last: the oldest news is forgotten first
            variants[event.variant] = event.state
            while len(variants) > MAX_TRACKED_VARIANTS:
                del variants[next(iter(variants))]
        self._states[event.provider] = (provider_state, variants)
        up = UP_VALUES.get(provider_state, 0.0)
        if variants:
            up = min(up, max(UP_VALUES.get(state, 0.0) for state in variants.values()))
        self._child(self.provider_up, event.provider).set(up)
