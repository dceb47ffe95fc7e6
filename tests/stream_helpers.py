"""Helpers shared by the adapter-level tests: read a StreamReply whole, rebuild a Message the SDK's way."""

from __future__ import annotations

from typing import Any

from anthropic.lib.streaming._messages import accumulate_event

from ccm_tui.providers.base import StreamReply


async def read_all(reply: StreamReply) -> bytes:
    """Every byte of a stream reply; the reply is closed either way."""
    data = b""
    try:
        async for chunk in reply:
            data += chunk
    finally:
        await reply.aclose()
    return data


def sdk_message(events: list[dict[str, Any]]) -> Any:
    """The Message the official SDK's own accumulator builds from these stream events (pings skipped)."""
    snapshot, json_bufs = None, {}
    for event in events:
        if event["type"] != "ping":
            snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=json_bufs)  # type: ignore[arg-type]
    return snapshot
