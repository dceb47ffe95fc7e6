"""The spend panel: spend this hour and today, alert state, spend per minute (last hour) and per hour (today)
as charts with a scale and a time axis, and tokens per provider."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from ccm_tui.format import tokens, usd
from ccm_tui.routing.engine import Engine
from ccm_tui.routing.views import ProviderView
from ccm_tui.telemetry.spend import SpendTracker, local_day_bounds
from ccm_tui.tui.widgets.charts import Chart, spend_chart

CHART_ROWS = 2
MINUTE_LABELS = ((0.0, "-60m"), (0.5, "-30m"), (1.0, "now"))
HOUR_LABELS = ((0.0, "0h"), (0.25, "6"), (0.5, "12"), (0.75, "18"), (1.0, "24"))


class SpendPanel(Vertical):
    DEFAULT_CSS = """
    SpendPanel { height: 1fr; padding: 0 1; }
    SpendPanel .chart { height: auto; margin-bottom: 1; }
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
        yield Static(id="spend-minutes", classes="chart")
        yield Static(id="spend-hours", classes="chart")
        yield Static(id="spend-tokens")

    def on_mount(self) -> None:
        self.refresh_data()

    def on_resize(self) -> None:
        self.refresh_data()

    def refresh_data(self) -> None:
        now = self.clock()
        width = max(8, self.content_region.width)
        self.query_one("#spend-totals", Static).update(totals_text(self.spend))
        minutes = minute_series(self.spend, now)
        day_start, _ = local_day_bounds(now)
        hours = [usd_ for _, usd_ in self.spend.per_hour(day_start)]
        hours += [0.0] * (24 - len(hours))  # the whole day on one scale, the future empty
        by_minute = spend_chart(
            minutes, width, CHART_ROWS, lambda n: "min" if n == 1 else f"{n} min", MINUTE_LABELS, usd
        )
        by_hour = spend_chart(hours, width, CHART_ROWS, lambda n: "hour" if n == 1 else f"{n} h", HOUR_LABELS, usd)
        self.query_one("#spend-minutes", Static).update(chart_text(by_minute))
        self.query_one("#spend-hours", Static).update(chart_text(by_hour))
        self.query_one("#spend-tokens", Static).update(tokens_table(self.engine.view().providers))


def minute_series(spend: SpendTracker, now: float) -> list[float]:
    """Spend in each of the last 60 minutes, oldest first, empty minutes included (the axis is time)."""
    series = [0.0] * 60
    start = (int(now) // 60 - 59) * 60
    for at, amount in spend.per_minute(start):
        slot = (int(at) - start) // 60
        if 0 <= slot < 60:
            series[slot] += amount
    return series


def chart_text(chart: Chart) -> Text:
    return Text("\n").join([chart.caption, *chart.rows, chart.axis])


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
