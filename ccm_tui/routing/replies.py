"""Checks and fixes applied to what an upstream answered, before the client sees it (pure).

- `served_body`: a non-streaming Message must be a JSON object with a content list and sane usage (else it
  is an unusable reply: failover), and names the model that answered (a translator names the one asked for).
- `sane_usage`: token counts an upstream reported that no real answer has (beyond 64 bits) are dropped, so
  a record is never lost to them.
- `endpoint_of`: the host:port a provider connects to, for "could not connect to ..." errors.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import urlparse

import orjson

from ccm_tui.config import ProviderSettings, vendor_of
from ccm_tui.core.contract import MessageReply, Route, UpstreamError
from ccm_tui.core.events import Usage
from ccm_tui.core.vendors import vendor_or_custom

MAX_TOKENS_COUNT = 2**63 - 1  # SQLite's INTEGER, and far past any real count
_USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


def _valid_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOKENS_COUNT


def served_body(reply: MessageReply, route: Route) -> tuple[bytes, str]:
    """(the body to send, the served model id); raises UpstreamError.bad_reply for an unusable Message."""
    try:
        data = orjson.loads(reply.body)
    except orjson.JSONDecodeError:
        raise UpstreamError.bad_reply("upstream sent a response that is not JSON", reply.headers) from None
    if not isinstance(data, dict) or not isinstance(data.get("content"), list):
        raise UpstreamError.bad_reply("upstream sent a 200 without a usable message", reply.headers)
    usage = data.get("usage")
    if usage is not None and not isinstance(usage, dict):
        raise UpstreamError.bad_reply("upstream sent usage that is not an object", reply.headers)
    for name in _USAGE_FIELDS:
        if usage and usage.get(name) is not None and not _valid_count(usage[name]):
            raise UpstreamError.bad_reply(f"upstream sent an unusable usage.{name}", reply.headers)
    served = reply.model if isinstance(reply.model, str) and reply.model else route.model
    if data.get("model") == served:
        return reply.body, served
    data["model"] = served
    return orjson.dumps(data), served


def sane_usage(usage: Usage) -> Usage:
    changes = {name: 0 for name in _USAGE_FIELDS if not _valid_count(getattr(usage, name))}
    return replace(usage, **changes) if changes else usage


def add_usage(a: Usage, b: Usage) -> Usage:
    return Usage(*(getattr(a, name) + getattr(b, name) for name in _USAGE_FIELDS))


def endpoint_of(settings: ProviderSettings) -> str:
    try:
        base = settings.base_url or vendor_or_custom(vendor_of(settings)).base_url_for(settings.region) or ""
    except ValueError:
        base = ""
    parsed = urlparse(base)
    if not parsed.hostname:
        return settings.name
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return f"{parsed.hostname}:{port}"
