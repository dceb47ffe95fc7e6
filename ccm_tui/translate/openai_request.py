"""Anthropic Messages request -> OpenAI Chat Completions request (pure; PROTOCOLS.md §2.4).

OpenAIQuirks, the per-vendor differences that change the translated body, live in the vendor registry
(core/vendors.py); the adapter picks them for a vendor and model. Nothing here does I/O. The response side
(message, stream, errors) lives in translate/openai_response.py.

Features without an OpenAI form raise UnsupportedFeature (translate/features.py) instead of vanishing: server
tools other than web search on OpenRouter, the MCP connector, output schemas the vendor cannot take. Stop
sequences are never sent: the response translator enforces them (translate/stop_sequences.py). Where the vendor
accepts Anthropic `cache_control` marks on content parts (OpenRouter, for Anthropic and Gemini models), system
and message blocks stay separate parts and keep their marks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import orjson

from ccm_tui.core.vendors import OpenAIQuirks, ReasoningParameter
from ccm_tui.translate.blocks import search_result_text
from ccm_tui.translate.features import (
    TOOL_SEARCH,
    WEB_SEARCH,
    UnsupportedFeature,
    output_schema,
    refuse_mcp_servers,
    refuse_server_tool,
    server_tool_family,
)

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

    `max_output_tokens` (the provider's configured cap) wins over the quirks' default cap. Raises
    UnsupportedFeature for what the vendor cannot do.
    """
    refuse_mcp_servers(body)
    out: dict[str, Any] = {"model": model, "messages": _messages(body, quirks)}

    tools, plugins = _tools(body.get("tools"), quirks)
    if tools:
        out["tools"] = tools
        tool_choice = body.get("tool_choice")
        if isinstance(tool_choice, dict):
            choice = _tool_choice(tool_choice)
            if choice is not None:
                out["tool_choice"] = choice
            if tool_choice.get("disable_parallel_tool_use") and quirks.parallel_tool_calls:
                out["parallel_tool_calls"] = False
    if plugins:
        out["plugins"] = plugins

    max_tokens = body.get("max_tokens")
    cap = max_output_tokens if max_output_tokens is not None else quirks.default_max_output_tokens
    if isinstance(max_tokens, int):
        max_tokens = min(max_tokens, cap) if cap is not None else max_tokens
        out["max_completion_tokens" if quirks.use_max_completion_tokens else "max_tokens"] = max_tokens

    if quirks.sampling_params:
        for name in ("temperature", "top_p"):
            if body.get(name) is not None:
                out[name] = body[name]

    user_id = (body.get("metadata") or {}).get("user_id")
    if quirks.send_user and isinstance(user_id, str) and user_id:
        out["user"] = _short_user_id(user_id)

    _add_reasoning(out, body.get("thinking"), quirks, max_tokens if isinstance(max_tokens, int) else None)
    _add_response_format(out, body, quirks)

    if body.get("stream"):
        out["stream"] = True
        if quirks.stream_include_usage:
            out["stream_options"] = {"include_usage": True}
    return out


# --- messages ---------------------------------------------------------------------------------------------


def _messages(body: dict[str, Any], quirks: OpenAIQuirks) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    system = _system_content(body.get("system"), quirks)
    if system:
        messages.append({"role": quirks.system_role, "content": system})
    for message in body.get("messages") or ():
        role, content = message.get("role"), message.get("content")
        if role == "assistant":
            messages.extend(_assistant_message(content, quirks))
        elif role == "system":
            system = _system_content(content, quirks)
            if system:
                messages.append({"role": quirks.system_role, "content": system})
        else:
            messages.extend(_user_messages(content, quirks))
    if quirks.cache_control and isinstance(body.get("cache_control"), dict) and messages:
        _mark_last_part(messages[-1], body["cache_control"])  # the top-level mark: the last cacheable block
    return _merge_same_role(_pair_tool_results(messages))


def _system_content(system: Any, quirks: OpenAIQuirks) -> str | list[dict[str, Any]]:
    """A system prompt as one string, or (where cache marks travel) as text parts keeping their marks."""
    if isinstance(system, str):
        return system
    blocks = [
        block
        for block in system or ()
        if isinstance(block, dict)
        and block.get("type") == "text"
        and block.get("text")
        and not block["text"].startswith(_BILLING_HEADER_PREFIX)
    ]
    if quirks.cache_control:
        return [_text_part(block["text"], block) for block in blocks]
    return "\n\n".join(block["text"] for block in blocks)


def _text_part(text: str, block: dict[str, Any] | None = None) -> dict[str, Any]:
    part: dict[str, Any] = {"type": "text", "text": text}
    if block is not None and isinstance(block.get("cache_control"), dict):
        part["cache_control"] = block["cache_control"]
    return part


def _mark_last_part(message: dict[str, Any], mark: dict[str, Any]) -> None:
    content = message.get("content")
    if isinstance(content, str):
        message["content"] = content = [{"type": "text", "text": content}]
    if isinstance(content, list) and content and "cache_control" not in content[-1]:
        content[-1] = {**content[-1], "cache_control": mark}


def _assistant_message(content: Any, quirks: OpenAIQuirks) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"role": "assistant", "content": content}] if content else []
    texts: list[dict[str, Any]] = []
    tool_calls: list[dict[str, Any]] = []
    for block in content or ():
        kind = block.get("type")
        if kind == "text" and block.get("text"):
            texts.append(_text_part(block["text"], block if quirks.cache_control else None))
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
    text: str | list[dict[str, Any]] | None = None
    if texts:
        marked = any("cache_control" in part for part in texts)
        text = texts if marked else "\n\n".join(part["text"] for part in texts)
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return [message]


def _user_messages(content: Any, quirks: OpenAIQuirks) -> list[dict[str, Any]]:
    """One user turn -> tool messages first (OpenAI wants them right after the calls), then the rest."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    tool_messages: list[dict[str, Any]] = []
    tool_images: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for block in content or ():
        if block.get("type") == "tool_result":
            text, images, mark = _tool_result_content(block, quirks)
            tool_call_id = openai_tool_id(block.get("tool_use_id", ""))
            # A cache mark on a tool result (Claude Code's usual last breakpoint) needs the parts form.
            body: str | list[dict[str, Any]] = [{"type": "text", "text": text, "cache_control": mark}] if mark else text
            tool_messages.append({"role": "tool", "tool_call_id": tool_call_id, "content": body})
            tool_images.extend(images)
        else:
            part = _user_part(block, quirks)
            if part is not None:
                parts.append(part)
    out = tool_messages
    if tool_images or parts:
        out.append({"role": "user", "content": _simplify_parts(tool_images + parts)})
    return out


def _tool_result_content(
    block: dict[str, Any], quirks: OpenAIQuirks
) -> tuple[str, list[dict[str, Any]], dict[str, Any] | None]:
    """(text, images that must travel in a user message, the cache mark to keep)."""
    content = block.get("content")
    texts: list[str] = []
    images: list[dict[str, Any]] = []
    mark = block.get("cache_control") if quirks.cache_control else None
    if isinstance(content, str):
        texts.append(content)
    else:
        for item in content or ():
            part = _user_part(item, quirks)
            if part is None:
                continue
            if part["type"] == "text":
                texts.append(part["text"])
                mark = part.get("cache_control") or mark
            else:  # tool messages take text only: images travel in a user message after the tool messages
                images.append(part)
    text = "\n".join(texts)
    if block.get("is_error"):
        text = f"Error: {text}"
    return text, images, mark if isinstance(mark, dict) else None


def _user_part(block: dict[str, Any], quirks: OpenAIQuirks) -> dict[str, Any] | None:
    part = _plain_user_part(block)
    if part is not None and quirks.cache_control and isinstance(block.get("cache_control"), dict):
        part["cache_control"] = block["cache_control"]
    return part


def _plain_user_part(block: dict[str, Any]) -> dict[str, Any] | None:
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
        return {"type": "text", "text": search_result_text(block)}
    return None  # thinking, server-tool results and unknown blocks have no OpenAI form


def _source_url(source: dict[str, Any]) -> str | None:
    if source.get("type") == "base64":
        return f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
    if source.get("type") == "url":
        return source.get("url")
    return None


def _simplify_parts(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    # Plain strings are accepted everywhere; some compatibles reject part arrays for text-only models. Parts
    # carrying a cache mark stay parts.
    if all(part["type"] == "text" and "cache_control" not in part for part in parts):
        return "\n\n".join(part["text"] for part in parts)
    return parts


def _content_text(content: Any) -> str:
    if isinstance(content, list):
        return "\n\n".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content if isinstance(content, str) else ""


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
            text = _content_text(message["content"])
            out.append({"role": "user", "content": f"[tool result {message['tool_call_id']}]\n{text}"})
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


def _tools(tools: Any, quirks: OpenAIQuirks) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(function tools, OpenRouter plugins). Server tools map to a plugin where the vendor has one; the tool
    search tool needs no counterpart (deferred tools are declared up front); any other one is refused."""
    functions: list[dict[str, Any]] = []
    plugins: list[dict[str, Any]] = []
    for tool in tools if isinstance(tools, list) else ():
        if not isinstance(tool, dict):
            continue
        family = server_tool_family(tool)
        if family is None:
            if "name" in tool:
                functions.append(_tool(tool, quirks))
        elif family == WEB_SEARCH and quirks.web_search_plugin:
            plugins.append({"id": "web"})
        elif family != TOOL_SEARCH:
            why = "it runs on Anthropic's side and this OpenAI-compatible upstream has no equivalent"
            if family == WEB_SEARCH:
                why += " (web search is mapped for OpenRouter only)"
            raise refuse_server_tool(family, tool, why)
    return functions, plugins


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


def _add_reasoning(out: dict[str, Any], thinking: Any, quirks: OpenAIQuirks, max_tokens: int | None) -> None:
    if not isinstance(thinking, dict) or thinking.get("type") != "enabled":
        return  # "adaptive" and "disabled" carry no budget to translate
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int):
        return
    # Claude Code asks for 31999 whatever the model: clamp to what the target accepts, and below the output cap
    # the budget counts toward.
    if quirks.max_thinking_budget is not None:
        budget = min(budget, quirks.max_thinking_budget)
    if quirks.reasoning_request is ReasoningParameter.EFFORT:
        out["reasoning_effort"] = "low" if budget < 4096 else "medium" if budget < 16384 else "high"
    elif quirks.reasoning_request is ReasoningParameter.OPENROUTER:
        if max_tokens is not None and max_tokens > 1:
            budget = min(budget, max_tokens - 1)  # Anthropic models behind OpenRouter need budget < max_tokens
        out["reasoning"] = {"max_tokens": budget}


def _add_response_format(out: dict[str, Any], body: dict[str, Any], quirks: OpenAIQuirks) -> None:
    schema = output_schema(body)
    if schema is None:
        return
    if not quirks.structured_outputs:
        raise UnsupportedFeature("structured outputs (output_config.format)", "it has no JSON-schema output format")
    if out.get("tools") and not quirks.structured_outputs_with_tools:
        raise UnsupportedFeature(
            "structured outputs (output_config.format) together with tools", "this model cannot combine the two"
        )
    if quirks.gemini_schema:
        schema = _gemini_schema(schema)
    # Not `strict`: OpenAI's strict mode rejects schemas with optional properties, which Anthropic accepts.
    out["response_format"] = {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}


def _short_user_id(user_id: str) -> str:
    if len(user_id) <= _MAX_USER_ID_LENGTH:
        return user_id
    # Stable and opaque: the same Claude Code user maps to the same id without sending the original.
    return "ccm-" + hashlib.sha256(user_id.encode()).hexdigest()[:40]
