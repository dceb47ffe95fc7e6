"""Starting and stopping the proxy under test: headless (`ccm-tui serve`) or the TUI inside tmux at 160x48.

The proxy is pinned to its own core(s); the tmux server, which renders the TUI's output, is pinned to the
harness core so it does not compete with the proxy. `KeyProbe` measures how fast the TUI reacts to a key:
it sends the key with `tmux send-keys` and polls `tmux capture-pane` until a marker text appears.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import procstat
from bench.scenarios import BENCH_KEY_ENV

TUI_SIZE = (160, 48)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# The checkout this bench belongs to: the ccm-tui it measures (not whichever one the venv's script would import).
CHECKOUT = Path(__file__).resolve().parent.parent


def checkout_env(env: dict[str, str], checkout: Path = CHECKOUT) -> dict[str, str]:
    """`env` with `checkout` first on PYTHONPATH, so the ccm-tui started imports that checkout's ccm_tui
    (the venv's editable install may point at another worktree)."""
    rest = env.get("PYTHONPATH")
    return {**env, "PYTHONPATH": f"{checkout}{os.pathsep}{rest}" if rest else str(checkout)}


def ccm_tui_command(uvloop: bool = False) -> list[str]:
    """The ccm-tui command (run it with `checkout_env`); `uvloop` forces uvloop's event loop (an experiment)."""
    if uvloop:
        code = (
            "import asyncio, sys, uvloop; asyncio.set_event_loop_policy(uvloop.EventLoopPolicy()); "
            "from ccm_tui.cli import main; sys.exit(main())"
        )
        return [sys.executable, "-c", code]
    script = Path(sys.executable).parent / "ccm-tui"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from ccm_tui.cli import main; sys.exit(main())"]


class ProxyStartError(RuntimeError):
    pass


@dataclass
class ProxyProcess:
    """One running ccm-tui. `mode` is "headless" or "tui"."""

    mode: str
    config_path: Path
    port: int
    cpus: set[int]
    log_path: Path
    uvloop: bool = False
    pid: int = 0
    session: str = ""
    _popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self, timeout: float = 30.0) -> None:
        env = checkout_env({**os.environ, BENCH_KEY_ENV: "bench-key"})
        command = ccm_tui_command(self.uvloop)
        if self.mode == "headless":
            command += ["serve", "--config", str(self.config_path), "--host", "127.0.0.1", "--port", str(self.port)]
            cpus = self.cpus
            with self.log_path.open("wb") as log:
                self._popen = subprocess.Popen(
                    command,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
                )
            self.pid = self._popen.pid
        else:
            self._start_tmux([*command, "--config", str(self.config_path), "--port", str(self.port)], env)
        self._wait_ready(timeout)

    def _start_tmux(self, command: list[str], env: dict[str, str]) -> None:
        if shutil.which("tmux") is None:
            raise ProxyStartError("tmux is not installed (apt-get install tmux)")
        self.session = f"ccmbench{os.getpid()}-{next(_TMUX_SERVERS)}"
        taskset = (
            ["taskset", "-c", ",".join(map(str, sorted(self.cpus)))] if self.cpus and shutil.which("taskset") else []
        )
        # No redirection: Textual draws on stderr. The TUI keeps its own log.
        inner = " ".join(
            _quote(part)
            for part in ["env", f"{BENCH_KEY_ENV}=bench-key", f"PYTHONPATH={env['PYTHONPATH']}", *taskset, *command]
        )
        width, height = TUI_SIZE
        subprocess.run(
            [
                "tmux",
                "-L",
                self.session,
                "new-session",
                "-d",
                "-s",
                self.session,
                "-x",
                str(width),
                "-y",
                str(height),
                f"exec {inner}",
            ],
            check=True,
            env={**env, "TERM": env.get("TERM", "xterm-256color")},
        )
        _tmux(self.session, "set-option", "-t", self.session, "remain-on-exit", "on")
        pane_pid = int(_tmux(self.session, "display-message", "-p", "-t", self.session, "#{pane_pid}"))
        self.pid = pane_pid
        server_pid = int(_tmux(self.session, "display-message", "-p", "-t", self.session, "#{pid}"))
        harness = set(os.sched_getaffinity(0)) - self.cpus
        if harness:
            procstat.pin(server_pid, harness)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise ProxyStartError(f"ccm-tui ({self.mode}) exited at start: {self.log_tail()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                if self.cpus:
                    procstat.pin(self.pid, self.cpus)
                return
            time.sleep(0.05)
        raise ProxyStartError(f"ccm-tui ({self.mode}) did not listen on port {self.port} within {timeout} s")

    def alive(self) -> bool:
        if self._popen is not None:
            return self._popen.poll() is None
        if self.session and self.pid:
            try:
                state = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                return False
            return state != "Z"
        return False

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of the headless log, or of the TUI's screen (a crash's traceback stays on it)."""
        if self.session:
            return "\n".join(self.screen().splitlines()[-lines:])
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM and wait; returns the exit code when known (headless)."""
        if self.pid and self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
        code: int | None = None
        if self._popen is not None:
            try:
                code = self._popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self._popen.kill()
                code = self._popen.wait()
        if self.session:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.alive():
                time.sleep(0.05)
            if self.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
            _tmux(self.session, "kill-server")
            self.session = ""
        return code

    def screen(self) -> str:
        return _tmux(self.session, "capture-pane", "-p", "-t", self.session) if self.session else ""


# Each TUI gets a private tmux server (`tmux -L`): the bench never touches anyone else's sessions, and a
# server being shut down never collides with the next one.
_TMUX_SERVERS = itertools.count(1)


def _tmux(socket_name: str, *args: str) -> str:
    result = subprocess.run(["tmux", "-L", socket_name, *args], capture_output=True, text=True, check=False)
    return result.stdout.strip()


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


@dataclass
class KeyProbe:
    """Press `key` in the TUI, wait until `marker` shows on screen, press `close_key`, wait until it is gone."""

    session: str
    key: str
    marker: str
    close_key: str = "Escape"
    timeout: float = 3.0
    latencies_ms: list[float] = field(default_factory=list)
    failures: int = 0

    async def _capture(self) -> str:
        process = await asyncio.create_subprocess_exec(
            "tmux", "-L", self.session, "capture-pane", "-p", "-t", self.session, stdout=asyncio.subprocess.PIPE
        )
        out, _ = await process.communicate()
        return out.decode(errors="replace")

    async def _send(self, key: str) -> None:
        process = await asyncio.create_subprocess_exec("tmux", "-L", self.session, "send-keys", "-t", self.session, key)
        await process.wait()

    async def _until(self, present: bool) -> float | None:
        started = time.perf_counter()
        while time.perf_counter() - started < self.timeout:
            if (self.marker in await self._capture()) == present:
                return (time.perf_counter() - started) * 1000
            await asyncio.sleep(0.005)
        return None

    async def press_once(self) -> None:
        if self.marker in await self._capture():
            await self._send(self.close_key)
            await self._until(False)
        started = time.perf_counter()
        await self._send(self.key)
        shown = await self._until(True)
        if shown is None:
            self.failures += 1
        else:
            self.latencies_ms.append(round((time.perf_counter() - started) * 1000, 2))
        await self._send(self.close_key)
        await self._until(False)

    async def run_until(self, stop: asyncio.Event, interval: float = 0.4) -> None:
        while not stop.is_set():
            await self.press_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
