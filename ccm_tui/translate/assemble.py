"""Anthropic stream events -> the Anthropic Message they describe (what the SDK's accumulator does).

The translated kinds build non-streaming replies by running their stream machines: Gemini on a whole
generateContent response, the OpenAI family when a request with stop sequences is read as a stream
(translate/stop_sequences.py). One assembler for both keeps the two shapes of a reply identical. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from ccm_tui.translate.sse import SseParser


def message_from_events(events: Iterable[dict[str, Any]]) -> dict[str, Any]:
    message: dict[str, Any] = {}
    blocks: list[dict[str, Any]] = []
    arguments: dict[int, list[str]] = {}
    for event in events:
        kind = event.get("type")
        if kind == "message_start":
            message = dict(event["message"])
        elif kind == "content_block_start":
            blocks.append(dict(event["content_block"]))
        elif kind == "content_block_delta":
            index, delta = event["index"], event["delta"]
            block = blocks[index]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] = delta["signature"]
            elif delta["type"] == "input_json_delta":
                arguments.setdefault(index, []).append(delta["partial_json"])
        elif kind == "message_delta":
            message.update(event["delta"])
            message["usage"] = {**message.get("usage", {}), **event["usage"]}
    for index, pieces in arguments.items():
        text = "".join(pieces)
        blocks[index]["input"] = orjson.loads(text) if text.strip() else {}
    message["content"] = blocks
    return message


def events_of_sse(data: bytes) -> list[dict[str, Any]]:
    """The events of Anthropic SSE bytes (a whole stream)."""
    parser = SseParser()
    return [orjson.loads(event.data) for event in [*parser.feed(data), *parser.flush()] if event.data]
