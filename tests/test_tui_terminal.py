"""When the TUI's terminal goes away (tmux pane or SSH session closed) the process drains, flushes and exits 0.

Runs the real `ccm-tui` inside a detached tmux session on a private tmux socket, waits until it has
announced itself (the instance state file), kills the session (tmux hangs up the pane's terminal: SIGHUP and
EIO on every later write), and waits — bounded, polling for the outcome — for the exit code that a small
wrapper process records. The wrapper ignores the hangup itself so it survives to write the code down.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

WRAPPER = """
import signal, subprocess, sys
signal.signal(signal.SIGHUP, signal.SIG_IGN)
child = subprocess.Popen(sys.argv[2:], preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL))
code = child.wait()
open(sys.argv[1], "w").write(str(code))
"""


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout} s")
        time.sleep(0.05)  # polling an outside process's state, not synchronising on time


def test_closing_the_terminal_drains_and_exits_0_within_seconds(tmp_path: Path) -> None:
    socket_name = f"ccm-test-{os.getpid()}-{time.monotonic_ns()}"
    state = tmp_path / "state"
    instance = state / "ccm-tui" / "instance.json"
    exit_file = tmp_path / "exit-code"
    wrapper = tmp_path / "wrapper.py"
    wrapper.write_text(WRAPPER)
    env = {
        **os.environ,
        "HOME": str(tmp_path / "home"),
        "XDG_STATE_HOME": str(state),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "TERM": "xterm-256color",
        "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
    }
    config = tmp_path / "config.toml"  # a provider that is never contacted: nothing but the terminal matters here
    config.write_text(
        "[history]\nenabled = false\n[[providers]]\nname='a'\nkind='anthropic'\nbase_url='http://127.0.0.1:9'\n"
    )
    ccm = [sys.executable, "-m", "ccm_tui", "--config", str(config), "--port", "0"]
    command = [sys.executable, str(wrapper), str(exit_file), *ccm]
    tmux = ["tmux", "-L", socket_name, "-f", "/dev/null"]
    # A fresh tmux server (private socket) started with `env`: its session's shell command inherits it.
    subprocess.run([*tmux, "new-session", "-d", "-x", "80", "-y", "24", shlex.join(command)], check=True, env=env)
    try:
        wait_for(instance.exists, 30, "ccm-tui did not announce itself")
        pid = json.loads(instance.read_text())["pid"]
        subprocess.run([*tmux, "kill-server"], check=True, env=env)  # the terminal goes away
        closed = time.monotonic()
        wait_for(exit_file.exists, 10, "ccm-tui did not exit after its terminal went away")
        took = time.monotonic() - closed
    finally:
        subprocess.run([*tmux, "kill-server"], env=env, capture_output=True)
        if instance.exists() and not exit_file.exists():  # it hung: do not leave it running
            with contextlib.suppress(ProcessLookupError, ValueError, KeyError):
                os.kill(json.loads(instance.read_text())["pid"], signal.SIGKILL)
    assert exit_file.read_text() == "0"
    assert took < 8
    assert not instance.exists(), "stop() ran: the state file is removed"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
