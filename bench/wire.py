"""What the bench's mock upstream sends: response profiles and the exact bytes of each streaming format.

A `Profile` (first-token delay, number of content deltas, delay between them, status, an optional tool call)
travels in the URL path (`/b/ft0_n50_gap5/v1/messages`), so the proxy's provider `base_url` selects it and the
mock keeps no per-scenario state. The same module gives the load generator the expected text and tool call,
so a response is checked against what was actually sent. Pure functions; no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson

PATH_PREFIX = "/b/"
ANTHROPIC_ENDPOINT = "/v1/messages"
OPENAI_ENDPOINT = "/v1/chat/completions"
TOOL_NAME = "Bash"
TOOL_INPUT: dict[str, Any] = {"command": "ls -la src/ && git status --short", "description": "List files and status"}
# The tool input is streamed in these fragments (the first one empty, as Anthropic does).
_TOOL_JSON = orjson.dumps(TOOL_INPUT).decode()
TOOL_FRAGMENTS: tuple[str, ...] = ("", *[_TOOL_JSON[i : i + 12] for i in range(0, len(_TOOL_JSON), 12)])
CREATED = 1763769600

_PART = re.compile(r"^([a-z]+)(-?[0-9.]+)$")


@dataclass(frozen=True)
class Profile:
    """How the mock answers: timings in milliseconds; `deltas` text deltas, then optionally one tool call."""

    first_token_ms: float = 0.0
    deltas: int = 10
    gap_ms: float = 0.0
    status: int = 200
    retry_after: str = "0"  # seconds, sent with error statuses
    tool_use: bool = False

    def segment(self) -> str:
        parts = [f"ft{_num(self.first_token_ms)}", f"n{self.deltas}", f"gap{_num(self.gap_ms)}"]
        if self.status != 200:
            parts += [f"st{self.status}", f"ra{self.retry_after}"]
        if self.tool_use:
            parts.append("tool1")
        return "_".join(parts)

    def base_path(self) -> str:
        """The path prefix that selects this profile; an endpoint path follows it."""
        return PATH_PREFIX + self.segment()

    @property
    def duration_s(self) -> float:
        return (self.first_token_ms + max(self.deltas - 1, 0) * self.gap_ms) / 1000.0

    @classmethod
    def parse(cls, segment: str) -> Profile:
        values: dict[str, str] = {}
        for part in segment.split("_"):
            match = _PART.match(part)
            if match is None:
                raise ValueError(f"bad profile part {part!r} in {segment!r}")
            values[match.group(1)] = match.group(2)
        return cls(
            first_token_ms=float(values.get("ft", 0)),
            deltas=int(values.get("n", 10)),
            gap_ms=float(values.get("gap", 0)),
            status=int(values.get("st", 200)),
            retry_after=values.get("ra", "0"),
            tool_use=values.get("tool", "0") == "1",
        )


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def split_path(path: str) -> tuple[Profile, str] | None:
    """`/b/<segment>/v1/messages?beta=true` -> (profile, "/v1/messages"); None when the path is not ours."""
    path = path.split("?", 1)[0]
    if not path.startswith(PATH_PREFIX):
        return None
    segment, _, rest = path[len(PATH_PREFIX) :].partition("/")
    endpoint = "/" + rest
    if endpoint not in (ANTHROPIC_ENDPOINT, OPENAI_ENDPOINT):
        return None
    try:
        return Profile.parse(segment), endpoint
    except ValueError:
        return None


def token_text(index: int) -> str:
    return f"word{index} lorem ipsum "


@lru_cache(maxsize=64)
def expected_text(deltas: int) -> str:
    return "".join(token_text(i) for i in range(deltas))


# --- Anthropic Messages (PROTOCOLS.md §1.5, §1.6) -------------------------------------------------------------
def anthropic_event(data: dict[str, Any]) -> bytes:
    return b"event: " + data["type"].encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def anthropic_stream_events(profile: Profile, model: str, input_tokens: int = 1000) -> list[bytes]:
    """Each element is what one write sends: [opening + first delta, delta, ..., last delta + closing].

    The opening is message_start, content_block_start and a ping; the closing is the tool block (if any),
    message_delta and message_stop. Event count = deltas + 6 (+ 2 + fragments with a tool call).
    """
    message = {
        "id": "msg_bench01",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {
            "input_tokens": input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 1,
            "service_tier": "standard",
        },
    }
    opening = (
        anthropic_event({"type": "message_start", "message": message})
        + anthropic_event({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
        + anthropic_event({"type": "ping"})
    )
    deltas = [
        anthropic_event(
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": token_text(i)}}
        )
        for i in range(profile.deltas)
    ]
    closing = anthropic_event({"type": "content_block_stop", "index": 0})
    if profile.tool_use:
        closing += anthropic_event(
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "tool_use", "id": "toolu_bench01", "name": TOOL_NAME, "input": {}},
            }
        )
        for fragment in TOOL_FRAGMENTS:
            closing += anthropic_event(
                {
                    "type": "content_block_delta",
                    "index": 1,
                    "delta": {"type": "input_json_delta", "partial_json": fragment},
                }
            )
        closing += anthropic_event({"type": "content_block_stop", "index": 1})
    closing += anthropic_event(
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use" if profile.tool_use else "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": profile.deltas * 4},
        }
    ) + anthropic_event({"type": "message_stop"})
    writes = [opening + deltas[0]] if deltas else [opening]
    writes.extend(deltas[1:])
    writes[-1] += closing
    return writes


def anthropic_event_count(profile: Profile) -> int:
    return profile.deltas + 6 + ((2 + len(TOOL_FRAGMENTS)) if profile.tool_use else 0)


def anthropic_message(profile: Profile, model: str, input_tokens: int = 1000) -> bytes:
    content: list[dict[str, Any]] = [{"type": "text", "text": expected_text(profile.deltas)}]
    if profile.tool_use:
        content.append({"type": "tool_use", "id": "toolu_bench01", "name": TOOL_NAME, "input": TOOL_INPUT})
    return orjson.dumps(
        {
            "id": "msg_bench01",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": "tool_use" if profile.tool_use else "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": input_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": profile.deltas * 4,
                "service_tier": "standard",
            },
        }
    )


def anthropic_error(status: int) -> bytes:
    kind = {429: "rate_limit_error", 529: "overloaded_error", 500: "api_error"}.get(status, "api_error")
    return orjson.dumps(
        {"type": "error", "error": {"type": kind, "message": f"bench mock says {status}"}, "request_id": "req_bench"}
    )


# --- OpenAI Chat Completions (PROTOCOLS.md §2.2, §2.3) --------------------------------------------------------
def _openai_chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    chunk = {
        "id": "chatcmpl-bench01",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        "usage": None,
    }
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def openai_stream_events(profile: Profile, model: str, include_usage: bool) -> list[bytes]:
    """Writes, like `anthropic_stream_events`: role chunk + first delta, deltas, last delta + tool/finish/usage/DONE."""
    opening = _openai_chunk(model, {"role": "assistant", "content": "", "refusal": None})
    deltas = [_openai_chunk(model, {"content": token_text(i)}) for i in range(profile.deltas)]
    closing = b""
    if profile.tool_use:
        for number, fragment in enumerate(TOOL_FRAGMENTS):
            call: dict[str, Any] = {"index": 0, "function": {"arguments": fragment}}
            if number == 0:
                call = {
                    "index": 0,
                    "id": "call_bench01",
                    "type": "function",
                    "function": {"name": TOOL_NAME, "arguments": ""},
                }
            closing += _openai_chunk(model, {"tool_calls": [call]})
    closing += _openai_chunk(model, {}, "tool_calls" if profile.tool_use else "stop")
    if include_usage:
        usage = {
            "id": "chatcmpl-bench01",
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": model,
            "choices": [],
            "usage": {
                "prompt_tokens": 1000,
                "completion_tokens": profile.deltas * 4,
                "total_tokens": 1000 + profile.deltas * 4,
                "prompt_tokens_details": {"cached_tokens": 0},
            },
        }
        closing += b"data: " + orjson.dumps(usage) + b"\n\n"
    closing += b"data: [DONE]\n\n"
    writes = [opening + deltas[0]] if deltas else [opening]
    writes.extend(deltas[1:])
    writes[-1] += closing
    return writes


def openai_completion(profile: Profile, model: str) -> bytes:
    message: dict[str, Any] = {"role": "assistant", "content": expected_text(profile.deltas), "refusal": None}
    if profile.tool_use:
        message["tool_calls"] = [
            {
                "id": "call_bench01",
                "type": "function",
                "function": {"name": TOOL_NAME, "arguments": orjson.dumps(TOOL_INPUT).decode()},
            }
        ]
    return orjson.dumps(
        {
            "id": "chatcmpl-bench01",
            "object": "chat.completion",
            "created": CREATED,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": "tool_calls" if profile.tool_use else "stop",
                }
            ],
            "usage": {
                "prompt_tokens": 1000,
                "completion_tokens": profile.deltas * 4,
                "total_tokens": 1000 + profile.deltas * 4,
            },
        }
    )


def openai_error(status: int) -> bytes:
    return orjson.dumps(
        {"error": {"message": f"bench mock says {status}", "type": "rate_limit_exceeded", "param": None, "code": None}}
    )
