"""HistoryScreen: spend or requests per day over the last 30 days as a bar chart, in total or split by provider,
model or session, with a totals table under it.

The rows come from `HistoryQueries.daily` (SQLite in a worker thread, so the loop never waits); every switch
re-queries. Without a history (turned off, or the demo, whose requests are not the user's) the screen says so
instead of drawing an empty chart. Wiring it into the app (binding, construction) is the app's business.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from enum import StrEnum

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from ccm_tui.stats import NONE_LABEL, usd
from ccm_tui.telemetry.history_reader import Breakdown, DailyRow, HistoryQueries, first_day
from ccm_tui.tui.widgets.daily_chart import ChartData, DailyChart, DayBar

log = logging.getLogger(__name__)

DAYS = 30
SERIES_COLORS = ("dodger_blue2", "dark_orange", "green3", "medium_purple2", "gold3", "deep_pink3", "cyan3")
OTHER_COLOR = "grey62"  # every key past the palette shares one colour in the chart
TOTAL_COLOR = "dodger_blue2"
FAILED_COLOR = "red3"


class Metric(StrEnum):
    """What the bars measure."""

    SPEND = "spend"
    REQUESTS = "requests"


class NoHistory(StrEnum):
    """Why there is no history to read (the screen gets no HistoryQueries)."""

    DISABLED = "History is off ([history] enabled = false in the config): no requests are recorded."
    DEMO = (
        "Demo mode keeps no history: simulated requests never go into your history file. "
        "Start ccm-tui with real providers to record spend per day."
    )


class View(StrEnum):
    """What the screen shows right now."""

    LOADING = "loading"
    CHART = "chart"  # at least one request in the window
    EMPTY = "empty"  # a readable history without requests in the window
    FAILED = "failed"  # the history could not be read
    UNAVAILABLE = "unavailable"  # no history at all (NoHistory says why)


BY_LABEL = {
    None: "of all requests",
    Breakdown.PROVIDER: "by provider",
    Breakdown.MODEL: "by model",
    Breakdown.SESSION: "by session",
}


class HistoryScreen(Screen[None]):
    """The last `days` days of history. `queries` None: `absent` says why there is none."""

    DEFAULT_CSS = """
    HistoryScreen { layout: vertical; }
    HistoryScreen #history-title { height: 1; padding: 0 1; text-style: bold; }
    HistoryScreen #history-chart { padding: 0 1; }
    HistoryScreen #history-message { height: 1fr; padding: 1 2; }
    HistoryScreen #history-totals { height: auto; max-height: 40%; padding: 0 1; }
    """
    BINDINGS = [
        Binding("a", "breakdown('')", "Total", id="history-total"),
        Binding("p", "breakdown('provider')", "Provider", id="history-by-provider"),
        Binding("m", "breakdown('model')", "Model", id="history-by-model"),
        Binding("s", "breakdown('session')", "Session", id="history-by-session"),
        Binding("c", "toggle_metric", "Spend/Req", id="history-metric"),
        Binding("r", "reload", "Reload", id="history-reload"),
        Binding("escape,q", "dismiss", "Close", id="history-close", key_display="esc"),
    ]

    def __init__(
        self,
        queries: HistoryQueries | None,
        *,
        absent: NoHistory = NoHistory.DISABLED,
        clock: Callable[[], float] = time.time,
        days: int = DAYS,
    ) -> None:
        super().__init__()
        self.queries = queries
        self.absent = absent
        self.clock = clock
        self.days = days
        self.by: Breakdown | None = None
        self.metric = Metric.SPEND
        self.view = View.LOADING if queries is not None else View.UNAVAILABLE
        self.rows: list[DailyRow] = []
        self.failure = ""  # why the last read failed (View.FAILED)
        self.now = clock()  # the moment `rows` describe

    def compose(self) -> ComposeResult:
        yield Static(id="history-title")
        yield DailyChart(id="history-chart")
        yield Static(id="history-message")
        with VerticalScroll(id="history-totals"):
            yield Static(id="history-table")
        yield Footer(show_command_palette=False)  # the narrow pane needs the room for this screen's keys

    def on_mount(self) -> None:
        self._draw()
        self._load()

    # --- actions ----------------------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Without a history only closing means anything: the footer then shows only that key."""
        return self.queries is not None or action not in {"breakdown", "toggle_metric", "reload"}

    def action_breakdown(self, by: str) -> None:
        breakdown = Breakdown(by) if by else None
        if breakdown != self.by:
            self.by = breakdown
            self._load()

    def action_toggle_metric(self) -> None:
        self.metric = Metric.REQUESTS if self.metric is Metric.SPEND else Metric.SPEND
        self._draw()

    def action_reload(self) -> None:
        self._load()

    # --- data -------------------------------------------------------------------------------------------------
    def _load(self) -> None:
        if self.queries is None:
            return
        self.view = View.LOADING
        self._draw()
        self.run_worker(self._fetch(self.queries, self.by), exclusive=True, group="history")

    async def _fetch(self, queries: HistoryQueries, by: Breakdown | None) -> None:
        now = self.clock()
        try:
            rows = await queries.daily(self.days, now, by)
        except Exception as exc:  # history is a convenience: a broken file is reported here, not raised
            log.warning("could not read the request history: %s", exc)
            self.rows, self.now, self.view = [], now, View.FAILED
            self.failure = str(exc)
        else:
            self.rows, self.now = rows, now
            self.view = View.CHART if rows else View.EMPTY
        self._draw()

    # --- drawing ----------------------------------------------------------------------------------------------
    def _draw(self) -> None:
        start, today = first_day(self.days, self.now), dt.date.fromtimestamp(self.now)
        chart, message, totals = self.query_one(DailyChart), self.query_one("#history-message", Static), None
        if self.view is View.UNAVAILABLE:
            title = Text("History", style="bold")
        else:
            title = Text.assemble(
                ("History", "bold"),
                f"  {self.metric.value} per day {BY_LABEL[self.by]}  ",
                (f"{start:%b} {start.day} – {today:%b} {today.day}", "dim"),
            )
        if self.view is View.CHART:
            keys = series_keys(self.rows, self.by)
            chart.show(chart_data(self.rows, keys, self.by, self.metric, start, self.days))
            totals = totals_table(self.rows, keys, self.by, today, self.days)
        else:
            chart.show(None)
            message.update(self._message(start))
        charted = self.view is View.CHART
        chart.display = charted
        message.display = not charted
        self.query_one("#history-totals").display = charted
        self.query_one("#history-title", Static).update(title)
        self.query_one("#history-table", Static).update(totals or "")

    def _message(self, start: dt.date) -> RenderableType:
        if self.view is View.LOADING:
            return Text("Reading the history…", style="dim")
        if self.view is View.UNAVAILABLE:
            return Text(self.absent.value)
        if self.view is View.FAILED:
            return Text(f"Cannot read the history: {self.failure}", style="red")
        return Text(
            f"No history yet: no requests since {start:%b} {start.day}. Each request Claude Code sends through "
            "the proxy is recorded, and its day shows here."
        )


def series_keys(rows: Sequence[DailyRow], by: Breakdown | None) -> list[str | None]:
    """The breakdown's keys, largest spend (then most requests) over the window first: the stack order."""
    if by is None:
        return [None]
    spend: dict[str | None, tuple[float, int]] = {}
    for row in rows:
        spent, count = spend.get(row.key, (0.0, 0))
        spend[row.key] = (spent + row.spend_usd, count + row.requests)
    return sorted(spend, key=lambda key: (-spend[key][0], -spend[key][1], key or ""))


def key_color(index: int) -> str:
    return SERIES_COLORS[index] if index < len(SERIES_COLORS) else OTHER_COLOR


def chart_data(
    rows: Sequence[DailyRow],
    keys: Sequence[str | None],
    by: Breakdown | None,
    metric: Metric,
    start: dt.date,
    days: int,
) -> ChartData:
    """One bar per day from `start` (days without rows are empty bars). In total, the requests bars stack the
    failed ones on top in red; split, each key is a series and keys past the palette are one "other" series."""
    if by is None and metric is Metric.REQUESTS:
        colors: tuple[str, ...] = (TOTAL_COLOR, FAILED_COLOR)
    elif by is None:
        colors = (TOTAL_COLOR,)
    else:
        colors = tuple(key_color(n) for n in range(min(len(keys), len(SERIES_COLORS) + 1)))
    series = {key: min(n, len(colors) - 1) for n, key in enumerate(keys)}
    values = {start + dt.timedelta(days=n): [0.0] * len(colors) for n in range(days)}
    for row in rows:
        if row.day not in values:
            continue
        bar = values[row.day]
        if by is None and metric is Metric.REQUESTS:
            bar[0] += row.requests - row.failed
            bar[1] += row.failed
        else:
            bar[series[row.key]] += row.spend_usd if metric is Metric.SPEND else row.requests
    label = usd if metric is Metric.SPEND else _count
    return ChartData(tuple(DayBar(day, tuple(bar)) for day, bar in values.items()), colors, label)


def totals_table(
    rows: Sequence[DailyRow], keys: Sequence[str | None], by: Breakdown | None, today: dt.date, days: int
) -> Table:
    """Split: a line per key in the chart's colours (the legend), then the total. In total: today, the last 7
    days and the whole window."""
    table = Table(box=None, padding=(0, 1), expand=True, show_edge=False, header_style="bold")
    table.add_column(by.value if by is not None else "", ratio=1, no_wrap=True, overflow="ellipsis")
    for name in ("requests", "failed", "input", "output", "spend"):
        table.add_column(name, justify="right", no_wrap=True)
    if by is None:
        week = today - dt.timedelta(days=6)
        table.add_row("today", *_figures([row for row in rows if row.day == today]))
        table.add_row("last 7 days", *_figures([row for row in rows if row.day >= week]))
    else:
        for n, key in enumerate(keys):
            label = Text.assemble(("■ ", key_color(n)), key if key is not None else NONE_LABEL[by])
            table.add_row(label, *_figures([row for row in rows if row.key == key]))
    table.add_row(f"last {days} days", *_figures(rows), style="bold")
    return table


def _figures(rows: Sequence[DailyRow]) -> tuple[str, ...]:
    return (
        f"{sum(r.requests for r in rows):,}",
        f"{sum(r.failed for r in rows):,}",
        compact(sum(r.input_tokens for r in rows)),
        compact(sum(r.output_tokens for r in rows)),
        usd(sum(r.spend_usd for r in rows)),
    )


def compact(count: int) -> str:
    """Token counts in a few cells: 950, 12.3k, 4.56M, 1.2B."""
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if count >= limit:
            value = count / limit
            return f"{value:.3g}{suffix}" if value < 1000 else f"{value:,.0f}{suffix}"
    return str(count)


def _count(value: float) -> str:
    return f"{value:g}"
