"""How each OpenAI-compatible vendor differs on the wire: path prefix, rate-limit headers, error bodies.

Pure functions over plain values (PROTOCOLS.md §2.5, §2.6); the server that uses them is openai_mock.py.
Vendors: openai, openrouter, groq, cerebras, github, gemini (the OpenAI-compatible Gemini endpoint).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ccm_tui.demo.scenarios import go_duration, new_id

PREFIXES = {
    "openai": "/v1",
    "cerebras": "/v1",
    "openrouter": "/api/v1",
    "groq": "/openai/v1",
    "github": "/inference",
    "gemini": "/v1beta/openai",
}
VENDORS = tuple(PREFIXES)
# Where each vendor puts reasoning text in a message or delta; the rest use `reasoning_content` (DeepSeek, vLLM).
REASONING_FIELDS = {"openrouter": "reasoning", "groq": "reasoning"}
_GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    402: "FAILED_PRECONDITION",
    403: "PERMISSION_DENIED",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


@dataclass(frozen=True)
class Quota:
    """What the rate-limit headers report: limits, what is left, seconds until each bucket is full again."""

    requests_limit: int
    requests_remaining: int
    requests_reset: float
    tokens_limit: int
    tokens_remaining: int
    tokens_reset: float


# Which bucket a 429 empties: OpenAI's message names requests per minute, Groq's and Cerebras' tokens per minute.
EXHAUSTED_BUCKET = {"openai": "requests", "groq": "tokens", "cerebras": "tokens"}
# Groq's and Cerebras' request limits are per day, so that bucket refills 1440 times slower than a minute's.
REQUEST_WINDOW_MINUTES = {"groq": 1440, "cerebras": 1440}


def request_id(vendor: str) -> str:
    return new_id("req_", 26) if vendor == "groq" else "req_" + new_id("", 32).lower()


def quota_headers(vendor: str, quota: Quota) -> dict[str, str]:
    """The vendor's rate-limit headers on every response (none for OpenRouter, GitHub, Gemini)."""
    if vendor in ("openai", "groq"):
        return {
            "x-ratelimit-limit-requests": str(quota.requests_limit),
            "x-ratelimit-remaining-requests": str(quota.requests_remaining),
            "x-ratelimit-reset-requests": go_duration(quota.requests_reset),
            "x-ratelimit-limit-tokens": str(quota.tokens_limit),
            "x-ratelimit-remaining-tokens": str(quota.tokens_remaining),
            "x-ratelimit-reset-tokens": go_duration(quota.tokens_reset),
        }
    if vendor == "cerebras":
        return {
            "x-ratelimit-limit-requests-day": str(quota.requests_limit),
            "x-ratelimit-limit-tokens-minute": str(quota.tokens_limit),
            "x-ratelimit-remaining-requests-day": str(quota.requests_remaining),
            "x-ratelimit-remaining-tokens-minute": str(quota.tokens_remaining),
            "x-ratelimit-reset-requests-day": f"{quota.requests_reset:.2f}",
            "x-ratelimit-reset-tokens-minute": f"{quota.tokens_reset:.2f}",
        }
    return {}


def identity_headers(vendor: str, rid: str) -> dict[str, str]:
    if vendor == "openai":
        return {"x-request-id": rid, "openai-processing-ms": "42", "openai-version": "2020-10-01"}
    if vendor == "openrouter":
        return {"x-generation-id": f"gen-{int(time.time())}-{new_id('', 20)}"}
    if vendor == "github":
        return {"x-github-request-id": rid.removeprefix("req_").upper()[:20]}
    if vendor == "gemini":
        return {}
    return {"x-request-id": rid}


# --- error bodies ------------------------------------------------------------------------------------------

# scenario -> (status, OpenAI `type`, `code`, message, `param`); vendors reshape these below.
_OPENAI_ERRORS: dict[str, tuple[int, str, str | None, str, str | None]] = {
    "rate_limit": (
        429,
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for {model} in organization org-mock on requests per min (RPM): Limit 500, "
        "Used 500, Requested 1. Please try again in {retry}.",
        None,
    ),
    "spend_limit": (
        429,
        "insufficient_quota",
        "insufficient_quota",
        "You exceeded your current quota, please check your plan and billing details.",
        None,
    ),
    "billing": (402, "insufficient_quota", "payment_required", "Payment required: add credits to continue.", None),
    "auth": (401, "invalid_request_error", "invalid_api_key", "Incorrect API key provided.", None),
    "overloaded": (503, "server_error", None, "The server is overloaded or not ready yet.", None),
    "server_error": (
        500,
        "server_error",
        None,
        "The server had an error while processing your request. Sorry about that!",
        None,
    ),
    "bad_request": (
        400,
        "invalid_request_error",
        "invalid_type",
        "Invalid type for 'messages[0].content': expected one of a string or array of objects, but got an "
        "integer instead.",
        "messages[0].content",
    ),
    "context_length": (
        400,
        "invalid_request_error",
        "context_length_exceeded",
        "This model's maximum context length is 128000 tokens. However, your messages resulted in 215000 "
        "tokens. Please reduce the length of the messages.",
        "messages",
    ),
    "too_large": (
        413,
        "invalid_request_error",
        "request_too_large",
        "Request too large for {model}: the request body exceeds the maximum size.",
        None,
    ),
}


def error_status_and_body(vendor: str, scenario: str, model: str, retry_after: float) -> tuple[int, Any]:
    """The HTTP status and JSON body a vendor answers an error scenario with."""
    status, kind, code, message, param = _OPENAI_ERRORS[scenario]
    message = message.format(model=model, retry=go_duration(retry_after))
    if vendor == "openrouter":
        return _openrouter_error(scenario, status, message, model, retry_after)
    if vendor == "cerebras":
        return _cerebras_error(scenario, status, kind, code, message, param)
    if vendor == "github":
        return _github_error(scenario, status, code, message, model, retry_after)
    if vendor == "gemini":
        if scenario == "rate_limit":
            message = "Resource has been exhausted (e.g. check quota)."
        error = {"code": status, "message": message, "status": _GOOGLE_STATUS.get(status, "UNKNOWN")}
        return status, [{"error": error}]  # the compat endpoint wraps Google errors in a list
    if vendor == "groq":
        if scenario == "rate_limit":
            kind = "tokens"
            message = (
                f"Rate limit reached for model `{model}` in organization `org_mock` service tier `on_demand` on "
                f"tokens per minute (TPM): Limit 6000, Used 5890, Requested 1290. Please try again in "
                f"{go_duration(retry_after)}."
            )
        elif scenario == "auth":
            message = "Invalid API Key"
    return status, {"error": {"message": message, "type": kind, "param": param, "code": code}}


def _openrouter_error(scenario: str, status: int, message: str, model: str, retry_after: float) -> tuple[int, Any]:
    error: dict[str, Any] = {"code": status, "message": message}
    if scenario in ("spend_limit", "billing"):
        status = 402
        error = {"code": 402, "message": "Insufficient credits. Add more using https://openrouter.ai/settings/credits"}
    elif scenario == "rate_limit":
        reset_ms = int((time.time() + retry_after) * 1000)
        error["message"] = f"Rate limit exceeded: limit_rpm/{model}"
        error["metadata"] = {
            "headers": {"X-RateLimit-Limit": "20", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset_ms)}
        }
    elif scenario == "auth":
        error["message"] = "No auth credentials found"
    elif scenario == "overloaded":
        error["message"] = "No allowed providers are available for the selected model."
    return status, {"error": error}


def _cerebras_error(
    scenario: str, status: int, kind: str, code: str | None, message: str, param: str | None
) -> tuple[int, Any]:
    # Cerebras does not wrap errors in {"error": ...}.
    if scenario == "rate_limit":
        return status, {
            "message": "Requests per minute limit exceeded - too many requests sent.",
            "type": "too_many_requests_error",
            "param": "quota",
            "code": "request_quota_exceeded",
        }
    if scenario == "auth":
        return status, {
            "message": "Wrong API Key",
            "type": "invalid_request_error",
            "param": "api_key",
            "code": "wrong_api_key",
        }
    if scenario == "overloaded":
        return status, {
            "message": "We're experiencing high traffic right now! Please try again soon.",
            "type": "too_many_requests_error",
            "param": "queue",
            "code": "queue_exceeded",
        }
    return status, {"message": message, "type": kind, "param": param, "code": code}


def _github_error(
    scenario: str, status: int, code: str | None, message: str, model: str, retry_after: float
) -> tuple[int, Any]:
    if scenario == "too_large":
        code, message = "tokens_limit_reached", f"Request body too large for {model} model. Max size: 8000 tokens."
    elif scenario == "rate_limit":
        code = "RateLimitReached"
        message = (
            f"Rate limit of 15 per 60s exceeded for UserByModelByMinute. Please wait {round(retry_after)} seconds "
            "before retrying."
        )
    elif scenario == "auth":
        code, message = "unauthorized", "Bad credentials"
    return status, {"error": {"code": code or "InternalServerError", "message": message, "details": message}}
