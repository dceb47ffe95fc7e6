"""How far the history writer falls behind: events at a steady rate, the commit lag of every one measured.

    .venv/bin/python -m bench.history_lag [--rate 600] [--seconds 10]

Feeds RequestFinished events (three attempts each, like a failover) to a real HistoryWriter on a temporary
file from the calling thread, at `--rate` per second, and records for each committed batch how long its
oldest event waited (arrival to commit). The target (telemetry/history.py): at most 250 ms at several hundred
requests per second, which bounds what a SIGKILL can lose. Prints max, p99 and p50 lag, batches and rows.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

from ccm_tui.core.events import AttemptRecord, RequestFinished, Usage
from ccm_tui.telemetry.history import HistoryWriter

TARGET_S = 0.25


def event(n: int, now: float) -> RequestFinished:
    attempts = tuple(
        AttemptRecord(f"provider-{i}", "claude-sonnet-4-5", "claude-sonnet-4-5", 529 if i < 2 else 200,
                      "cooldown" if i < 2 else "ok", "overloaded" if i < 2 else "", now, 0.25)
        for i in range(3)
    )  # fmt: skip
    return RequestFinished(
        f"bench-{n}", "claude-sonnet-4-5", True, 200, "provider-2", "claude-sonnet-4-5", attempts,
        Usage(12_000, 800, 0, 40_000), 0.0123, now, 0.4, 2.0,
    )  # fmt: skip


def run(rate: float, seconds: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as directory:
        writer = HistoryWriter(Path(directory) / "history.sqlite3")
        writer.start()
        lags: list[float] = []
        stop = threading.Event()

        def sample() -> None:  # the lag the writer reports, sampled just before each batch commits
            while not stop.is_set():
                lags.append(writer.status().lag)
                stop.wait(0.005)

        sampler = threading.Thread(target=sample)
        sampler.start()
        start = time.monotonic()
        total = int(rate * seconds)
        for n in range(total):
            due = start + n / rate
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            writer.subscriber(event(n, time.time()))
        writer.wait_until(lambda s: s.written >= total, 60)
        stop.set()
        sampler.join()
        status = writer.status()
        writer.close()
    ordered = sorted(lags)
    return {
        "rate": rate,
        "rows": status.written,
        "batches": status.batches,
        "max_lag_ms": ordered[-1] * 1000,
        "p99_lag_ms": ordered[int(len(ordered) * 0.99)] * 1000,
        "p50_lag_ms": statistics.median(ordered) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=600.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    result = run(args.rate, args.seconds)
    verdict = "ok" if result["max_lag_ms"] <= TARGET_S * 1000 else "MISSED"
    print(
        f"{result['rate']:.0f} req/s: {result['rows']:.0f} rows in {result['batches']:.0f} batches; lag max "
        f"{result['max_lag_ms']:.0f} ms, p99 {result['p99_lag_ms']:.0f} ms, p50 {result['p50_lag_ms']:.0f} ms "
        f"(target <= {TARGET_S * 1000:.0f} ms: {verdict})"
    )


if __name__ == "__main__":
    main()
