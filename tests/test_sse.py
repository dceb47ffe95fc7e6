"""The SSE parser tolerates every framing upstreams use; the encoder always writes `event:` lines."""

from __future__ import annotations

import orjson
import pytest

from ccm_tui.core.contract import UpstreamError
from ccm_tui.core.states import ErrorOrigin
from ccm_tui.translate.sse import MAX_EVENT_BYTES, SseEvent, SseParser, encode_event, error_event

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


@pytest.mark.parametrize("size", [1, 5, 4096])
def test_parser_handles_lone_cr_line_ends_in_any_split(size: int) -> None:
    stream = b"event: a\rdata: 1\r\rdata: 2\r\n\r\ndata: 3\n\n"
    parser = SseParser()
    events = []
    for start in range(0, len(stream), size):
        events += parser.feed(stream[start : start + size])
    assert events == [SseEvent("a", "1"), SseEvent(None, "2"), SseEvent(None, "3")]


def test_an_event_up_to_the_cap_is_delivered() -> None:
    parser = SseParser(max_event_bytes=1000)
    events = parser.feed(b"data: " + b"a" * 600 + b"\n")
    events += parser.feed(b"data: " + b"b" * 400 + b"\n\n")
    assert events == [SseEvent(None, "a" * 600 + "\n" + "b" * 400)]


@pytest.mark.parametrize(
    "chunks",
    [
        [b"data: " + b"a" * 700, b"a" * 700],  # one line that never ends
        [b"data: " + b"a" * 600 + b"\n", b"data: " + b"b" * 600 + b"\n"],  # many lines, no blank line
    ],
    ids=["long-line", "many-lines"],
)
def test_an_event_over_the_cap_is_an_upstream_failure(chunks: list[bytes]) -> None:
    parser = SseParser(max_event_bytes=1000)
    with pytest.raises(UpstreamError) as raised:
        for chunk in chunks:
            parser.feed(chunk)
    assert raised.value.origin is ErrorOrigin.REPLY and "larger than" in raised.value.message


def test_the_default_cap_is_generous_but_bounded() -> None:
    assert 8 * 1024 * 1024 <= MAX_EVENT_BYTES <= 64 * 1024 * 1024
