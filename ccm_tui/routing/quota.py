"""Quota pressure: how much of a provider's quota is used, measured against its threshold.

Live quota comes from rate-limit headers (limits.QuotaSnapshot, per vendor dialect). Upstreams that send none
(GitHub Models' free tier, Bedrock, Vertex) are counted here in sliding windows (`UsageCounter`) against the
configured `rpm` / `tpm` / `rpd`. `pressure` is the pure decision: the most-used window, whether it is at or
past the threshold (the provider then goes behind every provider with room until that window resets), and
whether this request's estimated tokens still fit the token window.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from ccm_tui.config import LocalLimits
from ccm_tui.routing.limits import QuotaSnapshot

MINUTE = 60.0
DAY = 86_400.0


@dataclass(frozen=True)
class Pressure:
    used: float  # 0..1, the most-used window
    window: str  # that window, for people: "requests/min"
    reset_at: float | None  # when that window is replenished
    threshold: float
    short_until: float | None = None  # the request's estimated tokens do not fit the token window until then

    @property
    def over(self) -> bool:
        return self.used >= self.threshold

    @property
    def room(self) -> float:
        return max(0.0, 1.0 - self.used)

    @property
    def reason(self) -> str:
        return f"{round(self.used * 100)} % of {self.window} used"


@dataclass(frozen=True)
class LocalCounts:
    """What this process sent one provider (or variant) recently: requests and tokens per window."""

    requests_minute: int = 0
    tokens_minute: int = 0
    requests_day: int = 0
    minute_reset_at: float | None = None  # when the oldest request of the last minute leaves the window
    day_reset_at: float | None = None


def pressure(
    snapshot: QuotaSnapshot | None,
    local: LocalCounts | None,
    limits: LocalLimits,
    threshold: float,
    estimated_tokens: int,
    now: float,
) -> Pressure | None:
    """The provider's quota pressure, or None when nothing is known (no headers, no local limits)."""
    windows: list[tuple[float, str, float | None]] = []  # (used, label, reset_at)
    short_until: float | None = None
    if snapshot is not None:
        for window in (snapshot.requests, snapshot.tokens):
            if window is None or window.fraction_left is None:
                continue
            if window.reset_at is not None and window.reset_at <= now:
                continue  # the window has reset since the headers were read: it has room again
            windows.append((1.0 - window.fraction_left, window.label or "quota", window.reset_at))
        tokens = snapshot.tokens
        if (
            tokens is not None
            and tokens.remaining is not None
            and tokens.remaining < estimated_tokens
            and (tokens.reset_at or 0) > now
        ):
            short_until = tokens.reset_at
    if local is not None and limits:
        if limits.rpm:
            windows.append((local.requests_minute / limits.rpm, "requests/min", local.minute_reset_at))
        if limits.tpm:
            windows.append((local.tokens_minute / limits.tpm, "tokens/min", local.minute_reset_at))
            if limits.tpm - local.tokens_minute < estimated_tokens:
                short_until = max(short_until or 0.0, local.minute_reset_at or now + MINUTE)
        if limits.rpd:
            windows.append((local.requests_day / limits.rpd, "requests/day", local.day_reset_at))
    if not windows:
        return None
    used, label, reset_at = max(windows, key=lambda w: w[0])
    return Pressure(min(1.0, used), label, reset_at, threshold, short_until)


class UsageCounter:
    """Requests and tokens sent per provider and per variant over the last day, for local limits only.

    Only providers with configured limits are counted, so memory is bounded by those limits (`rpd` requests a
    day at most per key, plus whatever a burst past them adds before they step off)."""

    def __init__(self) -> None:
        self._events: dict[tuple[str, str | None], deque[tuple[float, int]]] = {}

    def add(self, provider: str, variant: str, tokens: int, now: float) -> None:
        for key in ((provider, None), (provider, variant)):
            events = self._events.setdefault(key, deque())
            events.append((now, tokens))
            while events and events[0][0] <= now - DAY:
                events.popleft()

    def counts(self, provider: str, variant: str | None, now: float) -> LocalCounts:
        events = self._events.get((provider, variant))
        if not events:
            return LocalCounts()
        requests_minute = tokens_minute = requests_day = 0
        minute_oldest = day_oldest = None
        for at, tokens in events:
            if at <= now - DAY:
                continue
            requests_day += 1
            day_oldest = at if day_oldest is None else day_oldest
            if at > now - MINUTE:
                requests_minute += 1
                tokens_minute += tokens
                minute_oldest = at if minute_oldest is None else minute_oldest
        return LocalCounts(
            requests_minute=requests_minute,
            tokens_minute=tokens_minute,
            requests_day=requests_day,
            minute_reset_at=minute_oldest + MINUTE if minute_oldest is not None else None,
            day_reset_at=day_oldest + DAY if day_oldest is not None else None,
        )
