"""The spend panel: spend per minute (last hour) and per hour (today), tokens per provider, alert state."""

from __future__ import annotations

import time

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Sparkline, Static

from ccm_tui.format import tokens, usd
from ccm_tui.routing.engine import Engine
from ccm_tui.telemetry.spend import SpendTracker, local_day_bounds


class SpendPanel(Vertical):
    DEFAULT_CSS = """
    SpendPanel { height: 1fr; padding: 0 1; }
    SpendPanel Sparkline { height: 3; margin-bottom: 1; }
    SpendPanel .caption { color: $text-muted; height: 1; }
    SpendPanel #spend-totals { height: auto; margin-bottom: 1; }
    SpendPanel #spend-tokens { height: auto; }
    """

    def __init__(self, spend: SpendTracker, engine: Engine, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.spend = spend
        self.engine = engine
        self.border_title = "Spend"

    def compose(self) -> ComposeResult:
        yield Static(id="spend-totals")
        yield Static("per minute, last hour", classes="caption")
        yield Sparkline([0.0], id="spend-minutes")
        yield Static("per hour, today", classes="caption")
        yield Sparkline([0.0], id="spend-hours")
        yield Static(id="spend-tokens")

    def on_mount(self) -> None:
        self.refresh_data()

    def refresh_data(self) -> None:
        now = time.time()
        totals = Text()
        totals.append("hour ", style="dim")
        totals.append(usd(self.spend.spent(3600)), style="bold magenta")
        totals.append("  today ", style="dim")
        totals.append(usd(self.spend.spent_today()), style="bold magenta")
        for alert in self.spend.alert_state():
            totals.append("\n")
            window = {"hour": "hourly", "day": "daily"}.get(alert.window, alert.window)
            label = f"{window} limit {usd(alert.threshold_usd)}"
            if alert.crossed:
                totals.append(f"⚠ {label} crossed ({usd(alert.spent_usd)})", style="bold red")
            else:
                totals.append(f"{label}: {alert.spent_usd / alert.threshold_usd:.0%} used", style="green")
        self.query_one("#spend-totals", Static).update(totals)
        minutes = [usd_ for _, usd_ in self.spend.per_minute(now - 3600)] or [0.0]
        day_start, _ = local_day_bounds(now)
        hours = [usd_ for _, usd_ in self.spend.per_hour(day_start)]
        hours += [0.0] * (24 - len(hours))  # the whole day on one scale, the future empty
        self.query_one("#spend-minutes", Sparkline).data = minutes
        self.query_one("#spend-hours", Sparkline).data = hours
        lines = Text("tokens this session (in/out)\n", style="dim")
        for name in self.engine.providers:
            usage = self.engine.health[name].usage_total
            if usage.total_input_tokens or usage.output_tokens:
                lines.append(f"{name[:14]:<14} ", style="cyan")
                lines.append(f"{tokens(usage.total_input_tokens):>7} / {tokens(usage.output_tokens):<7}\n")
        self.query_one("#spend-tokens", Static).update(lines)
