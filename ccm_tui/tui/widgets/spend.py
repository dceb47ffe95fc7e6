"""The spend panel: spend per minute (last hour) and per hour (today), tokens per provider, alert state."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Sparkline, Static

from ccm_tui.format import tokens, usd
from ccm_tui.routing.engine import Engine
from ccm_tui.routing.views import ProviderView
from ccm_tui.telemetry.spend import SpendTracker, local_day_bounds


class SpendPanel(Vertical):
    DEFAULT_CSS = """
    SpendPanel { height: 1fr; padding: 0 1; }
    SpendPanel Sparkline { height: 3; margin-bottom: 1; }
    SpendPanel .caption { color: $text-muted; height: 1; }
    SpendPanel #spend-totals { height: auto; margin-bottom: 1; }
    SpendPanel #spend-tokens { height: auto; }
    """

    def __init__(
        self, spend: SpendTracker, engine: Engine, clock: Callable[[], float] = time.time, **kwargs: object
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.spend = spend
        self.engine = engine
        self.clock = clock
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
        now = self.clock()
        self.query_one("#spend-totals", Static).update(totals_text(self.spend))
        minutes = [usd_ for _, usd_ in self.spend.per_minute(now - 3600)] or [0.0]
        day_start, _ = local_day_bounds(now)
        hours = [usd_ for _, usd_ in self.spend.per_hour(day_start)]
        hours += [0.0] * (24 - len(hours))  # the whole day on one scale, the future empty
        self.query_one("#spend-minutes", Sparkline).data = minutes
        self.query_one("#spend-hours", Sparkline).data = hours
        self.query_one("#spend-tokens", Static).update(tokens_table(self.engine.view().providers))


def totals_text(spend: SpendTracker) -> Text:
    """Spend this hour and today, then each alert's state; lines short enough for a 24-cell panel."""
    totals = Text()
    totals.append("this hour ", style="dim")
    totals.append(usd(spend.spent(3600)), style="bold magenta")
    totals.append("\ntoday     ", style="dim")
    totals.append(usd(spend.spent_today()), style="bold magenta")
    for alert in spend.alert_state():
        totals.append("\n")
        window = {"hour": "hourly", "day": "daily"}.get(alert.window, alert.window)
        if alert.crossed:
            totals.append(f"⚠ {window} {usd(alert.threshold_usd)} crossed", style="bold red")
        else:
            used = alert.spent_usd / alert.threshold_usd
            totals.append(f"{window} alert {usd(alert.threshold_usd)}: {used:.0%}", style="green")
    return totals


def tokens_table(providers: Iterable[ProviderView]) -> Table:
    """Tokens in and out per provider this session; long names are cut, the numbers never."""
    table = Table.grid(padding=(0, 1), expand=True)
    table.add_column(style="cyan", no_wrap=True, overflow="ellipsis", ratio=1)
    table.add_column(justify="right", no_wrap=True)
    table.add_column(justify="right", no_wrap=True)
    table.add_row(Text("tokens", style="dim"), Text("in", style="dim"), Text("out", style="dim"))
    for view in providers:
        usage = view.usage_total
        if usage.total_input_tokens or usage.output_tokens:
            table.add_row(view.name, tokens(usage.total_input_tokens), tokens(usage.output_tokens))
    return table
