"""What the Anthropic-protocol cloud mocks (Bedrock, Vertex) say and check: scripted replies and body rules.

`message_for` / `events_for` turn a scenario into an Anthropic Message or its stream events (message_start,
blocks with text / thinking + signature / tool_use with a leading "" fragment, ping, message_delta,
message_stop; `mid_stream_error` ends in an error event). `claude_body_problem` is the validation those
services apply to a body (version, extraneous keys, tool id format and pairing, thinking signatures).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from typing import Any

DEFAULT_TOOL_INPUT = {"command": "echo ccm-mock-ran-this", "description": "Print a marker"}
# Top-level keys the cloud Claude endpoints accept (written from the services' behaviour, not the adapter's list).
CLOUD_KEYS = frozenset(
    {"anthropic_version", "anthropic_beta", "max_tokens", "messages", "system", "stop_sequences", "temperature"}
    | {"top_p", "top_k", "tools", "tool_choice", "thinking", "output_config", "context_management"}
)
KNOWN_BETAS = frozenset(
    {"interleaved-thinking-2025-05-14", "context-management-2025-06-27", "context-1m-2025-08-07"}
    | {"effort-2025-11-24", "fine-grained-tool-streaming-2025-05-14", "token-efficient-tools-2025-02-19"}
    | {"tool-search-tool-2025-10-19", "computer-use-2025-01-24", "computer-use-2025-11-24", "compact-2026-01-12"}
    | {"thinking-display-updates-2026-08-18", "web-search-2025-03-05"}
)
_TOOL_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
_SIGNATURE = re.compile(r"^[A-Za-z0-9+/]{16,}={0,2}$")


def request_id() -> str:
    return secrets.token_hex(16)


def tool_id() -> str:
    return "toolu_" + secrets.token_hex(12)


def signature() -> str:
    return base64.b64encode(b"\x12" + secrets.token_bytes(47)).decode()


def estimate_tokens(body: Any) -> int:
    return max(1, len(json.dumps(body)) // 4)


def last_tool_result(body: dict[str, Any]) -> str | None:
    """The text of the tool_result in the last user turn, if it holds one."""
    messages = body.get("messages") or []
    if not messages or messages[-1].get("role") != "user" or not isinstance(messages[-1].get("content"), list):
        return None
    for block in messages[-1]["content"]:
        if isinstance(block, dict) and block.get("type") == "tool_result":
            content = block.get("content")
            if isinstance(content, list):
                content = "".join(b.get("text", "") for b in content if isinstance(b, dict))
            return str(content or "")
    return None


def reply_blocks(
    scenario: str, body: dict[str, Any], tool_name: str, tool_input: dict[str, Any], who: str
) -> tuple[list[dict[str, Any]], str]:
    """The content blocks and stop_reason a scenario answers with."""
    if scenario == "tools":
        return [
            {"type": "text", "text": "I'll check the weather."},
            {"type": "tool_use", "id": tool_id(), "name": "get_weather", "input": {"location": "Paris"}},
        ], "tool_use"
    if scenario == "parallel_tools":
        return [
            {"type": "tool_use", "id": tool_id(), "name": "get_weather", "input": {"location": "Paris"}},
            {"type": "tool_use", "id": tool_id(), "name": "get_time", "input": {"timezone": "Europe/Paris"}},
        ], "tool_use"
    if scenario == "thinking":
        return [
            {"type": "thinking", "thinking": "The user wants a number. 6 times 7.", "signature": signature()},
            {"type": "text", "text": "The answer is 42."},
        ], "end_turn"
    if scenario == "tool_loop":
        result = last_tool_result(body)
        if result is not None:
            return [{"type": "text", "text": f"The tool returned: {result}"}], "end_turn"
        return [{"type": "tool_use", "id": tool_id(), "name": tool_name, "input": dict(tool_input)}], "tool_use"
    return [{"type": "text", "text": f"Hello from the {who} mock. How can I help?"}], "end_turn"


def _pieces(text: str, count: int = 3) -> list[str]:
    size = max(1, -(-len(text) // count))
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _usage(body: dict[str, Any], output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": estimate_tokens(body),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
    }


def message_for(
    scenario: str, body: dict[str, Any], model: str, tool_name: str, tool_input: dict[str, Any], who: str
) -> dict[str, Any]:
    blocks, stop_reason = reply_blocks(scenario, body, tool_name, tool_input, who)
    return {
        "id": "msg_" + secrets.token_hex(12),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": _usage(body, estimate_tokens(blocks)),
    }


def events_for(
    scenario: str, body: dict[str, Any], model: str, tool_name: str, tool_input: dict[str, Any], who: str
) -> list[dict[str, Any]]:
    """The stream of a scenario; `mid_stream_error` breaks off after the first delta with an error event."""
    message = message_for(scenario, body, model, tool_name, tool_input, who)
    start = {**message, "content": [], "stop_reason": None, "usage": {**message["usage"], "output_tokens": 1}}
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
    for index, block in enumerate(message["content"]):
        kind = block["type"]
        if kind == "text":
            opening = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": piece} for piece in _pieces(block["text"])]
        elif kind == "thinking":
            opening = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": piece} for piece in _pieces(block["thinking"])]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        else:
            opening = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            arguments = json.dumps(block["input"])
            half = len(arguments) // 2
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in ("", arguments[:half], arguments[half:])]
        events.append({"type": "content_block_start", "index": index, "content_block": opening})
        if index == 0:
            events.append({"type": "ping"})
        for delta in deltas:
            events.append({"type": "content_block_delta", "index": index, "delta": delta})
            if scenario == "mid_stream_error":
                events.append({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
                return events
        events.append({"type": "content_block_stop", "index": index})
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": {"output_tokens": message["usage"]["output_tokens"]},
        }
    )
    events.append({"type": "message_stop"})
    return events


def claude_body_problem(body: Any, version: str, allowed_keys: frozenset[str]) -> str | None:
    """Why a cloud Claude endpoint would reject this body (400), or None."""
    if not isinstance(body, dict):
        return "Malformed input request: expected a JSON object"
    if body.get("anthropic_version") != version:
        return f"Malformed input request: anthropic_version must be {version!r}"
    for key in body:
        if key not in allowed_keys:
            return f"Malformed input request: #: extraneous key [{key}] is not permitted, please reformat your input"
    if not isinstance(body.get("max_tokens"), int) or not isinstance(body.get("messages"), list):
        return "Malformed input request: #: required key [max_tokens, messages] not found"
    for beta in body.get("anthropic_beta") or []:
        if beta not in KNOWN_BETAS:
            return f"invalid beta flag: {beta}"
    seen: set[str] = set()
    for index, message in enumerate(body["messages"]):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            return f"messages.{index}.role: Input should be 'user' or 'assistant'"
        content = message.get("content")
        for block in content if isinstance(content, list) else []:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "tool_use":
                if not _TOOL_ID.match(str(block.get("id", ""))):
                    return (
                        f"messages: tool_use.id: String should match pattern '^[a-zA-Z0-9_-]+$' ({block.get('id')!r})"
                    )
                seen.add(block["id"])
            elif block.get("type") == "tool_result" and block.get("tool_use_id") not in seen:
                return (
                    f"messages: unexpected `tool_use_id` found in `tool_result` blocks: {block.get('tool_use_id')}. "
                    "Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
                )
            elif block.get("type") == "thinking" and not _SIGNATURE.match(str(block.get("signature", ""))):
                return "messages: Invalid `signature` in `thinking` block"
    return None


# --- checking what a client receives (tests, demo self-checks) -------------------------------------------


def parse_sse(data: bytes) -> list[dict[str, Any]]:
    """Anthropic SSE bytes as event dicts; every event must carry an `event:` line equal to its type."""
    from ccm_tui.translate.sse import SseParser

    parser = SseParser()
    events = []
    for sse in parser.feed(data) + parser.flush():
        event = json.loads(sse.data)
        if sse.event != event.get("type"):
            raise ValueError(f"event line {sse.event!r} does not match data type {event.get('type')!r}")
        events.append(event)
    return events


def stream_grammar_problem(events: list[dict[str, Any]]) -> str | None:
    """Why a complete Anthropic stream breaks the event grammar (message_start, blocks, message_delta, stop)."""
    kinds = [e["type"] for e in events if e["type"] != "ping"]
    if not kinds or kinds[0] != "message_start":
        return "the stream must open with message_start"
    if kinds[-2:] != ["message_delta", "message_stop"]:
        return "the stream must end with message_delta, message_stop"
    open_index: int | None = None
    next_index = 0
    for event in events[1:-2]:
        kind, index = event["type"], event.get("index")
        if kind == "content_block_start":
            if open_index is not None or index != next_index:
                return f"block {index} starts while {open_index} is open or out of order"
            open_index, next_index = index, next_index + 1
        elif kind in ("content_block_delta", "content_block_stop"):
            if index != open_index:
                return f"{kind} for block {index} but {open_index} is open"
            if kind == "content_block_stop":
                open_index = None
        elif kind != "ping":
            return f"unexpected {kind} inside the message"
    return None if open_index is None else f"block {open_index} never stops"
