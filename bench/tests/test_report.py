"""Percentiles, medians over repetitions, paired "added" values and target verdicts."""

from __future__ import annotations

from typing import Any

import pytest

from bench import report
from bench.profiling import summarize_collapsed


@pytest.mark.parametrize(
    ("values", "fraction", "expected"),
    [
        ([], 0.5, None),
        ([5.0], 0.99, 5.0),
        ([1.0, 2.0, 3.0, 4.0], 0.5, 2.5),
        (list(range(1, 101)), 0.99, 99.01),
        ([3.0, 1.0, 2.0], 0.0, 1.0),
        ([3.0, 1.0, 2.0], 1.0, 3.0),
    ],
)
def test_percentile(values: list[float], fraction: float, expected: float | None) -> None:
    result = report.percentile(values, fraction)
    assert result == pytest.approx(expected) if expected is not None else result is None


def _record(mode: str, rep: int, target: str, ttfb: float, total: float, cpu_ms: float = 0.0) -> dict[str, Any]:
    raw = {
        "completed": 10, "errors": 0, "error_samples": [], "ttfb_ms": [ttfb] * 10, "total_ms": [total] * 10,
        "wall_s": 1.0, "watch_cpu_ms": cpu_ms, "watch_peak_rss_kb": 102400 if cpu_ms else 0,
        "rss_method": "VmHWM", "mock_cpu_ms": 5.0, "loadgen_cpu_ms": 5.0,
    }  # fmt: skip
    return {"mode": mode, "rep": rep, "scenario": "b", "concurrency": 64, "target": target, **report.summarize(raw)}


def test_added_ttfb_is_paired_per_repetition_then_the_median_is_taken() -> None:
    records = []
    # Direct drifts between repetitions; the proxy adds 1, 2 and 30 ms: the median addition is 2.
    for rep, (direct, added) in enumerate([(1.0, 1.0), (10.0, 2.0), (3.0, 30.0)]):
        records.append(_record("headless", rep, "direct", direct, 250.0))
        records.append(_record("headless", rep, "proxy", direct + added, 260.0, cpu_ms=25.0))
    (row,) = report.aggregate(records)
    assert row["added_ttfb_p50"] == pytest.approx(2.0)
    assert row["total_p99_ratio"] == pytest.approx(260 / 250)
    assert row["proxy_cpu_ms_per_req"] == pytest.approx(2.5)
    assert row["proxy_peak_rss_mb"] == pytest.approx(100.0)
    assert row["reps"] == 3


def test_targets_are_met_missed_or_not_measured() -> None:
    records = [
        _record("headless", 0, "direct", 1.0, 250.0),
        _record("headless", 0, "proxy", 150.0, 400.0, cpu_ms=20.0),
        _record("tui", 0, "direct", 1.0, 250.0),
        _record("tui", 0, "proxy", 150.0, 400.0, cpu_ms=40.0),
    ]
    verdicts = {t["target"]: t for t in report.evaluate_targets(report.aggregate(records))}
    assert verdicts["(b) TTFB p99, 64 streams"]["status"] == "NOT MET"
    assert verdicts["(b) CPU ms per stream, c=64"]["status"] == "met"
    assert verdicts["TUI CPU per request / headless, (b) c=64"]["value"] == pytest.approx(2.0)
    assert verdicts["TUI CPU per request / headless, (b) c=64"]["status"] == "NOT MET"
    assert verdicts["(a) added TTFB p50, c=1"]["status"] == "not measured"


def test_markdown_has_the_targets_and_a_row_per_point() -> None:
    records = [_record("headless", 0, "direct", 1.0, 250.0), _record("headless", 0, "proxy", 2.0, 251.0, 20.0)]
    rows = report.aggregate(records)
    meta = {
        "kind": "quick", "reps": 1, "started": "now", "duration_s": 1.0, "python": "3.11",
        "machine": {"cpus": 2, "cpu": "x", "memory_gb": 1.0}, "loadavg_start": (0.1, 0, 0),
        "loadavg_end": (0.2, 0, 0), "proxy_cpus": "0", "harness_cpus": "1",
    }  # fmt: skip
    text = report.markdown({"meta": meta, "rows": rows, "targets": report.evaluate_targets(rows)})
    assert "## Targets" in text and "| (b) stream 50 events, 5 ms apart | 64 | 1.00 |" in text


def test_readme_results_section_is_replaced_and_the_rest_kept() -> None:
    readme = f"intro\n{report.README_START}\nold\n{report.README_END}\noutro\n"
    updated = report.replace_results(readme, "# Title\n\n| a |\n")
    assert updated == f"intro\n{report.README_START}\n## Title\n\n| a |\n{report.README_END}\noutro\n"


def test_profile_summary_gives_self_time_by_owner():
    collapsed = "\n".join(
        [
            "thread (1): MainThread;run (asyncio/runners.py:190);Runner.run (asyncio/runners.py:118) 5",
            "thread (1): MainThread;Engine._relay (ccm_tui/routing/engine.py:150) 3",
            "thread (1): MainThread;x (ccm_tui/proxy/app.py:10);send (hypercorn/protocol/h11.py:9) 2",
            "thread (2): Thread-1;idle (threading.py:1) 7",
        ]
    )
    summary = summarize_collapsed(collapsed)
    assert "10 samples of the event-loop thread (7 more in other threads)" in summary
    assert "| 50.0 | event loop itself (uvloop: socket I/O, callbacks) |" in summary
    assert "| 30.0 | ccm-tui routing/ |" in summary
    assert "| 20.0 | hypercorn |" in summary
