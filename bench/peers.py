"""The peer bench: `python -m bench.peers [--litellm]` measures ccm-tui beside Claude Code Router (and LiteLLM).

Same mock upstream, load generator and pinning as the main bench (bench.run). Four points: each path (OpenAI
translation, Anthropic pass-through) at c=1 with 50 events at once and at 64 streams with 50 events 5 ms apart.
For each point every target is started once (own HOME, loopback port, proxy core) and paused; every repetition
then runs direct and each target back to back in rotating order, resuming only the one being measured. Before
the load, start-up is timed: `--version` and `serve` until GET / answers, repeated. Writes
bench/results/peers-latest.{md,json} and peers-<date>.{md,json}.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bench import peer_report, procstat, report
from bench.peer_targets import (
    ServerProcess,
    Target,
    checkout_of,
    installed_version,
    supports,
    version_command,
)
from bench.proxy_process import checkout_env, free_port
from bench.run import HOST, RESULTS_DIR, Harness, split_cores
from bench.scenarios import SCENARIOS

# Scenario key -> (concurrency, requests, time cap s). The cap stops new requests on a slow target.
POINTS: dict[str, tuple[int, int, float]] = {
    "tr-burst": (1, 100, 15.0),
    "tr-5ms": (64, 192, 30.0),
    "pt-burst": (1, 100, 15.0),
    "pt-5ms": (64, 192, 30.0),
}
STARTUP_RUNS = {Target.CCM_TUI: 10, Target.BASELINE: 10, Target.CCR: 10, Target.LITELLM: 3}
INSTALL_HINT = {Target.CCR: "make bench-peers", Target.LITELLM: "make bench-peers LITELLM=1"}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def rotate(items: list[str], by: int) -> list[str]:
    by %= len(items)
    return items[by:] + items[:by]


def time_version(target: Target, cpus: set[int], runs: int, checkout: Path | None) -> list[float]:
    walls = []
    env = checkout_env(dict(os.environ), checkout) if checkout is not None else None
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(
            version_command(target),
            env=env,
            check=True,
            capture_output=True,
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
        )
        walls.append(time.perf_counter() - started)
    return walls


def time_ready(
    target: Target, mock_origin: str, cpus: set[int], workdir: Path, runs: int, checkout: Path | None
) -> list[float]:
    readies = []
    for run in range(runs):
        where = workdir / f"startup-{target}-{run}"
        server = ServerProcess(target, None, mock_origin, free_port(), cpus, where, checkout)
        server.spawn()
        try:
            readies.append(server.wait_ready())
        finally:
            server.stop()
    return readies


class PeerBench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.targets = [Target.CCM_TUI, *([Target.BASELINE] if args.baseline else []), Target.CCR]
        self.targets += [Target.LITELLM] if args.litellm else []
        self.proxy_cpus, self.harness_cpus = split_cores(not args.no_pin)
        self.harness = Harness(self.harness_cpus)
        self.tmp = Path(tempfile.mkdtemp(prefix="ccm-peers-"))
        self.records: list[dict[str, Any]] = []
        self.startup: dict[str, dict[str, list[float]]] = {}

    @property
    def mock_origin(self) -> str:
        return f"http://{HOST}:{self.harness.mock_port}"

    def measure_startup(self) -> None:
        for target in self.targets:
            runs = STARTUP_RUNS[target] if not self.args.startup_runs else self.args.startup_runs
            checkout = checkout_of(target, self.args.baseline)
            version = time_version(target, self.proxy_cpus, runs, checkout)
            ready = time_ready(target, self.mock_origin, self.proxy_cpus, self.tmp, max(3, runs // 2), checkout)
            self.startup[str(target)] = {"version": version, "ready": ready}
            log(
                f"start-up {target}: --version {1000 * min(version):.0f}–{1000 * max(version):.0f} ms, "
                f"ready {1000 * min(ready):.0f}–{1000 * max(ready):.0f} ms"
            )

    async def job(self, scenario: str, target: str, port: int, pid: int | None, point: tuple[int, int, float]) -> dict:
        concurrency, requests, cap = point
        return await self.harness.call(
            {
                "op": "run",
                "scenario": scenario,
                "target": "direct" if target == peer_report.DIRECT else "proxy",
                "host": HOST,
                "port": port,
                "concurrency": concurrency,
                "requests": requests,
                "time_cap_s": cap,
                "request_timeout_s": 60,
                "watch_pid": pid,
                "mock_pid": self.harness.mock_pid,
            }
        )

    async def run_point(self, key: str) -> None:
        scenario = SCENARIOS[key]
        servers: dict[str, ServerProcess] = {}
        try:
            for target in self.targets:
                if supports(target, scenario):
                    checkout = checkout_of(target, self.args.baseline)
                    server = ServerProcess(target, scenario, self.mock_origin, free_port(), self.proxy_cpus,
                                           self.tmp / f"{key}-{target}", checkout)  # fmt: skip
                    server.spawn()
                    servers[str(target)] = server
            for server in servers.values():
                server.wait_ready()
                server.pause()
            for name, server in servers.items():  # warm-up: connections, caches, JIT
                server.resume()
                await self.job(key, name, server.port, server.pid, (4, 16, 10.0))
                server.pause()
            order = [peer_report.DIRECT, *servers]
            for rep in range(self.args.reps):
                for target in rotate(order, rep):
                    server = servers.get(target)
                    if server is not None:
                        server.resume()
                    port = server.port if server else self.harness.mock_port
                    raw = await self.job(key, target, port, server.pid if server else None, POINTS[key])
                    if server is not None:
                        server.pause()
                        if not server.alive():
                            raise RuntimeError(f"{target} died during {key}: {server.log_tail()}")
                    summary = report.summarize(raw)
                    self.records.append({"rep": rep, "scenario": key, "target": target, **summary})
                    cpu = summary["cpu_ms_per_req"]
                    log(
                        f"[rep {rep + 1}] {key:8} {target:8}: {summary['completed']} ok {summary['errors']} err, "
                        f"ttfb p50 {summary['ttfb_p50'] or 0:.1f} p99 {summary['ttfb_p99'] or 0:.1f} ms"
                        + (f", cpu {cpu:.2f} ms/req, rss {summary['peak_rss_mb'] or 0:.0f} MB" if cpu else "")
                        + (f" {summary['error_samples'][:1]}" if summary["errors"] else "")
                    )
        finally:
            for server in servers.values():
                server.stop()


def check_installed(targets: list[Target], baseline: Path | None) -> dict[str, str]:
    versions = {}
    for target in targets:
        version = installed_version(target, baseline)
        if version is None and target is Target.BASELINE:
            raise SystemExit(f"--baseline {baseline}: not a ccm-tui checkout (no ccm_tui/__init__.py)")
        if version is None:
            raise SystemExit(f"{target} is not installed: run `{INSTALL_HINT[target]}` (installs into build/peers/)")
        versions[str(target)] = version
    if shutil.which("node") is None:
        raise SystemExit("node is not on PATH (Claude Code Router needs Node 20+)")
    return versions


async def run(args: argparse.Namespace) -> int:
    started_wall = dt.datetime.now(dt.UTC)
    started = time.monotonic()
    loadavg_start = os.getloadavg()
    bench = PeerBench(args)
    versions = check_installed(bench.targets, args.baseline)
    os.sched_setaffinity(0, bench.harness_cpus or os.sched_getaffinity(0))
    await bench.harness.start()
    try:
        if not args.no_startup:
            bench.measure_startup()
        for key in args.points.split(","):
            await bench.run_point(key)
    finally:
        await bench.harness.stop()
    shutil.rmtree(bench.tmp, ignore_errors=True)
    meta = {
        "reps": args.reps,
        "started": started_wall.strftime("%Y-%m-%d %H:%M UTC"),
        "duration_s": time.monotonic() - started,
        "machine": procstat.machine_summary(),
        "python": platform.python_version(),
        "node": subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip(),
        "loadavg_start": loadavg_start,
        "loadavg_end": os.getloadavg(),
        "proxy_cpus": ",".join(map(str, sorted(bench.proxy_cpus))) or "any",
        "harness_cpus": ",".join(map(str, sorted(bench.harness_cpus))) or "any",
        "targets": [str(t) for t in bench.targets],
        "versions": versions,
        "points": {
            k: {"concurrency": c, "requests": n, "profile": SCENARIOS[k].profile.segment()}
            for k, (c, n, _) in POINTS.items()
        },
    }
    aggregated = peer_report.aggregate(bench.records)
    result = {"meta": meta, "aggregated": aggregated, "startup": bench.startup, "runs": bench.records}
    text = peer_report.markdown(result)
    args.out.mkdir(parents=True, exist_ok=True)
    json_result = {**result, "aggregated": [{"scenario": s, "target": t, **row} for (s, t), row in aggregated.items()]}
    for name in ("peers-latest", f"peers-{started_wall:%Y-%m-%d}"):
        (args.out / f"{name}.json").write_bytes(orjson.dumps(json_result, option=orjson.OPT_INDENT_2))
        (args.out / f"{name}.md").write_text(text)
    if args.update_readme:
        readme = Path(__file__).parent / "README.md"
        readme.write_text(peer_report.replace_readme(readme.read_text(), text))
    print(text)
    print(f"bench-peers took {meta['duration_s']:.0f} s", flush=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__.splitlines()[0])
    parser.add_argument("--litellm", action="store_true", help="also measure LiteLLM proxy (slow to start)")
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="CHECKOUT",
        help="also measure the ccm-tui of another checkout (a git worktree of main, say) as `ccm-tui base`",
    )
    parser.add_argument("--reps", type=int, default=3, help="repetitions (default 3)")
    parser.add_argument("--points", default=",".join(POINTS), help="comma list of " + ", ".join(POINTS))
    parser.add_argument("--startup-runs", type=int, default=0, help="start-up repetitions (default per target)")
    parser.add_argument("--no-startup", action="store_true", help="skip the start-up timing")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    parser.add_argument("--update-readme", action="store_true", help="also put the report into bench/README.md")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="where peers-*.md / .json go")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    unknown = set(args.points.split(",")) - set(POINTS)
    if unknown:
        raise SystemExit(f"unknown points {sorted(unknown)}; choose from {', '.join(POINTS)}")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
