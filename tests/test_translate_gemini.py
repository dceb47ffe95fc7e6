"""Anthropic <-> Gemini translation (pure): requests, schemas, responses and the stream state machine."""

from __future__ import annotations

from typing import Any

import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message

from ccm_tui.translate.gemini import (
    PLACEHOLDER_THOUGHT_SIGNATURE,
    GeminiStreamTranslator,
    anthropic_message,
    clean_schema,
    encode_tool_id,
    gemini_request,
    signature_from_tool_id,
    stop_reason_for,
    usage_fields,
)
from tests.mocks.anthropic_script import stream_grammar_problem


def sdk_message(events: list[dict[str, Any]]) -> Any:
    snapshot, json_bufs = None, {}
    for event in events:
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=json_bufs)  # type: ignore[arg-type]
    return snapshot


@pytest.mark.parametrize("signature", ["CiQBcsjafQ+/abc==", "x" * 2000, "skip_thought_signature_validator", "a/b+c"])
def test_tool_id_carries_a_thought_signature_losslessly(signature: str):
    tool_id = encode_tool_id(signature)
    assert tool_id.startswith("toolu_") and tool_id.replace("_", "").replace("-", "").isalnum()
    assert signature_from_tool_id(tool_id) == signature


@pytest.mark.parametrize("tool_id", ["toolu_01abc", "call_abc.123", "toolu_x__gsig_%%%", encode_tool_id(None)])
def test_ids_without_a_signature_decode_to_none(tool_id: str):
    assert signature_from_tool_id(tool_id) is None


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        (
            {
                "$schema": "http://json-schema.org/draft-07/schema#",
                "type": "object",
                "additionalProperties": False,
                "properties": {"n": {"type": "integer", "exclusiveMinimum": 0, "minimum": 1}},
                "required": ["n", "gone"],
            },
            {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1}}, "required": ["n"]},
        ),
        ({"type": ["string", "null"], "format": "uri"}, {"type": "string", "nullable": True}),
        ({"type": "string", "format": "date-time"}, {"type": "string", "format": "date-time"}),
        ({"const": "fixed"}, {"enum": ["fixed"], "type": "string"}),
        ({"type": "integer", "enum": [1, 2]}, {"type": "integer"}),
        ({"oneOf": [{"type": "string"}, {"type": "number"}]}, {"anyOf": [{"type": "string"}, {"type": "number"}]}),
        (
            {
                "type": "object",
                "properties": {"p": {"$ref": "#/$defs/Point"}},
                "$defs": {"Point": {"type": "object", "properties": {"x": {"type": "number"}}, "propertyNames": {}}},
            },
            {"type": "object", "properties": {"p": {"type": "object", "properties": {"x": {"type": "number"}}}}},
        ),
        (
            {"type": "array", "items": {"type": "string", "default": "a", "examples": ["b"]}},
            {"type": "array", "items": {"type": "string"}},
        ),
        (
            {"allOf": [{"type": "string", "minLength": 1}], "description": "d"},
            {"type": "string", "minLength": 1, "description": "d"},
        ),
    ],
)
def test_clean_schema(schema: dict[str, Any], expected: dict[str, Any]):
    assert clean_schema(schema) == expected


def test_request_maps_roles_system_tools_and_config():
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 128000,
        "temperature": 0.5,
        "stop_sequences": ["a", "b", "c", "d", "e", "f"],
        "system": [{"type": "text", "text": "You are Claude Code."}, {"type": "text", "text": "Be brief."}],
        "thinking": {"type": "enabled", "budget_tokens": 4096},
        "tool_choice": {"type": "tool", "name": "Bash"},
        "tools": [
            {
                "name": "Bash",
                "description": "Run",
                "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
            },
            {"name": "Noop", "input_schema": {"type": "object", "properties": {}}},
            {"type": "web_search_20250305", "name": "web_search"},
        ],
        "messages": [
            {"role": "user", "content": "hi"},
            {
                "role": "user",
                "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}}],
            },
            {"role": "system", "content": "Mid-conversation note."},
            {"role": "assistant", "content": [{"type": "text", "text": "hello"}]},
        ],
    }
    request = gemini_request(body, max_output_tokens=None)
    assert request["systemInstruction"] == {
        "parts": [{"text": "You are Claude Code."}, {"text": "Be brief."}, {"text": "Mid-conversation note."}]
    }
    assert request["contents"] == [
        {"role": "user", "parts": [{"text": "hi"}, {"inlineData": {"mimeType": "image/png", "data": "iVBO"}}]},
        {"role": "model", "parts": [{"text": "hello"}]},
    ]
    assert request["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "Bash",
                    "description": "Run",
                    "parameters": {"type": "object", "properties": {"command": {"type": "string"}}},
                },
                {"name": "Noop"},
            ]
        },
        {"googleSearch": {}},  # web_search is Google Search grounding
    ]
    assert request["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["Bash"]}}
    config = request["generationConfig"]
    assert config["maxOutputTokens"] == 65536 and config["temperature"] == 0.5
    assert "stopSequences" not in config  # enforced on the translated text, so the match can be reported
    assert config["thinkingConfig"] == {"includeThoughts": True, "thinkingBudget": 4096}


def test_tool_history_maps_ids_to_names_and_echoes_signatures():
    signed_id = encode_tool_id("SIG-A")
    body = {
        "max_tokens": 100,
        "messages": [
            {"role": "user", "content": "go"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "plan", "signature": "gemini:SIG-T"},
                    {"type": "text", "text": "ok"},
                    {"type": "redacted_thinking", "data": "gemini:SIG-TEXT"},
                    {"type": "tool_use", "id": signed_id, "name": "get_weather", "input": {"location": "Paris"}},
                    {"type": "tool_use", "id": "call_abc.123", "name": "get_time", "input": {}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": signed_id, "content": [{"type": "text", "text": "sunny"}]},
                    {"type": "tool_result", "tool_use_id": "call_abc.123", "content": "noon", "is_error": True},
                ],
            },
        ],
    }
    contents = gemini_request(body)["contents"]
    assert contents[1]["parts"] == [
        {"text": "plan", "thought": True, "thoughtSignature": "SIG-T"},
        {"text": "ok", "thoughtSignature": "SIG-TEXT"},
        {"functionCall": {"name": "get_weather", "args": {"location": "Paris"}}, "thoughtSignature": "SIG-A"},
        {"functionCall": {"name": "get_time", "args": {}}},
    ]
    assert contents[2]["parts"] == [
        {"functionResponse": {"name": "get_weather", "response": {"content": "sunny"}}},
        {"functionResponse": {"name": "get_time", "response": {"error": "noon"}}},
    ]


def test_foreign_history_gets_the_placeholder_signature_and_loses_foreign_thinking():
    body = {
        "max_tokens": 100,
        "messages": [
            {"role": "user", "content": "go"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "anthropic thoughts", "signature": "EqQBCkgIARABGAIiQL2b8Yc0mHcS"},
                    {"type": "tool_use", "id": "toolu_01", "name": "Bash", "input": {"command": "ls"}},
                ],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "content": "a"}]},
        ],
    }
    model_turn = gemini_request(body)["contents"][1]
    assert model_turn["parts"] == [
        {"functionCall": {"name": "Bash", "args": {"command": "ls"}}, "thoughtSignature": PLACEHOLDER_THOUGHT_SIGNATURE}
    ]


@pytest.mark.parametrize(
    ("finish", "has_tool", "expected"),
    [
        ("STOP", False, "end_turn"),
        ("STOP", True, "tool_use"),
        ("MAX_TOKENS", True, "max_tokens"),
        ("SAFETY", False, "refusal"),
        ("PROHIBITED_CONTENT", False, "refusal"),
        ("MALFORMED_FUNCTION_CALL", False, "end_turn"),
        (None, False, "end_turn"),
    ],
)
def test_stop_reason(finish: str | None, has_tool: bool, expected: str):
    assert stop_reason_for(finish, has_tool) == expected


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({"promptTokenCount": 100, "candidatesTokenCount": 20}, (100, 20, 0)),
        (
            {
                "promptTokenCount": 100,
                "cachedContentTokenCount": 60,
                "candidatesTokenCount": 20,
                "thoughtsTokenCount": 5,
            },
            (40, 25, 60),
        ),
        (None, (0, 0, 0)),
    ],
)
def test_usage_mapping(metadata: dict[str, int] | None, expected: tuple[int, int, int]):
    usage = usage_fields(metadata)
    assert (usage["input_tokens"], usage["output_tokens"], usage["cache_read_input_tokens"]) == expected


def chunk(
    parts: list[dict[str, Any]], finish: str | None = None, usage: dict[str, int] | None = None
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    result: dict[str, Any] = {"candidates": [candidate], "responseId": "r1"}
    if usage:
        result["usageMetadata"] = usage
    return result


def test_stream_state_machine_thinking_text_and_parallel_calls():
    translator = GeminiStreamTranslator("gemini-2.5-pro")
    events = translator.feed(chunk([{"text": "Let me ", "thought": True}], usage={"promptTokenCount": 50}))
    events += translator.feed(chunk([{"text": "think.", "thought": True, "thoughtSignature": "T1"}]))
    events += translator.feed(chunk([{"text": "Checking "}]))
    events += translator.feed(chunk([{"text": "both."}]))
    events += translator.feed(
        chunk(
            [
                {"functionCall": {"name": "a", "args": {"x": 1}}, "thoughtSignature": "F1"},
                {"functionCall": {"name": "b", "args": {}}},
            ],
            finish="STOP",
            usage={"promptTokenCount": 50, "candidatesTokenCount": 9, "thoughtsTokenCount": 3},
        )
    )
    events += translator.finish()
    assert stream_grammar_problem(events) is None
    message = sdk_message(events)
    assert [b.type for b in message.content] == ["thinking", "text", "tool_use", "tool_use"]
    assert message.content[0].thinking == "Let me think." and message.content[0].signature == "gemini:T1"
    assert message.content[1].text == "Checking both."
    assert message.content[2].input == {"x": 1} and signature_from_tool_id(message.content[2].id) == "F1"
    assert signature_from_tool_id(message.content[3].id) is None
    assert message.stop_reason == "tool_use"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (50, 12)


def test_text_part_signature_becomes_a_redacted_thinking_carrier():
    translator = GeminiStreamTranslator("gemini-2.5-flash")
    events = translator.feed(chunk([{"text": "Hi"}]))
    events += translator.feed(chunk([{"text": "", "thoughtSignature": "S9"}], finish="STOP"))
    events += translator.finish()
    message = sdk_message(events)
    assert [b.type for b in message.content] == ["text", "redacted_thinking"]
    assert message.content[1].data == "gemini:S9"


def test_empty_stream_still_forms_a_message():
    translator = GeminiStreamTranslator("m")
    events = translator.finish()
    assert [e["type"] for e in events] == ["message_start", "message_delta", "message_stop"]


def test_non_streaming_response_becomes_a_valid_message():
    response = chunk(
        [
            {"text": "I'll call it."},
            {"functionCall": {"name": "Bash", "args": {"command": "ls"}}, "thoughtSignature": "Z"},
        ],
        finish="STOP",
        usage={"promptTokenCount": 10, "candidatesTokenCount": 5},
    )
    message = Message.model_validate(anthropic_message(response, model="gemini-2.5-pro"))
    assert [b.type for b in message.content] == ["text", "tool_use"]
    assert message.content[1].input == {"command": "ls"}
    assert message.stop_reason == "tool_use" and message.id == "msg_r1"


def test_blocked_prompt_is_a_refusal():
    message = anthropic_message({"promptFeedback": {"blockReason": "SAFETY"}}, model="m")
    assert message["stop_reason"] == "refusal" and message["content"] == []
