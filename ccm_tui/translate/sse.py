"""Server-sent events at the bytes level: an incremental parser and the Anthropic event encoder.

The parser follows the SSE rules upstreams rely on: `\\n`, `\\r\\n` or `\\r` line ends, comment lines
starting with `:` (OpenRouter keep-alives), multi-line `data:`, an optional space after the colon.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True)
class SseEvent:
    event: str | None
    data: str


class SseParser:
    """Feed raw bytes in any split; get complete events out."""

    def __init__(self) -> None:
        self._buffer = b""
        self._event: str | None = None
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[SseEvent]:
        self._buffer += chunk
        events: list[SseEvent] = []
        while True:
            end = _line_end(self._buffer)
            if end is None:
                break
            cut, skip = end
            line = self._buffer[:cut].decode("utf-8", errors="replace")
            self._buffer = self._buffer[cut + skip :]
            event = self._line(line)
            if event is not None:
                events.append(event)
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
            self._event, self._data = None, []
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
        return None


def _line_end(buffer: bytes) -> tuple[int, int] | None:
    """Index of the first line end and its length; a lone trailing `\\r` waits for more bytes."""
    lf = buffer.find(b"\n")
    cr = buffer.find(b"\r")
    if cr == -1 and lf == -1:
        return None
    if cr == -1 or (lf != -1 and lf < cr):
        return lf, 1
    if cr + 1 < len(buffer):
        return cr, 2 if buffer[cr + 1 : cr + 2] == b"\n" else 1
    return None


def encode_event(data: dict[str, Any]) -> bytes:
    """One Anthropic SSE event; the `event:` line always equals `data["type"]` (SDKs drop events without it)."""
    return b"event: " + data["type"].encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def error_event(error_type: str, message: str) -> bytes:
    return encode_event({"type": "error", "error": {"type": error_type, "message": message}})
