"""Typed events and the in-process event bus: the seam between the proxy and everything that watches it.

The engine publishes; the TUI, the history writer, metrics and the spend tracker subscribe. `publish` is
synchronous and cheap: each subscriber is a plain callable that must only record the event (append to a
buffer, put on a thread queue, bump a counter) and return. A subscriber that raises is logged and kept.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from ccm_tui.core.hints import NO_HINTS, ClientHints
from ccm_tui.core.states import AttemptOutcome, ProviderState

log = logging.getLogger(__name__)


# No request uses more tokens than this; anything larger (or negative, or not a number) from an upstream is noise
# that would otherwise overflow SQLite sums, make Prometheus counters raise, or lower spend totals.
MAX_TOKEN_COUNT = 2**53


def token_count(value: object) -> int:
    """A token count from an upstream's usage JSON, made safe: a whole number in [0, MAX_TOKEN_COUNT], else 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    if value != value or value in (float("inf"), float("-inf")):
        return 0
    return min(max(int(value), 0), MAX_TOKEN_COUNT)


@dataclass(frozen=True)
class Usage:
    """Anthropic-style token counts: input_tokens excludes the cached parts."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0

    @property
    def total_input_tokens(self) -> int:
        return self.input_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens


@dataclass(frozen=True)
class AttemptRecord:
    """One try of one provider for one request."""

    provider: str
    model: str
    variant: str
    status: int | None  # upstream HTTP status; None when there was none (refused, timed out, unusable reply)
    outcome: AttemptOutcome
    reason: str  # short human text, never a key
    started_at: float
    duration: float
    retry_after: float | None = None


@dataclass(frozen=True)
class RequestStarted:
    request_id: str
    requested_model: str
    stream: bool
    started_at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class AttemptFailed:
    request_id: str
    attempt: AttemptRecord
    next_provider: str | None  # the provider tried next, if any (a failover)


@dataclass(frozen=True)
class RequestHeld:
    """A request waits for a provider to recover instead of failing ([routing] hold_seconds): `until` is
    when the soonest one does (the TUI counts down to it); None when the wait is over."""

    request_id: str
    until: float | None
    reason: str = ""


@dataclass(frozen=True)
class RequestFinished:
    request_id: str
    requested_model: str
    stream: bool
    status: int  # what the client got (200 even when a stream ended in an error event)
    provider: str | None  # who served it
    model: str | None
    attempts: tuple[AttemptRecord, ...]
    usage: Usage
    cost_usd: float | None
    started_at: float
    ttfb: float | None  # seconds from arrival to the first byte sent to the client
    duration: float
    error_type: str | None = None  # Anthropic error type when the request failed (also mid-stream)
    error_message: str | None = None
    headers_of_note: tuple[tuple[str, str], ...] = ()  # upstream request ids, rate-limit headers
    hints: ClientHints = NO_HINTS  # Claude Code's session / agent / request-class headers
    key_label: str | None = None  # which of the provider's keys served it (a label, never the key)
    skipped_events: int = 0  # malformed upstream stream events skipped (invalid JSON keep-alives, unknown types)

    @property
    def ok(self) -> bool:
        return self.status < 400 and self.error_type is None

    @property
    def failovers(self) -> int:
        return sum(1 for a in self.attempts if a.outcome != AttemptOutcome.OK)


class ProviderChange(StrEnum):
    """Why a provider's state changed: what watchers branch on (the reason is only for people)."""

    COOLING = "cooling"  # a transient failure started a cool-down
    DISABLED = "disabled"  # an auth / billing / long-quota failure switched it off for a while
    RECOVERED = "recovered"  # a success after failures
    OFF = "off"  # switched off by the user
    ON = "on"  # switched on by the user
    KEY_SET = "key_set"  # the user gave it a new API key
    RETRY_NOW = "retry_now"  # the user ended its cool-down / disable


@dataclass(frozen=True)
class ProviderChanged:
    """A provider's or variant's state changed: cool-down, recovery, disable, toggle, key set."""

    provider: str
    variant: str | None
    state: ProviderState
    change: ProviderChange
    until: float | None = None
    reason: str = ""


@dataclass(frozen=True)
class RoutingChanged:
    """Strategy changed or the proxy was paused/resumed."""

    strategy: str
    paused: bool


@dataclass(frozen=True)
class SpendAlert:
    window: str  # "hour" | "day"
    spent_usd: float
    threshold_usd: float
    at: float = field(default_factory=time.time)


class HistoryFault(StrEnum):
    """Why the history writer cannot store rows right now (telemetry/history_schema.py classifies)."""

    LOCKED = "locked"  # another process holds a write lock longer than the busy timeout
    READ_ONLY = "read_only"  # the file or its directory is not writable
    FULL = "full"  # the disk (or a quota) is full
    UNAVAILABLE = "unavailable"  # cannot open the file, or an I/O error
    CORRUPT = "corrupt"  # not a database / malformed: moved aside, a fresh file is started


@dataclass(frozen=True)
class HistoryProblem:
    """History stopped being written (published once per fault, not per retry); rows wait in memory."""

    path: str
    fault: HistoryFault
    message: str  # one line for a banner: what happened and what the writer does about it
    pending: int  # rows waiting to be written
    dropped: int  # rows lost so far in this process (queue full, unstorable)


@dataclass(frozen=True)
class HistoryRecovered:
    """History is being written again; the rows that waited are stored."""

    path: str
    message: str
    dropped: int


@dataclass(frozen=True)
class SteppedOff:
    """A provider went behind the others because its quota passed the threshold, or came back (its window reset).

    The stream shows it as "stepped off <provider>: 83 % of requests/min used"."""

    provider: str
    stepped_off: bool  # False: back under the threshold
    reason: str  # "83 % of requests/min used"; "" when back
    used: float  # 0..1 of the most-used window
    threshold: float
    until: float | None = None  # when that window resets
    at: float = field(default_factory=time.time)

    @property
    def text(self) -> str:
        if self.stepped_off:
            return f"stepped off {self.provider}: {self.reason}"
        return f"back on {self.provider}: its quota has room again"


@dataclass(frozen=True)
class BudgetChanged:
    """The budget guard reached a cap, was lifted, or is under every cap again (a new day or hour)."""

    window: str | None  # "hour" | "day" while a cap is reached; None when under every cap
    action: str  # [budget] action: "alert" | "cheapest" | "refuse"
    active: bool  # the cap is reached and not lifted: the action applies
    lifted: bool  # the user lifted the guard for the rest of the day
    message: str  # "ccm-tui daily budget of $20 reached; resets at 00:00 local"; "" when under
    at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class RequestRejected:
    """The proxy answered a request itself with a 4xx before routing it (malformed body, wrong key, unknown
    path, a Host/Origin the guard refuses): no provider was tried, so no RequestFinished follows."""

    request_id: str
    method: str
    path: str  # without the query string
    status: int
    message: str  # the error message the client got (the proxy's own words, never a key)
    at: float = field(default_factory=time.time)


Event = (
    RequestStarted
    | AttemptFailed
    | RequestHeld
    | RequestFinished
    | ProviderChanged
    | RoutingChanged
    | SpendAlert
    | HistoryProblem
    | HistoryRecovered
    | SteppedOff
    | BudgetChanged
    | RequestRejected
)
Subscriber = Callable[[Event], None]


class EventBus:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Add a subscriber; returns a function that removes it."""
        self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)

        return unsubscribe

    def publish(self, event: Event) -> None:
        for subscriber in tuple(self._subscribers):
            try:
                subscriber(event)
            except Exception:
                log.exception("event subscriber %r failed on %s", subscriber, type(event).__name__)
