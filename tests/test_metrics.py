"""Metrics: events on a real bus show up in the /metrics text with the right labels and values."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ccm_tui.core.events import (
    AttemptFailed,
    AttemptRecord,
    Event,
    EventBus,
    ProviderChange,
    ProviderChanged,
    RequestFinished,
    RoutingChanged,
    SpendAlert,
    Usage,
)
from ccm_tui.core.states import ProviderState
from ccm_tui.telemetry.metrics import Metrics, status_class

FAILED_ATTEMPT = AttemptRecord(
    "anthropic", "claude-sonnet-4", "claude-sonnet-4", 529, "cooldown", "overloaded", 0.0, 0.5
)
OK_ATTEMPT = AttemptRecord(
    "openrouter", "anthropic/claude-sonnet-4", "anthropic/claude-sonnet-4", 200, "ok", "", 0.5, 2
)


def finished(**changes: object) -> RequestFinished:
    fields: dict[str, object] = dict(
        request_id="r1",
        requested_model="claude-sonnet-4",
        stream=True,
        status=200,
        provider="openrouter",
        model="anthropic/claude-sonnet-4",
        attempts=(FAILED_ATTEMPT, OK_ATTEMPT),
        usage=Usage(input_tokens=100, output_tokens=20, cache_creation_input_tokens=30, cache_read_input_tokens=400),
        cost_usd=0.125,
        started_at=0.0,
        ttfb=0.4,
        duration=7.0,
    )
    fields.update(changes)
    return RequestFinished(**fields)  # type: ignore[arg-type]


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def publish_all(events: list[Event]) -> Metrics:
    metrics = Metrics()
    bus = EventBus()
    bus.subscribe(metrics.subscriber)
    for event in events:
        bus.publish(event)
    return metrics


def test_finished_requests_count_tokens_cost_and_latency() -> None:
    metrics = publish_all(
        [
            AttemptFailed("r1", FAILED_ATTEMPT, next_provider="openrouter"),
            finished(),
            finished(request_id="r2", attempts=(OK_ATTEMPT,), cost_usd=0.25, ttfb=30.0, duration=200.0),
            finished(request_id="r3", provider=None, model=None, status=429, attempts=(), cost_usd=None, ttfb=None),
        ]
    )
    got = samples(metrics)
    assert got[("ccm_requests_total", (("provider", "openrouter"), ("status_class", "2xx")))] == 2
    assert got[("ccm_requests_total", (("provider", "none"), ("status_class", "4xx")))] == 1
    assert got[("ccm_attempt_failures_total", (("outcome", "cooldown"), ("provider", "anthropic")))] == 1
    assert got[("ccm_failovers_total", ())] == 1
    for direction, tokens in (("input", 200), ("output", 40), ("cache_write", 60), ("cache_read", 800)):
        assert got[("ccm_tokens_total", (("direction", direction), ("provider", "openrouter")))] == tokens
    assert got[("ccm_cost_usd_total", (("provider", "openrouter"),))] == pytest.approx(0.375)
    assert got[("ccm_ttfb_seconds_count", (("provider", "openrouter"),))] == 2
    assert got[("ccm_ttfb_seconds_bucket", (("le", "0.5"), ("provider", "openrouter")))] == 1
    assert got[("ccm_ttfb_seconds_bucket", (("le", "30.0"), ("provider", "openrouter")))] == 2
    assert got[("ccm_request_duration_seconds_sum", (("provider", "openrouter"),))] == pytest.approx(207.0)
    assert got[("ccm_request_duration_seconds_bucket", (("le", "10.0"), ("provider", "openrouter")))] == 1
    assert got[("ccm_request_duration_seconds_count", (("provider", "none"),))] == 1
    assert ("ccm_ttfb_seconds_count", (("provider", "none"),)) not in got  # no first byte, no observation


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ([("ok", None)], 1.0),
        ([("cooling", None)], 0.5),
        ([("probing", None)], 0.5),
        ([("disabled", None)], 0.0),
        ([("off", None)], 0.0),
        ([("cooling", None), ("ok", None)], 1.0),
        ([("cooling", "sonnet-a"), ("ok", "sonnet-b")], 1.0),  # another variant still serves
        ([("cooling", "sonnet-a"), ("cooling", "sonnet-b")], 0.5),
        ([("ok", "sonnet-a"), ("off", None)], 0.0),  # switched off caps every variant
    ],
)
def test_provider_up_gauge(changes: list[tuple[str, str | None]], expected: float) -> None:
    why = {"ok": ProviderChange.RECOVERED, "cooling": ProviderChange.COOLING, "probing": ProviderChange.RETRY_NOW}
    why |= {"disabled": ProviderChange.DISABLED, "off": ProviderChange.OFF}
    metrics = publish_all(
        [ProviderChanged("anthropic", variant, ProviderState(state), why[state]) for state, variant in changes]
    )
    assert samples(metrics)[("ccm_provider_up", (("provider", "anthropic"),))] == expected


def test_pause_and_spend_alerts() -> None:
    metrics = publish_all([RoutingChanged("ordered", paused=True), SpendAlert("hour", 5.2, 5.0)])
    got = samples(metrics)
    assert got[("ccm_routing_paused", ())] == 1.0
    assert got[("ccm_spend_alerts_total", (("window", "hour"),))] == 1


def test_each_instance_has_its_own_registry() -> None:
    first, second = publish_all([finished()]), Metrics()
    assert ("ccm_requests_total", (("provider", "openrouter"), ("status_class", "2xx"))) in samples(first)
    assert ("ccm_requests_total", (("provider", "openrouter"), ("status_class", "2xx"))) not in samples(second)


@pytest.mark.parametrize(("status", "expected"), [(200, "2xx"), (429, "4xx"), (529, "5xx"), (0, "other")])
def test_status_class(status: int, expected: str) -> None:
    assert status_class(status) == expected
