"""Rescue after content was sent: continue a cut answer on another candidate from an assistant prefill.

Pure. `accepts_prefill` says whether a provider continues a trailing assistant message (the provider's
`prefill` setting, else the vendor registry). `prefill_request` is the original request with the text the
client already has as that trailing message (thinking off: a prefilled turn cannot start with thinking).
`Continuation` rewrites the new stream into the client's: no second message_start, the first text block
merged into the one left open, later blocks numbered after the client's.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson

from ccm_tui.config import ProviderSettings, vendor_of
from ccm_tui.core.contract import ProxyRequest
from ccm_tui.core.vendors import Support, model_limits, vendor_or_custom
from ccm_tui.routing.stream import BlockKind, ClientStream, Event, block_kind


def accepts_prefill(settings: ProviderSettings, model: str | None = None) -> bool:
    """The provider's `prefill` setting, else the registry: the model's own row, else the vendor's."""
    if settings.prefill is not None:
        return settings.prefill
    vendor_name = vendor_of(settings)
    limits = model_limits(vendor_name, model) if model else None
    if limits is not None and limits.prefill is not None:
        return limits.prefill is Support.YES
    return vendor_or_custom(vendor_name).capabilities.prefill is Support.YES


def prefill_request(request: ProxyRequest, streamed_text: str) -> ProxyRequest:
    """The request again, with the streamed text as the assistant's turn to continue (trailing whitespace
    removed: Anthropic rejects a final assistant turn that ends with it)."""
    text = streamed_text.rstrip()
    messages: list[Any] = list(request.body.get("messages") or [])
    last = messages[-1] if messages else None
    if isinstance(last, dict) and last.get("role") == "assistant":
        # The client prefilled this turn itself: the answer so far continues its text.
        content = last.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])
        messages[-1] = {**last, "content": [*blocks, {"type": "text", "text": text}]}
    else:
        messages.append({"role": "assistant", "content": text})
    body = {k: v for k, v in request.body.items() if k != "thinking"}
    body["messages"] = messages
    return dataclasses.replace(request, body=body, raw_body=orjson.dumps(body))


class Continuation:
    """Maps a continuation stream's events onto the client's stream (call `map` per event, in order)."""

    def __init__(self, client: ClientStream) -> None:
        self._merge_index = client.open_index if client.open_kind is BlockKind.TEXT else None
        self._next_index = client.next_index
        self._offset: int | None = None
        # The prefill lost the client's trailing whitespace; the continuation will usually bring its own.
        self._strip_leading = client.streamed_text != client.streamed_text.rstrip()

    def map(self, event: Event) -> list[Event]:
        kind, data = event.type, event.data
        if kind == "message_start":
            return []
        if kind not in ("content_block_start", "content_block_delta", "content_block_stop"):
            return [event]
        raw_index = data.get("index")
        index: int = raw_index if isinstance(raw_index, int) else 0
        out: list[Event] = []
        if self._offset is None:
            out += self._first_block(event)
            if kind == "content_block_start" and self._merge_index is not None and out == []:
                return self._opening_text(data)
        mapped = index + (self._offset or 0)
        if kind == "content_block_delta" and self._strip_leading:
            delta = data.get("delta")
            if isinstance(delta, dict) and isinstance(delta.get("text"), str):
                self._strip_leading = False
                text = delta["text"].lstrip()
                if not text:
                    return out
                data = {**data, "delta": {**delta, "text": text}}
                event = event.replaced(data)
        if mapped != index:
            event = event.replaced({**data, "index": mapped})
        return [*out, event]

    def _first_block(self, event: Event) -> list[Event]:
        """Decide how the continuation's block 0 lands: merged into the client's open text block, or after it."""
        starts_text = event.type != "content_block_start" or block_kind(event.data.get("content_block")) is (
            BlockKind.TEXT
        )
        if self._merge_index is not None and starts_text:
            self._offset = self._merge_index
            return []
        if self._merge_index is not None:
            # The answer goes on with another kind of block: close the client's text block first.
            self._offset = self._merge_index + 1
            stop = {"type": "content_block_stop", "index": self._merge_index}
            return [Event.of(stop)]
        self._offset = self._next_index
        return []

    def _opening_text(self, data: dict[str, Any]) -> list[Event]:
        """The continuation's opening of block 0, merged: only text it already carries goes on, as a delta."""
        block = data.get("content_block")
        text = block.get("text") if isinstance(block, dict) else None
        if not isinstance(text, str) or not text:
            return []
        delta = {
            "type": "content_block_delta",
            "index": self._merge_index,
            "delta": {"type": "text_delta", "text": text},
        }
        return [Event.of(delta)]
