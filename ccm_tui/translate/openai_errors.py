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

from ccm_tui.providers.base import UpstreamError

_MAX_MESSAGE = 300

# Error types by status for bodies that name none (OpenRouter, plain-text proxies): Anthropic's words.
_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}

# Key-shaped strings some vendors echo back in auth errors: never let them reach logs or history.
_SECRET = re.compile(
    r"(sk-[A-Za-z0-9_\-*]{6,}|gsk_[A-Za-z0-9]{6,}|csk-[A-Za-z0-9]{6,}|gh[pousr]_[A-Za-z0-9]{6,}"
    r"|github_pat_[A-Za-z0-9_]{6,}|AIza[A-Za-z0-9_\-]{10,}|Bearer\s+[A-Za-z0-9._\-]{6,})"
)

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_RETRY_PHRASE = re.compile(
    r"(?:try again in|retry after|retry in|wait)\s+"
    r"((?:\d+(?:\.\d+)?(?:ms|h|m|s))+|\d+(?:\.\d+)?\s*(?:seconds?|secs?|minutes?|mins?))",
    re.IGNORECASE,
)

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
            message = str(inner.get("message") or "")
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
        message = _plain(text) or f"HTTP {status} from {vendor}"

    retry_after = _retry_after_from_details(details) or _retry_after_from_text(message)
    long_quota = bool(_LONG_QUOTA.search(message)) or _google_daily_quota(details)
    return UpstreamError(
        status,
        _scrub(message)[:_MAX_MESSAGE],
        error_type=error_type or _TYPE_BY_STATUS.get(status, "api_error" if status >= 500 else None),
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


def _plain(text: str) -> str:
    text = re.sub(r"<[^>]+>", " ", text)  # an HTML error page from a gateway
    return " ".join(text.split())[:_MAX_MESSAGE]


def _scrub(text: str) -> str:
    return _SECRET.sub("[redacted]", text)


def parse_duration(text: str) -> float | None:
    """Seconds in `5.289s`, `6m0s`, `250ms`, `20 seconds`, `2 minutes`; None when it is none of those."""
    text = text.strip().lower()
    spoken = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(seconds?|secs?|minutes?|mins?)", text)
    if spoken:
        value = float(spoken.group(1))
        return value * 60 if spoken.group(2).startswith("min") else value
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        return None
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(number) * scale[unit] for number, unit in parts)


def _retry_after_from_text(message: str) -> float | None:
    match = _RETRY_PHRASE.search(message)
    return parse_duration(match.group(1)) if match else None


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
