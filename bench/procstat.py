"""Reading another process's CPU time and memory from /proc, and pinning processes to cores.

CPU time sums every thread's `schedstat` (nanoseconds, so short runs are measured exactly) and falls back to
`stat` (clock ticks). Peak RSS: writing 5 to `/proc/PID/clear_refs` resets `VmHWM`, so each measured point
reports its own peak; where that is not allowed, the load generator's sampled maximum of `VmRSS` is used.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_ns(pid: int) -> int:
    """User + system CPU time of every thread of `pid`, in nanoseconds (0 when the process is gone)."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    found = False
    for task in tasks:
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int(Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()[0])
            found = True
    if found:
        return total
    with contextlib.suppress(OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * 1_000_000_000 // _TICKS  # utime, stime
    return 0


def _status_kb(pid: int, key: str) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    return 0


def rss_kb(pid: int) -> int:
    return _status_kb(pid, "VmRSS:")


def peak_rss_kb(pid: int) -> int:
    return _status_kb(pid, "VmHWM:")


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM to the current RSS; False when the kernel or permissions do not allow it."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def pin(pid: int, cpus: set[int]) -> None:
    """Pin every existing thread of `pid` (threads started later inherit the main thread's mask)."""
    if not cpus:
        return
    try:
        tasks = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        tasks = [pid]
    for task in tasks:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(task, cpus)


def children(pid: int) -> list[int]:
    """Direct children of `pid` (to find the real process behind a wrapper like tmux's pane shell)."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                found += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
    return found


def machine_summary() -> dict[str, object]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kb = _meminfo_kb("MemTotal:")
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "usable_cpus": sorted(os.sched_getaffinity(0)),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": os.uname().release,
        "loadavg": os.getloadavg(),
    }


def _meminfo_kb(key: str) -> int:
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    return 0


def listener_pid(port: int) -> int | None:
    """The process that owns the loopback TCP socket listening on `port` (a wrapper script or launcher may
    have started it as a child, and only the server's own CPU and memory are what the bench reports)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A = LISTEN
                    inodes.add(f"socket:[{inode}]")
    if not inodes:
        return None
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{entry}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{entry}/fd/{fd}") in inodes:
                        return int(entry)
    return None
