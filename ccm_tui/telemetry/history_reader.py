"""Queries over the history file for the TUI, startup seeding and `ccm-tui stats`.

`HistoryReader` is blocking (SQLite): on the event loop use `HistoryQueries`, the same queries as coroutines
that each run in a worker thread. Days are local calendar days, as the spend panel counts them. What a column
means is documented in history.py; rows <-> events in history_rows.py.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from ccm_tui.core.events import RequestFinished, SpendAlert
from ccm_tui.telemetry.history_rows import ATTEMPT_COLUMNS, REQUEST_COLUMNS, event_from_rows
from ccm_tui.telemetry.history_schema import open_database, open_read_only

_PARAMETER_CHUNK = 500  # stay under SQLite's bound-parameter limit
_INPUT = "input_tokens + cache_creation_tokens + cache_read_tokens"


class Breakdown(StrEnum):
    """What `daily` splits each day by."""

    PROVIDER = "provider"  # who served it (None: nobody did)
    MODEL = "model"  # the upstream model id (None: nobody served it)
    SESSION = "session"  # Claude Code's session id (None: no session header)


_BREAKDOWN_COLUMN = {Breakdown.PROVIDER: "provider", Breakdown.MODEL: "model", Breakdown.SESSION: "session_id"}


@dataclass(frozen=True)
class AgentSummary:
    """One subagent's share of a session (requests carrying its agent id)."""

    agent_id: str
    agent_type: str | None  # Explore, Plan, general-purpose, ...
    parent_agent_id: str | None  # None: started by the main thread
    requests: int
    spend_usd: float
    input_tokens: int  # including cache writes and reads
    output_tokens: int
    failovers: int
    last_activity: float  # unix time the agent's last request ended


@dataclass(frozen=True)
class SessionSummary:
    """One Claude Code session: every request with its session id, subagents included."""

    session_id: str
    requests: int
    spend_usd: float  # requests of unknown price count as 0
    input_tokens: int  # including cache writes and reads
    output_tokens: int
    failovers: int
    failed: int  # requests the client got an error for
    providers: tuple[str, ...]  # who served its requests, most requests first
    first_activity: float  # unix time its first request started
    last_activity: float  # unix time its last request ended
    agents: tuple[AgentSummary, ...]  # subagents, most recently active first


@dataclass(frozen=True)
class DailyRow:
    """Requests of one local day (and one provider / model / session, when split)."""

    day: dt.date
    key: str | None  # the provider, model or session; None in a total, or for requests without one
    requests: int
    spend_usd: float
    input_tokens: int
    output_tokens: int
    failed: int


def first_day(days: int, now: float) -> dt.date:
    """The first local day of the last `days` days, today included."""
    return dt.date.fromtimestamp(now) - dt.timedelta(days=max(days, 1) - 1)


def local_midnight(day: dt.date) -> float:
    return dt.datetime.combine(day, dt.time()).timestamp()


class HistoryReader:
    """Queries over the history file with its own connection. Blocking: call through a thread.

    Safe to call from several threads (the connection is serialised by a lock). Opening creates or migrates
    the file like the writer does, unless `read_only` (what `ccm-tui stats` uses: it never changes the file)."""

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self._connection: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def spend_since(self, since: float) -> float:
        """USD spent on requests started at or after `since` (requests of unknown price count as 0)."""
        return self._one("SELECT COALESCE(SUM(cost_usd), 0.0) FROM requests WHERE started_at >= ?", (since,))

    def count_since(self, since: float) -> int:
        return self._one("SELECT COUNT(*) FROM requests WHERE started_at >= ?", (since,))

    def recent(self, limit: int, session_id: str | None = None) -> list[RequestFinished]:
        """The `limit` most recent requests (of one session, when given), oldest first, with their attempts."""
        where, parameters = ("WHERE session_id = ?", (session_id, limit)) if session_id else ("", (limit,))
        with self._cursor() as connection:
            rows = connection.execute(
                f"SELECT {', '.join(REQUEST_COLUMNS)} FROM requests {where} ORDER BY started_at DESC LIMIT ?",
                parameters,
            ).fetchall()
            attempts: dict[str, list[sqlite3.Row]] = {row["request_id"]: [] for row in rows}
            for chunk in _chunks(list(attempts)):
                for attempt in connection.execute(
                    f"SELECT {', '.join(ATTEMPT_COLUMNS)} FROM attempts "
                    f"WHERE request_id IN ({', '.join('?' * len(chunk))}) ORDER BY request_id, n",
                    chunk,
                ):
                    attempts[attempt["request_id"]].append(attempt)
        return [event_from_rows(row, attempts[row["request_id"]]) for row in reversed(rows)]

    def spend_buckets(self, since: float, bucket_s: float) -> list[tuple[float, float]]:
        """(bucket start, USD) for buckets aligned to multiples of `bucket_s` since the epoch, oldest first.

        Only buckets holding priced requests appear (a chart fills the gaps)."""
        with self._cursor() as connection:
            rows = connection.execute(
                "SELECT CAST(started_at / ? AS INTEGER) AS bucket, SUM(cost_usd) FROM requests "
                "WHERE started_at >= ? AND cost_usd IS NOT NULL GROUP BY bucket ORDER BY bucket",
                (bucket_s, since),
            ).fetchall()
        return [(float(bucket * bucket_s), spent) for bucket, spent in rows]

    def tokens_by_provider(self, since: float) -> dict[str, tuple[int, int]]:
        """provider -> (input tokens including cache writes and reads, output tokens) since `since`."""
        with self._cursor() as connection:
            rows = connection.execute(
                f"SELECT provider, SUM({_INPUT}), SUM(output_tokens) "
                "FROM requests WHERE started_at >= ? AND provider IS NOT NULL GROUP BY provider",
                (since,),
            ).fetchall()
        return {provider: (int(input_tokens), int(output_tokens)) for provider, input_tokens, output_tokens in rows}

    def alerts_since(self, since: float) -> list[SpendAlert]:
        with self._cursor() as connection:
            rows = connection.execute(
                "SELECT at, window, spent_usd, threshold_usd FROM spend_alerts WHERE at >= ? ORDER BY at", (since,)
            ).fetchall()
        return [SpendAlert(window=w, spent_usd=s, threshold_usd=t, at=at) for at, w, s, t in rows]

    def sessions(self, since: float, limit: int = 100) -> list[SessionSummary]:
        """Sessions active at or after `since`, most recently active first (at most `limit`)."""
        with self._cursor() as connection:
            heads = connection.execute(
                f"SELECT session_id, COUNT(*), COALESCE(SUM(cost_usd), 0.0), SUM({_INPUT}), SUM(output_tokens), "
                "SUM(failovers), SUM(status >= 400 OR error_type IS NOT NULL), MIN(started_at), "
                "MAX(started_at + duration_ms / 1000.0) AS last FROM requests "
                "WHERE started_at >= ? AND session_id IS NOT NULL GROUP BY session_id ORDER BY last DESC LIMIT ?",
                (since, limit),
            ).fetchall()
            ids = [head[0] for head in heads]
            providers: dict[str, list[str]] = {session: [] for session in ids}
            agents: dict[str, list[AgentSummary]] = {session: [] for session in ids}
            for chunk in _chunks(ids):
                marks = ", ".join("?" * len(chunk))
                for session, provider in connection.execute(
                    f"SELECT session_id, provider FROM requests WHERE started_at >= ? AND session_id IN ({marks}) "
                    "AND provider IS NOT NULL GROUP BY session_id, provider ORDER BY session_id, COUNT(*) DESC, "
                    "provider",
                    (since, *chunk),
                ):
                    providers[session].append(provider)
                for row in connection.execute(
                    f"SELECT session_id, agent_id, MAX(agent_type), MAX(parent_agent_id), COUNT(*), "
                    f"COALESCE(SUM(cost_usd), 0.0), SUM({_INPUT}), SUM(output_tokens), SUM(failovers), "
                    "MAX(started_at + duration_ms / 1000.0) AS last FROM requests "
                    f"WHERE started_at >= ? AND session_id IN ({marks}) AND agent_id IS NOT NULL "
                    "GROUP BY session_id, agent_id ORDER BY last DESC",
                    (since, *chunk),
                ):
                    (
                        session,
                        agent_id,
                        agent_type,
                        parent,
                        count,
                        spent,
                        input_tokens,
                        output_tokens,
                        failovers,
                        last,
                    ) = row
                    agents[session].append(
                        AgentSummary(
                            agent_id=agent_id,
                            agent_type=agent_type,
                            parent_agent_id=parent,
                            requests=int(count),
                            spend_usd=float(spent),
                            input_tokens=int(input_tokens or 0),
                            output_tokens=int(output_tokens or 0),
                            failovers=int(failovers or 0),
                            last_activity=float(last),
                        )
                    )
        return [
            SessionSummary(
                session_id=session,
                requests=int(count),
                spend_usd=float(spent),
                input_tokens=int(input_tokens or 0),
                output_tokens=int(output_tokens or 0),
                failovers=int(failovers or 0),
                failed=int(failed or 0),
                providers=tuple(providers[session]),
                first_activity=float(first),
                last_activity=float(last),
                agents=tuple(agents[session]),
            )
            for session, count, spent, input_tokens, output_tokens, failovers, failed, first, last in heads
        ]

    def daily(self, days: int, now: float, by: Breakdown | None = None) -> list[DailyRow]:
        """Spend and requests per local day for the last `days` days (today included), oldest first; split by
        provider, model or session when `by` is given (largest spend first within a day). Days without
        requests have no row."""
        since = local_midnight(first_day(days, now))
        key = _BREAKDOWN_COLUMN[by] if by is not None else "NULL"
        with self._cursor() as connection:
            rows = connection.execute(
                f"SELECT date(started_at, 'unixepoch', 'localtime') AS day, {key} AS key, COUNT(*), "
                f"COALESCE(SUM(cost_usd), 0.0) AS spent, SUM({_INPUT}), SUM(output_tokens), "
                "SUM(status >= 400 OR error_type IS NOT NULL) FROM requests WHERE started_at >= ? "
                "GROUP BY day, key ORDER BY day, spent DESC, COUNT(*) DESC, key",
                (since,),
            ).fetchall()
        return [
            DailyRow(dt.date.fromisoformat(day), key_value, int(count), float(spent), *_ints((inp, out, failed)))
            for day, key_value, count, spent, inp, out, failed in rows
        ]

    def _one(self, sql: str, parameters: tuple[object, ...]) -> Any:
        with self._cursor() as connection:
            return connection.execute(sql, parameters).fetchone()[0]

    @contextmanager
    def _cursor(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._connection is None:
                self._connection = open_read_only(self.path) if self.read_only else open_database(self.path)
            yield self._connection


class HistoryQueries:
    """The reader's queries for code on the event loop: each runs in a worker thread."""

    def __init__(self, reader: HistoryReader) -> None:
        self.reader = reader

    async def sessions(self, since: float, limit: int = 100) -> list[SessionSummary]:
        return await asyncio.to_thread(self.reader.sessions, since, limit)

    async def daily(self, days: int, now: float, by: Breakdown | None = None) -> list[DailyRow]:
        return await asyncio.to_thread(self.reader.daily, days, now, by)

    async def recent(self, limit: int, session_id: str | None = None) -> list[RequestFinished]:
        return await asyncio.to_thread(self.reader.recent, limit, session_id)

    async def close(self) -> None:
        await asyncio.to_thread(self.reader.close)


def _chunks(values: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(values), _PARAMETER_CHUNK):
        yield values[start : start + _PARAMETER_CHUNK]


def _ints(values: tuple[Any, ...]) -> tuple[int, ...]:
    return tuple(int(value or 0) for value in values)
