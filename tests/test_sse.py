"""The SSE parser tolerates every framing upstreams use; the encoder always writes `event:` lines."""

from __future__ import annotations

import orjson
import pytest

from ccm_tui.translate.sse import SseEvent, SseParser, encode_event, error_event

STREAM = (
    b'event: message_start\r\ndata: {"a":1}\r\n\r\n'
    b": OPENROUTER PROCESSING\n\n"
    b"data: line1\ndata: line2\n\n"
    b"data:nospace\n\n"
)
EXPECTED = [SseEvent("message_start", '{"a":1}'), SseEvent(None, "line1\nline2"), SseEvent(None, "nospace")]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, len(STREAM)])
def test_parser_handles_any_split(size: int) -> None:
    parser = SseParser()
    events = []
    for start in range(0, len(STREAM), size):
        events += parser.feed(STREAM[start : start + size])
    assert events == EXPECTED


def test_parser_flushes_an_unterminated_last_event() -> None:
    parser = SseParser()
    assert parser.feed(b"data: [DONE]") == []
    assert parser.flush() == [SseEvent(None, "[DONE]")]


def test_encoder_event_line_matches_type() -> None:
    raw = encode_event({"type": "content_block_stop", "index": 0})
    [event] = SseParser().feed(raw)
    assert event.event == "content_block_stop" and orjson.loads(event.data)["index"] == 0
    [error] = SseParser().feed(error_event("overloaded_error", "Overloaded"))
    assert error.event == "error" and orjson.loads(error.data)["error"]["type"] == "overloaded_error"
