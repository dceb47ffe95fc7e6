"""`ccm-tui stats [--days N] [--by provider|model|session]`: spend and requests per day, from the history file.

Reads the same file the proxy writes (`[history] path`, default in the user data dir) with HistoryReader and
prints a rich table; it never writes a row. Days are local calendar days. Exit codes: 0 (also when there is no
history yet), 1 when the file cannot be read, 2 for a config problem.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sqlite3
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ccm_tui.telemetry.history_reader import Breakdown, DailyRow, HistoryReader, first_day

# rich and the config load only when `stats` runs, not when the CLI builds its parser (`--version` stays fast).
if TYPE_CHECKING:
    from rich.table import Table

DEFAULT_DAYS = 30
NONE_LABEL = {Breakdown.PROVIDER: "(not served)", Breakdown.MODEL: "(not served)", Breakdown.SESSION: "(no session)"}


def _days(text: str) -> int:
    try:
        days = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of days, got {text!r}") from None
    if not 1 <= days <= 3660:
        raise argparse.ArgumentTypeError(f"must be between 1 and 3660, got {days}")
    return days


def add_parser(subcommands: Any) -> None:
    """Register `stats` on the CLI's subparsers."""
    parser = subcommands.add_parser("stats", help="print spend and requests per day from the request history")
    parser.add_argument("--config", metavar="PATH", help="config file (its [history] path is read)")
    parser.add_argument(
        "--days", type=_days, default=DEFAULT_DAYS, help=f"how many days back, today included (default {DEFAULT_DAYS})"
    )
    parser.add_argument(
        "--by", choices=[b.value for b in Breakdown], help="split each day by provider, model or session"
    )


def main(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ccm_tui.config import ConfigError, default_data_dir, load_settings

    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"ccm-tui: {exc}", file=sys.stderr)
        return 2
    path = settings.history_path or default_data_dir() / "history.sqlite3"
    by = Breakdown(args.by) if args.by else None
    console = Console(highlight=False)
    if not path.exists():
        console.print(f"No request history yet at {path}.", markup=False)
        return 0
    now = time.time()
    reader = HistoryReader(path, read_only=True)
    try:
        rows = reader.daily(args.days, now, by)
    except (sqlite3.Error, OSError) as exc:
        print(f"ccm-tui: cannot read the request history at {path}: {exc}", file=sys.stderr)
        return 1
    finally:
        reader.close()
    console.print(table(rows, args.days, now, by, path))
    return 0


def table(rows: list[DailyRow], days: int, now: float, by: Breakdown | None, path: Path) -> Table:
    from rich.table import Table
    from rich.text import Text

    """The days oldest first (a day without requests shows as a zero row when not split), then the total."""
    start = first_day(days, now)
    title = f"Requests and spend, {start.isoformat()} to {dt.date.fromtimestamp(now).isoformat()}"
    result = Table(title=title, caption=str(path), show_footer=False)
    result.add_column("day")
    if by is not None:
        result.add_column(by.value)
    for name in ("requests", "failed", "input tokens", "output tokens", "spend"):
        result.add_column(name, justify="right")
    by_day: dict[dt.date, list[DailyRow]] = {}
    for row in rows:
        by_day.setdefault(row.day, []).append(row)
    for offset in range(days):
        day = start + dt.timedelta(days=offset)
        entries = by_day.get(day) or ([] if by is not None else [DailyRow(day, None, 0, 0.0, 0, 0, 0)])
        for n, row in enumerate(entries):
            label: list[str | Text] = [day.isoformat() if n == 0 else ""]
            if by is not None:
                label.append(Text(row.key) if row.key is not None else NONE_LABEL[by])
            result.add_row(*label, *_figures(row))
    total = DailyRow(
        start,
        None,
        sum(r.requests for r in rows),
        sum(r.spend_usd for r in rows),
        sum(r.input_tokens for r in rows),
        sum(r.output_tokens for r in rows),
        sum(r.failed for r in rows),
    )
    result.add_section()
    result.add_row("total", *([""] if by is not None else []), *_figures(total), style="bold")
    return result


def _figures(row: DailyRow) -> tuple[str, ...]:
    return (
        f"{row.requests:,}",
        f"{row.failed:,}",
        f"{row.input_tokens:,}",
        f"{row.output_tokens:,}",
        usd(row.spend_usd),
    )


def usd(amount: float) -> str:
    """Cents, and down to four places for the small sums cheap models add up to: $1.76, $0.25, $0.0125."""
    if amount >= 1:
        return f"${amount:,.2f}"
    text = f"{amount:.4f}"
    while text.endswith("0") and len(text.partition(".")[2]) > 2:
        text = text[:-1]
    return f"${text}"
