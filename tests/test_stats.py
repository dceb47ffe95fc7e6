"""`ccm-tui stats` as a user runs it: a real subprocess over a seeded history file, read-only."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ccm_tui.core.hints import ClientHints
from ccm_tui.stats import usd
from ccm_tui.telemetry.history import HistoryWriter
from tests.test_history import finished

DAY = 86_400.0


def run_stats(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ccm_tui", "stats", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "TZ": "UTC", "COLUMNS": "160", **env},
    )


@pytest.fixture
def seeded(tmp_path: Path) -> tuple[Path, dict[str, str], float]:
    """A history at the default place (the XDG data dir), requests today and two days ago (UTC days)."""
    data = tmp_path / "xdg-data"
    path = data / "ccm-tui" / "history.sqlite3"
    now = time.time()
    noon = now - now % DAY + DAY / 2  # today's noon, UTC
    at = (noon - 2 * DAY, noon - 1, noon - 2) if now >= noon else (noon - 2 * DAY, now - 2, now - 1)
    writer = HistoryWriter(path)
    events = [
        finished(1, started_at=at[0], provider="anthropic", cost_usd=1.5, hints=ClientHints(session_id="sess-old")),
        finished(2, started_at=at[1], provider="openrouter", cost_usd=0.25, hints=ClientHints(session_id="sess-new")),
        finished(3, started_at=at[2], provider="anthropic", cost_usd=0.0125, status=529, error_type="overloaded_error"),
    ]
    for event in events:
        writer.subscriber(event)
    writer.close()
    return path, {"XDG_DATA_HOME": str(data)}, now


def day(offset: int, now: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(now - offset * DAY))


def lines_with(output: str, text: str) -> list[str]:
    """Table rows (not the title) mentioning `text`."""
    return [line for line in output.splitlines() if text in line and "│" in line]


def test_stats_prints_every_day_and_the_total(seeded: tuple[Path, dict[str, str], float]) -> None:
    path, env, now = seeded
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    result = run_stats("--days", "3", env=env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    (today,) = lines_with(out, day(0, now))
    (yesterday,) = lines_with(out, day(1, now))
    (older,) = lines_with(out, day(2, now))
    assert cells(today) == ["2", "1", "524", "50", "$0.2625"]
    assert cells(yesterday) == ["0", "0", "0", "0", "$0.00"]
    assert cells(older) == ["1", "0", "112", "10", "$1.50"]
    (total,) = lines_with(out, "total")
    assert cells(total) == ["3", "1", "636", "60", "$1.76"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before  # read, never written


def cells(line: str) -> list[str]:
    """The figures of a table row (the cells after the label columns)."""
    parts = [part.strip() for part in line.replace("┃", "│").split("│") if part.strip()]
    return parts[-5:]


@pytest.mark.parametrize(
    ("by", "today_rows"),
    [
        ("provider", {"openrouter": "$0.25", "anthropic": "$0.0125"}),
        ("session", {"sess-new": "$0.25", "(no session)": "$0.0125"}),
        ("model", {"anthropic/claude-sonnet-4": "$0.2625"}),
    ],
)
def test_stats_split_by(seeded: tuple[Path, dict[str, str], float], by: str, today_rows: dict[str, str]) -> None:
    _, env, now = seeded
    result = run_stats("--days", "1", "--by", by, env=env)
    assert result.returncode == 0, result.stderr
    for key, spend in today_rows.items():
        (line,) = lines_with(result.stdout, key)
        assert cells(line)[-1] == spend
    assert day(2, now) not in result.stdout  # outside --days 1
    assert "sess-old" not in result.stdout


def test_stats_without_history_says_so(tmp_path: Path) -> None:
    result = run_stats(env={"XDG_DATA_HOME": str(tmp_path / "empty")})
    assert result.returncode == 0
    assert "No request history yet" in result.stdout
    assert not (tmp_path / "empty").exists()  # looking does not create it


def test_stats_reads_the_configured_path_and_rejects_bad_days(tmp_path: Path, seeded) -> None:
    path, _, _ = seeded
    config = tmp_path / "config.toml"
    config.write_text(f"[history]\npath = '{path}'\n")
    result = run_stats("--config", str(config), "--days", "7", env={"XDG_DATA_HOME": str(tmp_path / "elsewhere")})
    assert result.returncode == 0 and "$1.76" in result.stdout
    bad = run_stats("--days", "0", env={})
    assert bad.returncode == 2 and "--days: must be between 1 and 3660" in bad.stderr


def test_stats_on_a_corrupt_file_is_one_line_and_exit_1(tmp_path: Path) -> None:
    path = tmp_path / "data" / "ccm-tui" / "history.sqlite3"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not sqlite" * 500)
    result = run_stats(env={"XDG_DATA_HOME": str(tmp_path / "data")})
    assert result.returncode == 1
    assert result.stderr.startswith("ccm-tui: cannot read the request history at") and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("amount", "text"),
    [(0.0, "$0.00"), (0.0125, "$0.0125"), (0.25, "$0.25"), (0.5, "$0.50"), (1.755, "$1.75"), (1234.5, "$1,234.50")],
)
def test_usd(amount: float, text: str) -> None:
    assert usd(amount) == text


def test_stats_never_changes_the_history_file(tmp_path: Path) -> None:
    # An older or foreign file must be reported, not migrated or moved aside by a read-only command.
    path = tmp_path / "data" / "ccm-tui" / "history.sqlite3"
    path.parent.mkdir(parents=True)
    sqlite3.connect(path).execute("PRAGMA user_version = 1").connection.close()
    before = path.read_bytes()
    result = run_stats(env={"XDG_DATA_HOME": str(tmp_path / "data")})
    assert result.returncode == 1 and "start ccm-tui once to migrate it" in result.stderr
    assert path.read_bytes() == before and sorted(p.name for p in path.parent.iterdir()) == ["history.sqlite3"]
