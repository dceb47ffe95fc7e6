"""Metering an Anthropic SSE byte stream as it passes, without re-encoding it.

Pass-through adapters (Anthropic, Vertex) forward upstream bytes untouched; `AnthropicStreamMeter` reads only
the lines it needs from them (message_start, message_delta, message_stop, error) to fill a StreamMeter.
Adapters that build Anthropic events themselves (Bedrock, Gemini) call `apply_event` with the event dict
they already hold. What does not live here: encoding events (translate.sse) and error handling (adapters).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson

from ccm_tui.core.contract import StreamMeter
from ccm_tui.core.events import Usage, token_count
from ccm_tui.core.scrub import scrub

# Content deltas are nearly every line of a stream and never matter to the meter: skip them unparsed.
_SKIP_PREFIXES = (b'{"type":"content_block_', b'{"type": "content_block_', b'{"type":"ping"', b'{"type": "ping"')
_USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


def apply_event(meter: StreamMeter, event: dict[str, Any]) -> None:
    """Record what one Anthropic stream event tells the engine (usage values are cumulative, not increments)."""
    kind = event.get("type")
    if kind == "message_start":
        message = event.get("message") or {}
        if message.get("model"):
            meter.model = message["model"]
        meter.usage = _merge_usage(meter.usage, message.get("usage"))
    elif kind == "message_delta":
        delta = event.get("delta") or {}
        if delta.get("stop_reason"):
            meter.stop_reason = delta["stop_reason"]
        meter.usage = _merge_usage(meter.usage, event.get("usage"))
    elif kind == "message_stop":
        meter.completed = True
    elif kind == "error":
        error = event.get("error") or {}
        meter.error_type = error.get("type") or "api_error"
        message = error.get("message")
        # Upstream text: it may quote the key (the engine, /health, history and the screen read it from here).
        meter.error_message = scrub(message) if isinstance(message, str) else None


def usage_of(fields: Any) -> Usage:
    """An Anthropic `usage` object (from a Message body) as Usage."""
    return _merge_usage(Usage(), fields)


# The meter reads message_start / message_delta / error lines, which are small; the bytes still pass through.
MAX_METERED_LINE = 1024 * 1024


def _merge_usage(usage: Usage, fields: Any) -> Usage:
    if not isinstance(fields, dict):
        return usage
    changes = {name: token_count(fields[name]) for name in _USAGE_FIELDS if name in fields}
    return replace(usage, **changes) if changes else usage


class AnthropicStreamMeter:
    """Feed raw SSE bytes split anywhere; the StreamMeter is updated as complete `data:` lines arrive.

    Lines are split on `\\n` (a trailing `\\r` is ignored); Anthropic-protocol upstreams do not end lines
    with a lone `\\r`. Only lines that can matter are parsed: a message_* or error event must contain
    `message_` or `"error"` somewhere in its bytes, so everything else is skipped by a substring test.
    """

    __slots__ = ("_pending", "_pending_bytes", "_skipping", "meter")

    def __init__(self, meter: StreamMeter) -> None:
        self.meter = meter
        self._pending: list[bytes] = []  # pieces of an unfinished line (joined once, when its end arrives)
        self._pending_bytes = 0
        self._skipping = False  # inside a line past MAX_METERED_LINE: ignored up to its end

    def feed(self, chunk: bytes) -> None:
        if b"\n" not in chunk:
            if self._skipping:
                return
            self._pending.append(chunk)
            self._pending_bytes += len(chunk)
            if self._pending_bytes > MAX_METERED_LINE:
                # A line this long carries no usage worth reading; forget it rather than hold it.
                self._pending, self._pending_bytes, self._skipping = [], 0, True
            return
        if self._skipping:
            self._skipping = False
            chunk = chunk[chunk.index(b"\n") + 1 :]
        if self._pending:
            self._pending.append(chunk)
            chunk = b"".join(self._pending)
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            if end == -1:
                break
            if chunk.startswith(b"data:", start):
                self._data_line(chunk[start + 5 : end])
            start = end + 1
        self._pending = [chunk[start:]] if start < len(chunk) else []
        self._pending_bytes = len(chunk) - start

    def _data_line(self, data: bytes) -> None:
        data = data.strip()
        if data.startswith(_SKIP_PREFIXES) or (b"message_" not in data and b'"error"' not in data):
            return
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if isinstance(event, dict):
            apply_event(self.meter, event)
