"""What the client has been sent of an Anthropic stream: events split from bytes, and the state they leave.

`EventSplitter` cuts Anthropic SSE bytes (split anywhere) into whole events and drops the ones that carry
nothing usable — a comment or keep-alive, invalid JSON, an unknown event type — counting the malformed
ones. `ClientStream` follows the events the client is sent: whether content has begun, which block is open,
the text so far (a rescue's prefill), whether the message is complete. Pure; no I/O.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson

from ccm_tui.translate.sse import encode_event

log = logging.getLogger(__name__)

KNOWN_EVENTS = frozenset(
    {
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
        "ping",
        "error",
    }
)
PING = b'event: ping\ndata: {"type":"ping"}\n\n'
MESSAGE_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'


@dataclass
class Event:
    type: str
    data: dict[str, Any]
    raw: bytes  # the event's bytes, ending in a blank line

    @classmethod
    def of(cls, data: dict[str, Any]) -> Event:
        return cls(data["type"], data, encode_event(data))

    def replaced(self, data: dict[str, Any]) -> Event:
        return Event(self.type, data, encode_event(data))


class EventSplitter:
    """Feed bytes in any split; get whole, usable events out."""

    def __init__(self) -> None:
        self._tail = b""
        self.malformed = 0  # events skipped because their data was not a JSON object of a known type

    def feed(self, chunk: bytes) -> list[Event]:
        data = self._tail + chunk if self._tail else chunk
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n")
        end = data.rfind(b"\n\n")
        if end < 0:
            self._tail = data
            return []
        self._tail = data[end + 2 :]
        events: list[Event] = []
        for block in data[: end + 2].split(b"\n\n"):
            if block:
                event = self._parse(block)
                if event is not None:
                    events.append(event)
        return events

    @property
    def pending(self) -> bool:
        """Part of an event is buffered (the client must not get an injected event now)."""
        return bool(self._tail.strip())

    def _parse(self, block: bytes) -> Event | None:
        payload = [line[5:].strip() for line in block.split(b"\n") if line.startswith(b"data:")]
        if not payload:
            return None  # a comment-only keep-alive: legal SSE, nothing to forward
        raw = b"\n".join(payload)
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            data = _lenient_json(raw)
        kind = data.get("type") if isinstance(data, dict) else None
        if not isinstance(data, dict) or kind not in KNOWN_EVENTS:
            self.malformed += 1
            log.info("skipped a malformed upstream stream event (%d bytes)", len(block))
            return None
        return Event(kind, data, block + b"\n\n")


def _lenient_json(raw: bytes) -> Any:
    """orjson refuses integers past 64 bits; the standard parser takes them (routing/replies.py drops such
    counts), and refuses what is really malformed."""
    try:
        return json.loads(raw)
    except ValueError:
        return None


class BlockKind(StrEnum):
    TEXT = "text"
    THINKING = "thinking"
    TOOL = "tool"  # tool_use, server tools and anything else with structured input


def block_kind(content_block: Any) -> BlockKind:
    kind = content_block.get("type") if isinstance(content_block, dict) else None
    if kind == "text":
        return BlockKind.TEXT
    if kind in ("thinking", "redacted_thinking"):
        return BlockKind.THINKING
    return BlockKind.TOOL


def is_content(event: Event) -> bool:
    """The first of these ends the first-token wait: a delta of any block, or a block that is content as it
    starts (a tool call's name, text given whole)."""
    if event.type == "content_block_delta":
        return True
    if event.type == "content_block_start":
        block = event.data.get("content_block")
        return block_kind(block) is BlockKind.TOOL or bool(isinstance(block, dict) and block.get("text"))
    return False


@dataclass
class ClientStream:
    """The state of the stream as the client has received it."""

    started: bool = False  # message_start sent
    content: bool = False  # some content sent: from here on a failure cannot fail over
    open_kind: BlockKind | None = None
    open_index: int | None = None
    next_index: int = 0
    kinds: list[BlockKind] = field(default_factory=list)  # every block started, in order
    text: list[str] = field(default_factory=list)  # the text of every text delta, in order
    stop_reason: str | None = None  # message_delta carried one: the answer is complete
    stopped: bool = False  # message_stop sent

    def observe(self, event: Event) -> None:
        kind, data = event.type, event.data
        if kind == "content_block_delta":
            self.content = True
            delta = data.get("delta")
            if isinstance(delta, dict) and delta.get("type") == "text_delta" and isinstance(delta.get("text"), str):
                self.text.append(delta["text"])
        elif kind == "content_block_start":
            block = data.get("content_block")
            self.open_kind = block_kind(block)
            self.kinds.append(self.open_kind)
            index = data.get("index")
            self.open_index = index if isinstance(index, int) else self.next_index
            self.next_index = self.open_index + 1
            if isinstance(block, dict) and isinstance(block.get("text"), str) and block["text"]:
                self.text.append(block["text"])
            self.content = self.content or is_content(event)
        elif kind == "content_block_stop":
            self.open_kind = self.open_index = None
        elif kind == "message_start":
            self.started = True
        elif kind == "message_delta":
            delta = data.get("delta")
            if isinstance(delta, dict) and delta.get("stop_reason"):
                self.stop_reason = delta["stop_reason"]
        elif kind == "message_stop":
            self.stopped = True

    @property
    def complete(self) -> bool:
        """A body that ended after a message_delta with a stop_reason is a whole answer (PROTOCOLS.md §9)."""
        return self.stopped or self.stop_reason is not None

    @property
    def streamed_text(self) -> str:
        return "".join(self.text)

    @property
    def continuable(self) -> bool:
        """A rescue can continue this answer: only text so far (thinking before it is fine), not inside a
        thinking block, and no tool call started (its input cannot be continued as a prefill)."""
        return (
            self.started
            and not self.complete
            and self.open_kind in (None, BlockKind.TEXT)
            and BlockKind.TOOL not in self.kinds
            and bool(self.streamed_text.strip())
        )


def with_served_model(event: Event, model: str) -> Event:
    """message_start naming the model that answers (a translator names the one the client asked for)."""
    message = event.data.get("message")
    if event.type != "message_start" or not isinstance(message, dict) or message.get("model") == model:
        return event
    return event.replaced({**event.data, "message": {**message, "model": model}})
