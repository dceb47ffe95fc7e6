"""Request bodies the bench sends: a small request and a realistic Claude Code turn (~90 KB).

The Claude Code request follows DESIGN.md's observations: three system blocks (the first changes every turn),
22 tool schemas (one with `defer_loading`), `thinking: adaptive`, `output_config`, `context_management`,
`max_tokens` 32000, and a history of tool_use / tool_result rounds with file contents. The text is generated
deterministically, so every run sends the same bytes. `to_openai` hand-maps it to Chat Completions for the
direct baseline of scenario (d): the same information a translating proxy would send, not a copy of its output.
"""

from __future__ import annotations

import random
from functools import lru_cache
from typing import Any

import orjson

CLAUDE_CODE_BETAS = (
    "claude-code-20250219,oauth-2025-04-20,interleaved-thinking-2025-05-14,context-management-2025-06-27,"
    "prompt-caching-scope-2026-01-05,effort-2025-11-24,fine-grained-tool-streaming-2025-05-14"
)

_WORDS = [
    "the",
    "file",
    "function",
    "returns",
    "value",
    "when",
    "error",
    "test",
    "module",
    "import",
    "config",
    "request",
    "response",
    "stream",
    "proxy",
    "provider",
    "route",
    "token",
    "model",
    "async",
    "await",
    "class",
    "def",
    "self",
    "path",
    "line",
    "change",
    "commit",
    "branch",
    "build",
    "run",
    "check",
    "user",
    "system",
    "tool",
    "result",
    "input",
    "output",
    "schema",
    "type",
    "object",
    "string",
    "number",
    "array",
    "boolean",
    "default",
]

_TOOL_NAMES = [
    "Bash",
    "Read",
    "Edit",
    "Write",
    "Glob",
    "Grep",
    "Task",
    "TodoWrite",
    "WebFetch",
    "WebSearch",
    "NotebookEdit",
    "MultiEdit",
    "ExitPlanMode",
    "BashOutput",
    "KillShell",
    "SlashCommand",
    "Skill",
    "AskUserQuestion",
    "mcp__ide__getDiagnostics",
    "mcp__ide__executeCode",
    "mcp__github__create_pull_request",
    "mcp__github__list_issues",
]


def _prose(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words)).capitalize() + "."


def _code(rng: random.Random, lines: int) -> str:
    out = []
    for number in range(1, lines + 1):
        out.append(f"{number:>6}\u2192    {rng.choice(_WORDS)}_{rng.choice(_WORDS)} = {rng.choice(_WORDS)}({number})")
    return "\n".join(out)


def _tool_schema(rng: random.Random, name: str, index: int) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for number in range(3 + index % 5):
        field_name = f"{rng.choice(_WORDS)}_{number}"
        kind = rng.choice(["string", "number", "boolean", "array"])
        spec: dict[str, Any] = {"type": kind, "description": _prose(rng, 18)}
        if kind == "array":
            spec["items"] = {"type": "string"}
        properties[field_name] = spec
    tool: dict[str, Any] = {
        "name": name,
        "description": _prose(rng, 160 + 12 * (index % 7)),
        "input_schema": {
            "type": "object",
            "properties": properties,
            "required": list(properties)[:2],
            "additionalProperties": False,
            "$schema": "http://json-schema.org/draft-07/schema#",
        },
    }
    if index == len(_TOOL_NAMES) - 1:
        tool["defer_loading"] = True
    return tool


@lru_cache(maxsize=1)
def claude_code_request() -> dict[str, Any]:
    """A Claude Code main-loop request: ~90 KB of JSON, streaming."""
    rng = random.Random(20261122)
    system = [
        {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.330; cc_entrypoint=cli; turn=bench"},
        {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude. " + _prose(rng, 60)},
        {
            "type": "text",
            "text": "\n\n".join(_prose(rng, 120) for _ in range(14)),
            "cache_control": {"type": "ephemeral"},
        },
    ]
    tools = [_tool_schema(rng, name, index) for index, name in enumerate(_TOOL_NAMES)]
    messages: list[dict[str, Any]] = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "<system-reminder>\n" + _prose(rng, 200) + "\n</system-reminder>"},
                {"type": "text", "text": "Fix the failing test in tests/test_proxy.py and explain the change."},
            ],
        }
    ]
    for round_number in range(10):
        call_id = f"toolu_01Bench{round_number:04d}"
        messages.append(
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": _prose(rng, 30)},
                    {
                        "type": "tool_use",
                        "id": call_id,
                        "name": rng.choice(("Read", "Grep", "Bash", "Edit")),
                        "input": {"file_path": f"/work/src/module_{round_number}.py", "limit": 200},
                    },
                ],
            }
        )
        messages.append(
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": call_id, "content": _code(rng, 48)}],
            }
        )
    messages.append({"role": "system", "content": "<system-reminder>" + _prose(rng, 40) + "</system-reminder>"})
    messages.append({"role": "user", "content": [{"type": "text", "text": "Continue."}]})
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 32000,
        "stream": True,
        "system": system,
        "messages": messages,
        "tools": tools,
        "tool_choice": {"type": "auto"},
        "thinking": {"type": "adaptive"},
        "output_config": {"effort": "high"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "metadata": {"user_id": "user_bench_account__session_0000"},
    }


def small_request(stream: bool) -> dict[str, Any]:
    return {
        "model": "claude-haiku-4-5",
        "max_tokens": 512,
        "stream": stream,
        "messages": [{"role": "user", "content": "Say hello in ten words."}],
    }


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(block.get("text", "") for block in content if block.get("type") == "text")


def to_openai(body: dict[str, Any], model: str) -> dict[str, Any]:
    """Map an Anthropic request to Chat Completions (system first, tool_calls, one `tool` message per result)."""
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if system:
        messages.append({"role": "system", "content": _text_of(system)})
    for message in body["messages"]:
        content = message["content"]
        if message["role"] == "system":
            messages.append({"role": "system", "content": _text_of(content)})
        elif message["role"] == "assistant":
            blocks = content if isinstance(content, list) else [{"type": "text", "text": content}]
            calls = [
                {
                    "id": block["id"],
                    "type": "function",
                    "function": {"name": block["name"], "arguments": orjson.dumps(block["input"]).decode()},
                }
                for block in blocks
                if block.get("type") == "tool_use"
            ]
            entry: dict[str, Any] = {"role": "assistant", "content": _text_of(blocks) or None}
            if calls:
                entry["tool_calls"] = calls
            messages.append(entry)
        else:
            blocks = content if isinstance(content, list) else [{"type": "text", "text": content}]
            for block in blocks:
                if block.get("type") == "tool_result":
                    messages.append(
                        {"role": "tool", "tool_call_id": block["tool_use_id"], "content": _text_of(block["content"])}
                    )
            text = _text_of(blocks)
            if text:
                messages.append({"role": "user", "content": text})
    tools = [
        {
            "type": "function",
            "function": {"name": t["name"], "description": t.get("description", ""), "parameters": t["input_schema"]},
        }
        for t in body.get("tools", [])
    ]
    out: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "max_completion_tokens": body["max_tokens"],
        "stream": body.get("stream", False),
    }
    if out["stream"]:
        out["stream_options"] = {"include_usage": True}
    if tools:
        out["tools"] = tools
        out["tool_choice"] = "auto"
    return out
