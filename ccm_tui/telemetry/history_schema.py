"""The history file's schema, its migrations, opening it, and what a storage error means.

The schema is built by ordered migration steps keyed by `PRAGMA user_version`: a new file runs every step, an
old one runs the steps it is missing, each in one transaction with the version bump, so a file is always at
exactly one version. A later change appends a `Migration(version=N + 1, ...)` to `MIGRATIONS`; nothing else
changes. A file this code cannot migrate (a newer version, or tables without a version) and a corrupt file are
moved aside (`<name>.v<N>.bak`, `<name>.corrupt-<unix time>.bak`) and a fresh file is started, with a warning.
Rows <-> events live in history_rows.py, the writer in history.py, queries in history_reader.py.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ccm_tui.core.events import HistoryFault

log = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 2.0  # a reader or a second instance holding the lock briefly is normal; longer is a fault

_V1_SCHEMA = """
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

# Who asked (Claude Code's hint headers) and which key paid; rows from v1 keep NULL there.
_V2_SESSIONS = """
ALTER TABLE requests ADD COLUMN session_id TEXT;
ALTER TABLE requests ADD COLUMN agent_id TEXT;
ALTER TABLE requests ADD COLUMN parent_agent_id TEXT;
ALTER TABLE requests ADD COLUMN request_class TEXT;
ALTER TABLE requests ADD COLUMN agent_type TEXT;
ALTER TABLE requests ADD COLUMN key_label TEXT;
CREATE INDEX requests_session ON requests (session_id, started_at);
"""


@dataclass(frozen=True)
class Migration:
    version: int  # user_version after this step
    description: str
    sql: str  # statements separated by ";", run in one transaction


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "requests, attempts and spend alerts", _V1_SCHEMA),
    Migration(2, "session, agent, request class and key label per request", _V2_SESSIONS),
)
SCHEMA_VERSION = MIGRATIONS[-1].version


class UnusableFile(Exception):
    """The file holds something these migrations cannot bring to SCHEMA_VERSION."""

    def __init__(self, version: int) -> None:
        super().__init__(f"schema version {version}")
        self.version = version


# --- what an error means -----------------------------------------------------------------------------------

# SQLite primary result codes (https://sqlite.org/rescode.html) -> the fault they stand for.
_FAULTS = {
    3: HistoryFault.READ_ONLY,  # SQLITE_PERM
    5: HistoryFault.LOCKED,  # SQLITE_BUSY
    6: HistoryFault.LOCKED,  # SQLITE_LOCKED
    8: HistoryFault.READ_ONLY,  # SQLITE_READONLY
    10: HistoryFault.UNAVAILABLE,  # SQLITE_IOERR
    11: HistoryFault.CORRUPT,  # SQLITE_CORRUPT
    13: HistoryFault.FULL,  # SQLITE_FULL
    14: HistoryFault.UNAVAILABLE,  # SQLITE_CANTOPEN
    26: HistoryFault.CORRUPT,  # SQLITE_NOTADB
}


def storage_fault(error: BaseException) -> HistoryFault | None:
    """The storage fault behind `error`; None when the error is about the rows themselves (a bad value)."""
    if isinstance(error, PermissionError):
        return HistoryFault.READ_ONLY
    if isinstance(error, OSError):
        return HistoryFault.FULL if error.errno == 28 else HistoryFault.UNAVAILABLE  # 28: ENOSPC
    if isinstance(error, UnusableFile):
        return HistoryFault.CORRUPT
    code = getattr(error, "sqlite_errorcode", None)
    if isinstance(error, sqlite3.Error) and code is not None:
        return _FAULTS.get(code & 0xFF)
    if isinstance(error, sqlite3.OperationalError | sqlite3.DatabaseError) and not isinstance(
        error, sqlite3.IntegrityError | sqlite3.InterfaceError | sqlite3.DataError
    ):
        return HistoryFault.UNAVAILABLE
    return None


# --- opening -------------------------------------------------------------------------------------------------


def open_database(path: Path, busy_timeout: float = BUSY_TIMEOUT_S) -> sqlite3.Connection:
    """Open (creating the directory and schema, migrating an older file) in WAL mode. Blocking.

    A file that cannot be migrated is moved aside and a fresh one started. Storage faults raise (sqlite3.Error,
    OSError); a corrupt file raises too, so the caller decides when to move it aside (`move_aside`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for first_try in (True, False):
        connection = _connect(path, busy_timeout)
        try:
            migrate(connection)
        except UnusableFile as exc:
            connection.close()
            if not first_try:
                raise sqlite3.DatabaseError(f"{path}: another process keeps writing an incompatible schema") from exc
            backup = move_aside(path, f"v{exc.version}")
            log.warning(
                "history database %s has schema version %d, which this version cannot migrate to %d: moved it "
                "to %s and started a new one",
                path,
                exc.version,
                SCHEMA_VERSION,
                backup,
            )
        except BaseException:
            connection.close()
            raise
        else:
            return connection
    raise AssertionError("unreachable")


def move_aside(path: Path, tag: str) -> Path:
    """Rename the file (and its WAL sidecars) to `<name>.<tag>.bak`; returns the new path."""
    backup = path.with_name(f"{path.name}.{tag}.bak")
    for suffix in ("-wal", "-shm"):
        sidecar = path.with_name(path.name + suffix)
        if sidecar.exists():
            sidecar.replace(backup.with_name(backup.name + suffix))
    if path.exists():
        path.replace(backup)
    return backup


def corrupt_tag(now: float | None = None) -> str:
    return f"corrupt-{int(time.time() if now is None else now)}"


def open_read_only(path: Path, busy_timeout: float = BUSY_TIMEOUT_S) -> sqlite3.Connection:
    """Open an existing history file for reading only: no directory, no schema, no migration, nothing moved.

    Raises sqlite3.Error for a missing or unreadable file and for one whose schema is not this version's
    (`ccm-tui` itself migrates a file when it next starts)."""
    connection = sqlite3.connect(
        f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False, timeout=busy_timeout
    )
    try:
        connection.row_factory = sqlite3.Row
        version = connection.execute("PRAGMA user_version").fetchone()[0]
    except BaseException:
        connection.close()
        raise
    if version != SCHEMA_VERSION:
        connection.close()
        raise sqlite3.DatabaseError(
            f"history schema version {version}, this ccm-tui reads {SCHEMA_VERSION}: start ccm-tui once to migrate it"
        )
    return connection


def _connect(path: Path, busy_timeout: float) -> sqlite3.Connection:
    # Autocommit mode (isolation_level=None): transactions are explicit, one per batch.
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=busy_timeout)
    try:
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")  # durable across app crashes in WAL mode; cheap per commit
    except BaseException:
        connection.close()
        raise
    return connection


def migrate(connection: sqlite3.Connection, migrations: tuple[Migration, ...] = MIGRATIONS) -> int:
    """Run the missing steps in order, each in its own transaction; returns the version the file started at."""
    target = migrations[-1].version
    with transaction(connection):
        start = connection.execute("PRAGMA user_version").fetchone()[0]
        if start == 0 and _has_tables(connection):
            raise UnusableFile(0)  # tables this code did not create
    if start > target:
        raise UnusableFile(start)
    for step in migrations:
        if step.version <= start:
            continue
        # IMMEDIATE: the writer thread and a reader may open a new file at the same moment; one migrates.
        with transaction(connection):
            if connection.execute("PRAGMA user_version").fetchone()[0] >= step.version:
                continue  # the other one did
            for statement in step.sql.split(";"):
                if statement.strip():
                    connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {step.version}")
        if start > 0:
            log.info("history database migrated to schema version %d: %s", step.version, step.description)
    return start


def _has_tables(connection: sqlite3.Connection) -> bool:
    return connection.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0] > 0


@contextmanager
def transaction(connection: sqlite3.Connection) -> Iterator[None]:
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
