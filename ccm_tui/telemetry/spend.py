"""Spend windows and alerts: the rolling hour, today (since local midnight), and per-minute/per-hour series.

`SpendTracker.subscriber` adds each finished request's cost into a per-minute bucket (about 48 h are kept, so
memory is bounded whatever the request rate). When the rolling hour or today's spend reaches its threshold, one
SpendAlert is published and a warning logged; the alert re-arms once that window's spend is back under the
threshold (the hour rolls on) or a new day starts. Pricing one request lives in costs.py, storage in history.py.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ccm_tui.config import AlertSettings
from ccm_tui.core.durations import local_day_bounds
from ccm_tui.core.events import Event, RequestFinished, SpendAlert

log = logging.getLogger(__name__)

MINUTE = 60
HOUR = 3600
RETENTION_S = 48 * HOUR


@dataclass(frozen=True)
class AlertState:
    """One configured threshold, for the UI: how much of it is used and whether it has been crossed."""

    window: str  # "hour" | "day"
    spent_usd: float
    threshold_usd: float
    crossed: bool


class SpendTracker:
    """In-memory spend by minute. Call its methods on one thread (the event loop): it is not locked."""

    def __init__(
        self,
        alerts: AlertSettings,
        publish: Callable[[Event], None],
        clock: Callable[[], float] = time.time,
        retention_s: float = RETENTION_S,
    ) -> None:
        self._alerts = alerts
        self._publish = publish
        self._clock = clock
        self._retention_minutes = int(retention_s // MINUTE)
        self._buckets: dict[int, float] = {}  # minute index (unix time // 60) -> USD
        self._last_minute = -1
        # Today's total, kept incrementally: (local day start, next local midnight, USD spent since day start).
        self._today: tuple[float, float, float] | None = None
        self._hour_crossed = False
        self._day_crossed: float | None = None  # the local day start whose threshold was crossed

    # --- bus -------------------------------------------------------------------------------------------------

    def subscriber(self, event: Event) -> None:
        if not isinstance(event, RequestFinished) or not event.cost_usd or event.cost_usd <= 0:
            return
        now = self._clock()
        self._rearm(now)  # before adding: spend may have rolled out of the hour since the last request
        self._add(now, event.cost_usd)
        self._check(now, publish=True)

    def seed(self, rows: Iterable[tuple[float, float]]) -> None:
        """Load (time, USD) rows from history at startup, e.g. `HistoryReader.spend_buckets(now - 48 h, 60)`.

        Call before subscribing to the bus (rows and live events would otherwise overlap). A threshold that is
        already crossed is marked as such without a new alert: it was alerted when it happened."""
        oldest = int(self._clock() // MINUTE) - self._retention_minutes
        for ts, usd in rows:
            minute = int(ts // MINUTE)
            if usd and minute >= oldest:
                self._buckets[minute] = self._buckets.get(minute, 0.0) + usd
        self._today = None
        self._check(self._clock(), publish=False)

    # --- queries -------------------------------------------------------------------------------------------

    def spent(self, window_seconds: float) -> float:
        """USD in the last `window_seconds`, counting every minute bucket that overlaps the window."""
        now = self._clock()
        return self._sum_minutes(math.floor((now - window_seconds) / MINUTE), math.floor(now / MINUTE))

    def spent_today(self) -> float:
        """USD since local midnight."""
        return self._today_total(self._clock())

    def per_minute(self, since: float) -> list[tuple[float, float]]:
        """(minute start, USD) for every minute from `since` to now, oldest first, zeros included."""
        now = self._clock()
        first, last = math.floor(max(since, now - RETENTION_S) / MINUTE), math.floor(now / MINUTE)
        return [(minute * MINUTE, self._buckets.get(minute, 0.0)) for minute in range(first, last + 1)]

    def per_hour(self, since: float) -> list[tuple[float, float]]:
        """(hour start, USD) for every clock hour from `since` to now, oldest first, zeros included."""
        now = self._clock()
        first, last = math.floor(max(since, now - RETENTION_S) / HOUR), math.floor(now / HOUR)
        hours = dict.fromkeys(range(first, last + 1), 0.0)
        for minute, usd in self._buckets.items():
            hour = minute * MINUTE // HOUR
            if hour in hours:
                hours[hour] += usd
        return [(hour * HOUR, usd) for hour, usd in hours.items()]

    def alert_state(self) -> list[AlertState]:
        """The configured thresholds, hour first."""
        now = self._clock()
        self._rearm(now)  # the hour may have rolled on since the last request
        states = []
        if self._alerts.hourly_usd is not None:
            states.append(AlertState("hour", self.spent(HOUR), self._alerts.hourly_usd, self._hour_crossed))
        if self._alerts.daily_usd is not None:
            day_start = local_day_bounds(now)[0]
            crossed = self._day_crossed == day_start
            states.append(AlertState("day", self._today_total(now), self._alerts.daily_usd, crossed))
        return states

    # --- internals -----------------------------------------------------------------------------------------

    def _add(self, now: float, usd: float) -> None:
        minute = int(now // MINUTE)
        self._buckets[minute] = self._buckets.get(minute, 0.0) + usd
        today = self._today
        if today is not None and today[0] <= now < today[1]:
            self._today = (today[0], today[1], today[2] + usd)
        if minute != self._last_minute:
            self._last_minute = minute
            oldest = minute - self._retention_minutes
            for stale in [m for m in self._buckets if m < oldest]:
                del self._buckets[stale]

    def _sum_minutes(self, first: int, last: int) -> float:
        if last - first < len(self._buckets):
            return sum(self._buckets.get(minute, 0.0) for minute in range(first, last + 1))
        return sum(usd for minute, usd in self._buckets.items() if first <= minute <= last)

    def _today_total(self, now: float) -> float:
        today = self._today
        if today is None or not today[0] <= now < today[1]:
            day_start, next_day = local_day_bounds(now)
            total = self._sum_minutes(math.ceil(day_start / MINUTE), math.floor(now / MINUTE))
            today = self._today = (day_start, next_day, total)
        return today[2]

    def _rearm(self, now: float) -> None:
        if self._hour_crossed and (self._alerts.hourly_usd is None or self.spent(HOUR) < self._alerts.hourly_usd):
            self._hour_crossed = False
        if self._day_crossed is not None and self._day_crossed != local_day_bounds(now)[0]:
            self._day_crossed = None

    def _check(self, now: float, publish: bool) -> None:
        hourly, daily = self._alerts.hourly_usd, self._alerts.daily_usd
        if hourly is not None and not self._hour_crossed:
            spent = self.spent(HOUR)
            if spent > 0 and spent >= hourly:
                self._hour_crossed = True
                if publish:
                    self._raise_alert("hour", spent, hourly, now)
        if daily is not None:
            day_start = local_day_bounds(now)[0]
            spent = self._today_total(now)
            if self._day_crossed != day_start and spent > 0 and spent >= daily:
                self._day_crossed = day_start
                if publish:
                    self._raise_alert("day", spent, daily, now)

    def _raise_alert(self, window: str, spent: float, threshold: float, now: float) -> None:
        label = "the last hour" if window == "hour" else "today"
        log.warning("spend alert: $%.2f spent in %s (threshold $%.2f)", spent, label, threshold)
        self._publish(SpendAlert(window=window, spent_usd=spent, threshold_usd=threshold, at=now))
