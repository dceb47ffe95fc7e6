"""Durations and timestamps as vendors write them: one parser for every header, body and protobuf form.

Pure functions; None means "not a duration I recognise". Negative, infinite and NaN values are refused so a
hostile `retry-after: inf` can never become a cool-down.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

_GO_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_GO_SCALE = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_SPOKEN = re.compile(r"(\d+(?:\.\d+)?)\s*(seconds?|secs?|minutes?|mins?)")
_RETRY_PHRASE = re.compile(
    r"(?:try again in|retry after|retry in|wait)\s+"
    r"((?:\d+(?:\.\d+)?(?:ms|h|m|s))+|\d+(?:\.\d+)?\s*(?:seconds?|secs?|minutes?|mins?))",
    re.IGNORECASE,
)


def finite_seconds(value: float) -> float | None:
    """`value` when it is a usable number of seconds (finite, not negative), else None."""
    return value if math.isfinite(value) and value >= 0 else None


def parse_duration(text: str) -> float | None:
    """Seconds from a bare number (`12`, `1.5`), a Go duration (`12ms`, `6m0s`, `2m59.56s`, `1h2m`), a
    protobuf JSON duration (`37s`) or words (`20 seconds`, `2 minutes`)."""
    text = text.strip().lower()
    try:
        return finite_seconds(float(text))
    except ValueError:
        pass
    spoken = _SPOKEN.fullmatch(text)
    if spoken:
        value = float(spoken.group(1))
        return value * 60 if spoken.group(2).startswith("min") else value
    parts = _GO_PART.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        return None
    return finite_seconds(sum(float(number) * _GO_SCALE[unit] for number, unit in parts))


def parse_protobuf_duration(value: Any) -> float | None:
    """A google.protobuf.Duration as JSON: `"37s"` / `"1.5s"`, or `{"seconds": N, "nanos": M}`."""
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, dict) and ("seconds" in value or "nanos" in value):
        try:
            return finite_seconds(float(value.get("seconds") or 0) + float(value.get("nanos") or 0) / 1e9)
        except (TypeError, ValueError):
            return None
    return None


def parse_timestamp(text: str) -> float | None:
    """Unix seconds from RFC 3339 (`2025-08-21T12:40:59Z`) or an HTTP date."""
    text = text.strip()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            parsed = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def retry_delay_in_text(message: str) -> float | None:
    """A retry delay only a message carries: "Please try again in 5.289s", "retry after 20 seconds"."""
    match = _RETRY_PHRASE.search(message)
    return parse_duration(match.group(1)) if match else None


def local_day_bounds(ts: float) -> tuple[float, float]:
    """(local midnight at or before ts, the next local midnight), as unix times; DST-aware."""
    day = datetime.fromtimestamp(ts).replace(hour=0, minute=0, second=0, microsecond=0)
    return day.timestamp(), (day + timedelta(days=1)).timestamp()
