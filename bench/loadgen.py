"""The load generator: its own process, closed-loop workers over raw asyncio HTTP/1.1 keep-alive connections.

Driven over stdin/stdout with one JSON object per line (`python -m bench.loadgen [--cpus 1]`):
  {"op": "run", "scenario": "b", "target": "proxy", "host": ..., "port": ..., "concurrency": 64,
   "requests": 256, "time_cap_s": 5, "watch_pid": <proxy pid or null>, "mock_pid": <pid>}
  -> {"completed", "errors", "error_samples", "ttfb_ms", "total_ms", "wall_s", "watch_cpu_ms",
      "watch_peak_rss_kb", "rss_method", "mock_cpu_ms", "loadgen_cpu_ms"}
  {"op": "get", "host", "port", "path"} -> {"status", "body"}     (the mock's /_stats)
  {"op": "quit"}
A run opens `concurrency` connections first (not timed), then each worker sends requests back to back until
`requests` have been started or `time_cap_s` has passed; every answer is checked (bench.validate).
TTFB is the time from writing the request to the first body bytes; total is to the end of the body.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from bench import procstat
from bench.mock_upstream import install_fast_loop
from bench.scenarios import SCENARIOS, RequestSpec, request_for
from bench.validate import BodyChecker

# Unique across every job this process runs, so a warm-up never leaves a name that a later run reuses.
_MODEL_NUMBERS = itertools.count(1)


class ResponseError(Exception):
    """A response that is wrong (status, framing or content): counted as an error, not a crash."""


@dataclass
class RunState:
    spec: RequestSpec
    host: str
    port: int
    wire_request: bytes
    total: int
    deadline: float
    request_timeout: float
    started: int = 0
    ttfb_ms: list[float] = field(default_factory=list)
    total_ms: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)

    def take(self) -> bytes | None:
        """The next request's bytes, or None when the count or the time cap is reached."""
        if self.started >= self.total or time.perf_counter() >= self.deadline:
            return None
        self.started += 1
        if self.spec.unique_model:
            return self.spec.wire_request(self.host, self.port, next(_MODEL_NUMBERS))
        return self.wire_request

    def fail(self, message: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(message[:300])


async def read_response(reader: asyncio.StreamReader, checker: BodyChecker) -> tuple[int, float, bool]:
    """Read one response; feed the body to `checker`. Returns (status, first body bytes at, keep-alive)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name:
            headers[name.strip().lower()] = value.strip().lower()
    keep_alive = headers.get(b"connection") != b"close"
    first: float | None = None
    body_parts: list[bytes] = []
    feed = checker.feed if status == 200 else body_parts.append
    if headers.get(b"transfer-encoding") == b"chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            data = await reader.readexactly(size + 2)
            if first is None:
                first = time.perf_counter()
            feed(data[:-2])
    elif b"content-length" in headers:
        length = int(headers[b"content-length"])
        data = await reader.readexactly(length) if length else b""
        first = time.perf_counter()
        feed(data)
    else:
        data = await reader.read()
        first = time.perf_counter()
        feed(data)
        keep_alive = False
    if status != 200:
        raise ResponseError(f"HTTP {status}: {b''.join(body_parts)[:200].decode('utf-8', 'replace')}")
    return status, first if first is not None else time.perf_counter(), keep_alive


async def _open(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(host, port, limit=1 << 22)


async def worker(state: RunState, host: str, port: int, connection: tuple[Any, Any] | None) -> None:
    while (request := state.take()) is not None:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(state.request_timeout):
                if connection is None:
                    connection = await _open(host, port)
                reader, writer = connection
                writer.write(request)
                if writer.transport.get_write_buffer_size():
                    await writer.drain()
                checker = state.spec.checker()
                _, first, keep_alive = await read_response(reader, checker)
                ended = time.perf_counter()
                problem = checker.finish()
        except (ResponseError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            state.fail(f"{type(exc).__name__}: {exc}")
            connection = _close(connection)
            continue
        except TimeoutError:
            state.fail(f"timeout after {state.request_timeout} s")
            connection = _close(connection)
            continue
        if problem is not None:
            state.fail(problem)
        else:
            state.ttfb_ms.append(round((first - started) * 1000, 4))
            state.total_ms.append(round((ended - started) * 1000, 4))
        if not keep_alive:
            connection = _close(connection)
    _close(connection)


def _close(connection: tuple[Any, Any] | None) -> None:
    if connection is not None:
        connection[1].close()
    return None


async def _sample_rss(pid: int, peak: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], procstat.rss_kb(pid))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.05)


async def run_job(job: dict[str, Any]) -> dict[str, Any]:
    scenario = SCENARIOS[job["scenario"]]
    spec = request_for(scenario, job["target"])
    host, port, concurrency = job["host"], int(job["port"]), int(job["concurrency"])
    opened = await asyncio.gather(*(_open(host, port) for _ in range(concurrency)), return_exceptions=True)
    connections = [c if isinstance(c, tuple) else None for c in opened]
    watch_pid, mock_pid = job.get("watch_pid"), job.get("mock_pid")
    hwm_reset = bool(watch_pid) and procstat.reset_peak_rss(watch_pid)
    sampled_peak = [procstat.rss_kb(watch_pid) if watch_pid else 0]
    stop_sampling = asyncio.Event()
    sampler = asyncio.create_task(_sample_rss(watch_pid, sampled_peak, stop_sampling)) if watch_pid else None
    gc.collect()
    gc.disable()  # a collection pause inside a timed request would be charged to the proxy
    watch_cpu0 = procstat.cpu_ns(watch_pid) if watch_pid else 0
    mock_cpu0 = procstat.cpu_ns(mock_pid) if mock_pid else 0
    own_cpu0 = time.process_time()
    started = time.perf_counter()
    state = RunState(
        spec=spec,
        host=host,
        port=port,
        wire_request=spec.wire_request(host, port),
        total=int(job["requests"]),
        deadline=started + float(job["time_cap_s"]),
        request_timeout=float(job.get("request_timeout_s", 30)),
    )
    await asyncio.gather(*(worker(state, host, port, connection) for connection in connections))
    wall = time.perf_counter() - started
    own_cpu = time.process_time() - own_cpu0
    watch_cpu = (procstat.cpu_ns(watch_pid) - watch_cpu0) if watch_pid else 0
    mock_cpu = (procstat.cpu_ns(mock_pid) - mock_cpu0) if mock_pid else 0
    gc.enable()
    stop_sampling.set()
    if sampler is not None:
        await sampler
    peak_kb = 0
    if watch_pid:
        peak_kb = max(procstat.peak_rss_kb(watch_pid), sampled_peak[0]) if hwm_reset else sampled_peak[0]
    return {
        "completed": len(state.ttfb_ms),
        "errors": state.errors,
        "error_samples": state.error_samples,
        "ttfb_ms": state.ttfb_ms,
        "total_ms": state.total_ms,
        "wall_s": round(wall, 4),
        "watch_cpu_ms": round(watch_cpu / 1e6, 3),
        "watch_peak_rss_kb": peak_kb,
        "rss_method": "VmHWM" if hwm_reset else "sampled VmRSS",
        "mock_cpu_ms": round(mock_cpu / 1e6, 3),
        "loadgen_cpu_ms": round(own_cpu * 1000, 3),
    }


async def http_get(host: str, port: int, path: str) -> dict[str, Any]:
    reader, writer = await _open(host, port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        body = await reader.readexactly(length)
        return {"status": int(head[9:12]), "body": body.decode()}
    finally:
        writer.close()


async def serve_jobs() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        job = orjson.loads(line)
        try:
            if job["op"] == "quit":
                break
            if job["op"] == "run":
                result = await run_job(job)
            elif job["op"] == "get":
                result = await http_get(job["host"], int(job["port"]), job["path"])
            else:
                result = {"fatal": f"unknown op {job['op']!r}"}
        except Exception as exc:  # report, keep serving: the orchestrator decides what a failure means
            result = {"fatal": f"{type(exc).__name__}: {exc}"}
        sys.stdout.buffer.write(orjson.dumps(result) + b"\n")
        sys.stdout.flush()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpus", default="", help="comma-separated CPU ids to pin this process to")
    args = parser.parse_args(argv)
    if args.cpus:
        os.sched_setaffinity(0, {int(c) for c in args.cpus.split(",")})
    install_fast_loop()
    asyncio.run(serve_jobs())


if __name__ == "__main__":
    main()
