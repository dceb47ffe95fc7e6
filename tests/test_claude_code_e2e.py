"""The real Claude Code CLI (`claude -p`) running a tool loop through ccm-tui to each kind of mock upstream.

`make test` installs the pinned CLI into build/claude (see Makefile). It runs offline: a clean environment,
a fresh HOME, ANTHROPIC_API_KEY=dummy, non-essential traffic off. The mocks answer the first turn with a Bash
tool call and the second with text echoing the tool's output, so the test proves the tool really ran.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from ccm_tui.config import ProviderSettings, Variant
from ccm_tui.demo.mockserver import MockServer
from ccm_tui.demo.upstreams import AnthropicMock, OpenAIMock
from ccm_tui.events import AttemptFailed

pytestmark = pytest.mark.e2e

CLAUDE = Path(__file__).resolve().parent.parent / "build" / "claude" / "node_modules" / ".bin" / "claude"
MARKER = "ccm-mock-ran-this"


def claude_binary() -> Path:
    if not CLAUDE.exists():
        if os.environ.get("CCM_SKIP_CLAUDE_E2E") == "1":
            pytest.skip("Claude Code CLI not installed and CCM_SKIP_CLAUDE_E2E=1")
        pytest.fail(f"Claude Code CLI missing at {CLAUDE}: run `make test` (it installs the pinned CLI)")
    return CLAUDE


async def run_claude(base_url: str, tmp_path: Path, prompt: str = "Run the marker command.") -> dict:
    home, work = tmp_path / "claude-home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": "dummy",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "IS_SANDBOX": "1",  # needed for bypassPermissions as root
    }
    process = await asyncio.create_subprocess_exec(
        str(claude_binary()),
        "-p",
        prompt,
        "--permission-mode",
        "bypassPermissions",
        "--output-format",
        "json",
        env=env,
        cwd=work,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=180)
    assert process.returncode == 0, f"claude exited {process.returncode}: {err.decode()[-2000:]}"
    return json.loads(out)


def anthropic_kind(mock: MockServer) -> ProviderSettings:
    return ProviderSettings(name="anthropic-mock", kind="anthropic", base_url=mock.url, api_key_env="TEST_KEY")  # type: ignore[attr-defined]


def openai_kind(mock: MockServer) -> ProviderSettings:
    return ProviderSettings(
        name="openai-mock",
        kind="openai",
        base_url=mock.url,  # type: ignore[attr-defined]
        api_key_env="TEST_KEY",
        models={"default": (Variant("mock-large"),)},
    )


KINDS: dict[str, tuple[Callable[[], MockServer], Callable[[MockServer], ProviderSettings]]] = {
    "anthropic": (lambda: AnthropicMock("tool_loop"), anthropic_kind),
    "openai": (lambda: OpenAIMock("tool_loop"), openai_kind),
}


@pytest.fixture
async def upstream(request: pytest.FixtureRequest) -> AsyncIterator[tuple[MockServer, ProviderSettings]]:
    make_mock, make_settings = KINDS[request.param]
    async with make_mock() as mock:
        yield mock, make_settings(mock)


@pytest.mark.parametrize("upstream", list(KINDS), indirect=True)
async def test_claude_code_runs_a_tool_loop_through_ccm(start_proxy, upstream, tmp_path) -> None:
    mock, settings = upstream
    proxy = await start_proxy([settings])
    result = await run_claude(proxy.url, tmp_path)
    assert result["is_error"] is False
    assert MARKER in result["result"]  # the second turn echoed what the Bash tool printed
    assert result["num_turns"] == 2
    finished = proxy.finished()
    assert len(finished) >= 2 and all(f.ok and f.provider == settings.name for f in finished)
    # The tool result travelled back upstream in the second request.
    assert MARKER.encode() in mock.requests[-1].body


async def test_claude_code_never_sees_a_429_when_the_primary_is_rate_limited(start_proxy, tmp_path) -> None:
    async with AnthropicMock("rate_limit") as primary, OpenAIMock("tool_loop") as secondary:
        primary.retry_after = 60
        proxy = await start_proxy([anthropic_kind(primary), openai_kind(secondary)])
        result = await run_claude(proxy.url, tmp_path)
    assert result["is_error"] is False and MARKER in result["result"]
    failovers = [e for e in proxy.events if isinstance(e, AttemptFailed)]
    assert len(failovers) == 1 and failovers[0].attempt.status == 429  # cooled down after the first
    assert len(primary.requests) == 1
