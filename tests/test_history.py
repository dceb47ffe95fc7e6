"""History: events published on a real bus reach a real SQLite file through the writer thread and read back."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from ccm_tui.core.events import AttemptRecord, EventBus, RequestFinished, RequestStarted, SpendAlert, Usage
from ccm_tui.telemetry.history import SCHEMA_VERSION, HistoryReader, HistoryWriter, redact

T0 = 1_699_999_980.0  # minute-aligned; durations below are binary-exact so the ms round trip is exact too
FAKE_KEY = "sk-ant-api03-" + "Q" * 40


def finished(n: int, **changes: object) -> RequestFinished:
    attempts = (
        AttemptRecord(
            "anthropic", "claude-sonnet-4", "claude-sonnet-4", 529, "cooldown", "overloaded", T0 + n, 0.5, 2.0
        ),
        AttemptRecord(
            "openrouter", "anthropic/claude-sonnet-4", "anthropic/claude-sonnet-4", 200, "ok", "", T0 + n, 1.25
        ),
    )
    fields: dict[str, object] = dict(
        request_id=f"req-{n}",
        requested_model="claude-sonnet-4-20250514",
        stream=True,
        status=200,
        provider="openrouter",
        model="anthropic/claude-sonnet-4",
        attempts=attempts,
        usage=Usage(
            input_tokens=100 * n, output_tokens=10 * n, cache_creation_input_tokens=5, cache_read_input_tokens=7
        ),
        cost_usd=0.25 * n,
        started_at=T0 + 60 * n,
        ttfb=0.75,
        duration=2.5,
    )
    fields.update(changes)
    return RequestFinished(**fields)  # type: ignore[arg-type]


def write_through_bus(path: Path, events: list[object]) -> HistoryWriter:
    bus = EventBus()
    writer = HistoryWriter(path)
    writer.start()
    bus.subscribe(writer.subscriber)
    for event in events:
        bus.publish(event)  # type: ignore[arg-type]
    writer.close()
    return writer


def test_finished_requests_round_trip_with_attempts(tmp_path: Path) -> None:
    path = tmp_path / "not" / "yet" / "history.sqlite3"  # a missing directory is created
    events = [
        finished(1),
        finished(
            2,
            provider=None,
            model=None,
            status=429,
            error_type="rate_limit_error",
            error_message="every provider is cooling",
            cost_usd=None,
            ttfb=None,
            attempts=(),
        ),
        finished(3, stream=False),
    ]
    writer = write_through_bus(path, [RequestStarted("req-1", "claude-sonnet-4", True), *events])
    assert writer.status().written == 3
    reader = HistoryReader(path)
    try:
        assert reader.recent(10) == events  # oldest first, attempts in order, usage and timings intact
        assert reader.recent(2) == events[1:]
        assert reader.recent(10)[0].failovers == 1
    finally:
        reader.close()


def test_queries_for_ui_and_stats(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    write_through_bus(path, [finished(1), finished(2), finished(3, provider="anthropic"), finished(4, cost_usd=None)])
    reader = HistoryReader(path)
    try:
        assert reader.count_since(T0) == 4
        assert reader.count_since(T0 + 121) == 2
        assert reader.spend_since(T0) == pytest.approx(0.25 + 0.5 + 0.75)
        assert reader.spend_since(T0 + 10_000) == 0.0
        # Hour-aligned buckets: T0 + 60..180 fall into one or two clock hours depending on T0's minute.
        hourly = reader.spend_buckets(T0, 3600)
        assert sum(usd for _, usd in hourly) == pytest.approx(1.5)
        assert all(start % 3600 == 0 for start, _ in hourly)
        per_minute = reader.spend_buckets(T0, 60)
        assert per_minute == [(T0 + 60, 0.25), (T0 + 120, 0.5), (T0 + 180, 0.75)]
        assert reader.tokens_by_provider(T0) == {
            "openrouter": (100 + 12 + 200 + 12 + 400 + 12, 10 + 20 + 40),
            "anthropic": (300 + 12, 30),
        }
    finally:
        reader.close()


def test_history_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    write_through_bus(path, [finished(1)])
    write_through_bus(path, [finished(2), SpendAlert("hour", 5.5, 5.0, at=T0 + 99)])
    reader = HistoryReader(path)
    try:
        assert [e.request_id for e in reader.recent(10)] == ["req-1", "req-2"]
        assert reader.alerts_since(T0) == [SpendAlert("hour", 5.5, 5.0, at=T0 + 99)]
    finally:
        reader.close()


def test_a_burst_is_stored_completely_at_close(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    writer = write_through_bus(path, [finished(n) for n in range(1, 501)])
    assert writer.status().written == 500
    reader = HistoryReader(path)
    try:
        assert reader.count_since(0) == 500
    finally:
        reader.close()


def test_close_without_start_still_writes(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    writer = HistoryWriter(path)
    writer.subscriber(finished(1))
    writer.close()
    writer.subscriber(finished(2))  # after close: dropped, not queued forever
    reader = HistoryReader(path)
    try:
        assert [e.request_id for e in reader.recent(10)] == ["req-1"]
    finally:
        reader.close()


def test_no_key_reaches_the_database_file(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    leaky = finished(
        1,
        error_type="authentication_error",
        error_message=f"Incorrect API key provided: {FAKE_KEY}",
        attempts=(AttemptRecord("anthropic", "m", "m", 401, "disable", f"bad key {FAKE_KEY}", T0, 0.5),),
    )
    write_through_bus(path, [leaky])
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert FAKE_KEY.encode() not in stored
    assert b"sk-ant-api03" not in stored
    reader = HistoryReader(path)
    try:
        (event,) = reader.recent(1)
        assert event.error_message == "Incorrect API key provided: [redacted]"
        assert event.attempts[0].reason == "bad key [redacted]"
    finally:
        reader.close()


DISK_ERROR = "disk-cache-overflow on us.anthropic.claude-sonnet-4-5-20250929-v1:0"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, None),
        ("upstream overloaded", "upstream overloaded"),
        ("prompt is too long: 210000 tokens > 200000 maximum", "prompt is too long: 210000 tokens > 200000 maximum"),
        (DISK_ERROR, DISK_ERROR),  # "sk-" inside a word and long model ids are not keys
        ("Authorization: Bearer abcdefghijklmnop", "Authorization: [redacted]"),
        ("key AIzaSyA1234567890abcdefghijklmnopqrstu invalid", "key [redacted] invalid"),
        ("token gsk_abcdefghijklmnopqrstuvwxyz", "token [redacted]"),
        pytest.param("x " * 300, ("x " * 300)[:499] + "…", id="truncated"),
    ],
)
def test_redact(text: str | None, expected: str | None) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize("foreign_version", [0, SCHEMA_VERSION + 1])
def test_incompatible_database_is_moved_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, foreign_version: int
) -> None:
    path = tmp_path / "history.sqlite3"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE requests (id INTEGER, payload TEXT)")
    old.execute("INSERT INTO requests VALUES (1, 'old')")
    old.execute(f"PRAGMA user_version = {foreign_version}")
    old.commit()
    old.close()

    with caplog.at_level(logging.WARNING, logger="ccm_tui.telemetry.history"):
        write_through_bus(path, [finished(1)])

    backup = tmp_path / f"history.sqlite3.v{foreign_version}.bak"
    assert backup.exists()
    assert sqlite3.connect(backup).execute("SELECT payload FROM requests").fetchall() == [("old",)]
    assert "moved it to" in caplog.text
    reader = HistoryReader(path)
    try:
        assert [e.request_id for e in reader.recent(10)] == ["req-1"]
    finally:
        reader.close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_database_is_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    write_through_bus(path, [finished(1)])
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
