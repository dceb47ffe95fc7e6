"""AnthropicStreamMeter and the pass-through relay: metering and forwarding Anthropic SSE bytes split at any
boundary."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import orjson
import pytest

from ccm_tui.core.contract import StreamMeter
from ccm_tui.core.events import Usage
from ccm_tui.providers.anthropic import metered_anthropic_sse
from ccm_tui.translate.anthropic_stream import AnthropicStreamMeter, apply_event, usage_of
from ccm_tui.translate.sse import encode_event

START = {
    "type": "message_start",
    "message": {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {
            "input_tokens": 377,
            "cache_creation_input_tokens": 10,
            "cache_read_input_tokens": 20,
            "output_tokens": 1,
        },
    },
}
BLOCK = [
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "ping"},
    # Text that mentions the words the meter looks for must not confuse it.
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": 'a "message_delta" "error"'}},
    {"type": "content_block_stop", "index": 0},
]
DELTA = {
    "type": "message_delta",
    "delta": {"stop_reason": "tool_use", "stop_sequence": None},
    "usage": {"output_tokens": 65},
}
STOP = {"type": "message_stop"}
ERROR = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}


def stream_bytes(events: list[dict], style: str) -> bytes:
    if style == "encoder":
        return b"".join(encode_event(e) for e in events)
    if style == "crlf-spaced":  # other servers: CRLF line ends, JSON with spaces, no space after "data:"
        return b"".join(
            f"event: {e['type']}\r\ndata:{orjson.dumps(e).decode().replace(':', ': ')}\r\n\r\n".encode() for e in events
        )
    raise AssertionError(style)


@pytest.mark.parametrize("style", ["encoder", "crlf-spaced"])
@pytest.mark.parametrize("piece", [1, 7, 64, 100_000])
def test_meter_reads_usage_model_and_end_from_any_split(style: str, piece: int):
    data = stream_bytes([START, *BLOCK, DELTA, STOP], style)
    meter = StreamMeter()
    scanner = AnthropicStreamMeter(meter)
    for start in range(0, len(data), piece):
        scanner.feed(data[start : start + piece])
    assert meter.model == "claude-sonnet-4-5-20250929"
    assert meter.usage == Usage(377, 65, 10, 20)
    assert meter.stop_reason == "tool_use"
    assert meter.completed is True
    assert meter.error_type is None


def test_meter_records_a_passed_through_error_event():
    meter = StreamMeter()
    AnthropicStreamMeter(meter).feed(stream_bytes([START, *BLOCK[:2], ERROR], "encoder"))
    assert (meter.error_type, meter.error_message, meter.completed) == ("overloaded_error", "Overloaded", False)


def test_final_message_delta_usage_overrides_the_start_estimate():
    meter = StreamMeter()
    apply_event(meter, START)
    apply_event(meter, {**DELTA, "usage": {"output_tokens": 9, "input_tokens": 400, "cache_read_input_tokens": 0}})
    assert meter.usage == Usage(400, 9, 10, 0)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (None, Usage()),
        ({"input_tokens": 3, "output_tokens": 4}, Usage(3, 4)),
        ({"input_tokens": 3, "cache_read_input_tokens": None, "server_tool_use": {}}, Usage(3)),
    ],
)
def test_usage_of_message_usage(fields: object, expected: Usage):
    assert usage_of(fields) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(5, 5), (2**70, 2**53), (-3, 0), (True, 0), ("12", 0), (float("inf"), 0), (float("nan"), 0), (7.9, 7)],
)
def test_token_counts_from_upstreams_are_made_safe(value: object, expected: int) -> None:
    from ccm_tui.core.events import token_count

    assert token_count(value) == expected


def test_an_endless_line_is_not_held_and_metering_resumes_after_it() -> None:
    from ccm_tui.core.contract import StreamMeter
    from ccm_tui.translate.anthropic_stream import MAX_METERED_LINE, AnthropicStreamMeter

    meter = StreamMeter()
    scanner = AnthropicStreamMeter(meter)
    piece = b"x" * 65536
    for _ in range(MAX_METERED_LINE // len(piece) + 4):
        scanner.feed(piece)
    assert sum(len(p) for p in scanner._pending) <= MAX_METERED_LINE
    scanner.feed(b'tail\nevent: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},')
    scanner.feed(b'"usage":{"output_tokens":7}}\n\n')
    assert meter.usage.output_tokens == 7 and meter.stop_reason == "end_turn"


@pytest.mark.parametrize("style", ["encoder", "crlf-spaced"])
@pytest.mark.parametrize("piece", [1, 2, 3, 5, 64, 100_000])
async def test_pass_through_forwards_whole_events_unchanged_from_any_split(style: str, piece: int):
    """Every yield ends at an event boundary (a blank line may straddle two reads) and the bytes are the
    upstream's, in order."""
    data = stream_bytes([START, *BLOCK, DELTA, STOP], style)

    async def reads() -> AsyncIterator[bytes]:
        for start in range(0, len(data), piece):
            yield data[start : start + piece]

    meter = StreamMeter()
    forwarded = [chunk async for chunk in metered_anthropic_sse(httpx.Response(200, content=reads()), meter)]
    assert b"".join(forwarded) == data
    assert all(chunk.endswith((b"\n\n", b"\r\n\r\n")) for chunk in forwarded)
    assert meter.completed and meter.usage == Usage(377, 65, 10, 20)
