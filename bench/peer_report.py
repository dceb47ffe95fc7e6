"""From the peer bench's runs to its report: per-target metrics, ccm-tui's ratio to each peer, markdown.

Pure functions over plain dicts. A record is one load-generator run summarised by `bench.report.summarize`,
tagged with its repetition, scenario and target ("direct" for the mock itself). *Added* TTFB is paired per
repetition with the direct run of the same repetition, then the median over repetitions is taken; the other
metrics are medians over repetitions. A ratio is ccm-tui's value divided by the peer's: below 1 is better
for ccm-tui on every metric here.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

DIRECT = "direct"
NOT_APPLICABLE = "n/a"
# The two paths and their two points: (c=1, events at once) and (64 streams, events 5 ms apart).
PATHS: dict[str, str] = {
    "tr": "Translated: Anthropic client -> OpenAI-compatible upstream",
    "pt": "Anthropic pass-through",
}
BURST, PACED = "burst", "5ms"


@dataclass(frozen=True)
class Metric:
    label: str
    point: str  # BURST, PACED, or "" for both points of the path
    field: str
    digits: int


METRICS: tuple[Metric, ...] = (
    Metric("+TTFB p50, c=1 burst (ms)", BURST, "added_ttfb_p50", 2),
    Metric("TTFB p99, 64 streams @5 ms (ms)", PACED, "ttfb_p99", 1),
    Metric("CPU per streamed response, 64 streams (ms)", PACED, "cpu_ms_per_req", 2),
    Metric("peak RSS (MB)", "", "peak_rss_mb", 0),
    Metric("errors", "", "errors", 0),
)


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def aggregate(records: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """(scenario, target) -> medians over repetitions, errors and requests summed; direct runs included."""
    by_key: dict[tuple[str, str], dict[int, dict[str, Any]]] = defaultdict(dict)
    for record in records:
        by_key[(record["scenario"], record["target"])][record["rep"]] = record
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for (scenario, target), reps in by_key.items():
        direct = by_key.get((scenario, DIRECT), {})
        added = [
            run["ttfb_p50"] - direct[rep]["ttfb_p50"]
            for rep, run in reps.items()
            if rep in direct and run["ttfb_p50"] is not None and direct[rep]["ttfb_p50"] is not None
        ]
        out[(scenario, target)] = {
            "reps": len(reps),
            "added_ttfb_p50": _median(list(added)) if target != DIRECT else 0.0,
            "ttfb_p50": _median([r["ttfb_p50"] for r in reps.values()]),
            "ttfb_p99": _median([r["ttfb_p99"] for r in reps.values()]),
            "total_p99": _median([r["total_p99"] for r in reps.values()]),
            "cpu_ms_per_req": _median([r["cpu_ms_per_req"] for r in reps.values()]),
            "peak_rss_mb": _median([r["peak_rss_mb"] for r in reps.values()]),
            "rps": _median([r["rps"] for r in reps.values()]),
            "errors": sum(r["errors"] for r in reps.values()),
            "requests": sum(r["completed"] + r["errors"] for r in reps.values()),
            "error_samples": [s for r in reps.values() for s in r.get("error_samples", [])][:3],
        }
    return out


def metric_value(
    aggregated: dict[tuple[str, str], dict[str, Any]], path: str, target: str, metric: Metric
) -> float | None:
    """One metric of one target on one path; None when that target did not run there."""
    points = [metric.point] if metric.point else [BURST, PACED]
    rows = [aggregated.get((f"{path}-{point}", target)) for point in points]
    present = [row for row in rows if row is not None]
    if not present:
        return None
    values = [row[metric.field] for row in present]
    if metric.field == "errors":
        return float(sum(values))
    known = [v for v in values if v is not None]
    return max(known) if known else None  # peak RSS over both points; the single point's value otherwise


def ratio(ours: float | None, theirs: float | None) -> float | None:
    if ours is None or theirs is None or theirs <= 0:
        return None
    return ours / theirs


def path_rows(
    aggregated: dict[tuple[str, str], dict[str, Any]], path: str, targets: list[str], ours: str = "ccm-tui"
) -> list[dict[str, Any]]:
    """One row per metric: each target's value (None = n/a) and ccm-tui's ratio to each peer."""
    rows = []
    for metric in METRICS:
        values = {target: metric_value(aggregated, path, target, metric) for target in targets}
        ratios = {
            peer: None if metric.field == "errors" else ratio(values[ours], values[peer])
            for peer in targets
            if peer != ours
        }
        rows.append({"metric": metric.label, "digits": metric.digits, "values": values, "ratios": ratios})
    return rows


def startup_rows(startup: dict[str, dict[str, list[float]]], ours: str = "ccm-tui") -> list[dict[str, Any]]:
    """startup = {target: {"version": [s...], "ready": [s...]}} -> rows of medians (ms) with ratios."""
    rows = []
    for key, label in (("version", "`--version` wall time (ms)"), ("ready", "`serve` until it answers GET / (ms)")):
        values = {t: _ms_median(runs.get(key, [])) for t, runs in startup.items()}
        spread = {t: _spread(runs.get(key, [])) for t, runs in startup.items()}
        ratios = {peer: ratio(values.get(ours), values[peer]) for peer in startup if peer != ours}
        rows.append({"metric": label, "digits": 0, "values": values, "ratios": ratios, "spread": spread})
    return rows


def _ms_median(seconds: list[float]) -> float | None:
    return statistics.median(seconds) * 1000 if seconds else None


def _spread(seconds: list[float]) -> str:
    return f"{min(seconds) * 1000:.0f}–{max(seconds) * 1000:.0f}, n={len(seconds)}" if seconds else ""


def _f(value: float | None, digits: int) -> str:
    return NOT_APPLICABLE if value is None else f"{value:.{digits}f}"


def _table(rows: list[dict[str, Any]], targets: list[str], ours: str, with_spread: bool = False) -> list[str]:
    peers = [t for t in targets if t != ours]
    head = ["metric", *targets, *[f"{ours} / {peer}" for peer in peers]]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for row in rows:
        cells = [row["metric"]]
        for target in targets:
            cell = _f(row["values"].get(target), row["digits"])
            if with_spread and row["spread"].get(target):
                cell += f" ({row['spread'][target]})"
            cells.append(cell)
        for peer in peers:
            value = row["ratios"].get(peer)
            cells.append("–" if value is None and row["metric"] == "errors" else _ratio_text(value))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _ratio_text(value: float | None) -> str:
    return NOT_APPLICABLE if value is None else f"{value:.2f}x"


def markdown(result: dict[str, Any]) -> str:
    meta, targets = result["meta"], result["meta"]["targets"]
    ours = targets[0]
    machine = meta["machine"]
    versions = ", ".join(f"{t} {v}" for t, v in meta["versions"].items())
    lines = [
        f"# ccm-tui vs peers ({meta['reps']} reps)",
        "",
        f"{meta['started']} · {meta['duration_s']:.0f} s · {machine['cpus']} CPUs ({machine['cpu']}), "
        f"{machine['memory_gb']} GB · {versions} · load average at start {meta['loadavg_start'][0]:.2f}, "
        f"at end {meta['loadavg_end'][0]:.2f}",
        "",
        f"Each proxy pinned to CPU {meta['proxy_cpus']} (the others paused while one is measured); mock upstream "
        f"and load generator on CPU {meta['harness_cpus']}. 50 text deltas per response; burst = all at once, "
        "c=1; paced = 5 ms apart, 64 concurrent streams. Rounds interleaved (direct and every target in "
        "rotating order per repetition); medians over repetitions; +TTFB = target minus direct, paired per "
        f"repetition. Ratio = {ours}'s value / the peer's (below 1 = {ours} better).",
    ]
    for path, title in PATHS.items():
        lines += ["", f"## {title}", "", *_table(path_rows(result["aggregated"], path, targets, ours), targets, ours)]
    if result.get("startup"):
        lines += [
            "",
            "## Start-up",
            "",
            "Median (min–max, runs) of repeated cold starts, pinned to the proxy core.",
            "",
        ]
        lines += _table(startup_rows(result["startup"], ours), list(result["startup"]), ours, with_spread=True)
    lines += [
        "",
        "## Points",
        "",
        "| scenario | target | TTFB p50 | TTFB p99 | total p99 | req/s | CPU ms/req | peak RSS MB | errors |",
    ]
    lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for (scenario, target), row in sorted(result["aggregated"].items()):
        lines.append(
            f"| {scenario} | {target} | {_f(row['ttfb_p50'], 1)} | {_f(row['ttfb_p99'], 1)} "
            f"| {_f(row['total_p99'], 1)} "
            f"| {_f(row['rps'], 0)} | {_f(row['cpu_ms_per_req'], 2) if target != DIRECT else '–'} "
            f"| {_f(row['peak_rss_mb'], 0) if target != DIRECT else '–'} | {row['errors']}/{row['requests']} |"
        )
    samples = [
        f"- {scenario} {target}: {row['error_samples']}"
        for (scenario, target), row in sorted(result["aggregated"].items())
        if row["errors"]
    ]
    if samples:
        lines += ["", "## Errors", "", *samples]
    return "\n".join(lines) + "\n"


README_START = "<!-- bench:peers:start -->"
README_END = "<!-- bench:peers:end -->"


def replace_readme(readme: str, results_markdown: str) -> str:
    """Put `results_markdown` between the README's peer markers (headings demoted one level)."""
    start, end = readme.index(README_START) + len(README_START), readme.index(README_END)
    body = "\n".join("#" + line if line.startswith("#") else line for line in results_markdown.splitlines())
    return readme[:start] + "\n" + body + "\n" + readme[end:]
