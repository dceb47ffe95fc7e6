"""Sampling the proxy with py-spy while a point runs, and summarising where its CPU time goes.

`PySpy(pid, out)` attaches to the running proxy (`py-spy record --format raw`, collapsed stacks), stops on
SIGINT when the measured run ends, and `summarize_collapsed` turns the stacks into self-time tables (by owner:
ccm-tui's packages, each library, the event loop; and by function) and an inclusive-time table, so a target
that is missed comes with the functions that explain it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import signal
import sys
from collections import Counter
from pathlib import Path

_LINE = re.compile(r":\d+\)$")


def py_spy_path() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


class PySpy:
    def __init__(self, pid: int, out: Path, rate: int = 250) -> None:
        self.pid, self.out, self.rate = pid, out, rate
        self._process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> PySpy:
        binary = py_spy_path()
        if binary is None:
            raise RuntimeError("py-spy is not installed: .venv/bin/pip install py-spy")
        self._process = await asyncio.create_subprocess_exec(
            binary, "record", "--pid", str(self.pid), "--rate", str(self.rate), "--format", "raw",
            "--output", str(self.out), "--nonblocking", "--threads",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        await asyncio.sleep(0.5)  # py-spy needs a moment to attach before the run starts
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self._process.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(self._process.wait(), 20)
        except TimeoutError:
            self._process.kill()


def _frame_name(frame: str) -> str:
    return _LINE.sub(")", frame.strip())


# With uvloop the loop itself is C: py-spy shows its time (socket I/O, callbacks) as Runner.run's own.
_LOOP_ITSELF = "asyncio/runners.py"
_OWN_PACKAGES = ("ccm_tui/routing/", "ccm_tui/translate/", "ccm_tui/providers/", "ccm_tui/proxy/", "ccm_tui/tui/")


def owner_of(frame: str) -> str:
    """Who a frame's self time belongs to: ccm-tui's package (routing/, translate/, ...), a library (its top
    module), or the event loop itself."""
    where = frame.rpartition("(")[2].rstrip(")")
    if where.startswith(_LOOP_ITSELF):
        return "event loop itself (uvloop: socket I/O, callbacks)"
    for package in _OWN_PACKAGES:
        if where.startswith(package):
            return "ccm-tui " + package.removeprefix("ccm_tui/")
    if where.startswith("ccm_tui/"):
        return "ccm-tui (other modules)"
    return where.split("/", 1)[0] if "/" in where else "stdlib modules and generated code"


def summarize_collapsed(text: str, top: int = 25) -> str:
    """Markdown: the event-loop thread's functions with the most self and inclusive time, in % of its samples.

    Other threads (the executor's idle workers, which py-spy cannot always tell from busy ones) are counted
    apart: the proxy's work runs on the main thread's event loop.
    """
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    owners: Counter[str] = Counter()
    total = other = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        parts = stack.split(";")
        if parts and parts[0].startswith("thread (") and "MainThread" not in parts[0]:
            other += count
            continue
        frames = [_frame_name(f) for f in parts if f and not f.startswith("thread (")]
        if not frames:
            continue
        total += count
        self_time[frames[-1]] += count
        owners[owner_of(frames[-1])] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        return "(no samples)\n"
    lines = [
        f"{total} samples of the event-loop thread ({other} more in other threads).",
        "",
        "| self % | owner |",
        "|---:|---|",
    ]
    lines += [f"| {100 * n / total:.1f} | {name} |" for name, n in owners.most_common()]
    lines += ["", "| self % | function |", "|---:|---|"]
    lines += [f"| {100 * n / total:.1f} | `{name}` |" for name, n in self_time.most_common(top)]
    lines += ["", "| inclusive % | function |", "|---:|---|"]
    lines += [f"| {100 * n / total:.1f} | `{name}` |" for name, n in inclusive.most_common(top)]
    return "\n".join(lines) + "\n"
