"""OpenAI-compatible error bodies -> UpstreamError (pure; PROTOCOLS.md §2.5, §2.6).

Vendors wrap errors differently: OpenAI/Groq/GitHub `{"error":{message,type,code,param}}`, Cerebras flat
`{message,type,code}`, OpenRouter `{"error":{"code":<int>,"message","metadata"}}`, Google's OpenAI endpoint
`[{"error":{code,message,status,details}}]`, and proxies in front of them plain text or HTML. This module only
names the failure; routing/limits.py decides cool-downs from the status, codes and headers. The one timing fact
taken here is a retry delay that only the body carries ("Please try again in 5.289s", Google RetryInfo).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from ccm_tui.core.contract import UpstreamError
from ccm_tui.core.durations import parse_duration, retry_delay_in_text
from ccm_tui.core.errors import error_type_for
from ccm_tui.core.scrub import scrub

_MAX_MESSAGE = 300

# Daily / per-day quota markers: the limit will not reset within minutes.
_LONG_QUOTA = re.compile(r"per[ _-]?day|perday|bymodelbyday|requests per day|free-models-per-day|daily", re.IGNORECASE)


def error_from_openai(status: int, body: bytes, headers: Mapping[str, str], vendor: str) -> UpstreamError:
    """Normalise one OpenAI-compatible error response (any vendor shape, or not JSON at all).

    The shape is recognised from the body itself (a custom endpoint may front any vendor); `vendor` only
    names the upstream when the body says nothing.
    """
    lowered: dict[str, str] = {name.lower(): value for name, value in headers.items()}
    try:
        payload: Any = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        payload = None
    if isinstance(payload, list) and payload and isinstance(payload[0], dict):
        payload = payload[0]  # Google wraps its error object in a one-element list

    error_type: str | None = None
    error_code: str | None = None
    message = ""
    details: Any = None
    if isinstance(payload, dict):
        inner = payload.get("error", payload)
        if isinstance(inner, str):
            message = inner
        elif isinstance(inner, dict):
            message = str(inner.get("message") or "")[:_MAX_SCANNED]
            error_type = _word(inner.get("type")) or _word(inner.get("status"))
            error_code = _word(inner.get("code")) or _word(inner.get("status"))
            details = inner.get("details")
            metadata = inner.get("metadata")
            if isinstance(metadata, dict):  # OpenRouter: which provider failed and its own words
                message = _with_provider(message, metadata)
                # OpenRouter puts its rate-limit headers (X-RateLimit-Reset, epoch ms) in the body; hand them to
                # routing/limits.py with the real headers, which win on a clash.
                embedded = metadata.get("headers")
                if isinstance(embedded, dict):
                    lowered = {str(k).lower(): str(v) for k, v in embedded.items()} | lowered
    if not message:
        text = body.decode("utf-8", errors="replace") if body else ""
        message = plain_error_text(text) or f"HTTP {status} from {vendor}"

    retry_after = _retry_after_from_details(details) or retry_delay_in_text(message)
    long_quota = bool(_LONG_QUOTA.search(message)) or _google_daily_quota(details)
    return UpstreamError(
        status,
        scrub(message)[:_MAX_MESSAGE],
        error_type=error_type or error_type_for(status),
        error_code=error_code,
        headers=lowered,
        retry_after=retry_after,
        long_quota=long_quota,
    )


def _word(value: Any) -> str | None:
    # Vendors' own codes are strings; OpenRouter's and Google's integer codes only repeat the HTTP status.
    return value if isinstance(value, str) and value else None


def _with_provider(message: str, metadata: dict[str, Any]) -> str:
    provider = metadata.get("provider_name")
    raw = metadata.get("raw")
    if isinstance(raw, dict | list):
        raw = orjson.dumps(raw).decode()
    parts = [message or "upstream error"]
    if isinstance(provider, str) and provider:
        parts.append(f"(provider {provider})")
    if isinstance(raw, str) and raw and raw not in message:
        parts.append(f": {raw[:200]}")
    return " ".join(parts)


# What an HTML error page (a gateway's, Google's front end's) holds that is not its message.
# Error pages can be large and hostile: only their start is read, and markup is stripped in one linear pass
# (regular expressions over unclosed tags take quadratic time on the event loop).
_MAX_SCANNED = 16 * 1024
_NOISE_TAGS = frozenset({"style", "script", "title", "head"})


def plain_error_text(text: str) -> str:
    """An error body as one short line of text: HTML pages lose their markup, styles and scripts."""
    text = text[:_MAX_SCANNED]
    if "<" in text:
        text = _strip_markup(text)
    return " ".join(text.split())[:_MAX_MESSAGE]


def _strip_markup(text: str) -> str:
    lowered = text.lower()
    out: list[str] = []
    position, end_of_text = 0, len(text)
    while position < end_of_text:
        start = text.find("<", position)
        if start < 0:
            out.append(text[position:])
            break
        out.append(text[position:start])
        close = text.find(">", start)
        if close < 0:
            break  # an unclosed tag: the rest is markup
        name = lowered[start + 1 : close].split(None, 1)[0] if close > start + 1 else ""
        position = close + 1
        if name in _NOISE_TAGS:  # skip the element's content too
            end_tag = lowered.find(f"</{name}", position)
            end_close = lowered.find(">", end_tag) if end_tag >= 0 else -1
            position = end_close + 1 if end_close >= 0 else end_of_text
        out.append(" ")
    return "".join(out)


def _retry_after_from_details(details: Any) -> float | None:
    for item in details if isinstance(details, list) else ():
        if isinstance(item, dict) and str(item.get("@type", "")).endswith("RetryInfo"):
            delay = item.get("retryDelay")
            if isinstance(delay, str):
                return parse_duration(delay)
    return None


def _google_daily_quota(details: Any) -> bool:
    for item in details if isinstance(details, list) else ():
        if isinstance(item, dict) and str(item.get("@type", "")).endswith("QuotaFailure"):
            for violation in item.get("violations") or ():
                if isinstance(violation, dict) and _LONG_QUOTA.search(str(violation.get("quotaId", ""))):
                    return True
    return False
