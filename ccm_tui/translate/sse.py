"""Server-sent events at the bytes level: an incremental parser and the Anthropic event encoder.

The parser follows the SSE rules upstreams rely on: `\\n`, `\\r\\n` or `\\r` line ends, comment lines
starting with `:` (OpenRouter keep-alives), multi-line `data:`, an optional space after the colon.
It is linear in the bytes fed, however they are split, and bounds the size of one event: an upstream that
sends more than `max_event_bytes` without ending the event fails as a 502 (a misbehaving upstream, which
routing classifies like any other), instead of growing a buffer without limit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from ccm_tui.core.contract import UpstreamError

# Far above any real event (a whole Gemini tool call or inline image arrives as one event), far below what
# would hurt: the buffer is the only per-stream memory that an upstream controls.
MAX_EVENT_BYTES = 16 * 1024 * 1024

_LINE_END = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True)
class SseEvent:
    event: str | None
    data: str


class SseParser:
    """Feed raw bytes in any split; get complete events out."""

    def __init__(self, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self.max_event_bytes = max_event_bytes
        self._buffer = bytearray()  # the unfinished line
        self._scanned = 0  # bytes of the buffer already searched for a line end
        self._event: str | None = None
        self._data: list[str] = []
        self._event_bytes = 0  # size of the lines of the event being built

    def feed(self, chunk: bytes) -> list[SseEvent]:
        buffer = self._buffer
        buffer += chunk
        events: list[SseEvent] = []
        start = 0
        position = self._scanned
        # Most upstreams end lines with \n only: a plain find is much cheaper than the regex, and both
        # only ever look at each byte once (the search resumes where the previous feed stopped).
        crlf = buffer.find(b"\r", position) != -1
        while True:
            if crlf:
                found = _LINE_END.search(buffer, position)
                if found is None:
                    break
                line_end, position = found.span()
                if position == len(buffer) and position - line_end == 1 and buffer[line_end] == 13:
                    break  # a lone trailing \r may be the first half of \r\n: wait for the next byte
            else:
                line_end = buffer.find(b"\n", position)
                if line_end == -1:
                    break
                position = line_end + 1
            event = self._line(buffer[start:line_end].decode("utf-8", errors="replace"))
            start = position
            if event is not None:
                events.append(event)
        if start:
            del buffer[:start]
        self._scanned = len(buffer) - 1 if buffer.endswith(b"\r") else len(buffer)
        if self._event_bytes + len(buffer) > self.max_event_bytes:
            raise UpstreamError.bad_reply(
                f"upstream sent a stream event larger than {self.max_event_bytes // (1024 * 1024)} MiB"
            )
        return events

    def flush(self) -> list[SseEvent]:
        """Whatever a stream that ended without a final blank line still holds."""
        events = self.feed(b"\n\n") if self._buffer or self._data else []
        return events

    def _line(self, line: str) -> SseEvent | None:
        if not line:
            if not self._data and self._event is None:
                return None
            event = SseEvent(self._event, "\n".join(self._data))
            self._event, self._data, self._event_bytes = None, [], 0
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
            self._event_bytes += len(value)
        return None


def encode_event(data: dict[str, Any]) -> bytes:
    """One Anthropic SSE event; the `event:` line always equals `data["type"]` (SDKs drop events without it)."""
    return b"event: " + data["type"].encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def error_event(error_type: str, message: str) -> bytes:
    return encode_event({"type": "error", "error": {"type": error_type, "message": message}})
