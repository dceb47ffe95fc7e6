"""The Messages request shape, table-driven: every known field and block type is typed, unknown ones pass."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from ccm_tui.proxy.validate import MAX_DEPTH, Invalid, parse_body, shown, validate_messages_request

GOOD: dict[str, Any] = {"model": "claude-sonnet-4-6", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}


def user(*blocks: Any) -> dict[str, Any]:
    return {**GOOD, "messages": [{"role": "user", "content": list(blocks)}]}


def assistant(*blocks: Any) -> dict[str, Any]:
    return {**GOOD, "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": list(blocks)}]}


B64 = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}
TOOL_USE = {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"path": "a"}}

VALID = [
    pytest.param(GOOD, id="minimal"),
    pytest.param({**GOOD, "future_field": {"x": [1, 2]}, "speed": "fast"}, id="unknown-fields"),
    pytest.param(user({"type": "hologram", "payload": 5}), id="unknown-block-type"),
    pytest.param(user({"type": "text", "text": "a", "cache_control": {"type": "ephemeral", "ttl": "1h"}}), id="text"),
    pytest.param(user({"type": "text", "text": "a", "citations": None}), id="text-null-citations"),
    pytest.param(user({"type": "image", "source": B64}), id="image-base64"),
    pytest.param(user({"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}), id="image-url"),
    pytest.param(user({"type": "image", "source": {"type": "file", "file_id": "file_1"}}), id="image-file"),
    pytest.param(user({"type": "image", "source": {"type": "future", "blob": 1}}), id="image-unknown-source"),
    pytest.param(
        user({"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x"}, "title": None}),
        id="document-text",
    ),
    pytest.param(
        user({"type": "document", "source": {"type": "content", "content": [{"type": "text", "text": "x"}]}}),
        id="document-content",
    ),
    pytest.param(
        user({"type": "search_result", "source": "s", "title": "t", "content": [{"type": "text", "text": "x"}]}),
        id="search-result",
    ),
    pytest.param(assistant(TOOL_USE), id="tool-use"),
    pytest.param(user({"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}), id="tool-result-string"),
    pytest.param(
        user(
            {
                "type": "tool_result",
                "tool_use_id": "toolu_1",
                "is_error": True,
                "content": [{"type": "text", "text": "x"}, {"type": "image", "source": B64}],
            }
        ),
        id="tool-result-blocks",
    ),
    pytest.param(user({"type": "tool_result", "tool_use_id": "toolu_1"}), id="tool-result-no-content"),
    pytest.param(assistant({"type": "thinking", "thinking": "hm", "signature": "sig"}), id="thinking"),
    pytest.param(assistant({"type": "redacted_thinking", "data": "opaque"}), id="redacted-thinking"),
    pytest.param(
        assistant(
            {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "q"}},
            {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": [{"type": "x"}]},
            {"type": "code_execution_tool_result", "tool_use_id": "srvtoolu_1", "content": {"type": "y"}},
        ),
        id="server-tools",
    ),
    pytest.param(user({"type": "container_upload", "file_id": "file_1"}), id="container-upload"),
    pytest.param({**GOOD, "system": "be brief"}, id="system-string"),
    pytest.param({**GOOD, "system": [{"type": "text", "text": "a", "cache_control": {"type": "ephemeral"}}]}, id="sys"),
    pytest.param(
        {
            **GOOD,
            "tools": [
                {
                    "name": "Read",
                    "description": "d",
                    "input_schema": {
                        "type": "object",
                        "properties": {"p": {"type": ["string", "null"]}, "q": True},
                        "required": ["p"],
                        "$defs": {"x": {"type": "integer"}},
                    },
                },
                {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
                {"type": "mcp_toolset", "mcp_server_name": "files"},
            ],
            "tool_choice": {"type": "tool", "name": "Read", "disable_parallel_tool_use": True},
        },
        id="tools",
    ),
    pytest.param({**GOOD, "metadata": {"user_id": "u"}}, id="metadata"),
    pytest.param({**GOOD, "thinking": {"type": "enabled", "budget_tokens": 2048}}, id="thinking-enabled"),
    pytest.param({**GOOD, "thinking": {"type": "adaptive"}, "output_config": {"effort": "high"}}, id="adaptive"),
    pytest.param({**GOOD, "temperature": 0.5, "top_p": 1, "top_k": 5, "stop_sequences": ["END"]}, id="sampling"),
    pytest.param({**GOOD, "temperature": None, "tools": None, "tool_choice": None, "system": None}, id="nulls"),
    pytest.param(
        {**GOOD, "messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "b"}]}, id="sys-role"
    ),
]


@pytest.mark.parametrize("body", VALID)
def test_valid_requests_pass(body: dict[str, Any]) -> None:
    assert validate_messages_request(body) is None


INVALID = [
    # the wrong types that crashed the OpenAI and Gemini translators
    ({**GOOD, "metadata": "x"}, "metadata: expected an object, got string"),
    ({**GOOD, "metadata": {"user_id": 5}}, "metadata.user_id: expected a string, got number"),
    (assistant({**TOOL_USE, "id": 5}), "messages.1.content.0.id: expected a string, got number"),
    (assistant({**TOOL_USE, "input": [1]}), "messages.1.content.0.input: expected an object, got array"),
    (assistant({"type": "tool_use", "id": "a", "name": "b"}), "messages.1.content.0.input: Field required"),
    (
        user({"type": "tool_result", "tool_use_id": "t", "content": 1.5}),
        "messages.0.content.0.content: expected a string or an array of content blocks, got number",
    ),
    (
        user({"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": 3}]}),
        "messages.0.content.0.content.0.text: expected a string, got number",
    ),
    (user({"type": "tool_result", "tool_use_id": ["t"]}), "messages.0.content.0.tool_use_id: expected a string"),
    (user({"type": "tool_result", "tool_use_id": "t", "is_error": "yes"}), "messages.0.content.0.is_error"),
    (user({"type": "text", "text": 42}), "messages.0.content.0.text: expected a string, got number"),
    (user({"type": "text"}), "messages.0.content.0.text: Field required"),
    (user({"type": "image", "source": True}), "messages.0.content.0.source: expected a source object, got boolean"),
    (user({"type": "image", "source": {**B64, "data": None}}), "messages.0.content.0.source.data: expected a string"),
    (user({"type": "image", "source": {"type": "url", "url": 7}}), "messages.0.content.0.source.url"),
    (user({"type": "document", "source": {"type": "base64"}}), "messages.0.content.0.source.data: Field required"),
    (user({"type": "document", "source": B64, "title": 1}), "messages.0.content.0.title: expected a string"),
    (
        user({"type": "search_result", "source": "s", "title": "t", "content": ["x"]}),
        "messages.0.content.0.content.0: expected a content block object, got string",
    ),
    (assistant({"type": "thinking", "thinking": None}), "messages.1.content.0.thinking: expected a string, got null"),
    (assistant({"type": "redacted_thinking", "data": {}}), "messages.1.content.0.data: expected a string"),
    (assistant({"type": "web_search_tool_result", "content": []}), "messages.1.content.0.tool_use_id: Field required"),
    (user({"type": "container_upload", "file_id": 1}), "messages.0.content.0.file_id"),
    (user({"type": 3, "text": "x"}), "messages.0.content.0.type: expected a string, got number"),
    (user({"text": "x"}), "messages.0.content.0.type: Field required"),
    (user("loose string"), "messages.0.content.0: expected a content block object, got string"),
    (user({"type": "text", "text": "x", "cache_control": "ephemeral"}), "messages.0.content.0.cache_control"),
    # top-level fields
    ({k: v for k, v in GOOD.items() if k != "model"}, "model: Field required"),
    ({**GOOD, "model": 42}, "model: expected a non-empty string, got number"),
    ({**GOOD, "model": "  "}, "model: expected a non-empty string"),
    ({**GOOD, "model": "m" * 257}, "model: expected at most 256 characters, got 257"),
    ({k: v for k, v in GOOD.items() if k != "max_tokens"}, "max_tokens: Field required"),
    ({**GOOD, "max_tokens": "10"}, "max_tokens: expected a non-negative integer, got string"),
    ({**GOOD, "max_tokens": True}, "max_tokens: expected a non-negative integer, got boolean"),
    ({**GOOD, "max_tokens": -1}, "max_tokens: expected a non-negative integer"),
    ({**GOOD, "messages": "hi"}, "messages: expected an array, got string"),
    ({**GOOD, "messages": []}, "messages: at least one message is required"),
    ({**GOOD, "messages": [5]}, "messages.0: expected an object, got number"),
    ({**GOOD, "messages": [{"role": "robot", "content": "x"}]}, "messages.0.role: expected one of 'user'"),
    ({**GOOD, "messages": [{"role": "user"}]}, "messages.0.content: Field required"),
    ({**GOOD, "system": 3}, "system: expected a string or an array of text blocks, got number"),
    ({**GOOD, "system": [{"type": "text", "text": None}]}, "system.0.text: expected a string, got null"),
    ({**GOOD, "system": ["x"]}, "system.0: expected a text block, got string"),
    ({**GOOD, "stream": "yes"}, "stream: expected a boolean, got string"),
    ({**GOOD, "stop_sequences": "END"}, "stop_sequences: expected an array, got string"),
    ({**GOOD, "stop_sequences": ["a", 1]}, "stop_sequences.1: expected a string, got number"),
    ({**GOOD, "temperature": "hot"}, "temperature: expected a number, got string"),
    ({**GOOD, "top_p": True}, "top_p: expected a number, got boolean"),
    ({**GOOD, "top_k": 1.5}, "top_k: expected an integer, got number"),
    ({**GOOD, "tools": {}}, "tools: expected an array, got object"),
    ({**GOOD, "tools": [{"description": "x"}]}, "tools.0.name: Field required"),
    ({**GOOD, "tools": [{"type": "custom", "input_schema": {}}]}, "tools.0.name: Field required"),
    ({**GOOD, "tools": [{"type": "future", "input_schema": {}}]}, "tools.0.name: Field required"),
    ({**GOOD, "tools": [{"name": 5}]}, "tools.0.name: expected a non-empty string, got number"),
    ({**GOOD, "tools": [{"name": "a", "description": []}]}, "tools.0.description: expected a string"),
    ({**GOOD, "tools": [{"name": "a", "input_schema": "x"}]}, "tools.0.input_schema: expected an object"),
    (
        {**GOOD, "tools": [{"name": "a", "input_schema": {"properties": {"p": {"required": [["x"]]}}}}]},
        "tools.0.input_schema.properties.p.required.0: expected a string, got array",
    ),
    ({**GOOD, "tools": [{"name": "a", "input_schema": {"$defs": [1]}}]}, "tools.0.input_schema.$defs: expected an"),
    ({**GOOD, "tools": [{"name": "a", "input_schema": {"$defs": {"d": True}}}]}, "tools.0.input_schema.$defs.d"),
    ({**GOOD, "tool_choice": {"type": "sometimes"}}, "tool_choice.type: expected one of 'auto', 'any', 'tool'"),
    ({**GOOD, "tool_choice": "auto"}, "tool_choice: expected an object, got string"),
    ({**GOOD, "tool_choice": {"type": "tool"}}, "tool_choice.name: Field required"),
    ({**GOOD, "tool_choice": {"type": "any", "disable_parallel_tool_use": 1}}, "tool_choice.disable_parallel_tool"),
    ({**GOOD, "thinking": "on"}, "thinking: expected an object, got string"),
    ({**GOOD, "thinking": {"type": "enabled", "budget_tokens": "9"}}, "thinking.budget_tokens: expected a non-neg"),
    ({**GOOD, "output_config": {"effort": 3}}, "output_config.effort: expected a string, got number"),
    ({**GOOD, "output_config": []}, "output_config: expected an object, got array"),
    (
        {**GOOD, "output_config": {"format": {"type": "json_schema", "schema": {"required": [{}]}}}},
        "output_config.format.schema.required.0: expected a string",
    ),
    ({**GOOD, "output_format": {"type": "json_schema"}}, "output_format.schema: Field required"),
    (
        {**GOOD, "tools": [{"name": "t", "input_schema": {"type": "object", "format": ["date"]}}]},
        "tools.0.input_schema.format: expected a string",
    ),
    ({**GOOD, "stop_sequences": ["x"] * 65}, "stop_sequences: expected at most 64 stop sequences"),
    ({**GOOD, "stop_sequences": ["ok", "y" * 2000]}, "stop_sequences.1: expected at most 1024 characters"),
]


@pytest.mark.parametrize(("body", "message"), INVALID)
def test_invalid_requests_name_the_field(body: dict[str, Any], message: str) -> None:
    problem = validate_messages_request(body)
    assert isinstance(problem, Invalid) and problem.status == 400
    assert problem.message.startswith(message), problem.message


def test_count_tokens_does_not_need_max_tokens() -> None:
    body = {k: v for k, v in GOOD.items() if k != "max_tokens"}
    assert validate_messages_request(body, require_max_tokens=False) is None
    assert validate_messages_request({**body, "tools": 1}, require_max_tokens=False) is not None


def test_a_huge_model_name_gives_a_short_message() -> None:
    problem = validate_messages_request({**GOOD, "model": "m" * 5_000_000})
    assert problem is not None and len(problem.message) < 200


def test_long_keys_and_values_are_clipped_in_messages() -> None:
    key = "k" * 10_000
    problem = validate_messages_request({**GOOD, "tools": [{"name": "a", "input_schema": {"properties": {key: 1}}}]})
    assert problem is not None and len(problem.message) < 300
    problem = validate_messages_request({**GOOD, "tool_choice": {"type": "x" * 10_000}})
    assert problem is not None and len(problem.message) < 300
    assert len(shown("y" * 1_000_000)) < 100


@pytest.mark.parametrize(
    ("depth", "accepted"), [(MAX_DEPTH, True), (MAX_DEPTH + 1, False), (1000, False)], ids=["limit", "over", "deep"]
)
def test_nesting_depth_is_bounded(depth: int, accepted: bool) -> None:
    # {"model": ..., "x": [[[...]]]}: the body object is level 1
    raw = b'{"model":"m","x":' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"
    parsed = parse_body(raw)
    assert isinstance(parsed, dict) == accepted
    if not accepted:
        assert isinstance(parsed, Invalid) and "nests deeper" in parsed.message


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [(b"", "empty"), (b"{not json", "not valid JSON"), (b"[1]", "must be a JSON object, got array")],
)
def test_bodies_that_are_not_objects(raw: bytes, fragment: str) -> None:
    parsed = parse_body(raw)
    assert isinstance(parsed, Invalid) and fragment in parsed.message


def test_parse_error_messages_are_bounded() -> None:
    parsed = parse_body(b'{"a": "' + b"x" * 1_000_000)
    assert isinstance(parsed, Invalid) and len(parsed.message) < 400
    assert orjson.loads(orjson.dumps(parsed.message))
