"""Table-driven tests for routing.limits: header parsing, cool-down precedence, failure classification."""

from __future__ import annotations

import pytest

from ccm_tui.core.contract import UpstreamError
from ccm_tui.core.durations import parse_duration, parse_timestamp
from ccm_tui.core.states import ErrorOrigin, FailureKind, TransportFailure
from ccm_tui.routing.limits import (
    backoff_seconds,
    classify,
    is_overload,
    quota_from_headers,
    retry_after_from_headers,
)

NOW = 1_763_769_600.0  # 2025-11-22T00:00:00Z


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("12ms", 0.012),
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("2m59.56s", 179.56),
        ("1h2m", 3720.0),
        ("7.66s", 7.66),
        ("33011.38", 33011.38),
        ("0", 0.0),
        ("soon", None),
        ("5x", None),
        ("", None),
    ],
)
def test_parse_duration(text, seconds) -> None:
    assert parse_duration(text) == pytest.approx(seconds) if seconds is not None else parse_duration(text) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-11-22T00:00:30Z", NOW + 30),
        ("2025-11-22T01:00:00+01:00", NOW),
        ("Sat, 22 Nov 2025 00:01:00 GMT", NOW + 60),
        ("garbage", None),
    ],
)
def test_parse_timestamp(text, expected) -> None:
    assert parse_timestamp(text) == expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),  # ms wins
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "Sat, 22 Nov 2025 00:00:20 GMT"}, 20.0),
        (
            {
                "anthropic-ratelimit-requests-limit": "50",
                "anthropic-ratelimit-requests-remaining": "0",
                "anthropic-ratelimit-requests-reset": "2025-11-22T00:00:42Z",
            },
            42.0,
        ),
        (
            {
                "x-ratelimit-limit-requests": "100",
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": "1m30s",
            },
            90.0,
        ),  # OpenAI / Groq Go durations
        (
            {
                "x-ratelimit-limit-tokens-minute": "60000",
                "x-ratelimit-remaining-tokens-minute": "0",
                "x-ratelimit-reset-tokens-minute": "12.5",
                "x-ratelimit-limit-requests-day": "14400",
                "x-ratelimit-remaining-requests-day": "14000",
                "x-ratelimit-reset-requests-day": "33011.38",
            },
            12.5,
        ),  # Cerebras
        (
            {
                "x-ratelimit-limit-requests": "100",
                "x-ratelimit-remaining-requests": "40",
                "x-ratelimit-reset-requests": "1m",
            },
            None,
        ),  # nothing exhausted: no reset applies
        ({}, None),
    ],
)
def test_retry_after_precedence(headers, expected) -> None:
    result = retry_after_from_headers(headers, NOW)
    assert result == pytest.approx(expected) if expected is not None else result is None


def test_quota_snapshot_per_vendor() -> None:
    anthropic = quota_from_headers(
        {
            "anthropic-ratelimit-requests-limit": "1000",
            "anthropic-ratelimit-requests-remaining": "250",
            "anthropic-ratelimit-requests-reset": "2025-11-22T00:01:00Z",
            "anthropic-ratelimit-tokens-limit": "400000",
            "anthropic-ratelimit-tokens-remaining": "100000",
        },
        NOW,
    )
    assert anthropic is not None and anthropic.requests.remaining == 250 and anthropic.requests.reset_at == NOW + 60
    assert anthropic.fraction_left == 0.25
    groq = quota_from_headers(
        {
            "x-ratelimit-limit-tokens": "6000",
            "x-ratelimit-remaining-tokens": "3000",
            "x-ratelimit-reset-tokens": "7.66s",
        },
        NOW,
    )
    assert groq is not None and groq.tokens.reset_at == pytest.approx(NOW + 7.66) and groq.requests is None
    openrouter = quota_from_headers(
        {"x-ratelimit-limit": "20", "x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int((NOW + 30) * 1000))}, NOW
    )
    assert openrouter is not None and openrouter.exhausted_until(NOW) == pytest.approx(NOW + 30)
    assert quota_from_headers({"x-ratelimit-limit-requests": "-1"}, NOW) is None  # Azure "no limit"
    assert quota_from_headers({"content-type": "application/json"}, NOW) is None


def error(status: int, message: str = "x", **kw) -> UpstreamError:
    return UpstreamError(status, message, **kw)


@pytest.mark.parametrize(
    ("err", "kind"),
    [
        (error(429, error_type="rate_limit_error", headers={"retry-after": "5"}), FailureKind.COOLDOWN),
        (error(429, error_type="rate_limit_error", error_code="enforced_spend_limit_reached"), FailureKind.DISABLE),
        (error(429, error_type="insufficient_quota", error_code="insufficient_quota"), FailureKind.DISABLE),
        (error(429, error_type="RESOURCE_EXHAUSTED", long_quota=True), FailureKind.DISABLE),
        (error(529, error_type="overloaded_error"), FailureKind.COOLDOWN),
        (error(500), FailureKind.COOLDOWN),
        (error(502), FailureKind.COOLDOWN),
        (error(503), FailureKind.COOLDOWN),
        (error(504), FailureKind.COOLDOWN),
        (UpstreamError.no_response(TransportFailure.TIMEOUT, "upstream timed out"), FailureKind.COOLDOWN),
        (UpstreamError.no_response(TransportFailure.CONNECT, "connection refused"), FailureKind.COOLDOWN),
        (UpstreamError.bad_reply("malformed response from upstream"), FailureKind.COOLDOWN),
        (error(402), FailureKind.DISABLE),
        (error(401, error_type="authentication_error"), FailureKind.DISABLE),
        (error(403, error_type="permission_error"), FailureKind.DISABLE),
        (error(403, error_type="AccessDeniedException"), FailureKind.DISABLE),
        (error(429, error_type="ThrottlingException"), FailureKind.COOLDOWN),
        (error(400, error_type="FAILED_PRECONDITION"), FailureKind.DISABLE),
        (error(413, error_code="tokens_limit_reached"), FailureKind.SKIP),
        (
            error(400, "This model's maximum context length is 8192 tokens", error_code="context_length_exceeded"),
            FailureKind.SKIP,
        ),
        (error(400, "prompt is too long: 250000 tokens > 200000 maximum"), FailureKind.SKIP),
        (error(404, error_type="not_found_error"), FailureKind.SKIP),
        (
            error(400, "messages.0.content: Field required", error_type="invalid_request_error"),
            FailureKind.CLIENT_ERROR,
        ),
        (error(400, error_type="ValidationException"), FailureKind.CLIENT_ERROR),
    ],
)
def test_classify(err, kind) -> None:
    assert classify(err, NOW).kind is kind


def test_cooldown_keeps_the_upstreams_wait_and_reason_names_status() -> None:
    failure = classify(error(429, "slow down", error_type="rate_limit_error", headers={"retry-after": "12"}), NOW)
    assert failure.retry_after == 12.0 and failure.reason.startswith("429")
    body_hint = classify(error(429, "try again in 5.3s", retry_after=5.3), NOW)
    assert body_hint.retry_after == 5.3


@pytest.mark.parametrize(("failures", "expected"), [(1, 2.0), (2, 4.0), (3, 8.0), (10, 300.0)])
def test_backoff(failures, expected) -> None:
    assert backoff_seconds(failures, 2.0, 300.0) == expected


@pytest.mark.parametrize(
    ("err", "overload"),
    [
        (error(429, "Too many requests"), True),
        (error(529, error_type="overloaded_error"), True),
        (error(503, "Service Unavailable"), True),
        (UpstreamError(None, "busy", origin=ErrorOrigin.STREAM, error_type="overloaded_error"), True),
        (UpstreamError(None, "x", origin=ErrorOrigin.STREAM, error_type="ThrottlingException"), True),
        # The upstream's prose never decides: "generate" and "separate" contain "rate".
        (UpstreamError(None, "failed to generate", origin=ErrorOrigin.STREAM, error_type="api_error"), False),
        (error(500, "could not separate the tokens", error_type="api_error"), False),
        (UpstreamError.no_response(TransportFailure.READ, "connection lost (rate of reads)"), False),
    ],
)
def test_is_overload_reads_status_and_type_not_text(err: UpstreamError, overload: bool) -> None:
    assert is_overload(err) is overload
