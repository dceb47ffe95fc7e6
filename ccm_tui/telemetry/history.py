"""Request history in SQLite: a writer thread fed by the event bus, and a reader for the UI and `stats`.

README fragment (the schema):

    History lives in one SQLite file in WAL mode, by default `<user data dir>/ccm-tui/history.sqlite3`
    (`[history] path = ...` moves it, `enabled = false` turns it off). It records what was asked, who
    answered, tokens, cost and timings — never an API key and never message content. Query it with any
    SQLite client; times are unix seconds (UTC), durations milliseconds, costs USD.

    requests      one row per request
      request_id TEXT PRIMARY KEY, started_at REAL, requested_model TEXT, provider TEXT (who served it;
      NULL when nobody did), model TEXT (the upstream model id), stream INTEGER (0/1), status INTEGER
      (HTTP status the client got), error_type TEXT, error_message TEXT, input_tokens, output_tokens,
      cache_creation_tokens, cache_read_tokens INTEGER (input_tokens excludes the cached parts), cost_usd
      REAL (NULL when the price is unknown), ttfb_ms REAL, duration_ms REAL, failovers INTEGER
      index: requests_started_at (started_at)

    attempts      one row per provider tried for a request, in order
      request_id TEXT, n INTEGER (0 = first try), provider, model, variant TEXT, status INTEGER (upstream
      HTTP status, 0 = no response), outcome TEXT ("ok", "cooldown", "disable", "skip", "client_error",
      "stream_error"), reason TEXT, started_at REAL, duration_ms REAL, retry_after REAL (seconds)
      primary key (request_id, n); index: attempts_started_at (started_at)

    spend_alerts  one row per spend alert
      at REAL, window TEXT ("hour" | "day"), spent_usd REAL, threshold_usd REAL

    PRAGMA user_version holds the schema version (currently 1). A file written by another version is
    moved aside as `history.sqlite3.v<N>.bak` and a fresh one is created (a warning says so).

Writes never happen on the event loop: `HistoryWriter.subscriber` only puts the event on a queue, and a thread
writes everything queued in one transaction at most every ~250 ms. `HistoryReader` is blocking; call it through
`asyncio.to_thread`. Spend windows and alerts live in spend.py.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ccm_tui.core.events import AttemptRecord, Event, RequestFinished, SpendAlert, Usage
from ccm_tui.core.scrub import scrub
from ccm_tui.core.states import AttemptOutcome

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
WRITE_INTERVAL_S = 0.25
_MAX_TEXT = 500  # error messages and reasons are for people, not for replaying a response

_SCHEMA = """
CREATE TABLE requests (
    request_id TEXT PRIMARY KEY,
    started_at REAL NOT NULL,
    requested_model TEXT NOT NULL,
    provider TEXT,
    model TEXT,
    stream INTEGER NOT NULL,
    status INTEGER NOT NULL,
    error_type TEXT,
    error_message TEXT,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cache_creation_tokens INTEGER NOT NULL,
    cache_read_tokens INTEGER NOT NULL,
    cost_usd REAL,
    ttfb_ms REAL,
    duration_ms REAL NOT NULL,
    failovers INTEGER NOT NULL
);
CREATE INDEX requests_started_at ON requests (started_at);
CREATE TABLE attempts (
    request_id TEXT NOT NULL,
    n INTEGER NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    variant TEXT NOT NULL,
    status INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    reason TEXT NOT NULL,
    started_at REAL NOT NULL,
    duration_ms REAL NOT NULL,
    retry_after REAL,
    PRIMARY KEY (request_id, n)
);
CREATE INDEX attempts_started_at ON attempts (started_at);
CREATE TABLE spend_alerts (
    at REAL NOT NULL,
    window TEXT NOT NULL,
    spent_usd REAL NOT NULL,
    threshold_usd REAL NOT NULL
);
CREATE INDEX spend_alerts_at ON spend_alerts (at);
"""

_REQUEST_COLUMNS = (
    "request_id, started_at, requested_model, provider, model, stream, status, error_type, error_message, "
    "input_tokens, output_tokens, cache_creation_tokens, cache_read_tokens, cost_usd, ttfb_ms, duration_ms, failovers"
)
_ATTEMPT_COLUMNS = (
    "request_id, n, provider, model, variant, status, outcome, reason, started_at, duration_ms, retry_after"
)


# Upstream error texts sometimes echo a credential ("Incorrect API key provided: sk-…"); history must not keep it.
def redact(text: str | None) -> str | None:
    """`text` without anything that looks like a credential, and not longer than a status line needs."""
    if text is None:
        return None
    cleaned = scrub(text)
    return cleaned if len(cleaned) <= _MAX_TEXT else cleaned[: _MAX_TEXT - 1] + "…"


# --- rows <-> events (pure) ------------------------------------------------------------------------------


def request_row(event: RequestFinished) -> tuple[object, ...]:
    usage = event.usage
    return (
        event.request_id,
        event.started_at,
        event.requested_model,
        event.provider,
        event.model,
        int(event.stream),
        event.status,
        event.error_type,
        redact(event.error_message),
        usage.input_tokens,
        usage.output_tokens,
        usage.cache_creation_input_tokens,
        usage.cache_read_input_tokens,
        event.cost_usd,
        event.ttfb * 1000.0 if event.ttfb is not None else None,
        event.duration * 1000.0,
        event.failovers,
    )


def attempt_rows(event: RequestFinished) -> list[tuple[object, ...]]:
    return [
        (
            event.request_id,
            n,
            attempt.provider,
            attempt.model,
            attempt.variant,
            attempt.status,
            attempt.outcome,
            redact(attempt.reason) or "",
            attempt.started_at,
            attempt.duration * 1000.0,
            attempt.retry_after,
        )
        for n, attempt in enumerate(event.attempts)
    ]


def event_from_rows(row: sqlite3.Row, attempts: list[sqlite3.Row]) -> RequestFinished:
    return RequestFinished(
        request_id=row["request_id"],
        requested_model=row["requested_model"],
        stream=bool(row["stream"]),
        status=row["status"],
        provider=row["provider"],
        model=row["model"],
        attempts=tuple(
            AttemptRecord(
                provider=a["provider"],
                model=a["model"],
                variant=a["variant"],
                status=a["status"],
                outcome=AttemptOutcome(a["outcome"]),
                reason=a["reason"],
                started_at=a["started_at"],
                duration=a["duration_ms"] / 1000.0,
                retry_after=a["retry_after"],
            )
            for a in attempts
        ),
        usage=Usage(
            input_tokens=row["input_tokens"],
            output_tokens=row["output_tokens"],
            cache_creation_input_tokens=row["cache_creation_tokens"],
            cache_read_input_tokens=row["cache_read_tokens"],
        ),
        cost_usd=row["cost_usd"],
        started_at=row["started_at"],
        ttfb=row["ttfb_ms"] / 1000.0 if row["ttfb_ms"] is not None else None,
        duration=row["duration_ms"] / 1000.0,
        error_type=row["error_type"],
        error_message=row["error_message"],
    )


# --- opening and schema ----------------------------------------------------------------------------------


def open_database(path: Path) -> sqlite3.Connection:
    """Open (creating the directory and schema if needed) in WAL mode. Blocking."""
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = _connect(path)
    version = _ensure_schema(connection)
    if version is None:
        return connection
    # No older schema has shipped, so there is nothing to migrate from yet: keep the old file, start a new one.
    connection.close()
    backup = path.with_name(f"{path.name}.v{version}.bak")
    log.warning(
        "history database %s has schema version %d (expected %d): moved it to %s and started a new one",
        path,
        version,
        SCHEMA_VERSION,
        backup,
    )
    for suffix in ("-wal", "-shm"):
        sidecar = path.with_name(path.name + suffix)
        if sidecar.exists():
            sidecar.replace(backup.with_name(backup.name + suffix))
    path.replace(backup)
    connection = _connect(path)
    if _ensure_schema(connection) is not None:
        connection.close()
        raise sqlite3.DatabaseError(f"{path}: another process keeps writing an incompatible history schema")
    return connection


def _connect(path: Path) -> sqlite3.Connection:
    # Autocommit mode (isolation_level=None): transactions are explicit, one per batch.
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5.0)
    connection.row_factory = sqlite3.Row
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")  # durable across app crashes in WAL mode; cheap per commit
    return connection


def _has_tables(connection: sqlite3.Connection) -> bool:
    return connection.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0] > 0


def _ensure_schema(connection: sqlite3.Connection) -> int | None:
    """Create the schema in a new file; None when the file is usable, else the version it has."""
    # IMMEDIATE: the writer thread and a reader may open a new file at the same moment; one creates, one waits.
    with _transaction(connection):
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return None
        if version != 0 or _has_tables(connection):
            return version
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                connection.execute(statement)
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return None


@contextmanager
def _transaction(connection: sqlite3.Connection) -> Iterator[None]:
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


# --- writer ----------------------------------------------------------------------------------------------

_STOP = object()


class HistoryWriter:
    """Stores finished requests (with their attempts) and spend alerts. `subscriber` never blocks."""

    def __init__(self, path: Path, write_interval: float = WRITE_INTERVAL_S) -> None:
        self.path = Path(path)
        self._write_interval = write_interval
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._closed = False
        self.failed: str | None = None  # why history is off, when the database could not be opened
        self.written = 0  # requests stored so far (for tests and the status line)

    def subscriber(self, event: Event) -> None:
        if isinstance(event, RequestFinished | SpendAlert) and not self._closed and self.failed is None:
            self._queue.put(event)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="ccm-history-writer", daemon=True)
        self._thread.start()

    def close(self, timeout: float | None = 10.0) -> None:
        """Write everything queued so far and stop. Blocking: from the event loop, use asyncio.to_thread."""
        if self._closed:
            return
        self._closed = True
        self._closing.set()
        self._queue.put(_STOP)
        if self._thread is None:
            self._run()  # never started: write what was queued, here
            return
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("history writer did not finish within %.0f s; some requests may be missing", timeout or 0)

    def _run(self) -> None:
        try:
            connection = open_database(self.path)
        except (sqlite3.Error, OSError) as exc:
            self.failed = f"cannot open history database {self.path}: {exc}"
            log.error("%s; history is off for this session", self.failed)
            self._discard_until_stop()
            return
        try:
            self._write_loop(connection)
        finally:
            connection.close()

    def _write_loop(self, connection: sqlite3.Connection) -> None:
        last_write = 0.0
        while True:
            first = self._queue.get()
            # Let a burst accumulate so it costs one transaction, unless we are shutting down.
            wait = last_write + self._write_interval - time.monotonic()
            if wait > 0 and first is not _STOP:
                self._closing.wait(wait)
            batch = [first, *self._drain()]
            events = [item for item in batch if item is not _STOP]
            if events:
                self._write_batch(connection, events)
            last_write = time.monotonic()
            if len(events) != len(batch):
                return

    def _drain(self) -> Iterator[object]:
        while True:
            try:
                yield self._queue.get_nowait()
            except queue.Empty:
                return

    def _write_batch(self, connection: sqlite3.Connection, events: list[object]) -> None:
        requests = [e for e in events if isinstance(e, RequestFinished)]
        alerts = [e for e in events if isinstance(e, SpendAlert)]
        try:
            with _transaction(connection):
                connection.executemany(
                    f"INSERT OR REPLACE INTO requests ({_REQUEST_COLUMNS}) VALUES ({_placeholders(17)})",
                    [request_row(e) for e in requests],
                )
                connection.executemany(
                    f"INSERT OR REPLACE INTO attempts ({_ATTEMPT_COLUMNS}) VALUES ({_placeholders(11)})",
                    [row for e in requests for row in attempt_rows(e)],
                )
                connection.executemany(
                    "INSERT INTO spend_alerts (at, window, spent_usd, threshold_usd) VALUES (?, ?, ?, ?)",
                    [(a.at, a.window, a.spent_usd, a.threshold_usd) for a in alerts],
                )
        except sqlite3.Error:
            log.exception("could not write %d requests to the history database", len(requests))
            return
        self.written += len(requests)

    def _discard_until_stop(self) -> None:
        while self._queue.get() is not _STOP:
            pass


def _placeholders(count: int) -> str:
    return ", ".join("?" * count)


# --- reader ----------------------------------------------------------------------------------------------


class HistoryReader:
    """Queries over the history file with its own connection. Blocking: call through asyncio.to_thread.

    Safe to call from several threads (the connection is serialised by a lock)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
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

    def recent(self, limit: int) -> list[RequestFinished]:
        """The `limit` most recent requests, oldest first (append order), with their attempts."""
        with self._cursor() as connection:
            rows = connection.execute(
                f"SELECT {_REQUEST_COLUMNS} FROM requests ORDER BY started_at DESC LIMIT ?", (limit,)
            ).fetchall()
            attempts: dict[str, list[sqlite3.Row]] = {row["request_id"]: [] for row in rows}
            ids = list(attempts)
            for start in range(0, len(ids), 500):  # stay under SQLite's bound-parameter limit
                chunk = ids[start : start + 500]
                for attempt in connection.execute(
                    f"SELECT {_ATTEMPT_COLUMNS} FROM attempts WHERE request_id IN ({_placeholders(len(chunk))}) "
                    "ORDER BY request_id, n",
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
                "SELECT provider, SUM(input_tokens + cache_creation_tokens + cache_read_tokens), SUM(output_tokens) "
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

    def _one(self, sql: str, parameters: tuple[object, ...]) -> Any:
        with self._cursor() as connection:
            return connection.execute(sql, parameters).fetchone()[0]

    @contextmanager
    def _cursor(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._connection is None:
                self._connection = open_database(self.path)
            yield self._connection
