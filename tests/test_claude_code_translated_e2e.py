"""The real Claude Code CLI through ccm-tui to translated kinds, for the issue-11 defects it hits in a session.

Haiku-tier requests carry `thinking.budget_tokens: 31999`, which Gemini 2.5 Flash refuses (its range ends at
24576): with a Gemini provider serving the haiku tier, a session must still complete. Claude Code marks
`cache_control` breakpoints; an OpenRouter-style upstream serving an Anthropic model must receive them.
Runs as tests/test_claude_code_e2e.py does (offline, fresh HOME, the mocks on loopback).
"""

from __future__ import annotations

from typing import Any

import pytest

from ccm_tui.config import ProviderSettings
from ccm_tui.core.contract import Variant
from tests.mocks.cloud_mocks import GeminiMock
from tests.mocks.upstreams import OpenAIMock
from tests.test_claude_code_e2e import ENVIRON, MARKER, run_claude

pytestmark = pytest.mark.e2e


def cache_marks(value: Any) -> int:
    if isinstance(value, dict):
        return ("cache_control" in value) + sum(cache_marks(v) for v in value.values())
    if isinstance(value, list):
        return sum(cache_marks(v) for v in value)
    return 0


async def test_claude_code_on_the_haiku_tier_served_by_gemini_flash(start_proxy, tmp_path) -> None:
    async with GeminiMock("tool_loop") as mock:
        settings = ProviderSettings(
            name="gemini-mock",
            kind="gemini",
            base_url=mock.url,  # type: ignore[attr-defined]
            api_key_env="GEMINI_API_KEY",
            models={"haiku": (Variant("gemini-2.5-flash"),), "default": (Variant("gemini-2.5-flash"),)},
        )
        proxy = await start_proxy([settings], environ=ENVIRON)
        result = await run_claude(proxy.url, tmp_path, extra_env={"ANTHROPIC_MODEL": "claude-haiku-4-5"})
    assert result["is_error"] is False and MARKER in result["result"]
    budgets = [
        body["generationConfig"]["thinkingConfig"].get("thinkingBudget")
        for body in (r.json() for r in mock.requests)
        if "thinkingConfig" in body.get("generationConfig", {})
    ]
    assert budgets and set(budgets) == {24576}  # Claude Code asked for 31999 each time
    assert all(f.ok for f in proxy.finished())


async def test_claude_code_cache_breakpoints_reach_openrouter(start_proxy, tmp_path) -> None:
    async with OpenAIMock("tool_loop", vendor="openrouter") as mock:
        settings = ProviderSettings(
            name="openrouter-mock",
            kind="openai",
            vendor="openrouter",
            base_url=mock.url,  # type: ignore[attr-defined]
            api_key_env="TEST_KEY",
            models={"default": (Variant("anthropic/claude-sonnet-4.5"),)},
        )
        proxy = await start_proxy([settings], environ=ENVIRON)
        result = await run_claude(proxy.url, tmp_path)
    assert result["is_error"] is False and MARKER in result["result"]
    last = mock.requests[-1].json()
    assert cache_marks(last["messages"]) >= 2
    assert isinstance(last["messages"][0]["content"], list)  # the system prompt kept its blocks
