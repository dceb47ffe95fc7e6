"""The proxies the peer bench compares: ccm-tui and its peers, their configs, and starting each one headless.

Claude Code Router (Node; npm package pinned in the Makefile, installed into build/peers/ccr) and LiteLLM proxy
(its own venv in build/peers/litellm). Every target runs with its own HOME and working directory (so it reads
only the config written here and leaves nothing behind), on a loopback port, pinned to the proxy core, with one
provider that points at the bench's mock upstream: the same profile path and wire format as ccm-tui gets.
A process can be paused (SIGSTOP) while another target is measured, so the proxy core is the measured
target's alone.
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import procstat
from bench.proxy_process import CHECKOUT, ccm_tui_command, checkout_env
from bench.scenarios import BENCH_KEY_ENV, SCENARIOS, Scenario, proxy_config

ROOT = Path(__file__).resolve().parent.parent
PEERS_DIR = ROOT / "build" / "peers"
CCR_PACKAGE_DIR = PEERS_DIR / "ccr" / "node_modules" / "@musistudio" / "claude-code-router"
CCR_CLI = CCR_PACKAGE_DIR / "dist" / "cli.js"
LITELLM_BIN = PEERS_DIR / "litellm" / "bin"
HOST = "127.0.0.1"


class Target(enum.StrEnum):
    CCM_TUI = "ccm-tui"
    BASELINE = "ccm-tui base"  # another checkout of ccm-tui (`--baseline PATH`): before/after in one run
    CCR = "CCR"
    LITELLM = "LiteLLM"


# Which upstream formats each target can serve to an Anthropic client. CCR passes Anthropic through with its
# `Anthropic` transformer; LiteLLM with an `anthropic/` model. A target missing here is reported as n/a.
UPSTREAMS: dict[Target, frozenset[str]] = {
    Target.CCM_TUI: frozenset({"openai", "anthropic"}),
    Target.BASELINE: frozenset({"openai", "anthropic"}),
    Target.CCR: frozenset({"openai", "anthropic"}),
    Target.LITELLM: frozenset({"openai", "anthropic"}),
}


def supports(target: Target, scenario: Scenario) -> bool:
    return scenario.upstream in UPSTREAMS[target]


def installed_version(target: Target, baseline: Path | None = None) -> str | None:
    """The installed version, or None when the target is not installed; ccm-tui's with its commit."""
    if target in (Target.CCM_TUI, Target.BASELINE):
        from importlib.metadata import version

        checkout = CHECKOUT if target is Target.CCM_TUI else baseline
        if checkout is None or not (checkout / "ccm_tui" / "__init__.py").exists():
            return None
        return f"{version('ccm-tui')} @ {_commit(checkout)}"
    if target is Target.CCR:
        with contextlib.suppress(OSError, ValueError, KeyError):
            if CCR_CLI.exists():
                return str(json.loads((CCR_PACKAGE_DIR / "package.json").read_text())["version"])
        return None
    for info in sorted((LITELLM_BIN.parent / "lib").glob("python3*/site-packages/litellm-*.dist-info")):
        return info.name.removeprefix("litellm-").removesuffix(".dist-info")
    return None


def _commit(checkout: Path) -> str:
    done = subprocess.run(
        ["git", "-C", str(checkout), "describe", "--always", "--dirty"], capture_output=True, text=True, check=False
    )
    return done.stdout.strip() or "unknown"


def checkout_of(target: Target, baseline: Path | None) -> Path | None:
    """The ccm-tui checkout a ccm-tui target runs from; None for the peers."""
    if target is Target.CCM_TUI:
        return CHECKOUT
    return baseline if target is Target.BASELINE else None


def _upstream_base(mock_origin: str, scenario: Scenario) -> str:
    return mock_origin + scenario.profile.base_path()


def ccr_config(mock_origin: str, port: int, scenario: Scenario) -> dict[str, object]:
    """CCR's config.json: one provider at the mock, the router's every route to it, no logging, no API key."""
    base = _upstream_base(mock_origin, scenario)
    provider: dict[str, object] = {"name": "mock", "api_key": "bench", "models": [scenario.model]}
    if scenario.upstream == "openai":
        provider["api_base_url"] = base + "/v1/chat/completions"
    else:
        provider["api_base_url"] = base + "/v1/messages"
        provider["transformer"] = {"use": ["Anthropic"]}  # CCR's documented pass-through
    route = f"mock,{scenario.model}"
    return {
        "LOG": False,
        "HOST": HOST,
        "PORT": port,
        "NON_INTERACTIVE_MODE": True,
        "API_TIMEOUT_MS": 600000,
        "Providers": [provider],
        "Router": {"default": route, "background": route, "think": route, "longContext": route},
    }


def litellm_config(mock_origin: str, scenario: Scenario) -> str:
    """LiteLLM proxy YAML: the scenario's model name mapped to the mock (openai/ translated, anthropic/ through)."""
    base = _upstream_base(mock_origin, scenario)
    model, api_base = (
        (f"openai/{scenario.model}", base + "/v1")
        if scenario.upstream == "openai"
        else (f"anthropic/{scenario.model}", base)
    )
    return (
        "model_list:\n"
        f"  - model_name: {scenario.model}\n"
        "    litellm_params:\n"
        f"      model: {model}\n"
        f"      api_base: {api_base}\n"
        "      api_key: bench\n"
        "litellm_settings:\n"
        "  telemetry: false\n"
        "general_settings:\n"
        # No master key, like the other two targets: loopback only.
        "  dangerously_permit_weak_or_unset_master_key: true\n"
    )


def litellm_env() -> dict[str, str]:
    return {
        # Anthropic-format requests to an OpenAI model go to /chat/completions (else to the Responses API,
        # which the mock, like most OpenAI-compatible upstreams, does not serve).
        "LITELLM_USE_CHAT_COMPLETIONS_URL_FOR_ANTHROPIC_MESSAGES": "true",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no fetch of the price list at start
        "LITELLM_LOG": "ERROR",
        "DISABLE_SCHEMA_UPDATE": "true",
    }


def version_command(target: Target) -> list[str]:
    if target in (Target.CCM_TUI, Target.BASELINE):
        return [*ccm_tui_command(), "--version"]
    if target is Target.CCR:
        return ["node", str(CCR_CLI), "version"]
    return [str(LITELLM_BIN / "litellm"), "--version"]


@dataclass
class ServerProcess:
    """One target serving one scenario from the mock, headless, in `workdir` (its HOME and config)."""

    target: Target
    scenario: Scenario | None  # None: serve nothing in particular (start-up timing)
    mock_origin: str
    port: int
    cpus: set[int]
    workdir: Path
    checkout: Path | None = None  # for the ccm-tui targets: the checkout whose ccm_tui runs
    pid: int = 0
    _popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _spawned_at: float = 0.0

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"

    def _command_and_env(self) -> tuple[list[str], dict[str, str]]:
        home = self.workdir / "home"
        home.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "HOME": str(home), BENCH_KEY_ENV: "bench-key", "NO_COLOR": "1"}
        scenario = self.scenario or SCENARIOS["tr-burst"]
        if self.checkout is not None:
            config = self.workdir / "ccm-tui.toml"
            config.write_text(proxy_config(self.mock_origin, self.port, [scenario.key]))
            command = [*ccm_tui_command(), "serve", "--config", str(config), "--host", HOST, "--port", str(self.port)]
            return command, checkout_env(env, self.checkout)
        if self.target is Target.CCR:
            config_dir = home / ".claude-code-router"
            config_dir.mkdir(parents=True, exist_ok=True)
            (config_dir / "config.json").write_text(json.dumps(ccr_config(self.mock_origin, self.port, scenario)))
            return ["node", str(CCR_CLI), "start"], env
        config = self.workdir / "litellm.yaml"
        config.write_text(litellm_config(self.mock_origin, scenario))
        command = [str(LITELLM_BIN / "litellm"), "--config", str(config), "--host", HOST, "--port", str(self.port)]
        return command, {**env, **litellm_env()}

    def spawn(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        command, env = self._command_and_env()
        cpus = self.cpus
        with self.log_path.open("wb") as log:
            self._popen = subprocess.Popen(
                command,
                cwd=self.workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # its own process group: stopping it reaches any child it starts
                preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
            )
        self._spawned_at = time.perf_counter()
        self.pid = self._popen.pid

    def wait_ready(self, timeout: float = 90.0) -> float:
        """Poll GET / until the server answers (any HTTP status); returns seconds since spawn. The measured
        pid becomes the process that owns the listening socket, in case a launcher started it as a child."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._popen is not None and self._popen.poll() is not None:
                raise RuntimeError(f"{self.target} exited at start: {self.log_tail()}")
            if answers_http(self.port):
                ready = time.perf_counter() - self._spawned_at
                self.pid = procstat.listener_pid(self.port) or self.pid
                if self.cpus:
                    procstat.pin(self.pid, self.cpus)
                return ready
            time.sleep(0.005)
        raise RuntimeError(f"{self.target} did not answer on port {self.port} within {timeout} s: {self.log_tail()}")

    def pause(self) -> None:
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def _signal(self, sig: signal.Signals) -> None:
        if self._popen is not None and self._popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._popen.pid, sig)

    def alive(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def stop(self, timeout: float = 15.0) -> int | None:
        if self._popen is None:
            return None
        self.resume()
        self._signal(signal.SIGTERM)
        try:
            return self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            return self._popen.wait()

    def log_tail(self, lines: int = 12) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


def answers_http(port: int) -> bool:
    """True once something on `port` answers GET / with an HTTP status line."""
    try:
        with socket.create_connection((HOST, port), timeout=2) as sock:
            sock.sendall(f"GET / HTTP/1.1\r\nhost: {HOST}:{port}\r\nconnection: close\r\n\r\n".encode())
            return sock.recv(16).startswith(b"HTTP/1.")
    except OSError:
        return False
