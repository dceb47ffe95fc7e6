"""Pure validation of inbound Messages requests: bytes -> parsed body, or a 4xx message naming the field.

Checks only the minimum shape the proxy relies on; everything else (unknown fields, betas, new block
types) passes through for the upstream to judge.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

_ROLES = ("user", "assistant", "system")


@dataclass(frozen=True)
class Invalid:
    status: int
    message: str


def _type_name(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number"
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse_body(raw: bytes) -> dict[str, Any] | Invalid:
    if not raw.strip():
        return Invalid(400, "Request body is empty; expected a JSON object.")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Invalid(400, f"Request body is not valid JSON: {exc}")
    if not isinstance(body, dict):
        return Invalid(400, f"Request body must be a JSON object, got {_type_name(body)}.")
    return body


def _check_content(content: Any, where: str) -> str | None:
    if isinstance(content, str):
        return None
    if not isinstance(content, list):
        return f"{where}: Input should be a string or an array of content blocks, got {_type_name(content)}."
    for index, block in enumerate(content):
        if not isinstance(block, dict):
            return f"{where}.{index}: Input should be a content block object, got {_type_name(block)}."
        if not isinstance(block.get("type"), str):
            return f'{where}.{index}.type: Field required (a string such as "text").'
        if block["type"] == "text" and not isinstance(block.get("text"), str):
            return f"{where}.{index}.text: Field required (a string)."
    return None


def validate_messages_request(body: dict[str, Any], *, require_max_tokens: bool = True) -> Invalid | None:
    """The first problem found, phrased like Anthropic's own validation errors (`field: problem`)."""
    model = body.get("model")
    if "model" not in body:
        return Invalid(400, "model: Field required.")
    if not isinstance(model, str) or not model.strip():
        return Invalid(400, f"model: Input should be a non-empty string, got {_type_name(model)}.")
    if require_max_tokens:
        if "max_tokens" not in body:
            return Invalid(400, "max_tokens: Field required.")
        if not _is_int(body["max_tokens"]) or body["max_tokens"] < 0:
            return Invalid(400, f"max_tokens: Input should be a non-negative integer, got {body['max_tokens']!r}.")
    if "messages" not in body:
        return Invalid(400, "messages: Field required.")
    messages = body["messages"]
    if not isinstance(messages, list):
        return Invalid(400, f"messages: Input should be an array, got {_type_name(messages)}.")
    if not messages:
        return Invalid(400, "messages: at least one message is required.")
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            return Invalid(400, f"messages.{index}: Input should be an object, got {_type_name(message)}.")
        if message.get("role") not in _ROLES:
            return Invalid(
                400, f"messages.{index}.role: Input should be 'user' or 'assistant', got {message.get('role')!r}."
            )
        if "content" not in message:
            return Invalid(400, f"messages.{index}.content: Field required.")
        problem = _check_content(message["content"], f"messages.{index}.content")
        if problem:
            return Invalid(400, problem)
    if "system" in body and body["system"] is not None:
        problem = _check_content(body["system"], "system")
        if problem:
            return Invalid(400, problem)
    if "stream" in body and not isinstance(body["stream"], bool):
        return Invalid(400, f"stream: Input should be a boolean, got {_type_name(body['stream'])}.")
    if "stop_sequences" in body and not (
        isinstance(body["stop_sequences"], list) and all(isinstance(s, str) for s in body["stop_sequences"])
    ):
        return Invalid(400, "stop_sequences: Input should be an array of strings.")
    for name in ("temperature", "top_p"):
        if name in body and body[name] is not None and not _is_number(body[name]):
            return Invalid(400, f"{name}: Input should be a number, got {_type_name(body[name])}.")
    if "top_k" in body and body["top_k"] is not None and not _is_int(body["top_k"]):
        return Invalid(400, f"top_k: Input should be an integer, got {_type_name(body['top_k'])}.")
    if "tools" in body and body["tools"] is not None:
        tools = body["tools"]
        if not isinstance(tools, list):
            return Invalid(400, f"tools: Input should be an array, got {_type_name(tools)}.")
        for index, tool in enumerate(tools):
            if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
                return Invalid(400, f"tools.{index}.name: Field required (a string).")
    if "tool_choice" in body and body["tool_choice"] is not None:
        choice = body["tool_choice"]
        if not isinstance(choice, dict) or choice.get("type") not in ("auto", "any", "tool", "none"):
            return Invalid(400, "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'.")
        if choice["type"] == "tool" and not isinstance(choice.get("name"), str):
            return Invalid(400, "tool_choice.name: Field required when tool_choice.type is 'tool'.")
    return None
