"""The vocabularies that travel between layers: provider states, attempt outcomes, failure causes.

Each is a StrEnum so it prints, logs and stores as its value (history keeps the same words as before), while
code compares members, never human-readable text.
"""

from __future__ import annotations

from enum import StrEnum


class ProviderState(StrEnum):
    """A provider's (or variant's) routing state, as the planner, /health and the TUI see it."""

    OK = "ok"
    PROBING = "probing"  # recovering: one request is testing it
    PARTIAL = "partial"  # some variants cooling, others usable
    COOLING = "cooling"  # every variant cooling down
    DISABLED = "disabled"  # auth / billing / long quota failure
    OFF = "off"  # switched off by the user
    NO_KEY = "no-key"  # configured but without credentials

    @property
    def usable(self) -> bool:
        return self in (ProviderState.OK, ProviderState.PROBING, ProviderState.PARTIAL)


class FailureKind(StrEnum):
    """What a failed attempt means for routing (routing/limits.py decides it)."""

    COOLDOWN = "cooldown"  # transient: rate limit, overload, 5xx, timeout -> cool down, try the next provider
    DISABLE = "disable"  # lasting: auth, billing, spend limit -> switch the provider off for a long while
    SKIP = "skip"  # this request does not fit this provider (too large, model missing) -> next, no penalty
    CLIENT_ERROR = "client_error"  # the request itself is bad -> answer it, no failover


class AttemptOutcome(StrEnum):
    """How one attempt at one provider ended (stored in history as the value)."""

    OK = "ok"
    COOLDOWN = "cooldown"
    DISABLE = "disable"
    SKIP = "skip"
    CLIENT_ERROR = "client_error"
    STREAM_ERROR = "stream_error"  # failed after the first byte reached the client
    RETRIED = "retried"  # a reset or a lone 500/502: tried again at once on the same provider, no penalty

    @classmethod
    def of(cls, kind: FailureKind) -> AttemptOutcome:
        return cls(kind.value)


class ErrorOrigin(StrEnum):
    """Where an upstream failure came from: there is no HTTP status to read for two of them."""

    HTTP = "http"  # the upstream answered with an error status
    TRANSPORT = "transport"  # no HTTP response at all (refused, timed out, connection lost)
    REPLY = "reply"  # a 2xx whose body or stream was unusable (malformed, ended early)
    STREAM = "stream"  # the upstream sent an error event inside a stream


class TransportFailure(StrEnum):
    CONNECT = "connect"  # refused or unreachable
    TIMEOUT = "timeout"
    READ = "read"  # the connection was lost or cut
