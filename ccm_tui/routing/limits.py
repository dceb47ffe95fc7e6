"""Pure decisions about upstream limits: rate-limit headers -> QuotaSnapshot, failures -> Failure.

No I/O and no clock reads: callers pass `now` (unix seconds). See PROTOCOLS.md §7 for the precedence of
cool-down sources and the failure classes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from ccm_tui.core.contract import UpstreamError
from ccm_tui.core.durations import finite_seconds, parse_duration, parse_timestamp
from ccm_tui.core.states import ErrorOrigin, FailureKind, TransportFailure


class FailureCause(StrEnum):
    """Why an upstream failed, finer than FailureKind: what the client is told when every candidate failed."""

    RATE_LIMIT = "rate_limit"  # 429: too many requests (a throttle, not a spend cap)
    OVERLOAD = "overload"  # 529 / 503 / overloaded_error: the service is busy
    UNREACHABLE = "unreachable"  # the connection was refused or the host is unreachable
    TIMEOUT = "timeout"  # no answer (or no first token) in time
    CUT = "cut"  # the connection was lost, or a stream stopped / stalled before its end
    REPLY = "reply"  # an unusable 2xx reply
    SERVER = "server"  # another 5xx
    DISABLED = "disabled"  # auth, billing, spend limit
    REQUEST = "request"  # the request does not fit (client error, too large, model missing)


@dataclass(frozen=True)
class Failure:
    kind: FailureKind
    retry_after: float | None  # seconds the upstream asked us to wait; None = choose a back-off
    reason: str  # short, for the request log and the provider panel
    cause: FailureCause = FailureCause.SERVER


@dataclass(frozen=True)
class QuotaWindow:
    limit: int | None
    remaining: int | None
    reset_at: float | None  # unix seconds
    label: str = ""  # what it counts, for people: "requests/min", "tokens/min", "requests/day", "requests"

    @property
    def fraction_left(self) -> float | None:
        if self.limit and self.remaining is not None and self.limit > 0:
            return max(0.0, min(1.0, self.remaining / self.limit))
        return None


@dataclass(frozen=True)
class QuotaSnapshot:
    requests: QuotaWindow | None
    tokens: QuotaWindow | None
    taken_at: float

    def exhausted_until(self, now: float) -> float | None:
        """When a window reports nothing left, the time it resets (the provider would only answer 429)."""
        until = None
        for window in (self.requests, self.tokens):
            if window and window.remaining == 0 and window.reset_at and window.reset_at > now:
                until = max(until or 0.0, window.reset_at)
        return until

    @property
    def fraction_left(self) -> float | None:
        fractions = [w.fraction_left for w in (self.requests, self.tokens) if w and w.fraction_left is not None]
        return min(fractions) if fractions else None


# --- header parsing -----------------------------------------------------------------------------------------


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    # inf, NaN and counts past 64 bits are not quota numbers any vendor sends: ignore them.
    return int(number) if math.isfinite(number) and abs(number) < 2**63 else None


def _window(
    headers: Mapping[str, str], limit: str, remaining: str, reset: str, now: float, label: str
) -> QuotaWindow | None:
    limit_value, remaining_value = _int(headers.get(limit)), _int(headers.get(remaining))
    if limit_value is None and remaining_value is None:
        return None
    reset_at = None
    raw_reset = headers.get(reset)
    if raw_reset:
        if reset.startswith("anthropic-"):
            reset_at = parse_timestamp(raw_reset)
        else:
            seconds = parse_duration(raw_reset)
            reset_at = now + seconds if seconds is not None else None
    # Azure and some proxies send -1 / 0 limits meaning "no limit here".
    if limit_value is not None and limit_value <= 0:
        return None
    return QuotaWindow(limit_value, remaining_value, reset_at, label)


def quota_from_headers(headers: Mapping[str, str], now: float) -> QuotaSnapshot | None:
    """Read whichever vendor's rate-limit headers are present (names must be lower-case)."""
    a = "anthropic-ratelimit-"
    o = "x-ratelimit-"
    minute = "requests/min"
    requests = _window(headers, f"{a}requests-limit", f"{a}requests-remaining", f"{a}requests-reset", now, minute)
    tokens = _window(
        headers, f"{a}tokens-limit", f"{a}tokens-remaining", f"{a}tokens-reset", now, "tokens/min"
    ) or _window(
        headers,
        f"{a}input-tokens-limit",
        f"{a}input-tokens-remaining",
        f"{a}input-tokens-reset",
        now,
        "input tokens/min",
    )
    if requests is None and tokens is None:
        # OpenAI / Groq: -requests / -tokens; Cerebras: -requests-day / -tokens-minute. Groq's -requests window
        # is a day and OpenAI's a minute, so that one is labelled without a period.
        for suffix, label in (("requests", "requests"), ("requests-day", "requests/day")):
            requests = requests or _window(
                headers, f"{o}limit-{suffix}", f"{o}remaining-{suffix}", f"{o}reset-{suffix}", now, label
            )
        for suffix in ("tokens", "tokens-minute"):
            tokens = tokens or _window(
                headers, f"{o}limit-{suffix}", f"{o}remaining-{suffix}", f"{o}reset-{suffix}", now, "tokens/min"
            )
    if requests is None and tokens is None and f"{o}limit" in headers:
        # OpenRouter: unsuffixed x-ratelimit-limit / -remaining / -reset, the reset in epoch milliseconds.
        reset = _int(headers.get(f"{o}reset"))
        limit, remaining = _int(headers.get(f"{o}limit")), _int(headers.get(f"{o}remaining"))
        if limit and limit > 0:
            requests = QuotaWindow(limit, remaining, reset / 1000.0 if reset else None, "requests")
    if requests is None and tokens is None:
        return None
    return QuotaSnapshot(requests=requests, tokens=tokens, taken_at=now)


def retry_after_from_headers(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds to wait, by the precedence of PROTOCOLS.md §7: retry-after-ms, retry-after, then the reset
    time of whichever rate-limit window is exhausted."""
    if "retry-after-ms" in headers:
        try:
            millis = finite_seconds(float(headers["retry-after-ms"]))
        except ValueError:
            millis = None
        if millis is not None:
            return millis / 1000.0
    if "retry-after" in headers:
        raw = headers["retry-after"].strip()
        seconds = parse_duration(raw)
        if seconds is not None:
            return seconds
        at = parse_timestamp(raw)
        if at is not None and finite_seconds(at - now) is not None:
            return at - now
        if at is not None:
            return 0.0
    snapshot = quota_from_headers(headers, now)
    if snapshot is not None:
        until = snapshot.exhausted_until(now)
        if until is not None:
            return until - now
    return None


# --- failure classification ---------------------------------------------------------------------------------

_SPEND_LIMIT_CODES = {
    "enforced_spend_limit_reached",
    "contract_spend_limit_reached",
    "insufficient_quota",
    "credit_balance_exhausted",
    "billing_error",
}
_DISABLE_TYPES = {
    "authentication_error",
    "permission_error",
    "billing_error",
    "insufficient_quota",
    "accessdeniedexception",
    "unrecognizedclientexception",
    "invalidsignatureexception",
    "servicequotaexceededexception",
    "permission_denied",
    "unauthenticated",
    "failed_precondition",
}
_COOLDOWN_TYPES = {
    "throttlingexception",
    "modelnotreadyexception",
    "serviceunavailableexception",
    "internalserverexception",
    "modeltimeoutexception",
    "modelerrorexception",
    "resource_exhausted",
    "unavailable",
    "internal",
    "overloaded_error",
    "rate_limit_error",
}
_CONTEXT_HINTS = (
    "context_length",
    "context length",
    "context window",
    "prompt is too long",
    "maximum context",
    "too many tokens",
    "tokens_limit_reached",
    "input is too long",
    "reduce the length",
)


def classify(error: UpstreamError, now: float) -> Failure:
    status = error.status
    kind_of = (error.error_type or "").lower()
    code = (error.error_code or "").lower()
    text = f"{code} {error.message}".lower()
    reason = _reason(error)

    if error.origin is not ErrorOrigin.HTTP or status is None:
        # No response, an unusable 2xx or an error event mid-stream: the upstream failed, not the request.
        return Failure(FailureKind.COOLDOWN, error.retry_after, reason, _cause_without_status(error))
    if 200 <= status < 300:
        # An adapter found the 2xx body unusable (a JSON array, an error object where a reply belongs).
        return Failure(FailureKind.COOLDOWN, None, reason, FailureCause.REPLY)
    if error.long_quota or code in _SPEND_LIMIT_CODES or kind_of in _SPEND_LIMIT_CODES:
        return Failure(FailureKind.DISABLE, _retry_after(error, now), reason, FailureCause.DISABLED)
    if status == 402 or kind_of in _DISABLE_TYPES or status in (401, 403):
        return Failure(FailureKind.DISABLE, None, reason, FailureCause.DISABLED)
    if status == 413 or code in ("tokens_limit_reached", UNSUPPORTED_FEATURE_CODE) or status == 404:
        # Too large here, no such model, or a feature this target cannot run (a server tool, MCP, a schema):
        # another candidate can.
        return Failure(FailureKind.SKIP, None, reason, FailureCause.REQUEST)
    if status in (408, 409, 424, 429, 529) or status >= 500 or kind_of in _COOLDOWN_TYPES:
        return Failure(FailureKind.COOLDOWN, _retry_after(error, now), reason, _transient_cause(error))
    if status in (400, 422) and any(hint in text for hint in _CONTEXT_HINTS):
        return Failure(FailureKind.SKIP, None, reason, FailureCause.REQUEST)
    return Failure(FailureKind.CLIENT_ERROR, None, reason, FailureCause.REQUEST)


def _cause_without_status(error: UpstreamError) -> FailureCause:
    if error.origin is ErrorOrigin.TRANSPORT:
        return {
            TransportFailure.CONNECT: FailureCause.UNREACHABLE,
            TransportFailure.TIMEOUT: FailureCause.TIMEOUT,
        }.get(error.transport or TransportFailure.READ, FailureCause.CUT)
    if error.origin is ErrorOrigin.STREAM:
        return _transient_cause(error)
    return FailureCause.REPLY


def _transient_cause(error: UpstreamError) -> FailureCause:
    kind_of = (error.error_type or "").lower()
    if error.status == 429 or kind_of in ("rate_limit_error", "throttlingexception", "rate_limit_exceeded"):
        return FailureCause.RATE_LIMIT
    if is_overload(error):
        return FailureCause.OVERLOAD
    if error.status in (408, 504):
        return FailureCause.TIMEOUT
    return FailureCause.SERVER


def retry_same_provider(error: UpstreamError) -> bool:
    """One immediate retry on the same provider is cheap and likely to work only for a connection reset
    before any response, or a lone 500 / 502 (not for 429 / 503 / 529 or timeouts: those mean "busy")."""
    if error.origin is ErrorOrigin.TRANSPORT:
        return error.transport is TransportFailure.READ
    return error.origin is ErrorOrigin.HTTP and error.status in (500, 502)


def bounded_wait(seconds: float | None, maximum: float) -> float | None:
    """An upstream's wait as a usable cool-down: None stays None (choose a back-off), anything past `maximum`
    (inf, absurd dates, huge numbers) is `maximum`, negative or NaN is None."""
    if seconds is None or math.isnan(seconds) or seconds < 0:
        return None
    return min(seconds, maximum)


# translate/features.py refuses what a target cannot honour with this code (routing must not import translate).
UNSUPPORTED_FEATURE_CODE = "unsupported_feature"

_OVERLOAD_STATUSES = (429, 503, 529)
_OVERLOAD_TYPES = {
    "overloaded_error",
    "rate_limit_error",
    "throttlingexception",
    "serviceunavailableexception",
    "modelnotreadyexception",
    "resource_exhausted",
    "unavailable",
    "rate_limit_exceeded",
}


def is_overload(error: UpstreamError) -> bool:
    """Whether a failure says "too busy / too many requests" (so the client hears overloaded_error).

    Decided by status and the vendor's error type only: message text is the upstream's prose, and words like
    "failed to generate" must not read as a rate limit.
    """
    if error.status in _OVERLOAD_STATUSES:
        return True
    return (error.error_type or "").lower() in _OVERLOAD_TYPES or (error.error_code or "").lower() in _OVERLOAD_TYPES


def _retry_after(error: UpstreamError, now: float) -> float | None:
    from_headers = retry_after_from_headers(error.headers, now)
    return from_headers if from_headers is not None else error.retry_after


def _reason(error: UpstreamError) -> str:
    if error.origin is not ErrorOrigin.HTTP or not error.status:
        return error.message
    label = str(error.status)
    detail = error.error_code or error.error_type or ""
    message = " ".join(error.message.split())
    if len(message) > 120:
        message = message[:117] + "..."
    parts = [label, detail, message] if detail and detail not in message else [label, message]
    return " ".join(p for p in parts if p)


def backoff_seconds(consecutive_failures: int, base: float, maximum: float) -> float:
    """Exponential back-off for upstreams that give no reset time: base, 2*base, 4*base ... capped."""
    return min(maximum, base * (2 ** max(0, consecutive_failures - 1)))
