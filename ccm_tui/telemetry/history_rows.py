"""Events <-> history rows (pure): every value checked and clamped so that SQLite can always store the row.

An upstream can report any number (a usage count above 2**63 once killed the writer) and a client any string;
here integers are clamped to SQLite's range and to >= 0 where negative means nothing, floats must be finite,
text is scrubbed of secrets, cut to a bound and made encodable. `request_row` raises `RowError` only for an
event that is not a request at all; the writer logs and counts those.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence

from ccm_tui.core.events import AttemptRecord, RequestFinished, SpendAlert, Usage
from ccm_tui.core.hints import ClientHints, RequestClass
from ccm_tui.core.scrub import scrub
from ccm_tui.core.states import AttemptOutcome

_OUTCOMES = {outcome.value for outcome in AttemptOutcome}

MAX_INT = 2**63 - 1
MAX_TEXT = 500  # error messages and reasons are for people, not for replaying a response
MAX_NAME = 256  # model, provider, variant names, ids and labels

REQUEST_COLUMNS = (
    "request_id",
    "started_at",
    "requested_model",
    "provider",
    "model",
    "stream",
    "status",
    "error_type",
    "error_message",
    "input_tokens",
    "output_tokens",
    "cache_creation_tokens",
    "cache_read_tokens",
    "cost_usd",
    "ttfb_ms",
    "duration_ms",
    "failovers",
    "session_id",
    "agent_id",
    "parent_agent_id",
    "request_class",
    "agent_type",
    "key_label",
)
ATTEMPT_COLUMNS = (
    "request_id",
    "n",
    "provider",
    "model",
    "variant",
    "status",
    "outcome",
    "reason",
    "started_at",
    "duration_ms",
    "retry_after",
)
ALERT_COLUMNS = ("at", "window", "spent_usd", "threshold_usd")


class RowError(ValueError):
    """An event that cannot become a row (a required field of the wrong type)."""


def _count(value: object) -> int:
    """A non-negative integer within SQLite's range (token counts, failovers)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    if isinstance(value, float):
        if not math.isfinite(value):
            return MAX_INT if value > 0 else 0
        value = int(value)
    return min(max(value, 0), MAX_INT)


def _status(value: object) -> int:
    """An HTTP status as stored: 0 for none or nonsense."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 999:
        return 0
    return value


def _real(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _seconds_to_ms(value: object) -> float | None:
    seconds = _real(value)
    return None if seconds is None else max(seconds, 0.0) * 1000.0


def _text(value: object, limit: int = MAX_NAME) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    # Lone surrogates (from a client's JSON) cannot be encoded as UTF-8 and would fail the whole batch.
    text = text.encode("utf-8", "replace").decode("utf-8")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def redact(text: str | None) -> str | None:
    """`text` without anything that looks like a credential, and not longer than a status line needs."""
    if text is None:
        return None
    return _text(scrub(text), MAX_TEXT)


def request_row(event: RequestFinished) -> tuple[object, ...]:
    if not event.request_id:
        raise RowError(f"request id {event.request_id!r} is not a non-empty string")
    started_at = _real(event.started_at)
    if started_at is None:
        raise RowError(f"request {event.request_id}: started_at {event.started_at!r} is not a time")
    usage, hints = event.usage, event.hints
    return (
        _text(event.request_id),
        started_at,
        _text(event.requested_model) or "",
        _text(event.provider),
        _text(event.model),
        int(bool(event.stream)),
        _status(event.status),
        _text(event.error_type),
        redact(event.error_message),
        _count(usage.input_tokens),
        _count(usage.output_tokens),
        _count(usage.cache_creation_input_tokens),
        _count(usage.cache_read_input_tokens),
        _real(event.cost_usd),
        _seconds_to_ms(event.ttfb),
        _seconds_to_ms(event.duration) or 0.0,
        _count(event.failovers),
        _text(hints.session_id),
        _text(hints.agent_id),
        _text(hints.parent_agent_id),
        _text(hints.request_class.value if isinstance(hints.request_class, RequestClass) else hints.request_class),
        _text(hints.agent_type),
        _text(event.key_label),
    )


def attempt_rows(event: RequestFinished) -> list[tuple[object, ...]]:
    return [
        (
            _text(event.request_id),
            n,
            _text(attempt.provider) or "",
            _text(attempt.model) or "",
            _text(attempt.variant) or "",
            _status(attempt.status),
            _text(attempt.outcome) or "",
            redact(attempt.reason) or "",
            _real(attempt.started_at) or 0.0,
            _seconds_to_ms(attempt.duration) or 0.0,
            _real(attempt.retry_after),
        )
        for n, attempt in enumerate(event.attempts)
    ]


def alert_row(alert: SpendAlert) -> tuple[object, ...]:
    at = _real(alert.at)
    if at is None:
        raise RowError(f"spend alert time {alert.at!r} is not a time")
    return (at, _text(alert.window) or "", _real(alert.spent_usd) or 0.0, _real(alert.threshold_usd) or 0.0)


def event_from_rows(row: sqlite3.Row, attempts: Sequence[sqlite3.Row]) -> RequestFinished:
    request_class = row["request_class"]
    try:
        known_class = RequestClass(request_class) if request_class else None
    except ValueError:
        known_class = None  # written by a newer version
    return RequestFinished(
        request_id=row["request_id"],
        requested_model=row["requested_model"],
        stream=bool(row["stream"]),
        status=row["status"],
        provider=row["provider"],
        model=row["model"],
        attempts=tuple(
            AttemptRecord(
                provider=a["provider"],
                model=a["model"],
                variant=a["variant"],
                status=a["status"] or None,  # 0 is how "no response" is stored
                outcome=AttemptOutcome(a["outcome"]) if a["outcome"] in _OUTCOMES else AttemptOutcome.STREAM_ERROR,
                reason=a["reason"],
                started_at=a["started_at"],
                duration=a["duration_ms"] / 1000.0,
                retry_after=a["retry_after"],
            )
            for a in attempts
        ),
        usage=Usage(
            input_tokens=row["input_tokens"],
            output_tokens=row["output_tokens"],
            cache_creation_input_tokens=row["cache_creation_tokens"],
            cache_read_input_tokens=row["cache_read_tokens"],
        ),
        cost_usd=row["cost_usd"],
        started_at=row["started_at"],
        ttfb=row["ttfb_ms"] / 1000.0 if row["ttfb_ms"] is not None else None,
        duration=row["duration_ms"] / 1000.0,
        error_type=row["error_type"],
        error_message=row["error_message"],
        hints=ClientHints(
            session_id=row["session_id"],
            agent_id=row["agent_id"],
            parent_agent_id=row["parent_agent_id"],
            request_class=known_class,
            agent_type=row["agent_type"],
        ),
        key_label=row["key_label"],
    )
