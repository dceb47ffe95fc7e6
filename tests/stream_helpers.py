"""Helpers shared by the adapter-level tests: build a request, read a StreamReply whole, rebuild a Message."""

from __future__ import annotations

from typing import Any

import orjson
from anthropic.lib.streaming._messages import accumulate_event

from ccm_tui.core.contract import ProxyRequest, StreamReply


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


def make_request(stream: bool = True, betas: tuple[str, ...] = (), **extra: Any) -> ProxyRequest:
    """A minimal Claude request as the proxy hands it to a cloud Claude adapter (Bedrock, Vertex)."""
    body: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "stream": stream,
        "metadata": {"user_id": "someone"},
        "messages": [{"role": "user", "content": "Hello"}],
        **extra,
    }
    return ProxyRequest("req_1", body, orjson.dumps(body), body["model"], "sonnet", stream, betas=betas)
