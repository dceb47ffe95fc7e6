"""The history writer under hostile values and storage faults: it never dies, never silently loses a row.

Real SQLite files and real faults (a lock held by another connection, a corrupt file, a path that cannot be
opened). Time is a test clock the writer reads for its batching and back-off deadlines; waiting is on the
writer's condition (`wait_until`), never a sleep.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ccm_tui.core.events import (
    AttemptRecord,
    Event,
    HistoryFault,
    HistoryProblem,
    HistoryRecovered,
    SpendAlert,
    Usage,
)
from ccm_tui.telemetry.history import BatchPolicy, HistoryReader, HistoryStatus, HistoryWriter, retry_delay
from ccm_tui.telemetry.history_schema import storage_fault
from tests.test_history import finished

WAIT = 10.0  # upper bound for a condition that holds within milliseconds
DELAY = 0.125  # the batching time bound in these tests: binary-exact, so clock arithmetic is exact


class ManualClock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


class Notices:
    """What the writer reported (it calls from its own thread)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)

    def of(self, kind: type) -> list:
        with self._lock:
            return [e for e in self.events if isinstance(e, kind)]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def notices() -> Notices:
    return Notices()


@pytest.fixture
def make_writer(tmp_path: Path, clock: ManualClock, notices: Notices) -> Iterator:
    writers: list[HistoryWriter] = []

    def make(path: Path | None = None, **options: object) -> HistoryWriter:
        options.setdefault("policy", BatchPolicy(max_rows=4, max_delay=DELAY))
        writer = HistoryWriter(
            path or tmp_path / "history.sqlite3",
            clock=clock,
            notify=notices,
            busy_timeout=0.05,
            **options,  # type: ignore[arg-type]
        )
        writer.start()
        writers.append(writer)
        return writer

    yield make
    for writer in writers:
        writer.close()


def until(writer: HistoryWriter, predicate: object) -> HistoryStatus:
    assert writer.wait_until(predicate, WAIT), writer.status()  # type: ignore[arg-type]
    return writer.status()


def stored_ids(path: Path) -> list[str]:
    with sqlite3.connect(path) as connection:
        return [row[0] for row in connection.execute("SELECT request_id FROM requests ORDER BY started_at")]


# --- batching -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pending", "oldest_at", "now", "due", "wait"),
    [
        (0, None, 5.0, False, None),  # nothing to write: sleep until a row arrives
        (1, 5.0, 5.0, False, DELAY),  # the first row starts the timer
        (3, 5.0, 5.0625, False, DELAY - 0.0625),
        (3, 5.0, 5.0 + DELAY, True, 0.0),  # the oldest has waited max_delay
        (3, 5.0, 7.0, True, 0.0),
        (4, 5.0, 5.0, True, DELAY),  # a full batch goes at once
        (9, 5.0, 5.0, True, DELAY),
    ],
)
def test_batch_policy(pending: int, oldest_at: float | None, now: float, due: bool, wait: object) -> None:
    policy = BatchPolicy(max_rows=4, max_delay=DELAY)
    assert policy.due(pending, oldest_at, now) is due
    assert policy.wait(pending, oldest_at, now) == wait


def test_backoff_doubles_up_to_a_bound() -> None:
    assert [retry_delay(n) for n in (1, 2, 3, 4)] == [0.25, 0.5, 1.0, 2.0]
    assert retry_delay(50) == 30.0


def test_a_batch_goes_when_full_and_the_rest_when_the_time_bound_passes(make_writer, clock: ManualClock) -> None:
    writer = make_writer()
    for n in range(1, 8):  # the clock stands still: only a full batch can be written
        writer.subscriber(finished(n))
    status = until(writer, lambda s: s.written >= 4)
    assert (status.written, status.batches, status.pending) == (4, 1, 3)

    clock.advance(DELAY)  # the three left have now waited max_delay
    writer.wake()
    status = until(writer, lambda s: s.written == 7)
    assert (status.batches, status.pending, status.lag) == (2, 0, 0.0)


def test_a_lone_row_waits_for_the_time_bound(make_writer, clock: ManualClock) -> None:
    writer = make_writer(policy=BatchPolicy(max_rows=100, max_delay=DELAY))
    writer.subscriber(finished(1))
    clock.advance(0.0625)
    assert writer.status().lag == 0.0625
    clock.advance(0.0625)
    writer.wake()
    assert until(writer, lambda s: s.written == 1).batches == 1


# --- hostile values -------------------------------------------------------------------------------------------


def test_numbers_beyond_sqlite_range_are_clamped_and_the_writer_keeps_writing(make_writer, tmp_path: Path) -> None:
    writer = make_writer()
    huge = finished(
        1,
        usage=Usage(input_tokens=2**64, output_tokens=-5, cache_creation_input_tokens=10**30),
        cost_usd=math.inf,
        ttfb=math.nan,
        status=10**20,
        attempts=(AttemptRecord("p", "m", "v", None, "cooldown", "x", math.inf, -1.0, 2**70),),
    )
    for event in (huge, finished(2), finished(3), finished(4)):
        writer.subscriber(event)
    status = until(writer, lambda s: s.written == 4)
    assert status.rejected == 0
    with sqlite3.connect(tmp_path / "history.sqlite3") as connection:
        row = connection.execute(
            "SELECT input_tokens, output_tokens, cache_creation_tokens, cost_usd, ttfb_ms, status FROM requests "
            "WHERE request_id = 'req-1'"
        ).fetchone()
        attempt = connection.execute("SELECT status, started_at, duration_ms, retry_after FROM attempts").fetchone()
    assert row == (2**63 - 1, 0, 2**63 - 1, None, None, 0)
    assert attempt == (0, 0.0, 0.0, 2.0**70)


def test_an_event_that_cannot_be_a_row_is_logged_counted_and_skipped(
    make_writer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    writer = make_writer()
    with caplog.at_level(logging.ERROR, logger="ccm_tui.telemetry.history"):
        for event in (finished(1), finished(2, request_id=None), finished(3, started_at="soon"), finished(4)):
            writer.subscriber(event)
        status = until(writer, lambda s: s.written == 2)
    assert (status.rejected, status.lost) == (2, 2)
    assert stored_ids(tmp_path / "history.sqlite3") == ["req-1", "req-4"]
    assert caplog.text.count("cannot store") == 2


def test_unencodable_text_is_stored_with_a_replacement_character(make_writer, tmp_path: Path) -> None:
    writer = make_writer()
    for event in (finished(1, requested_model="claude-\ud800", error_message="bad \udfff"), *map(finished, (2, 3, 4))):
        writer.subscriber(event)
    assert until(writer, lambda s: s.written == 4).rejected == 0
    reader = HistoryReader(tmp_path / "history.sqlite3")
    try:
        assert reader.recent(10)[0].requested_model == "claude-?"
    finally:
        reader.close()


# --- storage faults -------------------------------------------------------------------------------------------


def test_a_locked_database_keeps_rows_retries_reports_once_and_writes_them_when_it_clears(
    make_writer, tmp_path: Path, clock: ManualClock, notices: Notices, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "history.sqlite3"
    writer = make_writer(path)
    for n in range(1, 5):
        writer.subscriber(finished(n))
    until(writer, lambda s: s.written == 4)

    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another process holding the write lock
    with caplog.at_level(logging.INFO, logger="ccm_tui.telemetry.history"):
        for n in range(5, 7):
            writer.subscriber(finished(n))
        clock.advance(DELAY)
        writer.wake()
        status = until(writer, lambda s: s.failed_writes == 1)
        assert (status.fault, status.pending, status.written) == (HistoryFault.LOCKED, 2, 4)

        clock.advance(retry_delay(1))  # back-off passes; still locked: a retry, but no second report
        writer.wake()
        until(writer, lambda s: s.failed_writes == 2)
        (problem,) = notices.of(HistoryProblem)
        assert (problem.fault, problem.pending, problem.dropped) == (HistoryFault.LOCKED, 2, 0)
        assert problem.path == str(path)

        blocker.execute("ROLLBACK")
        blocker.close()
        clock.advance(retry_delay(2))
        writer.wake()
        status = until(writer, lambda s: s.written == 6)
    assert (status.fault, status.pending, status.lost) == (None, 0, 0)
    (recovered,) = notices.of(HistoryRecovered)
    assert recovered.dropped == 0
    assert stored_ids(path) == [f"req-{n}" for n in range(1, 7)]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "locked" in errors[0].getMessage()
    assert "written again" in caplog.text


def test_the_queue_is_bounded_and_what_it_drops_is_counted(
    make_writer, tmp_path: Path, clock: ManualClock, notices: Notices
) -> None:
    path = tmp_path / "history.sqlite3"
    writer = make_writer(path, max_pending=3)
    writer.subscriber(finished(1))
    clock.advance(DELAY)
    writer.wake()
    until(writer, lambda s: s.written == 1)

    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    for n in range(2, 7):
        writer.subscriber(finished(n))
    assert writer.status().dropped == 2  # the two oldest gave way at once
    clock.advance(DELAY)
    writer.wake()
    until(writer, lambda s: s.failed_writes == 1)
    blocker.execute("ROLLBACK")
    blocker.close()
    clock.advance(retry_delay(1))
    writer.wake()
    status = until(writer, lambda s: s.written == 4)
    assert (status.dropped, status.lost) == (2, 2)
    assert stored_ids(path) == ["req-1", "req-4", "req-5", "req-6"]
    (recovered,) = notices.of(HistoryRecovered)
    assert recovered.dropped == 2 and "2 lost" in recovered.message


def test_rows_still_unwritable_at_close_are_counted_as_dropped(
    make_writer, tmp_path: Path, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "history.sqlite3"
    writer = make_writer(path)
    writer.subscriber(finished(1))
    clock.advance(DELAY)
    writer.wake()
    until(writer, lambda s: s.written == 1)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        writer.subscriber(finished(2))
        writer.subscriber(SpendAlert("hour", 6.0, 5.0, at=1.0))
        with caplog.at_level(logging.ERROR, logger="ccm_tui.telemetry.history"):
            writer.close()
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert writer.status().dropped == 2
    assert "could not be written before exit" in caplog.text


def test_a_corrupt_file_is_moved_aside_and_a_fresh_one_started(
    make_writer, tmp_path: Path, clock: ManualClock, notices: Notices, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "history.sqlite3"
    garbage = b"this is not a database, it is a shopping list\n" * 200
    path.write_bytes(garbage)
    with caplog.at_level(logging.WARNING, logger="ccm_tui.telemetry.history"):
        writer = make_writer(path)
        writer.subscriber(finished(1))
        clock.advance(DELAY)
        writer.wake()
        status = until(writer, lambda s: s.written == 1)
    assert (status.fault, status.lost) == (None, 0)
    (backup,) = tmp_path.glob("history.sqlite3.corrupt-*.bak")
    assert backup.read_bytes() == garbage
    assert stored_ids(path) == ["req-1"]
    (problem,) = notices.of(HistoryProblem)
    assert problem.fault is HistoryFault.CORRUPT and backup.name in problem.message
    assert len(notices.of(HistoryRecovered)) == 1
    assert "moved it to" in caplog.text


def test_a_path_that_cannot_be_opened_is_retried_until_it_can(
    make_writer, tmp_path: Path, clock: ManualClock, notices: Notices
) -> None:
    blocked_dir = tmp_path / "data"
    blocked_dir.write_text("a file where the history directory should be")
    writer = make_writer(blocked_dir / "history.sqlite3")
    writer.subscriber(finished(1))
    clock.advance(DELAY)
    writer.wake()
    assert until(writer, lambda s: s.failed_writes == 1).fault is HistoryFault.UNAVAILABLE

    blocked_dir.unlink()  # the user fixes it
    clock.advance(retry_delay(1))
    writer.wake()
    assert until(writer, lambda s: s.written == 1).fault is None
    assert stored_ids(blocked_dir / "history.sqlite3") == ["req-1"]
    assert [type(e) for e in notices.events] == [HistoryProblem, HistoryRecovered]


def _sqlite_error(kind: type[sqlite3.Error], code: int) -> sqlite3.Error:
    error = kind("from SQLite")
    error.sqlite_errorcode = code  # type: ignore[attr-defined]
    return error


@pytest.mark.parametrize(
    ("error", "fault"),
    [
        (_sqlite_error(sqlite3.OperationalError, 5), HistoryFault.LOCKED),
        (_sqlite_error(sqlite3.OperationalError, 517), HistoryFault.LOCKED),  # SQLITE_BUSY_SNAPSHOT
        (_sqlite_error(sqlite3.OperationalError, 8), HistoryFault.READ_ONLY),
        (_sqlite_error(sqlite3.OperationalError, 13), HistoryFault.FULL),
        (_sqlite_error(sqlite3.OperationalError, 14), HistoryFault.UNAVAILABLE),
        (_sqlite_error(sqlite3.OperationalError, 3850), HistoryFault.UNAVAILABLE),  # SQLITE_IOERR_LOCK
        (_sqlite_error(sqlite3.DatabaseError, 26), HistoryFault.CORRUPT),
        (_sqlite_error(sqlite3.DatabaseError, 11), HistoryFault.CORRUPT),
        (_sqlite_error(sqlite3.IntegrityError, 19), None),  # about a row, not the file
        (OverflowError("Python int too large to convert to SQLite INTEGER"), None),
        (PermissionError(13, "Permission denied"), HistoryFault.READ_ONLY),
        (OSError(28, "No space left on device"), HistoryFault.FULL),
        (NotADirectoryError(20, "Not a directory"), HistoryFault.UNAVAILABLE),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else str(value),
)
def test_storage_fault_classification(error: BaseException, fault: HistoryFault | None) -> None:
    assert storage_fault(error) == fault


def test_a_real_sqlite_error_carries_the_code_the_classification_reads(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite3"
    path.write_bytes(b"not a database" * 100)
    with pytest.raises(sqlite3.DatabaseError) as raised:
        sqlite3.connect(path).execute("PRAGMA journal_mode=WAL")
    assert storage_fault(raised.value) is HistoryFault.CORRUPT
