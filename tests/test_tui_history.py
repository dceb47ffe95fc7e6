"""The history screen (spend and requests per day, 30 days) and the history banner, in a tiny harness app.

The history is a real file written by the real HistoryWriter: a seeded month of requests ending at a pinned
`NOW`, read back through HistoryQueries in worker threads. Every key of the screen is pressed; SVG snapshots
at 80x24 and 120x40 (update with `--snapshot-update`, then look at them).
"""

from __future__ import annotations

import datetime as dt
import io
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from textual.app import App, ComposeResult
from textual.pilot import Pilot
from textual.widgets import Static

from ccm_tui.core.events import HistoryFault, HistoryProblem, HistoryRecovered, RequestFinished, Usage
from ccm_tui.core.hints import ClientHints
from ccm_tui.telemetry.history import HistoryReader, HistoryWriter
from ccm_tui.telemetry.history_reader import Breakdown, HistoryQueries
from ccm_tui.tui.screens.history import HistoryScreen, Metric, NoHistory, View, compact
from ccm_tui.tui.widgets.daily_chart import ChartData, DailyChart, DayBar, chart_lines, nice_ceiling
from ccm_tui.tui.widgets.history_banner import HistoryBanner
from tests.test_history import finished
from tests.tui_snapshot_app import wait_until

NOW = dt.datetime(2025, 6, 12, 14, 30, tzinfo=dt.UTC).timestamp()
DAY = 86_400.0
SMALL, LARGE = (80, 24), (120, 40)
PROVIDERS = {  # provider -> (model, USD per request)
    "anthropic": ("claude-sonnet-4-5", 0.21),
    "openrouter": ("anthropic/claude-haiku-4.5", 0.034),
    "groq": ("llama-3.3-70b-versatile", 0.0021),
}
SESSIONS = ("5f0c9a1e-7d41-4c3b-9e0a-1b2c3d4e5f60", "a81d2f47-0b6e-4f1a-8c9d-6e5f4a3b2c10", None)


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Days are local days: pin the zone so NOW falls on the same day everywhere."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def month_of_requests() -> list[RequestFinished]:
    """A seeded month ending at NOW: quiet weekends, a busy stretch, some failed requests (served by nobody)."""
    rng = random.Random(20250612)
    events: list[RequestFinished] = []
    for days_ago in range(29, -1, -1):
        day_start = dt.datetime.fromtimestamp(NOW - days_ago * DAY, dt.UTC).replace(hour=8, minute=0)
        quiet = day_start.weekday() >= 5
        for _ in range(rng.randint(0, 3) if quiet else rng.randint(4, 14 if days_ago < 12 else 8)):
            at = day_start.timestamp() + rng.uniform(0, 6 * 3600)
            if at > NOW:
                continue
            provider = rng.choices(list(PROVIDERS), weights=(5, 3, 2))[0]
            model, price = PROVIDERS[provider]
            hints = ClientHints(session_id=rng.choice(SESSIONS))
            n = len(events) + 1
            if rng.random() < 0.08:
                events.append(failed_request(n, at, hints))
                continue
            tokens = rng.randint(2_000, 40_000)
            events.append(
                finished(
                    n,
                    started_at=at,
                    provider=provider,
                    model=model,
                    cost_usd=round(price * tokens / 20_000, 6),
                    usage=Usage(input_tokens=tokens, output_tokens=tokens // 12),
                    hints=hints,
                )
            )
    return events


def failed_request(n: int, at: float, hints: ClientHints) -> RequestFinished:
    return finished(
        n,
        started_at=at,
        provider=None,
        model=None,
        cost_usd=None,
        status=529,
        error_type="overloaded_error",
        usage=Usage(),
        hints=hints,
    )


def write_history(path: Path, events: list[RequestFinished]) -> None:
    writer = HistoryWriter(path)
    for event in events:
        writer.subscriber(event)
    writer.close()


@pytest.fixture
def history_path(tmp_path: Path) -> Path:
    path = tmp_path / "history.sqlite3"
    write_history(path, month_of_requests())
    return path


@pytest.fixture
def queries(history_path: Path) -> Iterator[HistoryQueries]:
    reader = HistoryReader(history_path)
    yield HistoryQueries(reader)
    reader.close()


class ScreenHarness(App[None]):
    """Only pushes the screen under test."""

    def __init__(self, screen: HistoryScreen) -> None:
        super().__init__()
        self.history = screen

    def compose(self) -> ComposeResult:
        yield Static("dashboard", id="dashboard")

    def on_mount(self) -> None:
        self.push_screen(self.history)


class BannerHarness(App[None]):
    def __init__(self, banner: HistoryBanner) -> None:
        super().__init__()
        self.banner = banner

    def compose(self) -> ComposeResult:
        yield self.banner
        yield Static("dashboard", id="dashboard")


def screen_for(queries: HistoryQueries | None, absent: NoHistory = NoHistory.DISABLED) -> HistoryScreen:
    return HistoryScreen(queries, absent=absent, clock=lambda: NOW)


async def settled(pilot: Pilot[Any], screen: HistoryScreen) -> None:
    await wait_until(pilot, lambda: screen.view is not View.LOADING)
    await pilot.pause()


def text_of(screen: HistoryScreen, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


def table_text(screen: HistoryScreen) -> str:
    """The totals table as it is drawn at the screen's width."""
    console = Console(width=screen.size.width - 2, record=True, file=io.StringIO())
    console.print(screen.query_one("#history-table", Static).content)
    return console.export_text()


# --- the chart, as a pure drawing --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "top"), [(0.0, 1.0), (0.7, 0.8), (1.0, 1.0), (3.4, 4.0), (11.0, 15.0), (0.0123, 0.015), (420, 500)]
)
def test_scale_tops_are_round(value: float, top: float) -> None:
    assert nice_ceiling(value) == pytest.approx(top)


@pytest.mark.parametrize(("count", "text"), [(950, "950"), (12_345, "12.3k"), (4_560_000, "4.56M"), (10**12, "1,000B")])
def test_token_counts_are_compact(count: int, text: str) -> None:
    assert compact(count) == text


def ramp(days: int) -> ChartData:
    start = dt.date(2025, 5, 14)
    bars = tuple(DayBar(start + dt.timedelta(days=n), (float(n), 0.0)) for n in range(days))
    return ChartData(bars, ("blue", "red"), lambda v: f"{v:g}")


@pytest.mark.parametrize("width", [40, 78, 118, 200])
def test_chart_fits_its_width_with_a_scale_and_today_labelled(width: int) -> None:
    lines = chart_lines(ramp(30), width, 12)
    assert len(lines) == 12
    assert all(line.cell_len <= width for line in lines)
    assert lines[0].plain.startswith("30 ┤")  # the scale top: 29 rounds up to 30
    assert lines[-2].plain.startswith(" 0 └")
    assert lines[-1].plain.rstrip().endswith("Jun 12")  # the last day is today


def test_chart_bar_heights_follow_the_values() -> None:
    days = (DayBar(dt.date(2025, 6, 11), (2.0, 0.0)), DayBar(dt.date(2025, 6, 12), (4.0, 0.0)))
    rows = [line.plain for line in chart_lines(ChartData(days, ("blue", "red"), lambda v: f"{v:g}"), 20, 6)[:4]]
    # 4 bar rows, scale 0..4 (one unit a row), a gutter of "4 ┤", then two 6-column steps (5-wide bars)
    assert [row[3] for row in rows] == [" ", " ", "█", "█"]  # day one: half the height
    assert [row[9] for row in rows] == ["█"] * 4  # day two: the full height


def test_a_too_narrow_chart_keeps_the_newest_days() -> None:
    lines = chart_lines(ramp(30), 14, 8)  # room for 10 one-column bars
    assert lines[-1].plain.rstrip().endswith("Jun 12")
    assert len(lines[0].plain) <= 14


# --- the screen -------------------------------------------------------------------------------------------------


async def test_opens_on_spend_of_all_requests_with_the_totals(queries: HistoryQueries) -> None:
    screen = screen_for(queries)
    app = ScreenHarness(screen)
    async with app.run_test(size=SMALL) as pilot:
        await settled(pilot, screen)
        assert screen.view is View.CHART and screen.by is None and screen.metric is Metric.SPEND
        assert "spend per day of all requests" in text_of(screen, "#history-title")
        assert "May 14 – Jun 12" in text_of(screen, "#history-title")
        events = month_of_requests()
        table = table_text(screen)
        total = next(line for line in table.splitlines() if line.strip().startswith("last 30 days"))
        assert f"{len(events):,}" in total
        assert f"${sum(e.cost_usd or 0 for e in events):,.2f}" in total
        assert screen.query_one(DailyChart).display


@pytest.mark.parametrize(
    ("key", "by", "names"),
    [
        ("p", Breakdown.PROVIDER, ["anthropic", "openrouter", "groq", "(not served)"]),
        ("m", Breakdown.MODEL, ["claude-sonnet-4-5", "anthropic/claude-haiku-4.5", "llama-3.3-70b-versatile"]),
        ("s", Breakdown.SESSION, ["5f0c9a1e-7d41", "a81d2f47-0b6e", "(no session)"]),
    ],
)
async def test_breakdown_keys_split_the_days_and_list_each_key(
    queries: HistoryQueries, key: str, by: Breakdown, names: list[str]
) -> None:
    screen = screen_for(queries)
    app = ScreenHarness(screen)
    async with app.run_test(size=LARGE) as pilot:
        await settled(pilot, screen)
        await pilot.press(key)
        await settled(pilot, screen)
        assert screen.by is by
        assert len({row.key for row in screen.rows}) >= 3
        assert f"by {by.value}" in text_of(screen, "#history-title")
        table = table_text(screen)
        for name in names:
            assert name in table
        await pilot.press("a")  # back to the total
        await settled(pilot, screen)
        assert screen.by is None and {row.key for row in screen.rows} == {None}


async def test_c_switches_between_spend_and_requests(queries: HistoryQueries) -> None:
    screen = screen_for(queries)
    async with ScreenHarness(screen).run_test(size=SMALL) as pilot:
        await settled(pilot, screen)
        scale_spend = screen.query_one(DailyChart).data
        await pilot.press("c")
        assert screen.metric is Metric.REQUESTS
        assert "requests per day" in text_of(screen, "#history-title")
        data = screen.query_one(DailyChart).data
        assert data is not None and scale_spend is not None
        assert data.label(12.0) == "12" and scale_spend.label(12.0) == "$12.00"
        events = month_of_requests()
        assert sum(bar.values[1] for bar in data.bars) == sum(e.status >= 400 for e in events)  # failed, in red
        await pilot.press("c")
        assert screen.metric is Metric.SPEND


async def test_r_reads_the_history_again(queries: HistoryQueries, history_path: Path) -> None:
    screen = screen_for(queries)
    app = ScreenHarness(screen)
    async with app.run_test(size=SMALL) as pilot:
        await settled(pilot, screen)
        before = sum(row.requests for row in screen.rows)
        write_history(history_path, [finished(10_000, started_at=NOW - 60, cost_usd=50.0)])
        await pilot.press("r")
        await settled(pilot, screen)
        assert sum(row.requests for row in screen.rows) == before + 1
        today = next(line for line in table_text(screen).splitlines() if line.strip().startswith("today"))
        assert "$5" in today  # the $50 request is today's


@pytest.mark.parametrize("key", ["escape", "q"])
async def test_escape_and_q_close_the_screen(queries: HistoryQueries, key: str) -> None:
    screen = screen_for(queries)
    app = ScreenHarness(screen)
    async with app.run_test(size=SMALL) as pilot:
        await settled(pilot, screen)
        await pilot.press(key)
        await wait_until(pilot, lambda: app.screen is not screen)
        assert app.is_running  # q closes the screen, it does not quit


async def test_the_query_runs_off_the_event_loop(queries: HistoryQueries) -> None:
    """While the reader is busy (its lock held here) the screen keeps answering keys."""
    screen = screen_for(queries)
    busy = queries.reader._lock
    busy.acquire()
    try:
        async with ScreenHarness(screen).run_test(size=SMALL) as pilot:
            await pilot.press("c")
            assert screen.metric is Metric.REQUESTS and screen.view is View.LOADING
            assert "Reading the history" in text_of(screen, "#history-message")
            busy.release()
            await settled(pilot, screen)
            assert screen.view is View.CHART
    finally:
        if busy.locked():
            busy.release()


@pytest.mark.parametrize(
    ("absent", "words"),
    [(NoHistory.DEMO, "Demo mode keeps no history"), (NoHistory.DISABLED, "[history] enabled = false")],
)
async def test_without_a_history_the_screen_says_why(absent: NoHistory, words: str) -> None:
    screen = screen_for(None, absent)
    app = ScreenHarness(screen)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.press("p", "r", "c")  # nothing to read: the keys are off
        assert screen.view is View.UNAVAILABLE and screen.by is None and screen.metric is Metric.SPEND
        enabled = {active.binding.id for active in app.active_bindings.values() if active.enabled}
        assert "history-close" in enabled and not enabled & {"history-by-provider", "history-metric"}
        assert words in text_of(screen, "#history-message")
        assert not screen.query_one(DailyChart).display


async def test_an_empty_history_says_no_history_yet(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    write_history(path, [finished(1, started_at=NOW - 45 * DAY)])  # older than the window
    reader = HistoryReader(path)
    screen = screen_for(HistoryQueries(reader))
    try:
        async with ScreenHarness(screen).run_test(size=SMALL) as pilot:
            await settled(pilot, screen)
            assert screen.view is View.EMPTY
            assert "No history yet: no requests since May 14" in text_of(screen, "#history-message")
    finally:
        reader.close()


async def test_an_unreadable_history_is_reported_not_raised(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    reader = HistoryReader(path)
    screen = screen_for(HistoryQueries(reader))
    app = ScreenHarness(screen)
    try:
        async with app.run_test(size=SMALL) as pilot:
            await settled(pilot, screen)
            assert screen.view is View.FAILED
            assert "Cannot read the history: file is not a database" in text_of(screen, "#history-message")
            assert app.is_running
    finally:
        reader.close()


# --- the banner -------------------------------------------------------------------------------------------------

PROBLEM = HistoryProblem(
    path="/home/dev/.local/share/ccm-tui/history.sqlite3",
    fault=HistoryFault.READ_ONLY,
    message="history cannot be written (read_only: attempt to write a readonly database); keeping up to 10000 "
    "requests in memory and retrying",
    pending=3,
    dropped=0,
)


async def test_banner_is_hidden_until_there_is_something_to_say() -> None:
    banner = HistoryBanner()
    async with BannerHarness(banner).run_test(size=SMALL) as pilot:
        banner.show_event(finished(1))  # a request while history is fine: nothing to say
        await pilot.pause()
        assert not banner.display


async def test_banner_shows_the_problem_until_recovery_then_counts_what_was_kept() -> None:
    banner = HistoryBanner(clear_after=0.05)
    async with BannerHarness(banner).run_test(size=SMALL) as pilot:
        banner.show_event(PROBLEM)
        for n in range(4):  # rows finishing during the fault wait too
            banner.show_event(finished(n))
        await pilot.pause()
        assert banner.display
        shown = str(banner.render())
        assert "History not written" in shown and "read_only" in shown and PROBLEM.path in shown
        assert "7 rows waiting, 0 dropped" in shown
        banner.show_event(HistoryRecovered(PROBLEM.path, "history is written again", dropped=2))
        # Read at once: the line clears itself after clear_after, which a loaded machine may already have passed.
        assert "history writes again (5 rows kept, 2 dropped)" in str(banner.render())
        await wait_until(pilot, lambda: not banner.display)  # the recovery line clears itself
        assert str(banner.render()) == ""


async def test_a_new_problem_replaces_the_recovery_line_and_stays() -> None:
    banner = HistoryBanner(clear_after=0.05)
    async with BannerHarness(banner).run_test(size=SMALL) as pilot:
        banner.show_event(PROBLEM)
        banner.show_event(HistoryRecovered(PROBLEM.path, "history is written again", dropped=0))
        banner.show_event(PROBLEM)
        await pilot.pause(0.2)  # longer than clear_after: the cancelled timer must not hide the problem
        assert banner.display and "History not written" in str(banner.render())


async def test_recovery_without_a_problem_seen_shows_the_writers_words() -> None:
    banner = HistoryBanner()
    async with BannerHarness(banner).run_test(size=SMALL) as pilot:
        banner.show_event(
            HistoryRecovered(PROBLEM.path, "history is written again (0 requests still queued; 1 lost)", 1)
        )
        await pilot.pause()
        assert "(0 requests still queued; 1 lost)" in str(banner.render())


# --- snapshots --------------------------------------------------------------------------------------------------


def pressing(screen: HistoryScreen, *keys: str) -> Callable[[Pilot[Any]], Awaitable[None]]:
    async def run_before(pilot: Pilot[Any]) -> None:
        await settled(pilot, screen)
        for key in keys:
            await pilot.press(key)
            await settled(pilot, screen)

    return run_before


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "120x40"])
@pytest.mark.parametrize("keys", [(), ("p",), ("s", "c")], ids=["total-spend", "provider-spend", "session-requests"])
def test_history_snapshot(
    snap_compare: Any, queries: HistoryQueries, size: tuple[int, int], keys: tuple[str, ...]
) -> None:
    screen = screen_for(queries)
    assert snap_compare(ScreenHarness(screen), terminal_size=size, run_before=pressing(screen, *keys))


def test_history_snapshot_demo_mode(snap_compare: Any) -> None:
    screen = screen_for(None, NoHistory.DEMO)
    assert snap_compare(ScreenHarness(screen), terminal_size=SMALL)


def test_banner_snapshot(snap_compare: Any) -> None:
    banner = HistoryBanner()

    async def run_before(pilot: Pilot[Any]) -> None:
        banner.show_event(PROBLEM)
        await pilot.pause()

    assert snap_compare(BannerHarness(banner), terminal_size=SMALL, run_before=run_before)
