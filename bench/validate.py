"""Response checkers for the load generator: event grammar, event counts, and the content that came through.

Each checker is fed the body bytes in whatever pieces the socket delivers and returns an error string (or
None) at the end. `Expectation` says what a correct response holds; a response that differs in grammar,
count, text or tool call counts as an error in the report. Pure code; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass(frozen=True)
class Expectation:
    text: str
    tool: tuple[str, dict[str, Any]] | None = None  # (name, input)
    text_deltas: int | None = None  # exact count; None = between 1 and max_text_deltas
    max_text_deltas: int | None = None
    events: int | None = None  # exact number of SSE events (pass-through only)


class BodyChecker:
    """Base: `feed(bytes)` any number of times, then `finish()` -> error message or None."""

    def feed(self, data: bytes) -> None:
        raise NotImplementedError

    def finish(self) -> str | None:
        raise NotImplementedError


class _SseSplitter:
    """Cuts a byte stream into SSE event blocks (lists of lines); tolerates CRLF split across reads."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[list[bytes]]:
        buffer = self._buffer + data
        if b"\r" in buffer:
            hold = buffer.endswith(b"\r")
            buffer = (buffer[:-1] if hold else buffer).replace(b"\r\n", b"\n") + (b"\r" if hold else b"")
        blocks = buffer.split(b"\n\n")
        self._buffer = blocks.pop()
        return [block.split(b"\n") for block in blocks if block.strip(b"\n")]

    @property
    def leftover(self) -> bytes:
        return self._buffer.strip()


@dataclass
class _ToolState:
    name: str
    parts: list[str] = field(default_factory=list)


class AnthropicStreamChecker(BodyChecker):
    """PROTOCOLS.md §1.6: message_start, blocks (start, deltas, stop) by increasing index, message_delta+, stop."""

    def __init__(self, expect: Expectation) -> None:
        self.expect = expect
        self._split = _SseSplitter()
        self.error: str | None = None
        self.events = 0
        self.text_deltas = 0
        self._state = "start"  # start -> blocks <-> block -> delta -> done
        self._next_index = 0
        self._block_type = ""
        self._text: list[str] = []
        self._tools: list[_ToolState] = []
        self.stop_reason: str | None = None

    def feed(self, data: bytes) -> None:
        if self.error is not None:
            return
        for lines in self._split.feed(data):
            self._event(lines)
            if self.error is not None:
                return

    def _fail(self, message: str) -> None:
        if self.error is None:
            self.error = message

    def _event(self, lines: list[bytes]) -> None:
        name: bytes | None = None
        data: bytes | None = None
        for line in lines:
            if line.startswith(b"event:"):
                name = line[6:].strip()
            elif line.startswith(b"data:"):
                data = line[5:].strip() if data is None else data + b"\n" + line[5:].strip()
            elif line.startswith(b":"):
                continue
        if name is None and data is None:
            return
        self.events += 1
        if name is None or data is None:
            return self._fail(f"event {self.events} lacks an event: or data: line")
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            return self._fail(f"event {self.events} data is not JSON")
        kind = payload.get("type")
        if kind != name.decode():
            return self._fail(f"event line {name!r} != data.type {kind!r}")
        self._transition(kind, payload)

    def _transition(self, kind: str, payload: dict[str, Any]) -> None:
        state = self._state
        if kind == "ping" and state != "done":
            return
        if kind == "error":
            return self._fail(f"error event: {payload.get('error')}")
        if state == "start" and kind == "message_start":
            self._state = "blocks"
        elif state == "blocks" and kind == "content_block_start":
            if payload.get("index") != self._next_index:
                return self._fail(f"block index {payload.get('index')} != {self._next_index}")
            block = payload.get("content_block") or {}
            self._block_type = block.get("type", "")
            if self._block_type == "tool_use":
                self._tools.append(_ToolState(block.get("name", "")))
            self._state = "block"
        elif state == "block" and kind == "content_block_delta":
            if payload.get("index") != self._next_index:
                return self._fail("delta for a block that is not open")
            delta = payload.get("delta") or {}
            if delta.get("type") == "text_delta":
                text = delta.get("text", "")
                if text:
                    self.text_deltas += 1
                    self._text.append(text)
            elif delta.get("type") == "input_json_delta" and self._tools:
                self._tools[-1].parts.append(delta.get("partial_json", ""))
        elif state == "block" and kind == "content_block_stop":
            if payload.get("index") != self._next_index:
                return self._fail("stop for a block that is not open")
            self._next_index += 1
            self._state = "blocks"
        elif state in ("blocks", "delta") and kind == "message_delta":
            self.stop_reason = (payload.get("delta") or {}).get("stop_reason")
            self._state = "delta"
        elif state == "delta" and kind == "message_stop":
            self._state = "done"
        else:
            self._fail(f"unexpected {kind} in state {state}")

    def finish(self) -> str | None:
        if self.error is not None:
            return self.error
        if self._split.leftover:
            return "stream ended inside an event"
        if self._state != "done":
            return f"stream ended in state {self._state} (no message_stop)"
        tools = []
        for tool in self._tools:
            joined = "".join(tool.parts)
            try:
                tools.append((tool.name, orjson.loads(joined) if joined else {}))
            except orjson.JSONDecodeError:
                return f"tool input is not JSON: {joined[:60]!r}"
        return _compare(self.expect, "".join(self._text), tools, self.text_deltas, self.events)


class OpenAIStreamChecker(BodyChecker):
    """PROTOCOLS.md §2.3: `data: {chunk}` lines, a finish_reason, optional usage chunk, then `data: [DONE]`."""

    def __init__(self, expect: Expectation) -> None:
        self.expect = expect
        self._split = _SseSplitter()
        self.error: str | None = None
        self.events = 0
        self.text_deltas = 0
        self._done = False
        self._finish: str | None = None
        self._text: list[str] = []
        self._calls: dict[int, _ToolState] = {}

    def feed(self, data: bytes) -> None:
        if self.error is not None:
            return
        for lines in self._split.feed(data):
            for line in lines:
                if not line.startswith(b"data:"):
                    continue
                self._chunk(line[5:].strip())

    def _chunk(self, data: bytes) -> None:
        self.events += 1
        if self._done:
            self.error = "data after [DONE]"
            return
        if data == b"[DONE]":
            self._done = True
            return
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            self.error = "chunk is not JSON"
            return
        if "error" in chunk:
            self.error = f"error chunk: {chunk['error']}"
            return
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("content"):
                self.text_deltas += 1
                self._text.append(delta["content"])
            for call in delta.get("tool_calls") or []:
                state = self._calls.setdefault(call.get("index", 0), _ToolState(""))
                function = call.get("function") or {}
                if function.get("name"):
                    state.name = function["name"]
                state.parts.append(function.get("arguments") or "")
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]

    def finish(self) -> str | None:
        if self.error is not None:
            return self.error
        if not self._done:
            return "stream ended without data: [DONE]"
        if self._finish is None:
            return "no finish_reason"
        tools = []
        for _, state in sorted(self._calls.items()):
            try:
                tools.append((state.name, orjson.loads("".join(state.parts) or "{}")))
            except orjson.JSONDecodeError:
                return "tool arguments are not JSON"
        return _compare(self.expect, "".join(self._text), tools, self.text_deltas, self.events)


class JsonChecker(BodyChecker):
    """A non-streaming body: an Anthropic `message` or an OpenAI `chat.completion`."""

    def __init__(self, expect: Expectation, flavour: str) -> None:
        self.expect = expect
        self.flavour = flavour
        self._parts: list[bytes] = []

    def feed(self, data: bytes) -> None:
        self._parts.append(data)

    def finish(self) -> str | None:
        try:
            body = orjson.loads(b"".join(self._parts))
        except orjson.JSONDecodeError:
            return "body is not JSON"
        tools: list[tuple[str, Any]] = []
        if self.flavour == "anthropic":
            if body.get("type") != "message":
                return f"not a message: {str(body)[:120]}"
            text = "".join(block.get("text", "") for block in body.get("content", []) if block.get("type") == "text")
            tools = [(b["name"], b["input"]) for b in body.get("content", []) if b.get("type") == "tool_use"]
        else:
            choices = body.get("choices") or [{}]
            message = choices[0].get("message") or {}
            text = message.get("content") or ""
            for call in message.get("tool_calls") or []:
                tools.append((call["function"]["name"], orjson.loads(call["function"]["arguments"])))
        return _compare(Expectation(self.expect.text, self.expect.tool), text, tools, None, None)


def _compare(
    expect: Expectation, text: str, tools: list[tuple[str, Any]], text_deltas: int | None, events: int | None
) -> str | None:
    if text != expect.text:
        return f"text differs ({len(text)} chars, expected {len(expect.text)})"
    wanted = [expect.tool] if expect.tool else []
    if [tuple(t) for t in tools] != wanted:
        return f"tool calls differ: {tools!r}"
    if text_deltas is not None:
        if expect.text_deltas is not None and text_deltas != expect.text_deltas:
            return f"{text_deltas} text deltas, expected {expect.text_deltas}"
        if expect.max_text_deltas is not None and not 1 <= text_deltas <= expect.max_text_deltas:
            return f"{text_deltas} text deltas, expected 1..{expect.max_text_deltas}"
    if events is not None and expect.events is not None and events != expect.events:
        return f"{events} events, expected {expect.events}"
    return None
