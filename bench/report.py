"""From raw load-generator results to the report: per-run summaries, medians over repetitions, targets, markdown.

Pure functions over plain dicts (they go to JSON as they are). "Added" values are computed per repetition
from the direct and proxied runs that ran back to back, then the median over repetitions is reported, so
drift on a busy machine cancels out as far as it can.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bench.scenarios import SCENARIOS


def percentile(values: list[float], fraction: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    """One load-generator run -> the numbers the report uses (no raw samples)."""
    done = result["completed"]
    per_request = max(done + result["errors"], 1)
    wall = max(result["wall_s"], 1e-9)
    return {
        "completed": done,
        "errors": result["errors"],
        "error_samples": result["error_samples"],
        "ttfb_p50": percentile(result["ttfb_ms"], 0.5),
        "ttfb_p99": percentile(result["ttfb_ms"], 0.99),
        "total_p50": percentile(result["total_ms"], 0.5),
        "total_p99": percentile(result["total_ms"], 0.99),
        "rps": done / wall,
        "wall_s": result["wall_s"],
        "cpu_ms_per_req": result["watch_cpu_ms"] / per_request if result.get("watch_cpu_ms") else None,
        "peak_rss_mb": result["watch_peak_rss_kb"] / 1024 if result.get("watch_peak_rss_kb") else None,
        "rss_method": result.get("rss_method"),
        "mock_cpu_ms_per_req": result["mock_cpu_ms"] / per_request,
        "loadgen_cpu_ms_per_req": result["loadgen_cpu_ms"] / per_request,
        "harness_busy_pct": 100 * (result["mock_cpu_ms"] + result["loadgen_cpu_ms"]) / 1000 / wall,
    }


def _median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def aggregate(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records (one per run) -> one row per (mode, scenario, concurrency), medians over repetitions."""
    runs: dict[tuple[str, str, int], dict[int, dict[str, dict[str, Any]]]] = defaultdict(lambda: defaultdict(dict))
    for record in records:
        key = (record["mode"], record["scenario"], record["concurrency"])
        runs[key][record["rep"]][record["target"]] = record
    rows = []
    for (mode, scenario, concurrency), reps in runs.items():
        pairs = [(r.get("direct"), r.get("proxy")) for r in reps.values()]
        proxied = [p for _, p in pairs if p]
        direct = [d for d, _ in pairs if d]
        both = [(d, p) for d, p in pairs if d and p]
        row: dict[str, Any] = {"mode": mode, "scenario": scenario, "concurrency": concurrency, "reps": len(reps)}
        for name in ("ttfb_p50", "ttfb_p99", "total_p50", "total_p99", "rps", "cpu_ms_per_req", "peak_rss_mb"):
            row[f"proxy_{name}"] = _median(p[name] for p in proxied)
        for name in ("ttfb_p50", "ttfb_p99", "total_p50", "total_p99", "rps"):
            row[f"direct_{name}"] = _median(d[name] for d in direct)
        row["added_ttfb_p50"] = _median(_diff(p["ttfb_p50"], d["ttfb_p50"]) for d, p in both)
        row["added_ttfb_p99"] = _median(_diff(p["ttfb_p99"], d["ttfb_p99"]) for d, p in both)
        row["total_p50_ratio"] = _median(_ratio(p["total_p50"], d["total_p50"]) for d, p in both)
        row["total_p99_ratio"] = _median(_ratio(p["total_p99"], d["total_p99"]) for d, p in both)
        row["proxy_errors"] = sum(p["errors"] for p in proxied)
        row["direct_errors"] = sum(d["errors"] for d in direct)
        row["proxy_requests"] = sum(p["completed"] + p["errors"] for p in proxied)
        row["error_samples"] = [s for p in proxied for s in p["error_samples"]][:3]
        row["mock_cpu_ms_per_req"] = _median(d["mock_cpu_ms_per_req"] for d in direct)
        row["loadgen_cpu_ms_per_req"] = _median(d["loadgen_cpu_ms_per_req"] for d in direct)
        row["harness_busy_pct_direct"] = _median(d["harness_busy_pct"] for d in direct)
        row["harness_busy_pct_proxy"] = _median(p["harness_busy_pct"] for p in proxied)
        probes = [r["keyprobe"] for r in reps.values() if "keyprobe" in r]
        if probes:
            row["keyprobe_cpu_ms_per_req"] = _median(p["cpu_ms_per_req"] for p in probes)
        extras = [r.get("extra", {}) for by_target in reps.values() for r in by_target.values()]
        for name in ("failover_429s", "key_latencies_ms", "key_failures"):
            values = [e[name] for e in extras if name in e]
            if values:
                row[name] = [v for vs in values for v in vs] if name == "key_latencies_ms" else sum(values)
        rows.append(row)
    rows.sort(key=lambda r: (r["mode"] != "headless", r["scenario"], r["concurrency"]))
    return rows


@dataclass(frozen=True)
class Target:
    label: str
    mode: str
    scenario: str
    concurrency: int
    field: str  # row field, or a computed name handled in `evaluate_targets`
    limit: float

    def key(self) -> tuple[str, str, int]:
        return (self.mode, self.scenario, self.concurrency)


TARGETS: tuple[Target, ...] = (
    Target("(a) added TTFB p50, c=1", "headless", "a", 1, "added_ttfb_p50", 2.0),
    Target("(a) added TTFB p99, c=1", "headless", "a", 1, "added_ttfb_p99", 10.0),
    Target("(b) added TTFB p50, c=1", "headless", "b", 1, "added_ttfb_p50", 2.0),
    Target("(b) added TTFB p99, c=1", "headless", "b", 1, "added_ttfb_p99", 10.0),
    Target("(d) added TTFB p50, c=1", "headless", "d", 1, "added_ttfb_p50", 5.0),
    Target("(b) TTFB p99, 64 streams", "headless", "b", 64, "proxy_ttfb_p99", 100.0),
    Target("(b) errors, 64 streams", "headless", "b", 64, "proxy_errors", 0),
    Target("(c) TTFB p99, 256 streams on one core", "headless", "c", 256, "proxy_ttfb_p99", 500.0),
    Target("(c) errors, 256 streams", "headless", "c", 256, "proxy_errors", 0),
    Target("(c) total p99 / direct, 256 streams", "headless", "c", 256, "total_p99_ratio", 1.3),
    Target("(b) CPU ms per stream, c=64", "headless", "b", 64, "proxy_cpu_ms_per_req", 3.0),
    Target("(d) CPU ms per request, c=64", "headless", "d", 64, "proxy_cpu_ms_per_req", 6.0),
    Target("peak RSS MB, 256 streams of (c)", "headless", "c", 256, "proxy_peak_rss_mb", 150.0),
    Target("TUI CPU per request / headless, (b) c=64", "tui", "b", 64, "tui_cpu_ratio", 1.5),
    Target("TUI key press handled (max ms), (b) c=64", "tui", "b", 64, "key_max_ms", 200.0),
    Target("(f) failover TTFB over direct secondary, p50 c=1", "headless", "f", 1, "added_ttfb_p50", 20.0),
    Target("(f) failover TTFB over direct secondary, p99 c=1", "headless", "f", 1, "added_ttfb_p99", 20.0),
    Target("(g) 529 failover to translated TTFB over direct, p50 c=1", "headless", "g", 1, "added_ttfb_p50", 20.0),
    Target("(g) 529 failover to translated TTFB over direct, p99 c=1", "headless", "g", 1, "added_ttfb_p99", 20.0),
)


def _computed(target: Target, rows: dict[tuple[str, str, int], dict[str, Any]]) -> float | None:
    row = rows.get(target.key())
    if row is None:
        return None
    if target.field == "tui_cpu_ratio":
        headless = rows.get(("headless", target.scenario, target.concurrency))
        return _ratio(row.get("proxy_cpu_ms_per_req"), headless.get("proxy_cpu_ms_per_req") if headless else None)
    if target.field == "key_max_ms":
        latencies = row.get("key_latencies_ms") or []
        if row.get("key_failures"):
            return float("inf")
        return max(latencies) if latencies else None
    return row.get(target.field)


def evaluate_targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_key = {(r["mode"], r["scenario"], r["concurrency"]): r for r in rows}
    out = []
    for target in TARGETS:
        value = _computed(target, by_key)
        status = "not measured" if value is None else ("met" if value <= target.limit else "NOT MET")
        out.append({"target": target.label, "value": value, "limit": target.limit, "status": status})
    return out


def _f(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "–"
    if value == float("inf"):
        return "∞"
    return f"{value:.{digits}f}"


def _scenario_label(key: str) -> str:
    return f"({key}) {SCENARIOS[key].title}" if key in SCENARIOS else key


def markdown(report: dict[str, Any]) -> str:
    rows, targets, meta = report["rows"], report["targets"], report["meta"]
    lines = [
        f"# ccm-tui benchmark ({meta['kind']}, {meta['reps']} rep{'s' if meta['reps'] != 1 else ''})",
        "",
        f"{meta['started']} · {meta['duration_s']:.0f} s · {meta['machine']['cpus']} CPUs ({meta['machine']['cpu']}), "
        f"{meta['machine']['memory_gb']} GB · Python {meta['python']} · load average at start "
        f"{meta['loadavg_start'][0]:.2f}, at end {meta['loadavg_end'][0]:.2f}",
        "",
        f"Proxy pinned to CPU {meta['proxy_cpus']}; mock upstream and load generator on CPU {meta['harness_cpus']}. "
        "Times in ms; medians over repetitions; *added* = proxied minus direct, paired per repetition.",
        "",
        "## Targets",
        "",
        "| target | measured | limit | result |",
        "|---|---:|---:|---|",
    ]
    for t in targets:
        lines.append(f"| {t['target']} | {_f(t['value'], 2)} | {_f(t['limit'], 2)} | {t['status']} |")
    for mode, title in (("headless", "Headless (`ccm-tui serve`)"), ("tui", "TUI running in tmux 160x48")):
        mode_rows = [r for r in rows if r["mode"] == mode]
        if not mode_rows:
            continue
        headless = {(r["scenario"], r["concurrency"]): r for r in rows if r["mode"] == "headless"}
        lines += ["", f"## {title}", ""]
        head = (
            "| scenario | conc | added TTFB p50 | added TTFB p99 | TTFB p99 proxy / direct | total p50 (x direct) "
            "| total p99 (x direct) | req/s proxy / direct | CPU ms/req | peak RSS MB | errors |"
        )
        align = "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        if mode == "tui":
            head += " CPU vs headless |"
            align += "---:|"
        lines += [head, align]
        for r in mode_rows:
            line = (
                f"| {_scenario_label(r['scenario'])} | {r['concurrency']} | {_f(r['added_ttfb_p50'], 2)} "
                f"| {_f(r['added_ttfb_p99'], 2)} | {_f(r['proxy_ttfb_p99'])} / {_f(r['direct_ttfb_p99'])} "
                f"| {_f(r['proxy_total_p50'])} ({_f(r['total_p50_ratio'], 2)}x) "
                f"| {_f(r['proxy_total_p99'])} ({_f(r['total_p99_ratio'], 2)}x) "
                f"| {_f(r['proxy_rps'], 0)} / {_f(r['direct_rps'], 0)} | {_f(r['proxy_cpu_ms_per_req'], 2)} "
                f"| {_f(r['proxy_peak_rss_mb'], 0)} | {r['proxy_errors']}/{r['proxy_requests']} |"
            )
            if mode == "tui":
                base = headless.get((r["scenario"], r["concurrency"]))
                ratio = _ratio(r["proxy_cpu_ms_per_req"], base["proxy_cpu_ms_per_req"] if base else None)
                line += f" {_f(ratio, 2)}{'x' if ratio is not None else ''} |"
            lines.append(line)
    notes = _notes(rows)
    if meta.get("key_press_idle_ms"):
        notes.append(f"- TUI idle (no load): key press shown after {meta['key_press_idle_ms']} ms (the probe's floor).")
    if notes:
        lines += ["", "## Observations", "", *notes]
    lines += [
        "",
        "## Harness check (direct runs: mock upstream and load generator alone)",
        "",
        "CPU the mock and the load generator spend per request, and how busy their shared core was. "
        "Under ~80% the harness is not what limits the proxied numbers.",
        "",
        "| scenario | conc | req/s direct | mock CPU ms/req | load generator CPU ms/req "
        "| harness core busy % (direct / proxied) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if r["mode"] != "headless":
            continue
        lines.append(
            f"| {r['scenario']} | {r['concurrency']} | {_f(r['direct_rps'], 0)} | {_f(r['mock_cpu_ms_per_req'], 3)} "
            f"| {_f(r['loadgen_cpu_ms_per_req'], 3)} | {_f(r['harness_busy_pct_direct'], 0)} / "
            f"{_f(r['harness_busy_pct_proxy'], 0)} |"
        )
    return "\n".join(lines) + "\n"


def _notes(rows: list[dict[str, Any]]) -> list[str]:
    notes = []
    for r in rows:
        where = f"{r['mode']} ({r['scenario']}) c={r['concurrency']}"
        if r["proxy_errors"]:
            notes.append(f"- {where}: {r['proxy_errors']} proxied errors, e.g. {r['error_samples'][:2]}")
        if r["direct_errors"]:
            notes.append(f"- {where}: {r['direct_errors']} errors in the DIRECT runs (harness problem)")
        if "failover_429s" in r:
            notes.append(
                f"- {where}: the failover primary answered its error (429 or 529) to {r['failover_429s']} of "
                f"{r['proxy_requests']} "
                "proxied requests (fewer means the proxy skipped the cooling primary)."
            )
        if "key_latencies_ms" in r:
            lat = r["key_latencies_ms"]
            notes.append(
                f"- {where}: key press (`?` opens help) shown on screen after {_f(percentile(lat, 0.5))} ms median, "
                f"{_f(max(lat) if lat else None)} ms max over {len(lat)} presses; {r.get('key_failures', 0)} not seen "
                f"(separate run; CPU per request with the help screen opening every ~0.5 s: "
                f"{_f(r.get('keyprobe_cpu_ms_per_req'), 2)} ms)."
            )
    return notes


README_START = "<!-- bench:results:start -->"
README_END = "<!-- bench:results:end -->"


def replace_results(readme: str, results_markdown: str) -> str:
    """Put `results_markdown` between the README's result markers (headings demoted one level)."""
    start, end = readme.index(README_START) + len(README_START), readme.index(README_END)
    body = "\n".join("#" + line if line.startswith("#") else line for line in results_markdown.splitlines())
    return readme[:start] + "\n" + body + "\n" + readme[end:]
