"""The budget guard: what happens once today's (or the last hour's) spend reaches its `[budget]` cap (pure).

`alert` only reports it; `cheapest` keeps serving from providers priced at zero or below `cheap_usd_per_mtok`;
`refuse` answers every request with an Anthropic-shaped error Claude Code shows as is. The user can lift the
guard for the rest of the day (control API `lift_budget`). Spend comes from telemetry through `SpendSource`,
so routing never imports telemetry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from ccm_tui.config import BudgetAction, BudgetSettings
from ccm_tui.core.durations import local_day_bounds

HOUR = 3600.0


class SpendSource(Protocol):
    """What the guard needs from telemetry.spend.SpendTracker."""

    def spent(self, window_seconds: float) -> float: ...

    def spent_today(self) -> float: ...


class BudgetWindow(StrEnum):
    HOUR = "hour"
    DAY = "day"


@dataclass(frozen=True)
class BudgetState:
    """The guard at one instant, for routing, the header and /health."""

    action: BudgetAction
    daily_usd: float | None
    hourly_usd: float | None
    spent_today: float
    spent_hour: float
    reached: BudgetWindow | None  # the cap that is reached (the day's first), None while under both
    resets_at: float | None  # when the reached cap resets (local midnight for the day; None for the rolling hour)
    lifted_until: float | None  # the user lifted the guard until then (the next local midnight)
    cheap_usd_per_mtok: float

    @property
    def configured(self) -> bool:
        return self.daily_usd is not None or self.hourly_usd is not None

    @property
    def active(self) -> bool:
        """The cap is reached and not lifted: the action applies."""
        return self.reached is not None and self.lifted_until is None

    @property
    def restricts(self) -> bool:
        return self.active and self.action is not BudgetAction.ALERT

    @property
    def message(self) -> str:
        """What a refused client (and the header) reads."""
        if self.reached is BudgetWindow.DAY:
            resets = datetime.fromtimestamp(self.resets_at).strftime("%H:%M") if self.resets_at else "00:00"
            return f"ccm-tui daily budget of {_usd(self.daily_usd)} reached; resets at {resets} local"
        if self.reached is BudgetWindow.HOUR:
            return (
                f"ccm-tui hourly budget of {_usd(self.hourly_usd)} reached; "
                "it lifts as the last hour's spend falls below it"
            )
        return ""


def _usd(value: float | None) -> str:
    if value is None:
        return "$0"
    return f"${value:g}" if value == int(value) else f"${value:.2f}"


def budget_state(
    settings: BudgetSettings, spent_today: float, spent_hour: float, lifted_until: float | None, now: float
) -> BudgetState:
    reached: BudgetWindow | None = None
    resets_at: float | None = None
    if settings.daily_usd is not None and spent_today >= settings.daily_usd:
        reached, resets_at = BudgetWindow.DAY, local_day_bounds(now)[1]
    elif settings.hourly_usd is not None and spent_hour >= settings.hourly_usd:
        reached = BudgetWindow.HOUR
    return BudgetState(
        action=settings.action,
        daily_usd=settings.daily_usd,
        hourly_usd=settings.hourly_usd,
        spent_today=spent_today,
        spent_hour=spent_hour,
        reached=reached,
        resets_at=resets_at,
        lifted_until=lifted_until if lifted_until is not None and lifted_until > now else None,
        cheap_usd_per_mtok=settings.cheap_usd_per_mtok,
    )


def lift_until(now: float) -> float:
    """Lifting the guard lasts for the rest of the local day."""
    return local_day_bounds(now)[1]


def is_cheap(price_per_mtok: float | None, cheap_usd_per_mtok: float) -> bool:
    """Priced at zero or below the cheap price; an unknown price is not known to be cheap."""
    return price_per_mtok is not None and (price_per_mtok == 0 or price_per_mtok < cheap_usd_per_mtok)
