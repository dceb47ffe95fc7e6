"""`ccm-tui claude`: Claude Code wired to a running ccm-tui, found through the state file the service writes.

The launcher runs as a real subprocess (`python -m ccm_tui claude ...`) against a real proxy (Service, on an
ephemeral loopback port, a mock Anthropic upstream behind it). The end-to-end test runs the real Claude Code
CLI from build/claude through it; the argument and exit-code tests use a tiny stand-in executable that
records what it was given.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from ccm_tui.config import ProviderSettings, ServerSettings, Settings
from ccm_tui.core.events import Event, RequestFinished
from ccm_tui.core.hints import RequestClass
from ccm_tui.proxy.server import bind_socket
from ccm_tui.service import Instance, Service, instance_path, read_instance, write_instance
from tests.mocks.upstreams import AnthropicMock
from tests.test_claude_code_e2e import claude_binary

PROXY_KEY = "ccm-proxy-key-for-the-launcher-test"
RECORDED_VARIABLES = (
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_API_KEY",
    "CLAUDE_CODE_GATEWAY_HINT_HEADERS",
)


def state_home(tmp_path: Path) -> Path:
    return tmp_path / "state"


def state_file(tmp_path: Path) -> Path:
    """Where platformdirs puts the instance file for XDG_STATE_HOME=state_home (what the launcher reads)."""
    return state_home(tmp_path) / "ccm-tui" / "instance.json"


async def launch(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 180
) -> tuple[int, str, str]:
    home = tmp_path / "claude-home"
    home.mkdir(exist_ok=True)
    base = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "XDG_STATE_HOME": str(state_home(tmp_path)),
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "IS_SANDBOX": "1",
        "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ccm_tui",
        "claude",
        *args,
        env={**base, **(env or {})},
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=timeout)
    return process.returncode or 0, out.decode(), err.decode()


def stand_in(tmp_path: Path, exit_code: int = 0) -> Path:
    """An executable that writes its arguments and the variables the launcher sets to record.json."""
    script = tmp_path / "fake-claude"
    record = tmp_path / "record.json"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"names = {RECORDED_VARIABLES!r}\n"
        "env = {n: os.environ.get(n) for n in names}\n"
        f"json.dump({{'argv': sys.argv[1:], 'env': env}}, open({str(record)!r}, 'w'))\n"
        f"sys.exit({exit_code})\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def recorded(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "record.json").read_text())


@pytest.fixture
async def upstream() -> AsyncIterator[AnthropicMock]:
    async with AnthropicMock() as mock:
        yield mock


async def running_service(tmp_path: Path, upstream: AnthropicMock, proxy_key_env: str | None = None) -> Service:
    settings = Settings(
        providers=(ProviderSettings(name="mock", kind="anthropic", base_url=upstream.url, api_key_env="UP_KEY"),),
        history_enabled=False,
    )
    if proxy_key_env:
        settings = replace(settings, server=ServerSettings(auth_key_env=proxy_key_env))
    environ = {"UP_KEY": "upstream-key", **({proxy_key_env: PROXY_KEY} if proxy_key_env else {})}
    service = Service(settings, bind_socket("127.0.0.1", 0), environ=environ, state_file=state_file(tmp_path))
    await service.start()
    return service


# --- the state file ----------------------------------------------------------------------------------------------


async def test_the_service_announces_itself_in_the_state_file_and_removes_it_on_stop(tmp_path, upstream) -> None:
    service = await running_service(tmp_path, upstream, proxy_key_env="CCM_KEY")
    try:
        instance = read_instance(state_file(tmp_path))
        assert instance == Instance(service.base_url, os.getpid(), "CCM_KEY", False)
        assert PROXY_KEY not in state_file(tmp_path).read_text()  # the variable's name, never the key
    finally:
        await service.stop()
    assert not state_file(tmp_path).exists()


def test_a_state_file_of_a_dead_process_is_no_instance(tmp_path) -> None:
    path = state_file(tmp_path)
    write_instance(path, Instance("http://127.0.0.1:9", 2**22 + 12345, None, False))  # beyond pid_max
    assert read_instance(path) is None
    path.write_text("{not json")
    assert read_instance(path) is None


def test_instance_path_is_in_the_user_state_dir(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(state_home(tmp_path)))
    assert instance_path() == state_file(tmp_path)


# --- the real Claude Code -----------------------------------------------------------------------------------------


async def test_claude_p_completes_through_the_running_proxy_with_bearer_token_and_hint_headers(
    tmp_path, upstream
) -> None:
    claude = claude_binary()
    service = await running_service(tmp_path, upstream, proxy_key_env="CCM_KEY")
    assert service.runtime is not None
    events: list[Event] = []
    service.runtime.bus.subscribe(events.append)
    try:
        code, out, err = await launch(
            tmp_path,
            "-p",
            "Say hello.",
            "--output-format",
            "json",
            # A stale key in the user's shell must not reach Claude Code: sent as x-api-key it would be the
            # credential the proxy checks first, and it is wrong (the proxy would answer 401).
            env={"CCM_TUI_CLAUDE": str(claude), "CCM_KEY": PROXY_KEY, "ANTHROPIC_API_KEY": "sk-stale-wrong"},
        )
    finally:
        await service.stop()
    assert code == 0, err[-2000:]
    assert json.loads(out)["is_error"] is False
    finished = [e for e in events if isinstance(e, RequestFinished)]
    assert finished and all(e.ok for e in finished)
    assert upstream.requests, "the request reached the upstream through the proxy"
    hints = [e.hints for e in finished if e.hints.session_id]
    assert hints, "Claude Code's session header arrived"
    assert any(h.request_class is RequestClass.MAIN for h in hints)  # CLAUDE_CODE_GATEWAY_HINT_HEADERS=1 was set


# --- arguments, environment, exit codes ---------------------------------------------------------------------------


async def test_arguments_pass_unchanged_and_the_exit_code_is_claudes(tmp_path, upstream) -> None:
    service = await running_service(tmp_path, upstream)
    try:
        args = ("-p", "--url", "two words", "--model", "opus")  # a later --url is Claude Code's
        code, _, err = await launch(
            tmp_path, *args, env={"CCM_TUI_CLAUDE": str(stand_in(tmp_path, 7)), "ANTHROPIC_API_KEY": "sk-x"}
        )
    finally:
        await service.stop()
    assert code == 7, err
    record = recorded(tmp_path)
    assert record["argv"] == list(args)
    assert record["env"] == {
        "ANTHROPIC_BASE_URL": service.base_url,
        "ANTHROPIC_AUTH_TOKEN": "ccm-tui",  # no proxy key configured: any token, but one must be set
        "ANTHROPIC_API_KEY": None,
        "CLAUDE_CODE_GATEWAY_HINT_HEADERS": "1",
    }


async def test_url_option_targets_that_proxy_without_a_state_file(tmp_path, upstream) -> None:
    settings = Settings(providers=(ProviderSettings(name="m", kind="anthropic", base_url=upstream.url),))
    service = Service(replace(settings, history_enabled=False), bind_socket("127.0.0.1", 0))  # announces nothing
    await service.start()
    try:
        code, _, err = await launch(
            tmp_path, f"--url={service.base_url}/", "--", "--version", env={"CCM_TUI_CLAUDE": str(stand_in(tmp_path))}
        )
    finally:
        await service.stop()
    assert code == 0, err
    assert recorded(tmp_path)["argv"] == ["--version"]
    assert recorded(tmp_path)["env"]["ANTHROPIC_BASE_URL"] == service.base_url


async def test_no_running_instance_says_how_to_start_one(tmp_path) -> None:
    code, _, err = await launch(tmp_path, "-p", "hi", env={"CCM_TUI_CLAUDE": str(stand_in(tmp_path))})
    assert code == 2
    assert "no running ccm-tui found" in err and "ccm-tui serve" in err and "--url" in err
    assert not (tmp_path / "record.json").exists()


async def test_a_url_where_nothing_listens_is_named(tmp_path) -> None:
    from tests.conftest import free_port

    url = f"http://127.0.0.1:{free_port()}"
    code, _, err = await launch(tmp_path, "--url", url, env={"CCM_TUI_CLAUDE": str(stand_in(tmp_path))})
    assert code == 2 and f"nothing answers at {url}" in err


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"CCM_TUI_CLAUDE": "/nonexistent/claude"}, "$CCM_TUI_CLAUDE is '/nonexistent/claude'"),
        ({"PATH": "/nonexistent"}, "`claude` is not on PATH"),
    ],
)
async def test_a_missing_claude_is_explained(tmp_path, env, expected) -> None:
    code, _, err = await launch(tmp_path, "-p", "hi", env=env)
    assert code == 2 and expected in err and "Traceback" not in err


async def test_a_proxy_key_the_shell_lacks_is_named_not_guessed(tmp_path, upstream) -> None:
    service = await running_service(tmp_path, upstream, proxy_key_env="CCM_KEY")
    try:
        code, _, err = await launch(tmp_path, "-p", "hi", env={"CCM_TUI_CLAUDE": str(stand_in(tmp_path))})
        assert code == 2 and "$CCM_KEY" in err
        code, _, err = await launch(
            tmp_path, "-p", "hi", env={"CCM_TUI_CLAUDE": str(stand_in(tmp_path)), "CCM_KEY": PROXY_KEY}
        )
    finally:
        await service.stop()
    assert code == 0, err
    assert recorded(tmp_path)["env"]["ANTHROPIC_AUTH_TOKEN"] == PROXY_KEY
