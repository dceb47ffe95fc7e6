"""The sessions and daily-history queries the TUI and `ccm-tui stats` read, over a real history file."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from ccm_tui.core.events import AttemptRecord, Usage
from ccm_tui.core.hints import ClientHints, RequestClass
from ccm_tui.telemetry.history import HistoryReader, HistoryWriter
from ccm_tui.telemetry.history_reader import (
    AgentSummary,
    Breakdown,
    DailyRow,
    HistoryQueries,
    SessionSummary,
    first_day,
    local_midnight,
)
from tests.test_history import finished

NOW = dt.datetime(2026, 11, 20, 15, 0).timestamp()  # local time, like the days the queries count
DAY = 86_400.0
FAIL = AttemptRecord("anthropic", "claude-sonnet-4-5", "claude-sonnet-4-5", 529, "cooldown", "overloaded", NOW, 0.5)
OK_ATTEMPT = AttemptRecord("openrouter", "m", "m", 200, "ok", "", NOW, 1.0)


def request(n: int, at: float, provider: str | None, cost: float | None, hints: ClientHints, **changes: object):
    fields: dict[str, object] = dict(
        started_at=at,
        provider=provider,
        model=f"{provider}-model" if provider else None,
        cost_usd=cost,
        hints=hints,
        usage=Usage(input_tokens=100, output_tokens=10, cache_read_input_tokens=50),
        attempts=(OK_ATTEMPT,),
        duration=2.0,
    )
    fields.update(changes)
    return finished(n, **fields)


MAIN_A = ClientHints(session_id="sess-a", request_class=RequestClass.MAIN)
EXPLORE = ClientHints("sess-a", "agent-1", None, RequestClass.SUBAGENT, "Explore")
NESTED = ClientHints("sess-a", "agent-2", "agent-1", RequestClass.SUBAGENT, "general-purpose")
MAIN_B = ClientHints(session_id="sess-b")
NO_SESSION = ClientHints()

EVENTS = [
    request(1, NOW - 2 * DAY, "anthropic", 1.0, MAIN_B),  # two days ago
    request(2, NOW - 600, "anthropic", 0.5, MAIN_A),
    request(3, NOW - 500, "openrouter", 0.25, EXPLORE, attempts=(FAIL, OK_ATTEMPT)),
    request(4, NOW - 400, "openrouter", 0.25, EXPLORE),
    request(5, NOW - 300, "openrouter", None, NESTED),  # price unknown
    request(6, NOW - 200, None, None, MAIN_A, status=429, error_type="rate_limit_error", attempts=(FAIL,)),
    request(7, NOW - 100, "anthropic", 2.0, NO_SESSION),
    request(8, NOW - 40 * DAY, "anthropic", 9.0, MAIN_B),  # outside every window below
]


@pytest.fixture
def reader(tmp_path: Path):
    path = tmp_path / "history.sqlite3"
    writer = HistoryWriter(path)
    for event in EVENTS:
        writer.subscriber(event)
    writer.close()
    reader = HistoryReader(path)
    yield reader
    reader.close()


def test_sessions_sum_their_requests_and_list_subagents_under_them(reader: HistoryReader) -> None:
    sessions = reader.sessions(since=NOW - 3 * DAY)
    assert [s.session_id for s in sessions] == ["sess-a", "sess-b"]  # most recently active first
    a, b = sessions
    assert a == SessionSummary(
        session_id="sess-a",
        requests=5,
        spend_usd=1.0,
        input_tokens=5 * 150,
        output_tokens=50,
        failovers=2,
        failed=1,
        providers=("openrouter", "anthropic"),  # most requests first; the unserved one adds nobody
        first_activity=NOW - 600,
        last_activity=NOW - 200 + 2.0,
        agents=(
            AgentSummary("agent-2", "general-purpose", "agent-1", 1, 0.0, 150, 10, 0, NOW - 300 + 2.0),
            AgentSummary("agent-1", "Explore", None, 2, 0.5, 300, 20, 1, NOW - 400 + 2.0),
        ),
    )
    assert (b.requests, b.spend_usd, b.providers, b.agents) == (1, 1.0, ("anthropic",), ())


def test_sessions_window_and_limit(reader: HistoryReader) -> None:
    assert [s.session_id for s in reader.sessions(since=NOW - 3600)] == ["sess-a"]
    assert [s.session_id for s in reader.sessions(since=0, limit=1)] == ["sess-a"]
    assert reader.sessions(since=0)[1].requests == 2  # the 40-day-old request counts when asked for


def test_daily_totals_for_the_last_days(reader: HistoryReader) -> None:
    today, two_days_ago = dt.date.fromtimestamp(NOW), dt.date.fromtimestamp(NOW - 2 * DAY)
    assert reader.daily(3, NOW) == [
        DailyRow(two_days_ago, None, 1, 1.0, 150, 10, 0),
        DailyRow(today, None, 6, 3.0, 900, 60, 1),
    ]
    assert reader.daily(1, NOW) == [DailyRow(today, None, 6, 3.0, 900, 60, 1)]


@pytest.mark.parametrize(
    ("by", "today"),
    [
        (Breakdown.PROVIDER, [("anthropic", 2, 2.5), ("openrouter", 3, 0.5), (None, 1, 0.0)]),
        (Breakdown.MODEL, [("anthropic-model", 2, 2.5), ("openrouter-model", 3, 0.5), (None, 1, 0.0)]),
        (Breakdown.SESSION, [(None, 1, 2.0), ("sess-a", 5, 1.0)]),
    ],
)
def test_daily_split_by_provider_model_or_session(
    reader: HistoryReader, by: Breakdown, today: list[tuple[str | None, int, float]]
) -> None:
    rows = reader.daily(1, NOW, by)
    assert [(r.key, r.requests, r.spend_usd) for r in rows] == today  # largest spend first
    assert {r.day for r in rows} == {dt.date.fromtimestamp(NOW)}


def test_days_start_at_local_midnight() -> None:
    assert first_day(1, NOW) == dt.date.fromtimestamp(NOW)
    assert first_day(30, NOW) == dt.date.fromtimestamp(NOW) - dt.timedelta(days=29)
    midnight = local_midnight(first_day(1, NOW))
    assert dt.datetime.fromtimestamp(midnight).time() == dt.time(0, 0)
    assert NOW - DAY < midnight <= NOW


async def test_the_async_queries_run_off_the_loop_and_agree(reader: HistoryReader) -> None:
    queries = HistoryQueries(reader)
    assert await queries.sessions(NOW - 3 * DAY) == reader.sessions(NOW - 3 * DAY)
    assert await queries.daily(3, NOW, Breakdown.PROVIDER) == reader.daily(3, NOW, Breakdown.PROVIDER)
    assert [e.request_id for e in await queries.recent(10, session_id="sess-b")] == ["req-8", "req-1"]
