"""Anthropic Messages <-> Gemini generateContent: request, response and a streaming state machine. Pure.

Thought signatures. Gemini attaches an opaque `thoughtSignature` to response parts and requires it back on
the same part next turn (Gemini 3 answers 400 without it). Claude Code echoes our blocks verbatim, so the
signature rides inside them:
  - functionCall part  -> tool_use id `toolu_<hex>__gsig_<base64url(signature)>` (decoded back in requests);
  - thought part       -> thinking block with signature `gemini:<signature>`;
  - other (text) part  -> a redacted_thinking block right after it with data `gemini:<signature>`.
Anthropic-protocol targets drop these (translate/continuity.py). History from other providers has no
signatures: the first functionCall of a model turn then gets Google's documented placeholder.
Tool ids from any provider map back to function names through the history (functionResponse needs the name).
Limits come from the vendor registry per model (thinking budget, output cap, schema-with-tools). Stop sequences
are enforced on the text here (translate/stop_sequences.py), not sent; `search_result` blocks travel as text;
features Gemini cannot honour raise UnsupportedFeature (translate/features.py).
Tool declarations and JSON-schema cleaning live in translate/gemini_schema.py; Google error bodies are
parsed in providers/google_auth.py; HTTP lives in providers/gemini.py.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
import secrets
from collections.abc import Mapping
from typing import Any

import orjson

from ccm_tui.core.events import token_count
from ccm_tui.core.vendors import GEMINI_OUTPUT_CAP, model_limits
from ccm_tui.tokens import quick_text_estimate
from ccm_tui.translate.assemble import message_from_events
from ccm_tui.translate.blocks import search_result_text
from ccm_tui.translate.continuity import GEMINI_SIGNATURE_PREFIX
from ccm_tui.translate.features import UnsupportedFeature, output_schema, refuse_mcp_servers
from ccm_tui.translate.gemini_schema import clean_schema, gemini_tools
from ccm_tui.translate.reply_options import ReplyOptions
from ccm_tui.translate.stop_sequences import StopScanner

__all__ = [
    "PLACEHOLDER_THOUGHT_SIGNATURE",
    "GeminiStreamTranslator",
    "anthropic_message",
    "clean_schema",
    "encode_tool_id",
    "gemini_request",
    "gemini_tools",
    "signature_from_tool_id",
    "stop_reason_for",
    "usage_fields",
]

SIGNATURE_ID_MARK = "__gsig_"
# Google's documented value for function calls whose history did not come from Gemini.
PLACEHOLDER_THOUGHT_SIGNATURE = "skip_thought_signature_validator"
DEFAULT_MAX_OUTPUT_TOKENS = GEMINI_OUTPUT_CAP

_REFUSAL_REASONS = frozenset(
    {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT"}
    | {"IMAGE_RECITATION", "IMAGE_OTHER"}
)
_TOOL_CHOICE_MODES = {"auto": "AUTO", "any": "ANY", "tool": "ANY", "none": "NONE"}


# --- thought signature carriers ---------------------------------------------------------------------------


def encode_tool_id(signature: str | None) -> str:
    base = f"toolu_{secrets.token_hex(12)}"
    if not signature:
        return base
    return base + SIGNATURE_ID_MARK + base64.urlsafe_b64encode(signature.encode()).decode().rstrip("=")


def signature_from_tool_id(tool_id: str) -> str | None:
    _, mark, encoded = tool_id.partition(SIGNATURE_ID_MARK)
    if not mark or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded + "=" * (-len(encoded) % 4), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return decoded or None


def _carried_signature(value: Any) -> str | None:
    if isinstance(value, str) and value.startswith(GEMINI_SIGNATURE_PREFIX):
        return value[len(GEMINI_SIGNATURE_PREFIX) :] or None
    return None


# --- request ----------------------------------------------------------------------------------------------


def gemini_request(body: Mapping[str, Any], *, model: str = "", max_output_tokens: int | None = None) -> dict[str, Any]:
    """The generateContent body for an Anthropic Messages body sent to `model` (model and stream are in the
    URL). Raises UnsupportedFeature for what Gemini cannot honour."""
    refuse_mcp_servers(body)
    messages: list[Any] = body["messages"] if isinstance(body.get("messages"), list) else []
    system_texts = _texts(body.get("system"))
    names = {b["id"]: b.get("name") for m in messages for b in _blocks(m) if b.get("type") == "tool_use" and "id" in b}
    contents: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role") if isinstance(message, dict) else None
        if role == "system":  # Claude Code's mid-conversation system turns
            system_texts += _texts(message.get("content"))
            continue
        gemini_role = "model" if role == "assistant" else "user"
        parts = _parts(_blocks(message), names)
        if not parts:
            continue
        if contents and contents[-1]["role"] == gemini_role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": gemini_role, "parts": parts})
    for content in contents:
        calls = [p for p in content["parts"] if "functionCall" in p]
        if content["role"] == "model" and calls and not any("thoughtSignature" in p for p in calls):
            calls[0]["thoughtSignature"] = PLACEHOLDER_THOUGHT_SIGNATURE
    request: dict[str, Any] = {"contents": contents}
    if system_texts:
        request["systemInstruction"] = {"parts": [{"text": text} for text in system_texts]}
    tools = gemini_tools(body.get("tools"))
    if tools:
        request["tools"] = tools
        tool_config = _tool_config(body.get("tool_choice"))
        if tool_config:
            request["toolConfig"] = tool_config
    request["generationConfig"] = _generation_config(
        body, model, max_output_tokens, has_functions=bool(names_of(tools))
    )
    return request


def names_of(tools: list[dict[str, Any]] | None) -> list[str]:
    return [d["name"] for tool in tools or () for d in tool.get("functionDeclarations") or ()]


def _blocks(message: Any) -> list[dict[str, Any]]:
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list):
        return [b["text"] for b in value if isinstance(b, dict) and isinstance(b.get("text"), str) and b["text"]]
    return []


def _parts(blocks: list[dict[str, Any]], names: Mapping[str, Any]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "text" and block.get("text"):
            parts.append({"text": block["text"]})
        elif kind in ("image", "document"):
            parts.extend(_media_parts(block.get("source"), kind))
        elif kind == "search_result" and (text := search_result_text(block)):
            parts.append({"text": text})
        elif kind == "tool_use":
            part: dict[str, Any] = {
                "functionCall": {"name": block.get("name") or "tool", "args": block.get("input") or {}}
            }
            signature = signature_from_tool_id(str(block.get("id") or ""))
            if signature:
                part["thoughtSignature"] = signature
            parts.append(part)
        elif kind == "tool_result":
            parts.extend(_tool_result_parts(block, names))
        elif kind == "thinking" and (signature := _carried_signature(block.get("signature"))):
            parts.append({"text": block.get("thinking") or "", "thought": True, "thoughtSignature": signature})
        elif kind == "redacted_thinking" and (signature := _carried_signature(block.get("data"))):
            if parts and "thoughtSignature" not in parts[-1]:
                parts[-1]["thoughtSignature"] = signature
            else:
                parts.append({"text": "", "thoughtSignature": signature})
        # Foreign thinking, server-tool blocks and the like have no Gemini equivalent: dropped.
    return parts


def _url_mime_type(url: str, kind: str) -> str:
    """The mimeType for a fileData URL: from the path's extension, else what the block kind implies."""
    guessed, _ = mimetypes.guess_type(url.split("?", 1)[0])
    if guessed and (guessed.startswith("image/") or kind == "document"):
        return guessed
    return "image/jpeg" if kind == "image" else "application/pdf"


def _media_parts(source: Any, kind_of_block: str = "image") -> list[dict[str, Any]]:
    if not isinstance(source, dict):
        return []
    kind = source.get("type")
    if kind == "base64":
        return [
            {
                "inlineData": {
                    "mimeType": source.get("media_type") or "application/octet-stream",
                    "data": source.get("data") or "",
                }
            }
        ]
    if kind == "url":
        url = source.get("url") or ""
        mime_type = source.get("media_type") or _url_mime_type(url, kind_of_block)
        return [{"fileData": {"fileUri": url, "mimeType": mime_type}}]
    if kind == "text" and source.get("data"):
        return [{"text": source["data"]}]
    if kind == "content":
        return _parts(_blocks({"content": source.get("content")}), {})
    return []


def _tool_result_parts(block: dict[str, Any], names: Mapping[Any, Any]) -> list[dict[str, Any]]:
    content = block.get("content")
    inline = ("text", "search_result")  # both become the response text; media follow as their own parts
    extra = (
        _parts([b for b in content if isinstance(b, dict) and b.get("type") not in inline], names)
        if isinstance(content, list)
        else []
    )
    texts = _texts(content)
    if isinstance(content, list):
        texts = [
            (b.get("text", "") if b.get("type") == "text" else search_result_text(b))
            for b in content
            if isinstance(b, dict) and b.get("type") in inline
        ]
    text = "\n".join(t for t in texts if t)
    name = names.get(block.get("tool_use_id")) or "tool"
    response = {"error": text} if block.get("is_error") else {"content": text}
    return [{"functionResponse": {"name": name, "response": response}}, *extra]


def _tool_config(choice: Any) -> dict[str, Any] | None:
    if not isinstance(choice, dict) or choice.get("type") not in _TOOL_CHOICE_MODES:
        return None
    config: dict[str, Any] = {"mode": _TOOL_CHOICE_MODES[choice["type"]]}
    if choice["type"] == "tool" and choice.get("name"):
        config["allowedFunctionNames"] = [choice["name"]]
    return {"functionCallingConfig": config}


def _generation_config(
    body: Mapping[str, Any], model: str, max_output_tokens: int | None, *, has_functions: bool
) -> dict[str, Any]:
    limits = model_limits("gemini", model)
    caps = [c for c in (max_output_tokens, limits.output_cap if limits else None) if c]
    cap = min(caps) if caps else DEFAULT_MAX_OUTPUT_TOKENS
    requested = body.get("max_tokens")
    config: dict[str, Any] = {
        "maxOutputTokens": min(requested, cap) if isinstance(requested, int) and requested > 0 else cap
    }
    for source, target in (("temperature", "temperature"), ("top_p", "topP"), ("top_k", "topK")):
        if isinstance(body.get(source), int | float) and not isinstance(body.get(source), bool):
            config[target] = body[source]
    # stop_sequences are not sent: GeminiStreamTranslator enforces them and reports which one matched.
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        config["thinkingConfig"] = {"includeThoughts": True}
        budget = thinking.get("budget_tokens")
        if isinstance(budget, int):
            # Claude Code asks for 31999 on every tier; gemini-2.5-flash answers 400 above 24576.
            if limits is not None and limits.max_thinking_budget is not None:
                budget = min(budget, limits.max_thinking_budget)
            config["thinkingConfig"]["thinkingBudget"] = budget
    elif isinstance(thinking, dict) and thinking.get("type") == "adaptive":
        config["thinkingConfig"] = {"includeThoughts": True}
    schema = output_schema(body)
    if schema is not None:
        if has_functions and limits is not None and not limits.structured_outputs_with_tools:
            raise UnsupportedFeature(
                "structured outputs (output_config.format) together with tools",
                f"{model} cannot combine a response schema with function calling",
            )
        config["responseMimeType"] = "application/json"
        config["responseSchema"] = clean_schema(schema)
    return config


# --- response ---------------------------------------------------------------------------------------------


def stop_reason_for(finish_reason: str | None, has_tool_use: bool) -> str:
    """Gemini reports STOP for function calls too: a produced call makes it tool_use."""
    if finish_reason == "MAX_TOKENS":
        return "max_tokens"
    if finish_reason in _REFUSAL_REASONS:
        return "refusal"
    return "tool_use" if has_tool_use else "end_turn"


def usage_fields(metadata: Any) -> dict[str, int]:
    """usageMetadata as Anthropic usage: input excludes the cached part; output includes thinking."""
    metadata = metadata if isinstance(metadata, dict) else {}
    prompt = token_count(metadata.get("promptTokenCount")) + token_count(metadata.get("toolUsePromptTokenCount"))
    cached = token_count(metadata.get("cachedContentTokenCount"))
    output = token_count(metadata.get("candidatesTokenCount")) + token_count(metadata.get("thoughtsTokenCount"))
    return {
        "input_tokens": max(prompt - cached, 0),
        "output_tokens": output,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
    }


def _candidate(response: Mapping[str, Any]) -> dict[str, Any]:
    candidates = response.get("candidates")
    return candidates[0] if isinstance(candidates, list) and candidates and isinstance(candidates[0], dict) else {}


def _finish_reason(response: Mapping[str, Any]) -> str | None:
    reason = _candidate(response).get("finishReason")
    if reason is None and (response.get("promptFeedback") or {}).get("blockReason"):
        return "PROHIBITED_CONTENT"  # the prompt itself was blocked: no candidates at all
    return reason


def anthropic_message(
    response: Mapping[str, Any], *, model: str, options: ReplyOptions | None = None
) -> dict[str, Any]:
    """A non-streaming generateContent response as an Anthropic Message, by running the stream machine once."""
    translator = GeminiStreamTranslator(model, options)
    return message_from_events(translator.feed(response) + translator.finish())


class GeminiStreamTranslator:
    """Gemini stream chunks in, Anthropic stream events out: an explicit state machine.

    State: whether message_start went out, which block is open (None, "text" or "thinking") and its index,
    whether a tool call was produced, the last finishReason and usage, the stop-sequence scanner. Function
    calls arrive whole and become a complete tool_use block at once. `feed` per chunk, `finish` once at the
    end of the stream, or as soon as `stopped` (a stop sequence matched: read no more).
    """

    def __init__(self, model: str, options: ReplyOptions | None = None) -> None:
        self.model = model
        self.options = options or ReplyOptions()
        self.started = False
        self.finish_reason: str | None = None
        self._open: str | None = None
        self._index = -1
        self._has_tool_use = False
        self._usage: dict[str, int] | None = None
        self._scanner = StopScanner(self.options.stop_sequences)
        self._text_length = 0
        self._message_id = f"msg_{secrets.token_hex(12)}"

    @property
    def stopped(self) -> bool:
        return self._scanner.matched is not None

    def feed(self, chunk: Mapping[str, Any]) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        if self.stopped:
            return events
        if chunk.get("usageMetadata"):
            self._usage = usage_fields(chunk["usageMetadata"])
        if not self.started:
            self.started = True
            if isinstance(chunk.get("responseId"), str):
                self._message_id = f"msg_{chunk['responseId']}"
            events.append(self._message_start())
        content = _candidate(chunk).get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        for part in parts if isinstance(parts, list) else []:
            if isinstance(part, dict):
                events.extend(self._part(part))
            if self.stopped:
                return events
        self.finish_reason = _finish_reason(chunk) or self.finish_reason
        return events

    def finish(self) -> list[dict[str, Any]]:
        events = [] if self.started else [self._message_start()]
        self.started = True
        events.extend(self._text_delta(self._scanner.flush()))
        events.extend(self._close())
        stop_reason = stop_reason_for(self.finish_reason, self._has_tool_use)
        usage = self._usage
        if self.stopped:
            stop_reason = "stop_sequence"
            if usage is None or not usage["output_tokens"]:
                # Cut before Gemini's final counts: estimates, like message_start's.
                usage = usage_fields(None) | {
                    "input_tokens": self.options.input_estimate,
                    "output_tokens": quick_text_estimate(self._text_length),
                }
        events.append(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": self._scanner.matched},
                "usage": usage or usage_fields(None),
            }
        )
        events.append({"type": "message_stop"})
        return events

    def _message_start(self) -> dict[str, Any]:
        # Gemini's prompt count may come with the first chunk; the local estimate stands in until it does.
        usage = {**(self._usage or usage_fields(None)), "output_tokens": 0}
        if not usage["input_tokens"]:
            usage["input_tokens"] = self.options.input_estimate
        message: dict[str, Any] = {"id": self._message_id, "type": "message", "role": "assistant", "model": self.model}
        message |= {"content": [], "stop_reason": None, "stop_sequence": None, "usage": usage}
        return {"type": "message_start", "message": message}

    def _part(self, part: dict[str, Any]) -> list[dict[str, Any]]:
        signature = part.get("thoughtSignature") if isinstance(part.get("thoughtSignature"), str) else None
        if isinstance(part.get("functionCall"), dict):
            if self._has_tool_use and self.options.single_tool_call:
                return []  # disable_parallel_tool_use: Gemini cannot be told, so extra calls are dropped here
            call = part["functionCall"]
            self._has_tool_use = True
            block: dict[str, Any] = {
                "type": "tool_use",
                "id": encode_tool_id(signature),
                "name": call.get("name") or "",
                "input": {},
            }
            arguments = orjson.dumps(call.get("args") or {}).decode()
            delta = {"type": "input_json_delta", "partial_json": arguments}
            held = self._text_delta(self._scanner.flush())
            return [*held, *self._close(), *self._start(block), self._delta(delta), *self._close()]
        text = part.get("text") if isinstance(part.get("text"), str) else _code_execution_text(part)
        events: list[dict[str, Any]] = []
        if part.get("thought") is True:
            if self._open != "thinking":
                events += self._close() + self._start({"type": "thinking", "thinking": "", "signature": ""})
            if text:
                events.append(self._delta({"type": "thinking_delta", "thinking": text}))
            if signature:
                events.append(
                    self._delta({"type": "signature_delta", "signature": GEMINI_SIGNATURE_PREFIX + signature})
                )
                events += self._close()
            return events
        events += self._text_delta(self._scanner.feed(text or ""))
        if signature and not self.stopped:
            events += self._text_delta(self._scanner.flush())  # the carrier must follow all of its text
            carrier = {"type": "redacted_thinking", "data": GEMINI_SIGNATURE_PREFIX + signature}
            events += self._close() + self._start(carrier) + self._close()
        return events

    def _text_delta(self, text: str) -> list[dict[str, Any]]:
        if not text:
            return []
        events: list[dict[str, Any]] = []
        if self._open != "text":
            events += self._close() + self._start({"type": "text", "text": ""})
        self._text_length += len(text)
        events.append(self._delta({"type": "text_delta", "text": text}))
        return events

    def _start(self, block: dict[str, Any]) -> list[dict[str, Any]]:
        self._index += 1
        self._open = block["type"]
        return [{"type": "content_block_start", "index": self._index, "content_block": block}]

    def _delta(self, delta: dict[str, Any]) -> dict[str, Any]:
        return {"type": "content_block_delta", "index": self._index, "delta": delta}

    def _close(self) -> list[dict[str, Any]]:
        if self._open is None:
            return []
        self._open = None
        return [{"type": "content_block_stop", "index": self._index}]


def _code_execution_text(part: Mapping[str, Any]) -> str:
    """Gemini's code execution parts (the codeExecution built-in) as Markdown text."""
    code = part.get("executableCode")
    if isinstance(code, dict) and code.get("code"):
        return f"\n```{str(code.get('language') or '').lower()}\n{code['code']}\n```\n"
    result = part.get("codeExecutionResult")
    if isinstance(result, dict):
        return f"\n```\n{result.get('output') or ''}\n```\n({result.get('outcome') or 'OUTCOME_UNKNOWN'})\n"
    return ""
