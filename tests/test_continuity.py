"""Cross-provider continuity: histories from other providers made acceptable to Anthropic-protocol targets."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ccm_tui.translate.continuity import (
    cloud_claude_body,
    filter_betas,
    safe_tool_id,
    sanitize_history_for_anthropic_target,
)

ANTHROPIC_SIG = "EqQBCkgIARABGAIiQL2b8Yc0mHcS3aLN1u5KDgwnAaL1xZ9yT5w2c4g=="


def tool_turns(tool_id: str, thinking: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    assistant: list[dict[str, Any]] = [thinking] if thinking else []
    assistant.append({"type": "tool_use", "id": tool_id, "name": "Bash", "input": {"command": "ls"}})
    return [
        {"role": "user", "content": "list"},
        {"role": "assistant", "content": assistant},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_id, "content": "a.txt"}]},
    ]


@pytest.mark.parametrize(
    ("tool_id", "changed"),
    [
        ("toolu_01A09q90qw90lq917835lq9", False),
        ("call_abc-DEF_123", False),
        ("call_abc.123", True),
        ("fc:12/34 x", True),
        ("toolu_" + "a" * 80, True),  # Gemini ids carrying a thought signature are long
        ("", True),
    ],
)
def test_tool_ids_are_rewritten_consistently(tool_id: str, changed: bool):
    body = {"model": "m", "messages": tool_turns(tool_id)}
    result = sanitize_history_for_anthropic_target(body)
    new_id = result["messages"][1]["content"][0]["id"]
    assert result["messages"][2]["content"][0]["tool_use_id"] == new_id
    assert (new_id != tool_id) is changed
    assert (result is not body) is changed
    assert len(new_id) <= 64 and new_id.replace("_", "").replace("-", "").isalnum()
    assert safe_tool_id(tool_id) == new_id  # deterministic: same history, same ids on every request


@pytest.mark.parametrize(
    ("block", "kept"),
    [
        ({"type": "thinking", "thinking": "t", "signature": ANTHROPIC_SIG}, True),
        ({"type": "thinking", "thinking": "t", "signature": "gemini:CiQBcsjafQ=="}, False),
        ({"type": "thinking", "thinking": "t", "signature": ""}, False),
        ({"type": "thinking", "thinking": "t"}, False),
        ({"type": "thinking", "thinking": "t", "signature": "rs_68a1.reasoning"}, False),
        ({"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4a"}, True),
        ({"type": "redacted_thinking", "data": "gemini:CiQBcsjafQ=="}, False),
    ],
)
def test_thinking_blocks_with_foreign_signatures_are_dropped(block: dict[str, Any], kept: bool):
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [block, {"type": "text", "text": "hello"}]},
        {"role": "user", "content": "more"},
    ]
    result = sanitize_history_for_anthropic_target({"messages": messages})
    assert (block in result["messages"][1]["content"]) is kept
    assert result["messages"][1]["content"][-1] == {"type": "text", "text": "hello"}


@pytest.mark.parametrize(
    ("thinking_block", "thinking_param", "keeps_thinking_param"),
    [
        (
            {"type": "thinking", "thinking": "t", "signature": ANTHROPIC_SIG},
            {"type": "enabled", "budget_tokens": 2048},
            True,
        ),
        (
            {"type": "thinking", "thinking": "t", "signature": "gemini:x"},
            {"type": "enabled", "budget_tokens": 2048},
            False,
        ),
        (None, {"type": "adaptive"}, False),  # a provider that never produced thinking blocks
        (None, {"type": "disabled"}, True),
    ],
)
def test_tool_loop_without_leading_thinking_turns_thinking_off(
    thinking_block: dict[str, Any] | None, thinking_param: dict[str, Any], keeps_thinking_param: bool
):
    body = {"messages": tool_turns("toolu_1", thinking_block), "thinking": thinking_param}
    result = sanitize_history_for_anthropic_target(body)
    assert ("thinking" in result) is keeps_thinking_param


def test_assistant_turn_left_empty_is_dropped_and_input_is_not_mutated():
    body = {
        "messages": [
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "gemini:s"}]},
            {"role": "user", "content": "b"},
        ]
    }
    original = copy.deepcopy(body)
    result = sanitize_history_for_anthropic_target(body)
    assert [m["role"] for m in result["messages"]] == ["user", "user"]
    assert body == original


def test_clean_history_is_returned_unchanged():
    body = {"messages": tool_turns("toolu_01", {"type": "thinking", "thinking": "t", "signature": ANTHROPIC_SIG})}
    assert sanitize_history_for_anthropic_target(body) is body


@pytest.mark.parametrize(
    ("requested", "allowed", "expected"),
    [
        (
            ["claude-code-20250219", "interleaved-thinking-2025-05-14"],
            {"interleaved-thinking-2025-05-14"},
            ["interleaved-thinking-2025-05-14"],
        ),
        (["advanced-tool-use-2025-11-20"], {"tool-search-tool-2025-10-19"}, ["tool-search-tool-2025-10-19"]),
        ([" effort-2025-11-24", "effort-2025-11-24"], {"effort-2025-11-24"}, ["effort-2025-11-24"]),
        (["oauth-2025-04-20"], set(), []),
    ],
)
def test_filter_betas(requested: list[str], allowed: set[str], expected: list[str]):
    assert filter_betas(requested, allowed) == expected


def test_cloud_claude_body_keeps_only_known_keys_and_sets_version():
    body = {
        "model": "claude",
        "stream": True,
        "metadata": {"user_id": "u"},
        "service_tier": "auto",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}],
        "output_config": {"effort": "high"},
    }
    result = cloud_claude_body(body, anthropic_version="bedrock-2023-05-31")
    assert result == {
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}],
        "output_config": {"effort": "high"},
        "anthropic_version": "bedrock-2023-05-31",
    }


@pytest.mark.parametrize(
    ("system", "expected_system"),
    [
        (None, [{"type": "text", "text": "Note A"}, {"type": "text", "text": "Note B"}]),
        (
            "Base",
            [{"type": "text", "text": "Base"}, {"type": "text", "text": "Note A"}, {"type": "text", "text": "Note B"}],
        ),
        (
            [{"type": "text", "text": "Base", "cache_control": {"type": "ephemeral"}}],
            [
                {"type": "text", "text": "Base", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "Note A"},
                {"type": "text", "text": "Note B"},
            ],
        ),
    ],
)
def test_mid_conversation_system_turns_are_folded_for_cloud_targets(system: Any, expected_system: list[Any]):
    body: dict[str, Any] = {
        "max_tokens": 10,
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "system", "content": "Note A"},
            {"role": "assistant", "content": "hello"},
            {"role": "system", "content": [{"type": "text", "text": "Note B"}]},
            {"role": "user", "content": "go on"},
        ],
    }
    if system is not None:
        body["system"] = system
    result = cloud_claude_body(body, anthropic_version="vertex-2023-10-16")
    assert result["system"] == expected_system
    assert [m["role"] for m in result["messages"]] == ["user", "assistant", "user"]
