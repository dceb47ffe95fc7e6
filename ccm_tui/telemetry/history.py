"""Request history in SQLite: the writer thread fed by the event bus, with bounded lag and surfaced faults.

The guarantees (bounded lag, clamped rows, faults kept in memory and retried, migrations) and the schema are
documented in README.md, "History".

Writes never happen on the event loop: `HistoryWriter.subscriber` only appends the event to a bounded queue.
Schema and migrations live in history_schema.py, rows in history_rows.py, queries in history_reader.py.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ccm_tui.core.events import Event, HistoryFault, HistoryProblem, HistoryRecovered, RequestFinished, SpendAlert
from ccm_tui.telemetry.history_reader import HistoryReader
from ccm_tui.telemetry.history_rows import (
    ALERT_COLUMNS,
    ATTEMPT_COLUMNS,
    REQUEST_COLUMNS,
    alert_row,
    attempt_rows,
    redact,
    request_row,
)
from ccm_tui.telemetry.history_schema import (
    BUSY_TIMEOUT_S,
    SCHEMA_VERSION,
    corrupt_tag,
    move_aside,
    open_database,
    storage_fault,
    transaction,
)

__all__ = [
    "SCHEMA_VERSION",
    "BatchPolicy",
    "HistoryReader",
    "HistoryStatus",
    "HistoryWriter",
    "redact",
    "retry_delay",
]

log = logging.getLogger(__name__)

MAX_BATCH_ROWS = 256
MAX_DELAY_S = 0.05  # a fifth of the 250 ms target; the rest is margin for commits and WAL checkpoints
MAX_PENDING = 20_000  # ~1 KB per queued request: about 20 MB while the file cannot be written
FIRST_RETRY_S = 0.25
MAX_RETRY_S = 30.0

_INSERT_REQUEST = (
    f"INSERT OR REPLACE INTO requests ({', '.join(REQUEST_COLUMNS)}) VALUES ({', '.join('?' * len(REQUEST_COLUMNS))})"
)
_INSERT_ATTEMPT = (
    f"INSERT OR REPLACE INTO attempts ({', '.join(ATTEMPT_COLUMNS)}) VALUES ({', '.join('?' * len(ATTEMPT_COLUMNS))})"
)
_INSERT_ALERT = f"INSERT INTO spend_alerts ({', '.join(ALERT_COLUMNS)}) VALUES ({', '.join('?' * len(ALERT_COLUMNS))})"

Stored = RequestFinished | SpendAlert


@dataclass(frozen=True)
class BatchPolicy:
    """When the writer commits: as soon as `max_rows` wait, or when the oldest has waited `max_delay`."""

    max_rows: int = MAX_BATCH_ROWS
    max_delay: float = MAX_DELAY_S

    def due(self, pending: int, oldest_at: float | None, now: float) -> bool:
        if pending >= self.max_rows:
            return True
        return pending > 0 and oldest_at is not None and now - oldest_at >= self.max_delay

    def wait(self, pending: int, oldest_at: float | None, now: float) -> float | None:
        """Seconds until `due` turns true on its own; None when only a new row can make it so."""
        if pending == 0 or oldest_at is None:
            return None
        return max(0.0, oldest_at + self.max_delay - now)


def retry_delay(failures: int) -> float:
    """Back-off after the `failures`-th failed write in a row (1, 2, ...)."""
    return min(FIRST_RETRY_S * 2 ** max(failures - 1, 0), MAX_RETRY_S)


@dataclass(frozen=True)
class HistoryStatus:
    """What the writer has done so far, for the TUI, metrics and tests."""

    written: int  # requests stored
    batches: int  # transactions committed
    failed_writes: int  # write attempts that hit a storage fault (each retry counts)
    pending: int  # events waiting to be written
    dropped: int  # events lost because the queue was full, or still unwritable at close
    rejected: int  # events that could not be stored at all (logged)
    fault: HistoryFault | None  # why nothing is being written right now, if so
    lag: float  # seconds the oldest unwritten event (queued or being written) has waited

    @property
    def lost(self) -> int:
        return self.dropped + self.rejected


class HistoryWriter:
    """Stores finished requests (with their attempts) and spend alerts. `subscriber` never blocks.

    `notify` receives HistoryProblem / HistoryRecovered from the writer thread: pass something thread-safe
    (the runtime hands them to the event loop). `clock` is monotonic seconds; tests pass their own."""

    def __init__(
        self,
        path: Path,
        *,
        policy: BatchPolicy = BatchPolicy(),
        max_pending: int = MAX_PENDING,
        notify: Callable[[Event], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        busy_timeout: float = BUSY_TIMEOUT_S,
    ) -> None:
        self.path = Path(path)
        self._policy = policy
        self._max_pending = max_pending
        self._notify = notify
        self._clock = clock
        self._busy_timeout = busy_timeout
        self._cond = threading.Condition(threading.Lock())
        self._pending: deque[tuple[Stored, float]] = deque()  # (event, arrived at)
        self._thread: threading.Thread | None = None
        self._connection: sqlite3.Connection | None = None
        self._closed = False  # no new events accepted
        self._stopping = False  # flush what is queued and end
        self._written = 0
        self._batches = 0
        self._failed_writes = 0
        self._dropped = 0
        self._rejected = 0
        self._fault: HistoryFault | None = None
        self._failures = 0  # failed writes in a row
        self._retry_at: float | None = None
        self._overflowing = False  # the queue overflow warning was logged for this fault
        self._in_flight: list[tuple[Stored, float]] = []  # taken from the queue, being written

    # --- event loop side -----------------------------------------------------------------------------------

    def subscriber(self, event: Event) -> None:
        if not isinstance(event, RequestFinished | SpendAlert):
            return
        with self._cond:
            if self._closed:
                return
            if len(self._pending) >= self._max_pending:
                self._pending.popleft()
                self._dropped += 1
                if not self._overflowing:
                    self._overflowing = True
                    log.warning("history queue full (%d requests): dropping the oldest", self._max_pending)
            self._pending.append((event, self._clock()))
            # Wake the writer only when its decision changes: the first row starts the timer, a full batch is due.
            if len(self._pending) in (1, self._policy.max_rows):
                self._cond.notify_all()

    def status(self) -> HistoryStatus:
        with self._cond:
            return self._status()

    def wait_until(self, predicate: Callable[[HistoryStatus], bool], timeout: float) -> bool:
        """Block until `predicate(status)` holds (checked after every batch), or `timeout` seconds pass."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self._status()), timeout)

    def wake(self) -> None:
        """Re-check deadlines now (tests advance their clock, then call this)."""
        with self._cond:
            self._cond.notify_all()

    # --- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="ccm-history-writer", daemon=True)
        self._thread.start()

    def close(self, timeout: float | None = 10.0) -> None:
        """Write everything queued so far and stop. Blocking: from the event loop, use asyncio.to_thread."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._stopping = True
            self._cond.notify_all()
        if self._thread is None:
            self._run()  # never started: write what was queued, here
            return
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("history writer did not finish within %.0f s; some requests may be missing", timeout or 0)

    # --- writer thread ---------------------------------------------------------------------------------------

    def _status(self) -> HistoryStatus:
        waiting = self._in_flight or self._pending  # rows being written are older than any still queued
        oldest = waiting[0][1] if waiting else None
        return HistoryStatus(
            written=self._written,
            batches=self._batches,
            failed_writes=self._failed_writes,
            pending=len(self._pending),
            dropped=self._dropped,
            rejected=self._rejected,
            fault=self._fault,
            lag=0.0 if oldest is None else max(0.0, self._clock() - oldest),
        )

    def _ready(self, now: float) -> bool:
        if self._retry_at is not None and now < self._retry_at and not self._stopping:
            return False
        if self._stopping:
            return True
        if self._retry_at is not None:  # the back-off has passed: retry whatever waits, without batching delay
            return bool(self._pending)
        oldest = self._pending[0][1] if self._pending else None
        return self._policy.due(len(self._pending), oldest, now)

    def _timeout(self, now: float) -> float | None:
        if self._retry_at is not None and self._pending:
            return max(0.0, self._retry_at - now)
        oldest = self._pending[0][1] if self._pending else None
        return self._policy.wait(len(self._pending), oldest, now)

    def _run(self) -> None:
        try:
            while True:
                try:
                    if not self._step():
                        return
                except Exception:  # a bug, not a storage fault: count the batch in hand, keep writing
                    with self._cond:
                        self._dropped += len(self._in_flight)
                        self._in_flight = []
                    log.exception("history writer: unexpected error; the batch in hand is lost, carrying on")
        finally:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def _step(self) -> bool:
        """Write one batch when one is due; False when the writer is done."""
        with self._cond:
            while not self._ready(now := self._clock()):
                self._cond.wait(self._timeout(now))
            count = min(len(self._pending), self._policy.max_rows)
            self._in_flight = [self._pending.popleft() for _ in range(count)]
            stopping = self._stopping
        ok = self._write([event for event, _ in self._in_flight]) if self._in_flight else True
        with self._cond:
            if not ok:
                self._pending.extendleft(reversed(self._in_flight))  # in order, with their arrival times
                if stopping:  # the last try at exit failed: nothing will write these
                    self._dropped += len(self._pending)
                    log.error("history: %d requests could not be written before exit", len(self._pending))
                    self._pending.clear()
                while len(self._pending) > self._max_pending:
                    self._pending.popleft()
                    self._dropped += 1
            self._in_flight = []
            self._cond.notify_all()
            return not (stopping and not self._pending)

    def _write(self, batch: list[Stored]) -> bool:
        """Store the batch; False (after reporting the fault) when the file cannot be written now."""
        requests, alerts = self._rows(batch)
        try:
            connection = self._open()
            self._insert(connection, requests, alerts)
        except Exception as exc:
            fault = storage_fault(exc)
            if fault is None:  # a value SQLite refused: find the rows, keep the rest
                return self._write_one_by_one(requests, alerts)
            self._failed(fault, exc)
            return False
        self._succeeded(len(requests))
        return True

    def _rows(self, batch: Iterable[Stored]) -> tuple[list[tuple[tuple[object, ...], list]], list[tuple[object, ...]]]:
        requests: list[tuple[tuple[object, ...], list]] = []
        alerts: list[tuple[object, ...]] = []
        for event in batch:
            try:
                if isinstance(event, RequestFinished):
                    requests.append((request_row(event), attempt_rows(event)))
                else:
                    alerts.append(alert_row(event))
            except Exception:
                self._reject(event)
        return requests, alerts

    def _reject(self, event: Stored) -> None:
        with self._cond:
            self._rejected += 1
        name = getattr(event, "request_id", type(event).__name__)
        log.exception("history: cannot store %s; skipped it", redact(str(name)))

    def _open(self) -> sqlite3.Connection:
        if self._connection is None:
            self._connection = open_database(self.path, self._busy_timeout)
        return self._connection

    @staticmethod
    def _insert(
        connection: sqlite3.Connection,
        requests: list[tuple[tuple[object, ...], list]],
        alerts: list[tuple[object, ...]],
    ) -> None:
        with transaction(connection):
            connection.executemany(_INSERT_REQUEST, [row for row, _ in requests])
            connection.executemany(_INSERT_ATTEMPT, [row for _, attempts in requests for row in attempts])
            connection.executemany(_INSERT_ALERT, alerts)

    def _write_one_by_one(
        self, requests: list[tuple[tuple[object, ...], list]], alerts: list[tuple[object, ...]]
    ) -> bool:
        stored = 0
        for one_request, one_alert in [*(([r], []) for r in requests), *(([], [a]) for a in alerts)]:
            try:
                self._insert(self._open(), one_request, one_alert)
            except Exception as exc:
                fault = storage_fault(exc)
                if fault is not None:
                    self._failed(fault, exc)
                    return False  # the whole batch is retried; rows stored so far are replaced, not doubled
                with self._cond:
                    self._rejected += 1
                log.error("history: SQLite refused a row (%s); skipped it", exc)
            else:
                stored += len(one_request)
        self._succeeded(stored)
        return True

    def _succeeded(self, stored: int) -> None:
        with self._cond:
            self._written += stored
            self._batches += 1
            recovered = self._fault is not None
            self._fault, self._failures, self._retry_at, self._overflowing = None, 0, None, False
            pending, dropped = len(self._pending), self._dropped + self._rejected
        if recovered:
            message = f"history is written again ({pending} requests still queued; {dropped} lost)"
            log.info("%s: %s", self.path, message)
            self._publish(HistoryRecovered(str(self.path), message, dropped))

    def _failed(self, fault: HistoryFault, exc: BaseException) -> None:
        if self._connection is not None:
            self._connection.close()  # reopened on the next try: the file may be replaced meanwhile
            self._connection = None
        retry_at = None
        message = ""
        if fault is HistoryFault.CORRUPT:
            try:
                backup = move_aside(self.path, corrupt_tag())
            except OSError as move_error:
                fault, exc = storage_fault(move_error) or HistoryFault.UNAVAILABLE, move_error
            else:
                message = f"history file was corrupt ({exc}): moved it to {backup.name} and started a new one"
                log.warning("%s: %s", self.path, message)
                retry_at = self._clock()  # the new file can be written at once
        with self._cond:
            self._failures += 1
            self._failed_writes += 1
            first = self._fault != fault
            self._fault = fault
            self._retry_at = retry_at if retry_at is not None else self._clock() + retry_delay(self._failures)
            pending, dropped = len(self._pending) + len(self._in_flight), self._dropped + self._rejected
        if fault is not HistoryFault.CORRUPT:
            message = (
                f"history cannot be written ({fault.value}: {exc}); keeping up to {self._max_pending} requests "
                "in memory and retrying"
            )
            if first:
                log.error("%s: %s", self.path, message)
            else:
                log.debug("%s: still failing: %s", self.path, exc)
        if first:
            self._publish(HistoryProblem(str(self.path), fault, message, pending, dropped))

    def _publish(self, event: Event) -> None:
        if self._notify is None:
            return
        try:
            self._notify(event)
        except Exception:
            log.exception("history: could not report %s", type(event).__name__)
