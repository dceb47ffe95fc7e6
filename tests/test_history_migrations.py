"""Schema migrations: a real schema-1 history file (written by the v1 writer, tests/data/history_v1.sql) is
migrated in place with every row kept, and later steps are added the same way."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from ccm_tui.core.events import AttemptRecord, RequestFinished, Usage
from ccm_tui.core.hints import ClientHints, RequestClass
from ccm_tui.telemetry.history import SCHEMA_VERSION, HistoryReader, HistoryWriter
from ccm_tui.telemetry.history_schema import MIGRATIONS, Migration, migrate, open_database

V1_DUMP = Path(__file__).parent / "data" / "history_v1.sql"
T0 = 1_764_000_000.0

# What the v1 writer stored (the dump's three requests), as events read back.
V1_EVENTS = [
    RequestFinished(
        "req-v1-1",
        "claude-sonnet-4-5",
        True,
        200,
        "anthropic",
        "claude-sonnet-4-5-20250929",
        (
            AttemptRecord(
                "anthropic", "claude-sonnet-4-5-20250929", "claude-sonnet-4-5-20250929", 200, "ok", "", T0, 1.5
            ),
        ),
        Usage(1200, 340, 100, 5000),
        0.0125,
        T0,
        0.5,
        1.5,
    ),
    RequestFinished(
        "req-v1-2",
        "claude-haiku-4-5",
        False,
        200,
        "openrouter",
        "anthropic/claude-haiku-4.5",
        (
            AttemptRecord(
                "anthropic", "claude-haiku-4-5", "claude-haiku-4-5", 529, "cooldown", "overloaded", T0 + 60, 0.25, 2.0
            ),
            AttemptRecord(
                "openrouter",
                "anthropic/claude-haiku-4.5",
                "anthropic/claude-haiku-4.5",
                200,
                "ok",
                "",
                T0 + 60.25,
                0.75,
            ),
        ),
        Usage(800, 120, 0, 0),
        0.0014,
        T0 + 60,
        1.0,
        1.0,
    ),
    RequestFinished(
        "req-v1-3",
        "claude-opus-4-1",
        True,
        429,
        None,
        None,
        (
            AttemptRecord(
                "anthropic",
                "claude-opus-4-1",
                "claude-opus-4-1",
                429,
                "cooldown",
                "rate limited",
                T0 + 120,
                0.125,
                30.0,
            ),
        ),
        Usage(),
        None,
        T0 + 120,
        None,
        0.125,
        "rate_limit_error",
        "every provider is cooling",
    ),
]


def v1_file(path: Path) -> Path:
    connection = sqlite3.connect(path)
    connection.executescript(V1_DUMP.read_text())
    connection.close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 1
    return path


def columns(path: Path, table: str) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as connection:
        return [(row[1], row[2]) for row in connection.execute(f"PRAGMA table_info({table})")]


def test_a_v1_file_is_migrated_in_place_with_its_rows_kept(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = v1_file(tmp_path / "history.sqlite3")
    hints = ClientHints("sess-1", "agent-1", None, RequestClass.SUBAGENT, "Explore")
    new = RequestFinished(
        "req-v2-1",
        "claude-sonnet-4-5",
        True,
        200,
        "anthropic",
        "claude-sonnet-4-5",
        (),
        Usage(10, 2),
        0.001,
        T0 + 600,
        0.25,
        0.5,
        hints=hints,
        key_label="work",
    )
    with caplog.at_level(logging.INFO, logger="ccm_tui.telemetry.history_schema"):
        writer = HistoryWriter(path)
        writer.start()
        writer.subscriber(new)
        writer.close()
    assert writer.status().written == 1
    assert "migrated to schema version 2" in caplog.text
    assert not list(tmp_path.glob("*.bak"))  # nothing moved aside
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    reader = HistoryReader(path)
    try:
        assert reader.recent(10) == [*V1_EVENTS, new]  # old rows intact (no hints, no key label), new row complete
        assert reader.alerts_since(0)[0].spent_usd == 5.5
        assert reader.spend_since(0) == pytest.approx(0.0125 + 0.0014 + 0.001)
    finally:
        reader.close()


def test_a_fresh_file_and_a_migrated_one_have_the_same_schema(tmp_path: Path) -> None:
    migrated = v1_file(tmp_path / "old.sqlite3")
    open_database(migrated).close()
    fresh = tmp_path / "new.sqlite3"
    open_database(fresh).close()
    for table in ("requests", "attempts", "spend_alerts"):
        assert columns(migrated, table) == columns(fresh, table)
    assert ("session_id", "TEXT") in columns(fresh, "requests")
    assert ("key_label", "TEXT") in columns(fresh, "requests")


def test_migration_steps_are_numbered_one_by_one() -> None:
    assert [step.version for step in MIGRATIONS] == list(range(1, SCHEMA_VERSION + 1))


def test_a_later_step_is_added_by_appending_one_migration(tmp_path: Path) -> None:
    path = v1_file(tmp_path / "history.sqlite3")
    later = (*MIGRATIONS, Migration(3, "a column a later issue needs", "ALTER TABLE requests ADD COLUMN tier TEXT"))
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        assert migrate(connection, later) == 1
        assert connection.execute("PRAGMA user_version").fetchone()[0] == 3
        assert connection.execute("SELECT COUNT(*), COUNT(tier), COUNT(session_id) FROM requests").fetchone() == (
            3,
            0,
            0,
        )
        assert migrate(connection, later) == 3  # a second open has nothing to do
    finally:
        connection.close()


def test_a_failing_step_leaves_the_file_at_the_last_good_version(tmp_path: Path) -> None:
    path = v1_file(tmp_path / "history.sqlite3")
    broken = (*MIGRATIONS, Migration(3, "broken", "ALTER TABLE requests ADD COLUMN x TEXT; ALTER TABLE nowhere ADD y"))
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        with pytest.raises(sqlite3.OperationalError):
            migrate(connection, broken)
        assert connection.execute("PRAGMA user_version").fetchone()[0] == 2
        assert "x" not in [row[1] for row in connection.execute("PRAGMA table_info(requests)")]
    finally:
        connection.close()
