"""Anthropic Messages request -> OpenAI Chat Completions request (pure; PROTOCOLS.md §2.4).

OpenAIQuirks, the per-vendor differences that change the translated body, live in the vendor registry
(core/vendors.py); the adapter picks them for a vendor and model. Nothing here does I/O. The response side
(message, stream, errors) lives in translate/openai_response.py.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Any

import orjson

from ccm_tui.core.vendors import OpenAIQuirks

# Server tools carry a dated type (web_search_20250305, bash_20250124, text_editor_20250728 ...): they run on
# Anthropic's side or have a schema only Claude knows, so an OpenAI model cannot use them.
_VERSIONED_TOOL_TYPE = re.compile(r"_\d{8}$")

# Claude Code's first system block is a per-request billing header; it means nothing to other vendors and,
# because it changes every request, it would defeat their prefix caching.
_BILLING_HEADER_PREFIX = "x-anthropic-billing-header"

# JSON-Schema keywords Gemini's function declarations reject with "Unknown name ... Cannot find field".
_GEMINI_UNSUPPORTED_SCHEMA_KEYS = frozenset(
    {"$schema", "$id", "additionalProperties", "propertyNames", "patternProperties", "unevaluatedProperties"}
)

_MAX_USER_ID_LENGTH = 64  # OpenAI rejects longer `user` values; Claude Code's user_id is a long JSON string

OPENAI_MAX_TOOL_ID = 40  # OpenAI rejects longer ids (string_above_max_length)


def openai_tool_id(tool_id: str) -> str:
    """The id itself when OpenAI accepts it, else a stable short stand-in (same input, same output, so a
    tool call and its result stay paired and prompt caches stay warm). Gemini-encoded ids are long."""
    if len(tool_id) <= OPENAI_MAX_TOOL_ID:
        return tool_id
    return "call_" + hashlib.sha256(tool_id.encode()).hexdigest()[:32]


def request_to_openai(
    body: dict[str, Any], model: str, quirks: OpenAIQuirks, *, max_output_tokens: int | None = None
) -> dict[str, Any]:
    """The Chat Completions body for an Anthropic Messages body, sent to `model`.

    `max_output_tokens` (the provider's configured cap) wins over the quirks' default cap.
    """
    out: dict[str, Any] = {"model": model, "messages": _messages(body, quirks)}

    tools = [_tool(tool, quirks) for tool in body.get("tools") or () if _is_function_tool(tool)]
    if tools:
        out["tools"] = tools
        tool_choice = body.get("tool_choice")
        if isinstance(tool_choice, dict):
            choice = _tool_choice(tool_choice)
            if choice is not None:
                out["tool_choice"] = choice
            if tool_choice.get("disable_parallel_tool_use") and quirks.parallel_tool_calls:
                out["parallel_tool_calls"] = False

    max_tokens = body.get("max_tokens")
    cap = max_output_tokens if max_output_tokens is not None else quirks.default_max_output_tokens
    if isinstance(max_tokens, int):
        out["max_completion_tokens" if quirks.use_max_completion_tokens else "max_tokens"] = (
            min(max_tokens, cap) if cap is not None else max_tokens
        )

    if quirks.sampling_params:
        for name in ("temperature", "top_p"):
            if body.get(name) is not None:
                out[name] = body[name]
        stops = [s for s in body.get("stop_sequences") or () if isinstance(s, str) and s]
        if stops:
            out["stop"] = stops[: quirks.max_stop_sequences] if quirks.max_stop_sequences else stops

    user_id = (body.get("metadata") or {}).get("user_id")
    if quirks.send_user and isinstance(user_id, str) and user_id:
        out["user"] = _short_user_id(user_id)

    _add_reasoning(out, body.get("thinking"), quirks)

    if body.get("stream"):
        out["stream"] = True
        if quirks.stream_include_usage:
            out["stream_options"] = {"include_usage": True}
    return out


# --- messages ---------------------------------------------------------------------------------------------


def _messages(body: dict[str, Any], quirks: OpenAIQuirks) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    system_text = _system_text(body.get("system"))
    if system_text:
        messages.append({"role": quirks.system_role, "content": system_text})
    for message in body.get("messages") or ():
        role, content = message.get("role"), message.get("content")
        if role == "assistant":
            messages.extend(_assistant_message(content))
        elif role == "system":
            text = _system_text(content)
            if text:
                messages.append({"role": quirks.system_role, "content": text})
        else:
            messages.extend(_user_messages(content))
    return _merge_same_role(_pair_tool_results(messages))


def _system_text(system: Any) -> str:
    if isinstance(system, str):
        return system
    parts = [
        block.get("text", "")
        for block in system or ()
        if isinstance(block, dict)
        and block.get("type") == "text"
        and not block.get("text", "").startswith(_BILLING_HEADER_PREFIX)
    ]
    return "\n\n".join(part for part in parts if part)


def _assistant_message(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"role": "assistant", "content": content}] if content else []
    texts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for block in content or ():
        kind = block.get("type")
        if kind == "text" and block.get("text"):
            texts.append(block["text"])
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            tool_calls.append(
                {
                    "id": openai_tool_id(block.get("id", "")),
                    "type": "function",
                    "function": {"name": block.get("name", ""), "arguments": arguments},
                }
            )
        # thinking / redacted_thinking carry Anthropic signatures no other vendor can verify; server tool
        # blocks describe work Anthropic did. Both are dropped.
    if not texts and not tool_calls:
        return []
    message: dict[str, Any] = {"role": "assistant", "content": "\n\n".join(texts) if texts else None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return [message]


def _user_messages(content: Any) -> list[dict[str, Any]]:
    """One user turn -> tool messages first (OpenAI wants them right after the calls), then the rest."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    tool_messages: list[dict[str, Any]] = []
    tool_images: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for block in content or ():
        if block.get("type") == "tool_result":
            text, images = _tool_result_content(block)
            tool_call_id = openai_tool_id(block.get("tool_use_id", ""))
            tool_messages.append({"role": "tool", "tool_call_id": tool_call_id, "content": text})
            tool_images.extend(images)
        else:
            part = _user_part(block)
            if part is not None:
                parts.append(part)
    out = tool_messages
    if tool_images or parts:
        out.append({"role": "user", "content": _simplify_parts(tool_images + parts)})
    return out


def _tool_result_content(block: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    content = block.get("content")
    texts: list[str] = []
    images: list[dict[str, Any]] = []
    if isinstance(content, str):
        texts.append(content)
    else:
        for item in content or ():
            part = _user_part(item)
            if part is None:
                continue
            if part["type"] == "text":
                texts.append(part["text"])
            else:  # tool messages take text only: images travel in a user message after the tool messages
                images.append(part)
    text = "\n".join(texts)
    if block.get("is_error"):
        text = f"Error: {text}"
    return text, images


def _user_part(block: dict[str, Any]) -> dict[str, Any] | None:
    kind = block.get("type")
    if kind == "text":
        return {"type": "text", "text": block.get("text", "")}
    if kind == "image":
        url = _source_url(block.get("source") or {})
        return {"type": "image_url", "image_url": {"url": url}} if url else None
    if kind == "document":
        source = block.get("source") or {}
        if source.get("type") == "text":
            return {"type": "text", "text": source.get("data", "")}
        if source.get("type") == "base64":
            data_url = f"data:{source.get('media_type', 'application/pdf')};base64,{source.get('data', '')}"
            return {"type": "file", "file": {"filename": block.get("title") or "document.pdf", "file_data": data_url}}
        return None
    if kind == "search_result":
        texts = [item.get("text", "") for item in block.get("content") or () if item.get("type") == "text"]
        return {"type": "text", "text": "\n".join([block.get("title", ""), *texts]).strip()}
    return None  # thinking, server-tool results and unknown blocks have no OpenAI form


def _source_url(source: dict[str, Any]) -> str | None:
    if source.get("type") == "base64":
        return f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
    if source.get("type") == "url":
        return source.get("url")
    return None


def _simplify_parts(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    # Plain strings are accepted everywhere; some compatibles reject part arrays for text-only models.
    if all(part["type"] == "text" for part in parts):
        return "\n\n".join(part["text"] for part in parts)
    return parts


def _pair_tool_results(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Make tool messages valid for OpenAI: each answers a call of the assistant message right before them.

    Results whose call is not there (history trimmed by the client) become user text; calls left without a
    result (an interrupted turn) get a placeholder, since OpenAI rejects the request otherwise.
    """
    out: list[dict[str, Any]] = []
    index = 0
    while index < len(messages):
        message = messages[index]
        index += 1
        if message["role"] == "tool":  # a tool message not directly after an assistant with calls
            out.append({"role": "user", "content": f"[tool result {message['tool_call_id']}]\n{message['content']}"})
            continue
        out.append(message)
        calls = message.get("tool_calls") if message["role"] == "assistant" else None
        if not calls:
            continue
        # Collect the answers that follow, skipping over (and keeping) other messages in between, such as
        # Claude Code's role:"system" turns, until the next assistant message.
        pending = {call["id"] for call in calls}
        answers: list[dict[str, Any]] = []
        between: list[dict[str, Any]] = []
        while index < len(messages) and messages[index]["role"] != "assistant":
            candidate = messages[index]
            if candidate["role"] == "tool" and candidate["tool_call_id"] in pending:
                pending.discard(candidate["tool_call_id"])
                answers.append(candidate)
            elif candidate["role"] == "tool" or (candidate["role"] == "user" and not pending):
                break
            else:
                between.append(candidate)
            index += 1
        answered = {answer["tool_call_id"] for answer in answers}
        answers.extend(
            {"role": "tool", "tool_call_id": call["id"], "content": "Error: no result (the tool call was interrupted)"}
            for call in calls
            if call["id"] not in answered
        )
        out.extend(sorted(answers, key=lambda a: [c["id"] for c in calls].index(a["tool_call_id"])))
        out.extend(between)
    return out


def _merge_same_role(messages: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Join consecutive user / assistant / system messages (some vendors' chat templates reject repeats)."""
    out: list[dict[str, Any]] = []
    for message in messages:
        previous = out[-1] if out else None
        if previous is None or previous["role"] != message["role"] or message["role"] == "tool":
            out.append(dict(message))
            continue
        if message["role"] == "assistant" and previous.get("tool_calls"):
            # Text after tool calls would then precede them; keep the two turns apart instead.
            out.append(dict(message))
            continue
        previous["content"] = _join_content(previous.get("content"), message.get("content"))
        if message.get("tool_calls"):
            previous["tool_calls"] = [*previous.get("tool_calls", []), *message["tool_calls"]]
    return out


def _join_content(first: Any, second: Any) -> Any:
    if first is None:
        return second
    if second is None:
        return first
    if isinstance(first, str) and isinstance(second, str):
        return f"{first}\n\n{second}"
    return _as_parts(first) + _as_parts(second)


def _as_parts(content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content)


# --- tools and options ------------------------------------------------------------------------------------


def _is_function_tool(tool: dict[str, Any]) -> bool:
    kind = tool.get("type")
    if kind not in (None, "custom"):
        return not _VERSIONED_TOOL_TYPE.search(str(kind)) and "input_schema" in tool
    return "name" in tool


def _tool(tool: dict[str, Any], quirks: OpenAIQuirks) -> dict[str, Any]:
    # Only name, description and schema cross over: cache_control, defer_loading, input_examples,
    # eager_input_streaming and strict are Anthropic-only.
    schema = tool.get("input_schema") or {"type": "object", "properties": {}}
    if quirks.gemini_schema:
        schema = _gemini_schema(schema)
    function: dict[str, Any] = {"name": tool["name"], "parameters": schema}
    if tool.get("description"):
        function["description"] = tool["description"]
    return {"type": "function", "function": function}


def _gemini_schema(schema: Any) -> Any:
    if isinstance(schema, dict):
        cleaned = {k: _gemini_schema(v) for k, v in schema.items() if k not in _GEMINI_UNSUPPORTED_SCHEMA_KEYS}
        if "const" in cleaned:
            cleaned["enum"] = [cleaned.pop("const")]
        return cleaned
    if isinstance(schema, list):
        return [_gemini_schema(item) for item in schema]
    return schema


def _tool_choice(choice: dict[str, Any]) -> str | dict[str, Any] | None:
    kind = choice.get("type")
    if kind == "auto":
        return "auto"
    if kind == "any":
        return "required"
    if kind == "none":
        return "none"
    if kind == "tool" and choice.get("name"):
        return {"type": "function", "function": {"name": choice["name"]}}
    return None


def _add_reasoning(out: dict[str, Any], thinking: Any, quirks: OpenAIQuirks) -> None:
    if not isinstance(thinking, dict) or thinking.get("type") != "enabled":
        return  # "adaptive" and "disabled" carry no budget to translate
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int):
        return
    if quirks.reasoning_request == "effort":
        out["reasoning_effort"] = "low" if budget < 4096 else "medium" if budget < 16384 else "high"
    elif quirks.reasoning_request == "openrouter":
        out["reasoning"] = {"max_tokens": budget}


def _short_user_id(user_id: str) -> str:
    if len(user_id) <= _MAX_USER_ID_LENGTH:
        return user_id
    # Stable and opaque: the same Claude Code user maps to the same id without sending the original.
    return "ccm-" + hashlib.sha256(user_id.encode()).hexdigest()[:40]
