"""The bench orchestrator: `python -m bench.run [--quick]` runs the suite and writes bench/results/latest.{md,json}.

It starts the mock upstream and the load generator (separate processes, pinned to the harness core), writes a
ccm-tui config for the scenarios, then for each mode (headless, TUI in tmux) starts ccm-tui pinned to its own
core and runs every point against the mock directly and through the proxy, interleaved and repeated.
`--profile b:64` instead runs just that point with py-spy attached and writes the profile summary.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bench import plan, procstat, report
from bench.profiling import PySpy, summarize_collapsed
from bench.proxy_process import KeyProbe, ProxyProcess, free_port
from bench.scenarios import SCENARIOS, proxy_config

RESULTS_DIR = Path(__file__).parent / "results"
HOST = "127.0.0.1"


class Harness:
    """The mock upstream and the load generator processes."""

    def __init__(self, cpus: set[int]) -> None:
        self.cpus = ",".join(map(str, sorted(cpus)))
        self.mock: asyncio.subprocess.Process | None = None
        self.loadgen: asyncio.subprocess.Process | None = None
        self.mock_port = 0
        self.mock_pid = 0

    async def start(self) -> None:
        cpu_args = ["--cpus", self.cpus] if self.cpus else []
        self.mock = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.mock_upstream", "--host", HOST, "--watch-stdin", *cpu_args,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert self.mock.stdout is not None
        info = orjson.loads(await asyncio.wait_for(self.mock.stdout.readline(), 20))
        self.mock_port, self.mock_pid = info["port"], info["pid"]
        self.loadgen = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.loadgen", *cpu_args,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=1 << 26,
        )  # fmt: skip

    async def call(self, job: dict[str, Any]) -> dict[str, Any]:
        assert self.loadgen is not None and self.loadgen.stdin and self.loadgen.stdout
        self.loadgen.stdin.write(orjson.dumps(job) + b"\n")
        await self.loadgen.stdin.drain()
        line = await self.loadgen.stdout.readline()
        if not line:
            raise RuntimeError("the load generator exited")
        result = orjson.loads(line)
        if "fatal" in result:
            raise RuntimeError(f"load generator: {result['fatal']}")
        return result

    async def mock_stats(self) -> dict[str, int]:
        answer = await self.call({"op": "get", "host": HOST, "port": self.mock_port, "path": "/_stats"})
        return orjson.loads(answer["body"])

    async def stop(self) -> None:
        if self.loadgen is not None and self.loadgen.stdin is not None:
            with contextlib.suppress(ConnectionError):
                self.loadgen.stdin.write(b'{"op": "quit"}\n')
                await self.loadgen.stdin.drain()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.loadgen.wait(), 5)
        if self.mock is not None and self.mock.returncode is None:
            self.mock.terminate()
            await self.mock.wait()


def split_cores(pin: bool) -> tuple[set[int], set[int]]:
    """(proxy cores, harness cores): the proxy gets one core, the mock and load generator the rest."""
    cores = sorted(os.sched_getaffinity(0))
    if not pin or len(cores) < 2:
        return set(), set()
    return {cores[0]}, set(cores[1:])


class Suite:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.proxy_cpus, self.harness_cpus = split_cores(not args.no_pin)
        self.harness = Harness(self.harness_cpus)
        self.tmp = Path(tempfile.mkdtemp(prefix="ccm-bench-"))
        self.records: list[dict[str, Any]] = []
        self.proxy_exit_codes: dict[str, int | None] = {}
        self.key_idle_ms: list[float] = []
        self.durations = {key: s.profile.duration_s for key, s in SCENARIOS.items()}

    def log(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    async def __aenter__(self) -> Suite:
        os.sched_setaffinity(0, self.harness_cpus or os.sched_getaffinity(0))
        await self.harness.start()
        return self

    async def __aexit__(self, exc_type: object, *exc: object) -> None:
        await self.harness.stop()
        if exc_type is None:  # on failure the proxy logs and configs stay for a look
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            self.log(f"proxy logs and configs kept in {self.tmp}")

    def start_proxy(self, mode: str, scenario: str) -> ProxyProcess:
        port = free_port()
        name = f"{mode}-{scenario}"
        config = self.tmp / f"config-{name}.toml"
        config.write_text(proxy_config(f"http://{HOST}:{self.harness.mock_port}", port, [scenario]))
        log = self.tmp / f"proxy-{name}.log"
        proxy = ProxyProcess(mode, config, port, self.proxy_cpus, log, uvloop=self.args.proxy_uvloop)
        proxy.start()
        return proxy

    async def run_job(self, point: plan.Point, target: str, proxy: ProxyProcess) -> dict[str, Any]:
        proxied = target in ("proxy", "keyprobe")
        port = proxy.port if proxied else self.harness.mock_port
        return await self.harness.call(
            {
                "op": "run",
                "scenario": point.scenario,
                "target": "proxy" if proxied else "direct",
                "host": HOST,
                "port": port,
                "concurrency": point.concurrency,
                "requests": point.requests,
                "time_cap_s": point.time_cap_s,
                "request_timeout_s": 30,
                "watch_pid": proxy.pid if proxied else None,
                "mock_pid": self.harness.mock_pid,
            }
        )

    async def warm_up(self, proxy: ProxyProcess, scenario: str) -> None:
        warm = plan.Point(scenario, 4, 8, 3.0)
        for target in ("direct", "proxy"):
            await self.run_job(warm, target, proxy)

    async def measure(self, mode: str, rep: int, point: plan.Point, target: str, proxy: ProxyProcess) -> None:
        extra: dict[str, Any] = {}
        probe: KeyProbe | None = None
        stop_probe = asyncio.Event()
        probe_task = None
        if target == "keyprobe":
            probe = KeyProbe(proxy.session, self.args.tui_key, self.args.tui_marker, self.args.tui_close_key)
            probe_task = asyncio.create_task(probe.run_until(stop_probe))
        failover = target == "proxy" and SCENARIOS[point.scenario].failover
        before = await self.harness.mock_stats() if failover else None
        result = await self.run_job(point, target, proxy)
        if probe is not None and probe_task is not None:
            stop_probe.set()
            await probe_task
            extra["key_latencies_ms"] = probe.latencies_ms
            extra["key_failures"] = probe.failures
        if before is not None:
            after = await self.harness.mock_stats()
            status = f"status_{SCENARIOS[point.scenario].primary.status}"
            extra["failover_429s"] = after.get(status, 0) - before.get(status, 0)
        summary = report.summarize(result)
        self.records.append(
            {"mode": mode, "rep": rep, "scenario": point.scenario, "concurrency": point.concurrency,
             "target": target, "requests_planned": point.requests, **summary, "extra": extra}
        )  # fmt: skip
        cpu = f" cpu {summary['cpu_ms_per_req']:.2f} ms/req" if summary["cpu_ms_per_req"] is not None else ""
        self.log(
            f"[{mode} rep {rep + 1}] ({point.scenario}) c={point.concurrency:<3} {target:6}: "
            f"{summary['completed']} ok {summary['errors']} err, ttfb p50 {_ms(summary['ttfb_p50'])} "
            f"p99 {_ms(summary['ttfb_p99'])}, total p99 {_ms(summary['total_p99'])}, "
            f"{summary['rps']:.0f} req/s{cpu} ({summary['wall_s']:.1f} s)"
        )

    async def run_mode(self, mode: str) -> None:
        points = plan.plan_points(self.args.quick, mode, self.durations, self.args.scenarios, self.args.levels)
        for scenario in dict.fromkeys(p.scenario for p in points):
            await self.run_scenario(mode, scenario, [p for p in points if p.scenario == scenario])

    async def run_scenario(self, mode: str, scenario: str, points: list[plan.Point]) -> None:
        """One fresh proxy process per scenario (its peak RSS and CPU are that scenario's own); every
        repetition of every point, direct and proxied back to back, their order alternating."""
        proxy = self.start_proxy(mode, scenario)
        if mode == "tui" and scenario == plan.KEY_PROBE_POINT[0]:
            # The floor: how fast a key shows with no load (tmux round trips and one Textual refresh).
            idle = KeyProbe(proxy.session, self.args.tui_key, self.args.tui_marker, self.args.tui_close_key)
            for _ in range(3):
                await idle.press_once()
            self.key_idle_ms = idle.latencies_ms
        self.log(f"== {mode}: ccm-tui pid {proxy.pid} on port {proxy.port}, {len(points)} points x {self.args.reps}")
        key_probe = (
            mode == "tui"
            and scenario == plan.KEY_PROBE_POINT[0]
            and plan.KEY_PROBE_POINT[1] in {p.concurrency for p in points}
        )
        try:
            await self.warm_up(proxy, scenario)
            for rep in range(self.args.reps):
                runs = [
                    (point, target)
                    for index, point in enumerate(points)
                    # alternate which of the pair goes first
                    for target in (("direct", "proxy") if (rep + index) % 2 == 0 else ("proxy", "direct"))
                ]
                if key_probe:
                    runs.append((plan.key_probe_point(self.args.quick, self.durations), "keyprobe"))
                for point, target in runs:
                    await self.measure(mode, rep, point, target, proxy)
                    if not proxy.alive():
                        raise RuntimeError(f"ccm-tui ({mode}) died: {proxy.log_tail()}")
            if mode == "tui" and scenario == plan.KEY_PROBE_POINT[0]:
                self.args.out.mkdir(parents=True, exist_ok=True)
                (self.args.out / "tui-screen.txt").write_text(proxy.screen() + "\n")
        finally:
            self.proxy_exit_codes[f"{mode}-{scenario}"] = proxy.stop()

    async def profile(self, spec: str) -> Path:
        scenario, _, rest = spec.partition(":")
        concurrency_text, _, mode = rest.partition(":")
        mode = mode or "headless"
        concurrency = int(concurrency_text or 64)
        table = plan.FULL_REQUESTS.get(scenario, {64: 192, 256: 512})  # the peer points (tr-5ms, ...) too
        requests = table.get(concurrency, max(table.values()))
        cap = max(8.0, 2 * self.durations[scenario] * -(-requests // concurrency))
        point = plan.Point(scenario, concurrency, requests, cap)
        proxy = self.start_proxy(mode, scenario)
        self.args.out.mkdir(parents=True, exist_ok=True)
        raw = self.args.out / f"profile-{scenario}-{concurrency}-{mode}.txt"
        try:
            await self.warm_up(proxy, scenario)
            async with PySpy(proxy.pid, raw, rate=self.args.profile_rate):
                await self.measure(mode, 0, point, "proxy", proxy)
        finally:
            proxy.stop()
        summary = self.records[-1]
        text = (
            f"# Profile of ccm-tui ({mode}), scenario ({scenario}) at concurrency {concurrency}\n\n"
            f"py-spy, {self.args.profile_rate} Hz, non-blocking. {summary['completed']} requests, "
            f"{_ms(summary['cpu_ms_per_req'])} ms CPU per request, TTFB p99 {_ms(summary['ttfb_p99'])} ms.\n"
            f"Raw collapsed stacks: `{raw.name}` (open in speedscope.app or flamegraph.pl).\n\n"
            + summarize_collapsed(raw.read_text() if raw.exists() else "")
        )
        out = self.args.out / f"profile-{scenario}-{concurrency}-{mode}.md"
        out.write_text(text)
        self.log(text)
        return out


def harness_loop_name() -> str:
    try:
        import uvloop  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the CI-sized run (1 rep, fewer points, < 2 min)")
    parser.add_argument("--reps", type=int, help="repetitions (default 1 quick, 3 full)")
    parser.add_argument("--modes", default="headless,tui", help="comma list of headless, tui")
    parser.add_argument("--scenarios", default="abcdefg", help="subset of abcdefg")
    parser.add_argument("--levels", default=",".join(map(str, plan.LEVELS)), help="concurrency levels")
    parser.add_argument("--profile", action="append", default=[], metavar="SCN:CONC[:MODE]",
                        help="profile one point with py-spy instead of running the suite (repeatable)")  # fmt: skip
    parser.add_argument("--profile-rate", type=int, default=250, help="py-spy samples per second (default 250)")
    parser.add_argument("--profile-failures", action="store_true", help="after the suite, profile missed targets")
    parser.add_argument("--proxy-uvloop", action="store_true", help="experiment: run ccm-tui on uvloop")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    parser.add_argument("--tui-key", default="?", help="tmux key name that opens a screen in the TUI")
    parser.add_argument("--tui-marker", default="ccm-tui keys", help="text that shows once the key was handled")
    parser.add_argument("--tui-close-key", default="Escape", help="tmux key name that closes that screen")
    parser.add_argument("--update-readme", action="store_true", help="also put the table into bench/README.md")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="where latest.md / latest.json go")
    return parser


async def run_suite(args: argparse.Namespace) -> int:
    started_wall = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    started = time.monotonic()
    loadavg_start = os.getloadavg()
    async with Suite(args) as suite:
        if args.profile:
            for spec in args.profile:
                await suite.profile(spec)
            return 0
        for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
            await suite.run_mode(mode)
        rows = report.aggregate(suite.records)
        targets = report.evaluate_targets(rows)
        if args.profile_failures:
            for target in report.TARGETS:
                missed = next(t for t in targets if t["target"] == target.label)["status"] == "NOT MET"
                if missed:
                    await suite.profile(f"{target.scenario}:{target.concurrency}:{target.mode}")
    meta = {
        "kind": "quick" if args.quick else "full",
        "reps": args.reps,
        "started": started_wall,
        "duration_s": time.monotonic() - started,
        "machine": procstat.machine_summary(),
        "python": platform.python_version(),
        "loadavg_start": loadavg_start,
        "loadavg_end": os.getloadavg(),
        "proxy_cpus": ",".join(map(str, sorted(suite.proxy_cpus))) or "any",
        "harness_cpus": ",".join(map(str, sorted(suite.harness_cpus))) or "any",
        "proxy_exit_codes": suite.proxy_exit_codes,
        "key_press_idle_ms": suite.key_idle_ms,
        "proxy_event_loop": "uvloop (experiment)" if args.proxy_uvloop else "asyncio (as shipped)",
        "harness_event_loop": harness_loop_name(),
        "scenarios": {
            k: {"title": s.title, "profile": s.profile.segment(), "upstream": s.upstream} for k, s in SCENARIOS.items()
        },
    }
    result = {"meta": meta, "targets": targets, "rows": rows, "runs": suite.records}
    text = report.markdown(result)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in ("latest", meta["kind"]):
        (args.out / f"{name}.json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
        (args.out / f"{name}.md").write_text(text)
    if args.update_readme:
        readme = Path(__file__).parent / "README.md"
        readme.write_text(report.replace_results(readme.read_text(), text))
    print(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.reps = args.reps or (1 if args.quick else 3)
    args.levels = tuple(int(v) for v in args.levels.split(","))
    return asyncio.run(run_suite(args))


if __name__ == "__main__":
    sys.exit(main())
