"""The real Claude Code CLI (`claude -p`) running a tool loop through ccm-tui to each kind of mock upstream.

`make test` installs the pinned CLI into build/claude (see Makefile). It runs offline: a clean environment,
a fresh HOME, ANTHROPIC_API_KEY=dummy, non-essential traffic off. The mocks (Anthropic, OpenAI-compatible,
Bedrock, Vertex, Gemini) answer the first turn with a Bash tool call and the second with text echoing the tool's
output, so the test proves the tool really ran and its result travelled back in the provider's own format.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from ccm_tui.config import ProviderSettings
from ccm_tui.core.contract import Variant
from ccm_tui.core.events import AttemptFailed
from ccm_tui.demo.mockserver import MockServer
from tests.mocks.cloud_mocks import BedrockMock, GeminiMock, VertexMock
from tests.mocks.upstreams import AnthropicMock, OpenAIMock

pytestmark = pytest.mark.e2e

CLAUDE = Path(__file__).resolve().parent.parent / "build" / "claude" / "node_modules" / ".bin" / "claude"
MARKER = "ccm-mock-ran-this"


def claude_binary() -> Path:
    if not CLAUDE.exists():
        if os.environ.get("CCM_SKIP_CLAUDE_E2E") == "1":
            pytest.skip("Claude Code CLI not installed and CCM_SKIP_CLAUDE_E2E=1")
        pytest.fail(f"Claude Code CLI missing at {CLAUDE}: run `make test` (it installs the pinned CLI)")
    return CLAUDE


async def run_claude(
    base_url: str, tmp_path: Path, prompt: str = "Run the marker command.", extra_env: dict[str, str] | None = None
) -> dict:
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
        **(extra_env or {}),
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


def bedrock_kind(mock: MockServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ProviderSettings:
    """SigV4 with static keys from the environment (no profile files, no instance metadata)."""
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_BEARER_TOKEN_BEDROCK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", BedrockMock.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", BedrockMock.secret_key)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "missing-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "missing-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return ProviderSettings(
        name="bedrock-mock",
        kind="bedrock",
        base_url=mock.url,  # type: ignore[attr-defined]
        region="us-west-2",
        models={"default": (Variant("us.anthropic.claude-sonnet-4-5-20250929-v1:0"),)},
    )


def vertex_kind(mock: MockServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ProviderSettings:
    """A service-account file whose token endpoint is the mock (which accepts only tokens it issued)."""
    assert isinstance(mock, VertexMock)
    return ProviderSettings(
        name="vertex-mock",
        kind="vertex",
        base_url=mock.url,
        region="us-east5",
        project=VertexMock.project,
        credentials_file=str(mock.write_service_account(tmp_path / "service-account.json")),
        models={"default": (Variant("claude-sonnet-4-5@20250929"),)},
    )


def gemini_kind(mock: MockServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ProviderSettings:
    return ProviderSettings(
        name="gemini-mock",
        kind="gemini",
        base_url=mock.url,  # type: ignore[attr-defined]
        api_key_env="GEMINI_API_KEY",
        models={"default": (Variant("gemini-2.5-pro"),)},
    )


SettingsFactory = Callable[[MockServer, Path, pytest.MonkeyPatch], ProviderSettings]


def _local(make: Callable[[MockServer], ProviderSettings]) -> SettingsFactory:
    """A factory for kinds that need neither files nor environment."""
    return lambda mock, tmp_path, monkeypatch: make(mock)


KINDS: dict[str, tuple[Callable[[], MockServer], SettingsFactory]] = {
    "anthropic": (lambda: AnthropicMock("tool_loop"), _local(anthropic_kind)),
    "openai": (lambda: OpenAIMock("tool_loop"), _local(openai_kind)),
    "bedrock": (lambda: BedrockMock("tool_loop"), bedrock_kind),
    "vertex": (lambda: VertexMock("tool_loop"), vertex_kind),
    "gemini": (lambda: GeminiMock("tool_loop"), gemini_kind),
}
# What the Runtime resolves keys from (AWS and Google credentials come from their own chains).
ENVIRON = {"TEST_KEY": "test-upstream-key", "GEMINI_API_KEY": GeminiMock.api_key}


@pytest.fixture
async def upstream(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[MockServer, ProviderSettings]]:
    make_mock, make_settings = KINDS[request.param]
    async with make_mock() as mock:
        yield mock, make_settings(mock, tmp_path, monkeypatch)


@pytest.mark.parametrize("upstream", list(KINDS), indirect=True)
async def test_claude_code_runs_a_tool_loop_through_ccm(start_proxy, upstream, tmp_path) -> None:
    mock, settings = upstream
    proxy = await start_proxy([settings], environ=ENVIRON)
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


async def test_claude_code_sees_no_error_when_the_primary_429s_with_retry_after_30(start_proxy, tmp_path) -> None:
    """Claude Code's gateway contract: a rate-limited primary is the gateway's problem, not the user's."""
    from tests.mocks.faults import FaultMock

    async with FaultMock("anthropic", "rate_limit") as primary, OpenAIMock("tool_loop") as secondary:
        primary.retry_after = 30
        proxy = await start_proxy([anthropic_kind(primary), openai_kind(secondary)])
        result = await run_claude(proxy.url, tmp_path)
    assert result["is_error"] is False and MARKER in result["result"] and result["num_turns"] == 2
    assert len(primary.requests) == 1  # cooling for the 30 s it asked: the tool loop's second turn skips it
    assert all(f.ok and f.provider == "openai-mock" and f.model == "mock-large" for f in proxy.finished())


async def test_claude_code_gets_the_whole_answer_when_the_primary_cuts_mid_answer(start_proxy, tmp_path) -> None:
    """The primary cuts after a few words; the fallback continues from them (prefill): one complete answer."""
    from dataclasses import replace

    from ccm_tui.config import RoutingSettings
    from tests.mocks.faults import ANSWER, FaultMock

    async with FaultMock("anthropic") as primary, FaultMock("anthropic") as fallback:
        primary.script("cut")
        primary.gap = 0.02  # the first words reach Claude Code before the cut
        settings = [anthropic_kind(primary), replace(anthropic_kind(fallback), name="fallback")]
        proxy = await start_proxy(settings, routing=RoutingSettings(stall_seconds=5.0))
        result = await run_claude(proxy.url, tmp_path, prompt="Why is my test flaky? Answer in one sentence.")
    assert result["is_error"] is False
    assert result["result"].strip() == ANSWER
    rescued = [f for f in proxy.finished() if len(f.attempts) == 2]
    assert rescued and [a.outcome.value for a in rescued[0].attempts] == ["stream_error", "ok"]
    assert fallback.requests[0].json()["messages"][-1]["role"] == "assistant"  # continued from a prefill
