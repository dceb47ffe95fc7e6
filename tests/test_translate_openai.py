"""Anthropic <-> OpenAI Chat Completions translation (pure): one row per PROTOCOLS.md §2.4 case, both ways.

Streams are checked twice: the exact event grammar, and the official anthropic SDK's own stream accumulator
(fed the bytes through an in-memory httpx2 transport, no network).
"""

from __future__ import annotations

from typing import Any

import anthropic
import httpx2
import orjson
import pytest

from ccm_tui.core.contract import StreamMeter, UpstreamError
from ccm_tui.core.durations import parse_duration
from ccm_tui.core.events import Usage
from ccm_tui.core.states import ErrorOrigin
from ccm_tui.core.vendors import ReasoningParameter
from ccm_tui.translate.openai import (
    OpenAIQuirks,
    OpenAIStreamTranslator,
    error_from_openai,
    message_from_openai,
    request_to_openai,
)
from ccm_tui.translate.sse import SseParser

DEFAULT = OpenAIQuirks()


def translate(body: dict[str, Any], quirks: OpenAIQuirks = DEFAULT, **kwargs: Any) -> dict[str, Any]:
    return request_to_openai({"model": "claude-sonnet-4-5", "max_tokens": 1024, **body}, "gpt-test", quirks, **kwargs)


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def assistant(content: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": content}


PNG = {"type": "base64", "media_type": "image/png", "data": "iVBORw0K"}
TOOL_USE = {"type": "tool_use", "id": "call_1", "name": "Read", "input": {"path": "a.txt"}}
CALL_1 = {"id": "call_1", "type": "function", "function": {"name": "Read", "arguments": '{"path":"a.txt"}'}}

# --- request: messages ------------------------------------------------------------------------------------

MESSAGE_CASES = [
    pytest.param(
        {"system": "Be brief.", "messages": [user("hi")]},
        DEFAULT,
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
        id="system-string",
    ),
    pytest.param(
        {
            "system": [
                {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1; cch=abc"},
                {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "Be careful."},
            ],
            "messages": [user("hi")],
        },
        OpenAIQuirks(system_role="developer"),
        [{"role": "developer", "content": "You are Claude Code.\n\nBe careful."}, {"role": "user", "content": "hi"}],
        id="system-blocks-developer-role-billing-header-dropped",
    ),
    pytest.param(
        {"messages": [user("hi"), assistant("hello"), {"role": "system", "content": "Reminder."}, user("more")]},
        DEFAULT,
        [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "system", "content": "Reminder."},
            {"role": "user", "content": "more"},
        ],
        id="system-turn-inside-messages",
    ),
    pytest.param(
        {"messages": [user([{"type": "text", "text": "one"}, {"type": "text", "text": "two"}])]},
        DEFAULT,
        [{"role": "user", "content": "one\n\ntwo"}],
        id="user-text-blocks-become-a-string",
    ),
    pytest.param(
        {"messages": [user([{"type": "image", "source": PNG}, {"type": "text", "text": "what is it?"}])]},
        DEFAULT,
        [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}},
                    {"type": "text", "text": "what is it?"},
                ],
            }
        ],
        id="user-image-base64-to-data-url",
    ),
    pytest.param(
        {"messages": [user([{"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}}])]},
        DEFAULT,
        [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}]}],
        id="user-image-url",
    ),
    pytest.param(
        {
            "messages": [
                user("read a.txt"),
                assistant(
                    [
                        {"type": "thinking", "thinking": "hmm", "signature": "EqQB"},
                        {"type": "redacted_thinking", "data": "xyz"},
                        {"type": "text", "text": "Reading."},
                        TOOL_USE,
                    ]
                ),
                user([{"type": "tool_result", "tool_use_id": "call_1", "content": "hello"}]),
            ]
        },
        DEFAULT,
        [
            {"role": "user", "content": "read a.txt"},
            {"role": "assistant", "content": "Reading.", "tool_calls": [CALL_1]},
            {"role": "tool", "tool_call_id": "call_1", "content": "hello"},
        ],
        id="assistant-text-and-tool-use-thinking-dropped",
    ),
    pytest.param(
        {
            "messages": [
                user("go"),
                assistant([TOOL_USE]),
                user(
                    [
                        {"type": "text", "text": "and then?"},
                        {
                            "type": "tool_result",
                            "tool_use_id": "call_1",
                            "content": [{"type": "text", "text": "line 1"}, {"type": "text", "text": "line 2"}],
                        },
                    ]
                ),
            ]
        },
        DEFAULT,
        [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": None, "tool_calls": [CALL_1]},
            {"role": "tool", "tool_call_id": "call_1", "content": "line 1\nline 2"},
            {"role": "user", "content": "and then?"},
        ],
        id="tool-result-blocks-before-the-rest-of-the-turn",
    ),
    pytest.param(
        {
            "messages": [
                user("go"),
                assistant([TOOL_USE]),
                user([{"type": "tool_result", "tool_use_id": "call_1", "content": "no such file", "is_error": True}]),
            ]
        },
        DEFAULT,
        [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": None, "tool_calls": [CALL_1]},
            {"role": "tool", "tool_call_id": "call_1", "content": "Error: no such file"},
        ],
        id="tool-result-is-error-prefixed",
    ),
    pytest.param(
        {
            "messages": [
                user("screenshot"),
                assistant([TOOL_USE]),
                user(
                    [
                        {
                            "type": "tool_result",
                            "tool_use_id": "call_1",
                            "content": [{"type": "text", "text": "done"}, {"type": "image", "source": PNG}],
                        },
                        {"type": "text", "text": "describe it"},
                    ]
                ),
            ]
        },
        DEFAULT,
        [
            {"role": "user", "content": "screenshot"},
            {"role": "assistant", "content": None, "tool_calls": [CALL_1]},
            {"role": "tool", "tool_call_id": "call_1", "content": "done"},
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}},
                    {"type": "text", "text": "describe it"},
                ],
            },
        ],
        id="tool-result-image-moves-to-following-user-message",
    ),
    pytest.param(
        {
            "messages": [
                user("go"),
                assistant([TOOL_USE]),
                {"role": "system", "content": "Reminder."},
                user([{"type": "tool_result", "tool_use_id": "call_1", "content": "ok"}]),
            ]
        },
        DEFAULT,
        [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": None, "tool_calls": [CALL_1]},
            {"role": "tool", "tool_call_id": "call_1", "content": "ok"},
            {"role": "system", "content": "Reminder."},
        ],
        id="system-turn-between-call-and-result-moves-after-the-result",
    ),
    pytest.param(
        {"messages": [user("go"), assistant([TOOL_USE]), user("never mind")]},
        DEFAULT,
        [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": None, "tool_calls": [CALL_1]},
            {"role": "tool", "tool_call_id": "call_1", "content": "Error: no result (the tool call was interrupted)"},
            {"role": "user", "content": "never mind"},
        ],
        id="interrupted-tool-call-gets-a-placeholder-result",
    ),
    pytest.param(
        {"messages": [user([{"type": "tool_result", "tool_use_id": "call_gone", "content": "stale"}])]},
        DEFAULT,
        [{"role": "user", "content": "[tool result call_gone]\nstale"}],
        id="orphan-tool-result-becomes-user-text",
    ),
    pytest.param(
        {"messages": [user("a"), user("b"), assistant("c"), assistant([{"type": "text", "text": "d"}])]},
        DEFAULT,
        [{"role": "user", "content": "a\n\nb"}, {"role": "assistant", "content": "c\n\nd"}],
        id="consecutive-same-role-merged",
    ),
    pytest.param(
        {"messages": [user("a"), user([{"type": "image", "source": PNG}])]},
        DEFAULT,
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "a"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}},
                ],
            }
        ],
        id="merge-string-with-parts",
    ),
    pytest.param(
        {"messages": [user("a"), assistant([{"type": "thinking", "thinking": "x", "signature": "s"}]), user("b")]},
        DEFAULT,
        [{"role": "user", "content": "a\n\nb"}],
        id="thinking-only-assistant-turn-disappears",
    ),
]


@pytest.mark.parametrize(("body", "quirks", "expected"), MESSAGE_CASES)
def test_request_messages(body: dict[str, Any], quirks: OpenAIQuirks, expected: list[dict[str, Any]]) -> None:
    assert translate(body, quirks)["messages"] == expected


# --- request: tools and options -----------------------------------------------------------------------------

BASH_TOOL = {
    "name": "Bash",
    "description": "Run a command",
    "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]},
}
BASH_FUNCTION = {
    "type": "function",
    "function": {"name": "Bash", "parameters": BASH_TOOL["input_schema"], "description": "Run a command"},
}
HI = {"messages": [user("hi")]}

OPTION_CASES = [
    pytest.param(
        {
            **HI,
            "tools": [
                {
                    **BASH_TOOL,
                    "cache_control": {"type": "ephemeral"},
                    "defer_loading": True,
                    "input_examples": [{"command": "ls"}],
                    "eager_input_streaming": True,
                    "strict": True,
                },
                {"type": "tool_search_tool_regex_20251119", "name": "tool_search_tool_regex"},
            ],
        },
        DEFAULT,
        {"tools": [BASH_FUNCTION]},
        id="tools-anthropic-keys-dropped-deferred-tools-declared-without-tool-search",
    ),
    pytest.param({**HI, "tools": [BASH_TOOL], "tool_choice": {"type": "auto"}}, DEFAULT, {"tool_choice": "auto"}),
    pytest.param({**HI, "tools": [BASH_TOOL], "tool_choice": {"type": "any"}}, DEFAULT, {"tool_choice": "required"}),
    pytest.param({**HI, "tools": [BASH_TOOL], "tool_choice": {"type": "none"}}, DEFAULT, {"tool_choice": "none"}),
    pytest.param(
        {**HI, "tools": [BASH_TOOL], "tool_choice": {"type": "tool", "name": "Bash"}},
        DEFAULT,
        {"tool_choice": {"type": "function", "function": {"name": "Bash"}}},
        id="tool-choice-named",
    ),
    pytest.param(
        {**HI, "tools": [BASH_TOOL], "tool_choice": {"type": "auto", "disable_parallel_tool_use": True}},
        DEFAULT,
        {"tool_choice": "auto", "parallel_tool_calls": False},
        id="disable-parallel-tool-use",
    ),
    pytest.param(
        {**HI, "tools": [BASH_TOOL], "tool_choice": {"type": "auto", "disable_parallel_tool_use": True}},
        OpenAIQuirks(parallel_tool_calls=False),
        {"tool_choice": "auto", "parallel_tool_calls": None},
        id="parallel-tool-calls-not-sent-where-refused",
    ),
    pytest.param(
        {**HI, "tools": [{"type": "web_search_20250305", "name": "web_search"}], "tool_choice": {"type": "any"}},
        OpenAIQuirks(web_search_plugin=True),
        {"tools": None, "tool_choice": None, "plugins": [{"id": "web"}]},
        id="web-search-becomes-the-openrouter-web-plugin",
    ),
    pytest.param(
        {
            **HI,
            "tools": [
                {
                    "name": "Pick",
                    "input_schema": {
                        "$schema": "http://json-schema.org/draft-07/schema#",
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {"mode": {"const": "fast"}, "tags": {"type": "object", "propertyNames": {}}},
                    },
                }
            ],
        },
        OpenAIQuirks(gemini_schema=True),
        {
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "Pick",
                        "parameters": {
                            "type": "object",
                            "properties": {"mode": {"enum": ["fast"]}, "tags": {"type": "object"}},
                        },
                    },
                }
            ]
        },
        id="gemini-schema-cleaned",
    ),
    pytest.param({**HI, "max_tokens": 128000}, DEFAULT, {"max_tokens": 128000}, id="max-tokens-uncapped"),
    pytest.param(
        {**HI, "max_tokens": 128000},
        OpenAIQuirks(default_max_output_tokens=4000),
        {"max_tokens": 4000},
        id="max-tokens-vendor-cap",
    ),
    pytest.param(
        {**HI, "max_tokens": 100},
        OpenAIQuirks(default_max_output_tokens=4000),
        {"max_tokens": 100},
        id="max-tokens-under-cap",
    ),
    pytest.param(
        {**HI, "max_tokens": 128000},
        OpenAIQuirks(use_max_completion_tokens=True, default_max_output_tokens=8192),
        {"max_completion_tokens": 8192, "max_tokens": None},
        id="max-completion-tokens",
    ),
    pytest.param(
        {**HI, "stop_sequences": ["a", "b", "c", "d", "e"]},
        DEFAULT,
        {"stop": None},
        id="stop-sequences-enforced-locally-not-sent",
    ),
    pytest.param(
        {**HI, "temperature": 0.2, "top_p": 0.9, "top_k": 40},
        DEFAULT,
        {"temperature": 0.2, "top_p": 0.9, "top_k": None},
        id="sampling-kept-top-k-dropped",
    ),
    pytest.param(
        {**HI, "temperature": 1, "top_p": 0.9, "stop_sequences": ["x"]},
        OpenAIQuirks(sampling_params=False),
        {"temperature": None, "top_p": None, "stop": None},
        id="sampling-dropped-for-reasoning-models",
    ),
    pytest.param({**HI, "metadata": {"user_id": "u-1"}}, DEFAULT, {"user": "u-1"}, id="metadata-user-id"),
    pytest.param(
        {**HI, "metadata": {"user_id": "u-1"}}, OpenAIQuirks(send_user=False), {"user": None}, id="user-not-sent"
    ),
    pytest.param(
        {**HI, "thinking": {"type": "enabled", "budget_tokens": 2000}},
        OpenAIQuirks(reasoning_request=ReasoningParameter.EFFORT),
        {"reasoning_effort": "low"},
        id="thinking-low",
    ),
    pytest.param(
        {**HI, "thinking": {"type": "enabled", "budget_tokens": 10000}},
        OpenAIQuirks(reasoning_request=ReasoningParameter.EFFORT),
        {"reasoning_effort": "medium"},
        id="thinking-medium",
    ),
    pytest.param(
        {**HI, "thinking": {"type": "enabled", "budget_tokens": 32000}},
        OpenAIQuirks(reasoning_request=ReasoningParameter.EFFORT),
        {"reasoning_effort": "high"},
        id="thinking-high",
    ),
    pytest.param(
        {**HI, "thinking": {"type": "enabled", "budget_tokens": 32000}},
        DEFAULT,
        {"reasoning_effort": None, "reasoning": None},
        id="thinking-not-sent-without-quirk",
    ),
    pytest.param(
        {**HI, "thinking": {"type": "adaptive"}},
        OpenAIQuirks(reasoning_request=ReasoningParameter.EFFORT),
        {"reasoning_effort": None},
        id="adaptive-thinking-has-no-budget",
    ),
    pytest.param(
        {**HI, "max_tokens": 16000, "thinking": {"type": "enabled", "budget_tokens": 5000}},
        OpenAIQuirks(reasoning_request=ReasoningParameter.OPENROUTER),
        {"reasoning": {"max_tokens": 5000}},
        id="thinking-openrouter-reasoning",
    ),
    pytest.param(
        {**HI, "stream": True}, DEFAULT, {"stream": True, "stream_options": {"include_usage": True}}, id="stream"
    ),
    pytest.param(
        {**HI, "stream": True},
        OpenAIQuirks(stream_include_usage=False),
        {"stream": True, "stream_options": None},
        id="stream-without-usage-option",
    ),
    pytest.param(HI, DEFAULT, {"stream": None, "stream_options": None, "model": "gpt-test"}, id="not-streaming"),
]


@pytest.mark.parametrize(("body", "quirks", "expected"), OPTION_CASES)
def test_request_options(body: dict[str, Any], quirks: OpenAIQuirks, expected: dict[str, Any]) -> None:
    out = translate(body, quirks)
    assert {key: out.get(key) for key in expected} == expected


def test_request_max_output_tokens_argument_beats_vendor_cap() -> None:
    out = translate({**HI, "max_tokens": 128000}, OpenAIQuirks(default_max_output_tokens=4000), max_output_tokens=9000)
    assert out["max_tokens"] == 9000


def test_request_long_user_id_is_hashed_stably_and_short() -> None:
    long_id = '{"device_id":"' + "d" * 64 + '","session_id":"s"}'
    first = translate({**HI, "metadata": {"user_id": long_id}})["user"]
    assert first == translate({**HI, "metadata": {"user_id": long_id}})["user"]
    assert len(first) <= 64 and "device_id" not in first


def test_request_tool_ids_kept_as_given() -> None:
    tool_use = {**TOOL_USE, "id": "toolu_01ABC"}
    out = translate(
        {
            "messages": [
                user("go"),
                assistant([tool_use]),
                user([{"type": "tool_result", "tool_use_id": "toolu_01ABC", "content": "ok"}]),
            ]
        }
    )
    assert out["messages"][1]["tool_calls"][0]["id"] == "toolu_01ABC"
    assert out["messages"][2]["tool_call_id"] == "toolu_01ABC"


# --- response (non-streaming) ---------------------------------------------------------------------------------


def completion(message: dict[str, Any], finish_reason: str | None, usage: dict[str, Any] | None = None) -> dict:
    return {
        "id": "chatcmpl-abc",
        "object": "chat.completion",
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish_reason}],
        "usage": usage,
    }


WEATHER_CALL = {
    "id": "call_abc",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"loc": "Paris"}'},
}

RESPONSE_CASES = [
    pytest.param(
        completion({"content": "Hello!"}, "stop"),
        [{"type": "text", "text": "Hello!"}],
        "end_turn",
        id="text-stop",
    ),
    pytest.param(
        completion({"content": None, "tool_calls": [WEATHER_CALL]}, "tool_calls"),
        [{"type": "tool_use", "id": "call_abc", "name": "get_weather", "input": {"loc": "Paris"}}],
        "tool_use",
        id="tool-calls",
    ),
    pytest.param(
        completion({"content": "Let me check.", "tool_calls": [WEATHER_CALL]}, "stop"),
        [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "call_abc", "name": "get_weather", "input": {"loc": "Paris"}},
        ],
        "tool_use",
        id="tool-calls-reported-as-stop",
    ),
    pytest.param(completion({"content": "Once upon"}, "length"), [{"type": "text", "text": "Once upon"}], "max_tokens"),
    pytest.param(completion({"content": ""}, "content_filter"), [], "refusal", id="content-filter"),
    pytest.param(
        completion({"content": None, "refusal": "I can't help with that."}, "stop"),
        [{"type": "text", "text": "I can't help with that."}],
        "end_turn",
        id="refusal-text",
    ),
    pytest.param(
        completion(
            {
                "content": None,
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": '}},
                    {"id": "call_2", "type": "function", "function": {"name": "g", "arguments": ""}},
                    {"id": "call_3", "type": "function", "function": {"name": "h", "arguments": "[1]"}},
                ],
            },
            "tool_calls",
        ),
        [
            {"type": "tool_use", "id": "call_1", "name": "f", "input": {"_raw_arguments": '{"a": '}},
            {"type": "tool_use", "id": "call_2", "name": "g", "input": {}},
            {"type": "tool_use", "id": "call_3", "name": "h", "input": {"_raw_arguments": "[1]"}},
        ],
        "tool_use",
        id="unparseable-arguments-do-not-crash",
    ),
]


@pytest.mark.parametrize(("data", "content", "stop_reason"), RESPONSE_CASES)
def test_message_from_openai(data: dict[str, Any], content: list[dict[str, Any]], stop_reason: str) -> None:
    message, _ = message_from_openai(data, "claude-sonnet-4-5")
    assert message["content"] == content
    assert message["stop_reason"] == stop_reason
    assert message["stop_sequence"] is None
    assert message["model"] == "claude-sonnet-4-5"
    assert message["id"].startswith("msg_") and message["type"] == "message" and message["role"] == "assistant"


def test_message_usage_excludes_cached_tokens_from_input() -> None:
    usage = {"prompt_tokens": 120, "completion_tokens": 9, "prompt_tokens_details": {"cached_tokens": 100}}
    message, metered = message_from_openai(completion({"content": "x"}, "stop", usage), "m")
    assert metered == Usage(input_tokens=20, output_tokens=9, cache_read_input_tokens=100)
    assert message["usage"] == {
        "input_tokens": 20,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 100,
        "output_tokens": 9,
    }


def test_message_is_valid_for_the_anthropic_sdk_types() -> None:
    data = completion({"content": "Hi", "tool_calls": [WEATHER_CALL]}, "tool_calls", {"prompt_tokens": 5})
    message, _ = message_from_openai(data, "claude-sonnet-4-5")
    parsed = anthropic.types.Message.model_validate(message)
    assert parsed.content[1].input == {"loc": "Paris"}


@pytest.mark.parametrize(
    ("data", "error_type"),
    [
        ({"error": {"message": "Provider overloaded", "code": 502}}, "api_error"),
        ({"error": {"message": "Provider overloaded", "code": 529}}, "overloaded_error"),
        ({"error": {"message": "Internal failure", "code": 500}}, "api_error"),
        (
            {"choices": [{"index": 0, "message": {}, "finish_reason": "error", "error": {"message": "boom"}}]},
            "api_error",
        ),
        ({"choices": []}, "api_error"),
    ],
)
def test_message_from_error_body_raises(data: dict[str, Any], error_type: str) -> None:
    with pytest.raises(UpstreamError) as caught:
        message_from_openai(data, "m")
    assert caught.value.origin is not ErrorOrigin.HTTP and caught.value.error_type == error_type


# --- streaming ------------------------------------------------------------------------------------------------


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "gpt-4o", "choices": choices, **extra}


def tool_start(index: int, call_id: str, name: str) -> dict[str, Any]:
    fragment = {"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
    return chunk({"tool_calls": [fragment]})


def tool_args(index: int, arguments: str) -> dict[str, Any]:
    return chunk({"tool_calls": [{"index": index, "function": {"arguments": arguments}}]})


USAGE = {"prompt_tokens": 30, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 10}}
ROLE = chunk({"role": "assistant", "content": ""})


def run_stream(
    chunks: list[dict[str, Any]], *, done: bool = True, quirks: OpenAIQuirks = DEFAULT
) -> tuple[bytes, StreamMeter]:
    meter = StreamMeter()
    translator = OpenAIStreamTranslator("claude-sonnet-4-5", meter, quirks)
    out = b"".join(translator.feed(c) for c in chunks)
    return out + translator.finish(done), meter


def sse_events(data: bytes) -> list[dict[str, Any]]:
    """Parse the SSE and check every event's `event:` line equals its data's type."""
    events = SseParser().feed(data)
    assert events, "no events"
    parsed = []
    for event in events:
        payload = orjson.loads(event.data)
        assert event.event == payload["type"]
        parsed.append(payload)
    return parsed


def check_grammar(events: list[dict[str, Any]]) -> None:
    """message_start, ping, blocks opened/closed one at a time with consecutive indexes, message_delta, stop."""
    assert [e["type"] for e in events[:2]] == ["message_start", "ping"]
    assert [e["type"] for e in events[-2:]] == ["message_delta", "message_stop"]
    open_index, next_index = None, 0
    for event in events[2:-2]:
        if event["type"] == "content_block_start":
            assert open_index is None and event["index"] == next_index
            open_index, next_index = event["index"], next_index + 1
        elif event["type"] in ("content_block_delta", "content_block_stop"):
            assert event["index"] == open_index
            if event["type"] == "content_block_stop":
                open_index = None
        else:
            raise AssertionError(f"unexpected {event['type']} inside the message")
    assert open_index is None


def sdk_final_message(data: bytes) -> anthropic.types.Message:
    """What the official anthropic SDK's stream accumulator makes of these bytes (in memory, no network)."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=data, headers={"content-type": "text/event-stream"})

    client = anthropic.Anthropic(
        api_key="test",
        base_url="http://sdk.invalid",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )
    with client.messages.stream(
        model="claude-test", max_tokens=10, messages=[{"role": "user", "content": "x"}]
    ) as stream:
        return stream.get_final_message()


def test_stream_text() -> None:
    data, meter = run_stream(
        [ROLE, chunk({"content": "Hello"}), chunk({"content": " world"}), chunk({}, "stop"), chunk(usage=USAGE)]
    )
    events = sse_events(data)
    check_grammar(events)
    assert events[0]["message"]["model"] == "claude-sonnet-4-5"
    message = sdk_final_message(data)
    assert [(b.type, b.text) for b in message.content] == [("text", "Hello world")]
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens, message.usage.output_tokens) == (
        20,
        10,
        7,
    )
    assert meter.completed and meter.stop_reason == "end_turn" and meter.model == "gpt-4o"
    assert meter.usage == Usage(input_tokens=20, output_tokens=7, cache_read_input_tokens=10)


def test_stream_single_tool_call_after_text() -> None:
    data, meter = run_stream(
        [
            ROLE,
            chunk({"content": "Checking."}),
            tool_start(0, "call_abc", "get_weather"),
            tool_args(0, '{"loc'),
            tool_args(0, 'ation": "Paris"}'),
            chunk({}, "tool_calls"),
            chunk(usage=USAGE),
        ]
    )
    events = sse_events(data)
    check_grammar(events)
    starts = [e["content_block"] for e in events if e["type"] == "content_block_start"]
    assert starts == [
        {"type": "text", "text": ""},
        {"type": "tool_use", "id": "call_abc", "name": "get_weather", "input": {}},
    ]
    message = sdk_final_message(data)
    assert message.content[1].input == {"location": "Paris"} and message.content[1].id == "call_abc"
    assert message.stop_reason == "tool_use" and meter.stop_reason == "tool_use"


def test_stream_parallel_tool_calls() -> None:
    data, _ = run_stream(
        [
            ROLE,
            tool_start(0, "call_1", "Read"),
            tool_args(0, '{"path": "a"}'),
            tool_start(1, "call_2", "Read"),
            tool_args(1, '{"path": "b"}'),
            chunk({}, "tool_calls"),
        ]
    )
    check_grammar(sse_events(data))
    message = sdk_final_message(data)
    assert [(b.id, b.input) for b in message.content] == [("call_1", {"path": "a"}), ("call_2", {"path": "b"})]


def test_stream_tool_calls_sharing_index_zero_with_new_ids_are_separate_blocks() -> None:
    whole = [
        chunk({"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "f", "arguments": '{"x": 1}'}}]}),
        chunk({"tool_calls": [{"index": 0, "id": "c2", "function": {"name": "g", "arguments": '{"y": 2}'}}]}),
    ]
    data, _ = run_stream([ROLE, *whole, chunk({}, "stop")])
    check_grammar(sse_events(data))
    message = sdk_final_message(data)
    assert [(b.name, b.input) for b in message.content] == [("f", {"x": 1}), ("g", {"y": 2})]
    assert message.stop_reason == "tool_use"  # "stop" with tool calls (Gemini) still means run the tools


def test_stream_tool_name_arriving_after_id_waits_for_it() -> None:
    data, _ = run_stream(
        [
            ROLE,
            chunk({"tool_calls": [{"index": 0, "id": "c1", "function": {"arguments": '{"a"'}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"name": "late", "arguments": ": 1}"}}]}),
            chunk({}, "tool_calls"),
        ]
    )
    check_grammar(sse_events(data))
    assert [(b.name, b.input) for b in sdk_final_message(data).content] == [("late", {"a": 1})]


def test_stream_interleaved_tool_arguments_raise() -> None:
    translator = OpenAIStreamTranslator("m", StreamMeter())
    for c in [ROLE, tool_start(0, "c1", "f"), tool_start(1, "c2", "g")]:
        translator.feed(c)
    with pytest.raises(UpstreamError):
        translator.feed(tool_args(0, "{}"))


def test_stream_usage_after_finish_reaches_message_delta() -> None:
    data, meter = run_stream([ROLE, chunk({"content": "x"}), chunk({}, "stop"), chunk(usage=USAGE)])
    delta = next(e for e in sse_events(data) if e["type"] == "message_delta")
    assert delta["usage"] == {
        "input_tokens": 20,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 10,
        "output_tokens": 7,
    }
    assert meter.usage.output_tokens == 7


def test_stream_groq_usage_in_x_groq() -> None:
    final = chunk({}, "stop", x_groq={"id": "req_1", "usage": {"prompt_tokens": 12, "completion_tokens": 3}})
    data, meter = run_stream([ROLE, chunk({"content": "x"}), final], quirks=OpenAIQuirks(usage_in_x_groq=True))
    assert meter.usage == Usage(input_tokens=12, output_tokens=3)
    assert sdk_final_message(data).usage.input_tokens == 12


@pytest.mark.parametrize(
    ("finish_reason", "stop_reason"), [("length", "max_tokens"), ("content_filter", "refusal"), ("stop", "end_turn")]
)
def test_stream_finish_reasons(finish_reason: str, stop_reason: str) -> None:
    data, meter = run_stream([ROLE, chunk({"content": "partial"}), chunk({}, finish_reason)])
    check_grammar(sse_events(data))
    assert sdk_final_message(data).stop_reason == stop_reason == meter.stop_reason


def test_stream_reasoning_is_dropped_when_thinking_was_not_asked_for() -> None:
    data, _ = run_stream(
        [
            ROLE,
            chunk({"reasoning": "let me think", "reasoning_details": [{"type": "reasoning.text", "text": "t"}]}),
            chunk({"reasoning_content": "more"}),
            chunk({"content": "Answer"}),
            chunk({}, "stop"),
        ],
    )
    assert [(b.type, b.text) for b in sdk_final_message(data).content] == [("text", "Answer")]


def test_stream_done_without_finish_reason_ends_normally() -> None:
    data, meter = run_stream([ROLE, chunk({"content": "x"})], done=True)
    check_grammar(sse_events(data))
    assert meter.completed and meter.stop_reason == "end_turn"


@pytest.mark.parametrize(
    ("error", "error_type"),
    [
        # The code decides, never the prose: a 502 saying "overloaded" is a bad gateway, a "capacity" message
        # without a code is no overload.
        ({"message": "Provider is overloaded", "code": 502}, "api_error"),
        ({"message": "Input exceeds the model context capacity"}, "api_error"),
        ({"message": "Rate limit exceeded", "code": 429}, "overloaded_error"),
        ({"message": "busy", "code": "rate_limit_exceeded"}, "overloaded_error"),
        ({"message": "Internal error", "code": 500}, "api_error"),
    ],
)
def test_stream_error_chunk_raises(error: dict[str, Any], error_type: str) -> None:
    translator = OpenAIStreamTranslator("m", StreamMeter())
    translator.feed(ROLE)
    with pytest.raises(UpstreamError) as caught:
        translator.feed({"error": error})
    assert (caught.value.origin, caught.value.error_type) == (ErrorOrigin.STREAM, error_type)


def test_stream_finish_reason_error_raises() -> None:
    translator = OpenAIStreamTranslator("m", StreamMeter())
    translator.feed(ROLE)
    bad = {"choices": [{"index": 0, "delta": {}, "finish_reason": "error"}], "error": {"message": "upstream died"}}
    with pytest.raises(UpstreamError, match="upstream died"):
        translator.feed(bad)


def test_stream_cut_before_finish_raises_and_is_not_completed() -> None:
    meter = StreamMeter()
    translator = OpenAIStreamTranslator("m", meter)
    assert translator.feed(ROLE).startswith(b"event: message_start")
    translator.feed(chunk({"content": "partial"}))
    with pytest.raises(UpstreamError):
        translator.finish(saw_done=False)
    assert not meter.completed


def test_stream_with_no_chunks_raises_before_any_byte() -> None:
    translator = OpenAIStreamTranslator("m", StreamMeter())
    with pytest.raises(UpstreamError):
        translator.finish(saw_done=True)
    assert not translator.started


# --- errors ---------------------------------------------------------------------------------------------------

ERROR_CASES = [
    pytest.param(
        "openai",
        429,
        {
            "error": {
                "message": "Rate limit reached for gpt-4o on requests per min (RPM): Limit 3. Please try again in 20s.",
                "type": "requests",
                "param": None,
                "code": "rate_limit_exceeded",
            }
        },
        ("requests", "rate_limit_exceeded", 20.0, False),
        id="openai-rate-limit",
    ),
    pytest.param(
        "openai",
        429,
        {
            "error": {
                "message": "You exceeded your current quota.",
                "type": "insufficient_quota",
                "code": "insufficient_quota",
            }
        },
        ("insufficient_quota", "insufficient_quota", None, False),
        id="openai-insufficient-quota",
    ),
    pytest.param(
        "groq",
        429,
        {
            "error": {
                "message": "Rate limit reached for model `llama` on tokens per minute (TPM): Limit 15000, Used 11972, "
                "Requested 4351. Please try again in 5.289s.",
                "type": "tokens",
                "code": "rate_limit_exceeded",
            }
        },
        ("tokens", "rate_limit_exceeded", 5.289, False),
        id="groq-tokens",
    ),
    pytest.param(
        "groq",
        429,
        {"error": {"message": "Limit on requests per day (RPD). Please try again in 2m59.56s.", "type": "requests"}},
        ("requests", None, 179.56, True),
        id="groq-daily-go-duration",
    ),
    pytest.param(
        "cerebras",
        429,
        {
            "message": "Requests per minute limit exceeded - too many requests sent.",
            "type": "too_many_requests_error",
            "param": "quota",
            "code": "request_quota_exceeded",
        },
        ("too_many_requests_error", "request_quota_exceeded", None, False),
        id="cerebras-flat",
    ),
    pytest.param(
        "openrouter",
        402,
        {"error": {"code": 402, "message": "Insufficient credits", "metadata": {"provider_name": None}}},
        ("billing_error", None, None, False),
        id="openrouter-402",
    ),
    pytest.param(
        "github",
        413,
        {
            "error": {
                "code": "tokens_limit_reached",
                "message": "Request body too large for gpt-4o model. Max size: 8000 tokens.",
                "details": "Request body too large for gpt-4o model. Max size: 8000 tokens.",
            }
        },
        ("request_too_large", "tokens_limit_reached", None, False),
        id="github-tokens-limit",
    ),
    pytest.param(
        "github",
        429,
        {
            "error": {
                "code": "RateLimitReached",
                "message": "Rate limit of 150 per 86400s exceeded for UserByModelByDay. Please wait 3600 seconds "
                "before retrying.",
            }
        },
        ("rate_limit_error", "RateLimitReached", 3600.0, True),
        id="github-daily",
    ),
    pytest.param(
        "gemini",
        429,
        [
            {
                "error": {
                    "code": 429,
                    "message": "You exceeded your current quota.",
                    "status": "RESOURCE_EXHAUSTED",
                    "details": [
                        {
                            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                            "violations": [{"quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier"}],
                        },
                        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "41s"},
                    ],
                }
            }
        ],
        ("RESOURCE_EXHAUSTED", "RESOURCE_EXHAUSTED", 41.0, True),
        id="gemini-list-wrapped",
    ),
]


@pytest.mark.parametrize(("vendor", "status", "body", "expected"), ERROR_CASES)
def test_error_from_openai(vendor: str, status: int, body: Any, expected: tuple[Any, ...]) -> None:
    error = error_from_openai(status, orjson.dumps(body), {"Retry-After": "7", "X-Request-Id": "req_1"}, vendor)
    assert (error.error_type, error.error_code, error.retry_after, error.long_quota) == expected
    assert error.status == status and error.message
    assert error.headers == {"retry-after": "7", "x-request-id": "req_1"}


def test_error_non_json_body() -> None:
    error = error_from_openai(502, b"<html><body><h1>502 Bad Gateway</h1></body></html>", {}, "custom")
    assert (error.error_type, error.message) == ("api_error", "502 Bad Gateway")
    assert error_from_openai(503, b"", {}, "custom").message == "HTTP 503 from custom"


def test_error_openrouter_message_names_the_failing_provider() -> None:
    body = {
        "error": {
            "code": 502,
            "message": "Provider returned error",
            "metadata": {"provider_name": "Fireworks", "raw": "overloaded"},
        }
    }
    error = error_from_openai(502, orjson.dumps(body), {}, "openrouter")
    assert "Fireworks" in error.message and "overloaded" in error.message


def test_error_never_carries_a_key() -> None:
    body = {
        "error": {
            "message": "Incorrect API key provided: sk-proj-abcdef1234567890. Find yours at ...",
            "code": "invalid_api_key",
        }
    }
    error = error_from_openai(401, orjson.dumps(body), {}, "openai")
    assert "abcdef1234567890" not in error.message and "[redacted]" in error.message
    assert error.error_type == "authentication_error" and error.error_code == "invalid_api_key"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5.289s", 5.289),
        ("6m0s", 360.0),
        ("2m59.56s", 179.56),
        ("250ms", 0.25),
        ("1h", 3600.0),
        ("20 seconds", 20.0),
        ("2 minutes", 120.0),
        ("soon", None),
        ("5x", None),
    ],
)
def test_parse_duration(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == pytest.approx(seconds) if seconds is not None else parse_duration(text) is None


def test_long_tool_ids_are_shortened_consistently_for_openai() -> None:
    from ccm_tui.translate.openai_request import openai_tool_id

    long_id = "toolu_0123456789abcdef__gsig_" + "A" * 200  # a Gemini-encoded id
    body = {
        "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": long_id, "name": "w", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": long_id, "content": "sunny"}]},
        ],
        "max_tokens": 10,
    }
    messages = request_to_openai(body, "m", OpenAIQuirks())["messages"]
    call_id = messages[1]["tool_calls"][0]["id"]
    assert len(call_id) <= 40 and messages[2]["tool_call_id"] == call_id == openai_tool_id(long_id)
    assert openai_tool_id("call_abc") == "call_abc"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "<html><head><title>502</title><style>p{}</style></head><body><h1>Bad gateway</h1></body></html>",
            "Bad gateway",
        ),
        ("<p>unclosed <b", "unclosed"),
        ("plain words", "plain words"),
        ("<script>alert(1)</script>Denied", "Denied"),
    ],
)
def test_plain_error_text_strips_markup(body: str, expected: str) -> None:
    from ccm_tui.translate.openai_errors import plain_error_text

    assert plain_error_text(body) == expected


def test_plain_error_text_is_linear_on_hostile_markup() -> None:
    from ccm_tui.translate.openai_errors import plain_error_text

    # Quadratic before: unclosed tags over tens of KB took seconds. Bounded input and one pass make it instant;
    # asserted on the result (the cap), not on time.
    hostile = "<style" * 200_000 + "<" * 200_000
    assert plain_error_text(hostile) == ""
    assert plain_error_text("x " * 100_000).startswith("x x")
