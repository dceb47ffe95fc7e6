"""OpenAI Chat Completions response -> Anthropic Message, non-streaming and streaming (pure; PROTOCOLS.md §2.4).

`message_from_openai` converts a whole completion. `OpenAIStreamTranslator` is a small explicit state machine
turning chunks into Anthropic SSE events: it opens at most one content block at a time and emits
`message_delta`/`message_stop` only in `finish()`, because usage arrives after the finish_reason chunk.

Reasoning (`reasoning_content` from DeepSeek and vLLM-style servers, `reasoning` / `reasoning_details` from
OpenRouter and Groq) becomes a `thinking` block when the request asked for thinking. It has no signature: when
the client sends it back, translate/continuity.py drops it for Anthropic-protocol targets, and the OpenAI and
Gemini translators drop unsigned thinking too. Stop sequences are enforced here on the text (ReplyOptions);
error bodies are normalised in translate/openai_errors.py.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson

from ccm_tui.core.contract import StreamMeter, UpstreamError
from ccm_tui.core.events import Usage
from ccm_tui.core.scrub import scrub
from ccm_tui.core.states import ErrorOrigin
from ccm_tui.tokens import quick_text_estimate
from ccm_tui.translate.openai_request import OpenAIQuirks
from ccm_tui.translate.reply_options import ReplyOptions
from ccm_tui.translate.sse import encode_event
from ccm_tui.translate.stop_sequences import StopScanner

_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}

_OVERLOAD_TYPES = ("overloaded_error", "rate_limit_error", "server_overloaded", "rate_limit_exceeded")
# Codes that mean "too busy" in an error chunk; the message is prose and never decides (a "context capacity"
# error is not an overload).
_OVERLOAD_CODES = (429, 503, 529, "429", "503", "529", "rate_limit_exceeded", "overloaded", "server_overloaded")


def usage_from_openai(usage: dict[str, Any] | None) -> Usage:
    """Anthropic counts from OpenAI ones: prompt_tokens includes the cached (and cache-written) tokens."""
    if not isinstance(usage, dict):
        return Usage()
    details = usage.get("prompt_tokens_details") or {}
    cached = _int(details.get("cached_tokens")) or _int(usage.get("prompt_cache_hit_tokens"))  # DeepSeek's name
    written = _int(details.get("cache_write_tokens"))
    return Usage(
        input_tokens=max(_int(usage.get("prompt_tokens")) - cached - written, 0),
        output_tokens=_int(usage.get("completion_tokens")),
        cache_creation_input_tokens=written,
        cache_read_input_tokens=cached,
    )


def usage_dict(usage: Usage) -> dict[str, int]:
    return {
        "input_tokens": usage.input_tokens,
        "cache_creation_input_tokens": usage.cache_creation_input_tokens,
        "cache_read_input_tokens": usage.cache_read_input_tokens,
        "output_tokens": usage.output_tokens,
    }


def stop_reason_from_openai(finish_reason: str | None, has_tool_use: bool) -> str:
    # Some compatibles (Gemini) report "stop" after tool calls; Claude Code only runs tools on tool_use.
    if has_tool_use and finish_reason in (None, "stop"):
        return "tool_use"
    return _STOP_REASONS.get(finish_reason or "stop", "end_turn")


def message_from_openai(
    data: dict[str, Any], requested_model: str, options: ReplyOptions | None = None
) -> tuple[dict[str, Any], Usage]:
    """An Anthropic Message for a non-streaming completion; `model` is what the client asked for."""
    options = options or ReplyOptions()
    if not isinstance(data, dict):
        raise UpstreamError.bad_reply("malformed response from upstream")
    choices = data.get("choices") or []
    if data.get("error") and not choices:
        raise stream_error(data["error"])
    if not choices or not isinstance(choices[0], dict):
        raise UpstreamError.bad_reply("upstream response has no choices")
    choice = choices[0]
    if choice.get("finish_reason") == "error":
        raise stream_error(choice.get("error") or data.get("error"))
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    reasoning = reasoning_text(message)
    if reasoning and options.thinking:
        content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    text = _text_of(message.get("content")) or _text_of(message.get("refusal"))
    scanner = StopScanner(options.stop_sequences)
    if text and scanner.active:
        text = scanner.feed(text) + scanner.flush()
    if text:
        content.append({"type": "text", "text": text})
    calls = message.get("tool_calls") or ()
    for call in calls[:1] if options.single_tool_call else calls:
        function = call.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id") or _new_tool_id(),
                "name": function.get("name") or "",
                "input": parse_arguments(function.get("arguments")),
            }
        )
    usage = usage_from_openai(data.get("usage"))
    has_tool_use = any(block["type"] == "tool_use" for block in content)
    stop_reason = stop_reason_from_openai(choice.get("finish_reason"), has_tool_use)
    if scanner.matched is not None:
        stop_reason = "stop_sequence"
    result = {
        "id": _message_id(data.get("id")),
        "type": "message",
        "role": "assistant",
        "model": requested_model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": scanner.matched,
        "usage": usage_dict(usage),
    }
    return result, usage


def reasoning_text(fields: dict[str, Any]) -> str:
    """The reasoning in a message or delta: `reasoning_content`, else `reasoning`, else `reasoning_details`
    (OpenRouter sends both of the last two with the same text)."""
    for name in ("reasoning_content", "reasoning"):
        value = fields.get(name)
        if isinstance(value, str) and value:
            return value
    details = fields.get("reasoning_details")
    if isinstance(details, list):
        return "".join(
            str(item.get("text") or item.get("summary") or "")
            for item in details
            if isinstance(item, dict) and item.get("type") in ("reasoning.text", "reasoning.summary")
        )
    return ""


def parse_arguments(arguments: Any) -> dict[str, Any]:
    """A tool call's input object; arguments that are not a JSON object are kept as text, never raised on."""
    if isinstance(arguments, dict):
        return arguments
    if not isinstance(arguments, str) or not arguments.strip():
        return {}
    try:
        parsed = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        # The client's tool validation then tells the model what went wrong, which beats failing the turn.
        return {"_raw_arguments": arguments}
    return parsed if isinstance(parsed, dict) else {"_raw_arguments": arguments}


def stream_error(error: Any) -> UpstreamError:
    """The UpstreamError for an error reported inside a 200 response (an `error` chunk or finish_reason)."""
    if isinstance(error, dict):
        message = str(error.get("message") or "upstream reported an error")
        code = error.get("code")
    else:
        message, code = str(error or "upstream reported an error"), None
    overloaded = code in _OVERLOAD_CODES or (isinstance(error, dict) and error.get("type") in _OVERLOAD_TYPES)
    return UpstreamError(
        None,
        scrub(message)[:300],
        origin=ErrorOrigin.STREAM,
        error_type="overloaded_error" if overloaded else "api_error",
        error_code=str(code) if code is not None else None,
    )


# --- streaming --------------------------------------------------------------------------------------------


@dataclass
class _ToolCall:
    """One OpenAI tool call as it becomes one Anthropic tool_use block."""

    id: str
    name: str = ""
    block_index: int | None = None  # set once content_block_start was sent
    pending_arguments: list[str] = field(default_factory=list)  # fragments seen before the name was known
    closed: bool = False


class OpenAIStreamTranslator:
    """Chat Completions chunks in, Anthropic SSE bytes out. Feed parsed chunks, then call `finish()` once.

    `stopped` turns true when the text reached one of the request's stop sequences: the caller stops reading
    the upstream and calls `finish()`, which reports the match.
    """

    def __init__(
        self,
        requested_model: str,
        meter: StreamMeter,
        quirks: OpenAIQuirks | None = None,
        options: ReplyOptions | None = None,
    ) -> None:
        self._model = requested_model
        self._meter = meter
        self._quirks = quirks or OpenAIQuirks()
        self._options = options or ReplyOptions()
        self._scanner = StopScanner(self._options.stop_sequences)
        self._started = False
        self._finished = False
        self._next_index = 0  # Anthropic content index of the next block
        self._open_index: int | None = None  # the block currently open, if any
        self._open_kind: str | None = None  # its type: text, thinking or tool_use
        self._open_tool: _ToolCall | None = None  # the tool call whose block is open
        self._awaiting_name: _ToolCall | None = None  # a call seen before its name (not started yet)
        self._tools: dict[int, _ToolCall] = {}  # by OpenAI tool-call index
        self._ignored: set[int] = set()  # indexes whose current call is dropped (one tool call only)
        self._has_tool_use = False
        self._finish_reason: str | None = None
        self._usage: Usage | None = None
        self._text_length = 0  # characters of text and reasoning sent (for a usage estimate after a cut)

    @property
    def started(self) -> bool:
        """True once message_start has been produced (the client has, or will have, seen bytes)."""
        return self._started

    @property
    def stopped(self) -> bool:
        """True once a stop sequence matched: nothing more is read from the upstream."""
        return self._scanner.matched is not None

    def feed(self, chunk: dict[str, Any]) -> bytes:
        if self._finished or self.stopped:
            return b""
        if not isinstance(chunk, dict):
            raise UpstreamError.bad_reply("malformed chunk from upstream")
        if chunk.get("error"):
            raise stream_error(chunk["error"])
        events: list[dict[str, Any]] = []
        self._take_usage(chunk)
        if isinstance(chunk.get("model"), str):
            self._meter.model = chunk["model"]
        if not self._started:
            self._started = True
            events.append(self._message_start(chunk.get("id")))
            events.append({"type": "ping"})
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue  # n > 1 is never requested; ignore stray choices rather than interleave them
            delta = choice.get("delta") or {}
            reasoning = reasoning_text(delta)
            if reasoning and self._options.thinking:
                events.extend(self._thinking(reasoning))
            text = _text_of(delta.get("content")) or _text_of(delta.get("refusal"))
            if text:
                events.extend(self._text(text))
                if self.stopped:
                    break
            for position, fragment in enumerate(delta.get("tool_calls") or ()):
                events.extend(self._tool_fragment(fragment, position))
            finish_reason = choice.get("finish_reason")
            if finish_reason == "error":
                raise stream_error(choice.get("error") or chunk.get("error"))
            if finish_reason:
                self._finish_reason = finish_reason
        return b"".join(encode_event(event) for event in events)

    def finish(self, saw_done: bool = False) -> bytes:
        """Close the message at `[DONE]`, at the end of the body or after a stop sequence. A stream with
        neither a finish_reason nor `[DONE]` was cut: that raises, and so does one that never produced a chunk."""
        if self._finished:
            return b""
        if not self._started:
            raise UpstreamError.bad_reply("upstream stream ended without any data")
        if self._finish_reason is None and not saw_done and not self.stopped:
            raise UpstreamError.bad_reply("upstream stream ended before it finished")
        self._finished = True
        events: list[dict[str, Any]] = []
        rest = self._scanner.flush()
        if rest:
            events.extend(self._text_delta(rest))
        if self._awaiting_name is not None:
            events.extend(self._start_tool(self._awaiting_name))
        events.extend(self._close_block())
        stop_reason = stop_reason_from_openai(self._finish_reason, self._has_tool_use)
        if self.stopped:
            stop_reason = "stop_sequence"
        usage = self._usage
        if usage is None and self.stopped:
            # Cut before the upstream's usage chunk: estimates, like message_start's.
            usage = Usage(
                input_tokens=self._options.input_estimate, output_tokens=quick_text_estimate(self._text_length)
            )
        delta_usage = usage_dict(usage) if usage is not None else {"output_tokens": 0}
        events.append(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": self._scanner.matched},
                "usage": delta_usage,
            }
        )
        events.append({"type": "message_stop"})
        self._meter.usage = usage or Usage()
        self._meter.stop_reason = stop_reason
        self._meter.completed = True
        return b"".join(encode_event(event) for event in events)

    # --- transitions ----------------------------------------------------------------------------------------

    def _message_start(self, upstream_id: Any) -> dict[str, Any]:
        # The upstream's counts come only at the end; Claude Code reads input_tokens here for its context
        # accounting, so it gets the local estimate (message_delta carries the exact numbers).
        usage = self._usage or Usage(input_tokens=self._options.input_estimate)
        return {
            "type": "message_start",
            "message": {
                "id": _message_id(upstream_id),
                "type": "message",
                "role": "assistant",
                "model": self._model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {**usage_dict(usage), "output_tokens": 0},
            },
        }

    def _thinking(self, text: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        if self._open_kind != "thinking":
            events.extend(self._open_block({"type": "thinking", "thinking": "", "signature": ""}))
        self._text_length += len(text)
        events.append(
            {
                "type": "content_block_delta",
                "index": self._open_index,
                "delta": {"type": "thinking_delta", "thinking": text},
            }
        )
        return events

    def _text(self, text: str) -> list[dict[str, Any]]:
        return self._text_delta(self._scanner.feed(text))

    def _text_delta(self, text: str) -> list[dict[str, Any]]:
        if not text:
            return []
        events: list[dict[str, Any]] = []
        if self._open_kind != "text":
            events.extend(self._open_block({"type": "text", "text": ""}))
        self._text_length += len(text)
        events.append(
            {"type": "content_block_delta", "index": self._open_index, "delta": {"type": "text_delta", "text": text}}
        )
        return events

    def _tool_fragment(self, fragment: dict[str, Any], position: int) -> list[dict[str, Any]]:
        openai_index = fragment.get("index", position)
        call_id = fragment.get("id")
        function = fragment.get("function") or {}
        if openai_index in self._ignored and not call_id:
            return []  # more of a call dropped for disable_parallel_tool_use
        call = self._tools.get(openai_index)
        events: list[dict[str, Any]] = []
        # Some compatibles reuse index 0 for every call: a new id at a known index is a new call.
        if call is None or (call_id and call.id != call_id):
            if self._options.single_tool_call and self._tools:
                self._ignored.add(openai_index)  # disable_parallel_tool_use: the upstream sent a second call anyway
                return []
            self._ignored.discard(openai_index)
            events.extend(self._text_delta(self._scanner.flush()))  # held-back text precedes the call
            if self._awaiting_name is not None:
                events.extend(self._start_tool(self._awaiting_name))  # never got a name; start it as it is
            call = _ToolCall(id=call_id or _new_tool_id())
            self._tools[openai_index] = call
            events.extend(self._close_block())
            self._awaiting_name = call
        elif call.closed:
            # Anthropic blocks cannot be reopened; the vendor interleaved arguments of parallel calls.
            raise UpstreamError.bad_reply("upstream interleaved tool-call arguments")
        if function.get("name") and not call.name:
            call.name = function["name"]
        arguments = function.get("arguments")
        if arguments is not None and not isinstance(arguments, str):
            arguments = orjson.dumps(arguments).decode()
        if call.block_index is None:
            if arguments:
                call.pending_arguments.append(arguments)
            if call.name:
                events.extend(self._start_tool(call))
        elif arguments:
            events.append(_json_delta(call.block_index, arguments))
        return events

    def _start_tool(self, call: _ToolCall) -> list[dict[str, Any]]:
        events = self._open_block({"type": "tool_use", "id": call.id, "name": call.name, "input": {}})
        call.block_index = self._open_index
        self._open_tool = call
        if self._awaiting_name is call:
            self._awaiting_name = None
        self._has_tool_use = True
        if call.pending_arguments:
            events.append(_json_delta(self._open_index, "".join(call.pending_arguments)))
            call.pending_arguments.clear()
        return events

    def _open_block(self, content_block: dict[str, Any]) -> list[dict[str, Any]]:
        events = self._close_block()
        self._open_index = self._next_index
        self._open_kind = content_block["type"]
        self._next_index += 1
        events.append({"type": "content_block_start", "index": self._open_index, "content_block": content_block})
        return events

    def _close_block(self) -> list[dict[str, Any]]:
        if self._open_index is None:
            return []
        events = [{"type": "content_block_stop", "index": self._open_index}]
        self._open_index = None
        self._open_kind = None
        if self._open_tool is not None:
            self._open_tool.closed = True
            self._open_tool = None
        return events

    def _take_usage(self, chunk: dict[str, Any]) -> None:
        usage = chunk.get("usage")
        if not isinstance(usage, dict) and self._quirks.usage_in_x_groq:
            usage = (chunk.get("x_groq") or {}).get("usage")
        if isinstance(usage, dict):
            # Usage values are totals so far: the latest wins.
            self._usage = usage_from_openai(usage)
            self._meter.usage = self._usage


def _json_delta(index: int | None, partial_json: str) -> dict[str, Any]:
    return {
        "type": "content_block_delta",
        "index": index,
        "delta": {"type": "input_json_delta", "partial_json": partial_json},
    }


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # a few compatibles send content parts
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def _message_id(upstream_id: Any) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9]", "", upstream_id)[:40] if isinstance(upstream_id, str) else ""
    return f"msg_{cleaned or uuid.uuid4().hex[:24]}"


def _new_tool_id() -> str:
    return f"toolu_{uuid.uuid4().hex[:24]}"


def _int(value: Any) -> int:
    # Magnitude kept on purpose: a count no real answer has makes a non-streaming reply unusable (the engine
    # fails it over, routing/replies.py) and is dropped from a stream's record (sane_usage).
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value or abs(value) == float("inf"):
        return 0
    return int(value)
