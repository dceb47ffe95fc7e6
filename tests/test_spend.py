"""SpendTracker: rolling windows, today, series, and alerts that fire once per crossing (injected clock)."""

from __future__ import annotations

import logging
from datetime import datetime

import pytest

from ccm_tui.config import AlertSettings
from ccm_tui.core.events import Event, EventBus, RequestFinished, SpendAlert, Usage
from ccm_tui.telemetry.spend import AlertState, SpendTracker, local_day_bounds

NINE_AM = datetime(2026, 3, 10, 9, 0).timestamp()  # local time, like the tracker's "today"


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def request(cost: float | None) -> RequestFinished:
    return RequestFinished(
        request_id="r",
        requested_model="claude-sonnet-4",
        stream=True,
        status=200,
        provider="anthropic",
        model="claude-sonnet-4",
        attempts=(),
        usage=Usage(),
        cost_usd=cost,
        started_at=0.0,
        ttfb=0.1,
        duration=1.0,
    )


def wired(alerts: AlertSettings, clock: FakeClock) -> tuple[EventBus, SpendTracker, list[SpendAlert]]:
    """A tracker on a real bus that publishes its alerts back onto the same bus."""
    bus = EventBus()
    tracker = SpendTracker(alerts, bus.publish, clock=clock)
    raised: list[SpendAlert] = []

    def collect(event: Event) -> None:
        if isinstance(event, SpendAlert):
            raised.append(event)

    bus.subscribe(tracker.subscriber)
    bus.subscribe(collect)
    return bus, tracker, raised


def test_hourly_alert_fires_once_per_crossing(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock(NINE_AM)
    bus, tracker, raised = wired(AlertSettings(hourly_usd=1.0), clock)
    with caplog.at_level(logging.WARNING, logger="ccm_tui.telemetry.spend"):
        for _ in range(3):  # 0.4, 0.8, 1.2: crosses on the third
            bus.publish(request(0.4))
            clock.advance(60)
    assert [(a.window, a.spent_usd, a.threshold_usd) for a in raised] == [("hour", pytest.approx(1.2), 1.0)]
    assert "spend alert: $1.20 spent in the last hour (threshold $1.00)" in caplog.text

    for _ in range(5):  # still above: no new alert
        bus.publish(request(0.4))
        clock.advance(60)
    assert len(raised) == 1
    assert tracker.alert_state() == [AlertState("hour", pytest.approx(3.2), 1.0, crossed=True)]  # type: ignore[arg-type]

    clock.advance(2 * 3600)  # everything rolls out of the hour: the alert re-arms
    assert tracker.alert_state() == [AlertState("hour", 0.0, 1.0, crossed=False)]
    bus.publish(request(0.4))
    assert len(raised) == 1
    bus.publish(request(0.4))
    bus.publish(request(0.4))
    assert len(raised) == 2
    assert raised[1].at == clock.now


def test_daily_alert_fires_once_per_day() -> None:
    clock = FakeClock(NINE_AM)
    bus, tracker, raised = wired(AlertSettings(daily_usd=2.0), clock)
    bus.publish(request(1.5))
    clock.advance(6 * 3600)
    bus.publish(request(1.0))  # 2.5 today: crossed
    clock.advance(3600)
    bus.publish(request(1.0))
    assert [(a.window, a.spent_usd) for a in raised] == [("day", pytest.approx(2.5))]
    assert tracker.spent_today() == pytest.approx(3.5)

    clock.now = datetime(2026, 3, 11, 9, 0).timestamp()  # next day
    assert tracker.spent_today() == 0.0
    bus.publish(request(1.0))
    assert len(raised) == 1
    bus.publish(request(1.5))
    assert [(a.window, a.spent_usd) for a in raised][1] == ("day", pytest.approx(2.5))


def test_both_windows_can_fire_on_the_same_request() -> None:
    clock = FakeClock(NINE_AM)
    bus, _, raised = wired(AlertSettings(hourly_usd=1.0, daily_usd=1.0), clock)
    bus.publish(request(1.5))
    assert sorted(a.window for a in raised) == ["day", "hour"]


def test_requests_without_a_price_are_ignored() -> None:
    clock = FakeClock(NINE_AM)
    bus, tracker, raised = wired(AlertSettings(hourly_usd=0.0), clock)
    bus.publish(request(None))
    bus.publish(request(0.0))
    assert tracker.spent(3600) == 0.0
    assert raised == []


def test_windows_and_series() -> None:
    clock = FakeClock(NINE_AM)
    bus, tracker, _ = wired(AlertSettings(), clock)
    bus.publish(request(1.0))  # 09:00
    clock.advance(30 * 60)
    bus.publish(request(2.0))  # 09:30
    clock.advance(45 * 60)  # now 10:15: the 09:00 minute is out of the rolling hour
    assert tracker.spent(3600) == pytest.approx(2.0)
    assert tracker.spent(2 * 3600) == pytest.approx(3.0)
    assert tracker.spent_today() == pytest.approx(3.0)

    minutes = tracker.per_minute(NINE_AM)
    assert len(minutes) == 76  # 09:00 .. 10:15 inclusive, zeros included
    assert minutes[0] == (NINE_AM, 1.0)
    assert minutes[30] == (NINE_AM + 1800, 2.0)
    assert sum(usd for _, usd in minutes) == pytest.approx(3.0)

    hours = tracker.per_hour(NINE_AM - 3600)
    assert all(start % 3600 == 0 for start, _ in hours)
    assert sum(usd for _, usd in hours) == pytest.approx(3.0)
    assert hours[-1][0] <= clock.now < hours[-1][0] + 3600


def test_memory_is_bounded_to_about_two_days() -> None:
    clock = FakeClock(NINE_AM)
    bus, tracker, _ = wired(AlertSettings(), clock)
    for _ in range(3 * 24 * 60):  # a cent a minute for three days
        bus.publish(request(0.01))
        clock.advance(60)
    assert tracker.spent(3 * 24 * 3600) == pytest.approx(48 * 60 * 0.01, abs=0.02)
    assert len(tracker.per_minute(0)) <= 48 * 60 + 1


def test_seed_restores_spend_and_marks_crossed_thresholds_without_a_new_alert() -> None:
    clock = FakeClock(NINE_AM)
    bus = EventBus()
    raised: list[Event] = []
    bus.subscribe(raised.append)
    tracker = SpendTracker(AlertSettings(hourly_usd=2.0, daily_usd=10.0), bus.publish, clock=clock)
    tracker.seed([(NINE_AM - 1800, 1.5), (NINE_AM - 600, 1.0), (NINE_AM - 3 * 24 * 3600, 99.0)])  # last one: too old
    bus.subscribe(tracker.subscriber)
    assert tracker.spent(3600) == pytest.approx(2.5)
    assert tracker.alert_state() == [
        AlertState("hour", pytest.approx(2.5), 2.0, crossed=True),  # type: ignore[arg-type]
        AlertState("day", pytest.approx(2.5), 10.0, crossed=False),  # type: ignore[arg-type]
    ]
    bus.publish(request(0.5))
    assert not any(isinstance(e, SpendAlert) for e in raised)


def test_alert_state_lists_only_configured_windows() -> None:
    clock = FakeClock(NINE_AM)
    tracker = SpendTracker(AlertSettings(daily_usd=5.0), lambda event: None, clock=clock)
    assert tracker.alert_state() == [AlertState("day", 0.0, 5.0, crossed=False)]
    assert SpendTracker(AlertSettings(), lambda event: None, clock=clock).alert_state() == []


def test_local_day_bounds() -> None:
    start, end = local_day_bounds(NINE_AM)
    assert start == datetime(2026, 3, 10).timestamp()
    assert end == datetime(2026, 3, 11).timestamp()
