"""Key pools: one provider, several API keys, each with its own cool-down, disable and quota.

`order_keys` (pure) says which keys an attempt may use, best first, under the provider's rotation rule:
round-robin starts after the key used last, fill-first always starts at the first; either way a key past the
quota threshold goes behind the keys with room. `is_key_failure` (pure) says whether a failure belongs to the
key (a 429, a rejected or exhausted key) rather than to the upstream (overload, 5xx, timeouts): a key failure
moves the request to the pool's next key before another provider. `KeyPool` holds the state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ccm_tui.config import KeyRotation, LocalLimits
from ccm_tui.core.contract import ApiKey, UpstreamError
from ccm_tui.core.states import FailureKind, ProviderState
from ccm_tui.routing.limits import Failure, QuotaSnapshot, backoff_seconds
from ccm_tui.routing.quota import Pressure, pressure

_KEY_STATUSES = (401, 402, 403, 429)
_MIN_MASKED_LENGTH = 20  # shorter secrets are shown by name only: four characters would be too much of them


def key_label(name: str, secret: str) -> str:
    """What people see for a key: where it came from and, for a long key, its last four characters."""
    return f"{name} …{secret[-4:]}" if len(secret) >= _MIN_MASKED_LENGTH else name


def is_key_failure(failure: Failure, error: UpstreamError) -> bool:
    """A failure of this key (rate limit, rejected key, no credit on it), not of the upstream."""
    if failure.kind not in (FailureKind.COOLDOWN, FailureKind.DISABLE):
        return False
    return error.status in _KEY_STATUSES or error.long_quota


@dataclass
class KeyState:
    label: str
    source: str  # "env", "keyring" or "session"
    secret: str = field(repr=False)
    cooldown_until: float = 0.0
    disabled_until: float = 0.0
    consecutive_failures: int = 0
    reason: str = ""
    quota: QuotaSnapshot | None = None
    served: int = 0

    def state(self, now: float) -> ProviderState:
        if self.disabled_until > now:
            return ProviderState.DISABLED
        if self.cooldown_until > now:
            return ProviderState.COOLING
        return ProviderState.OK

    def until(self, now: float) -> float | None:
        state = self.state(now)
        if state is ProviderState.DISABLED:
            return self.disabled_until
        return self.cooldown_until if state is ProviderState.COOLING else None

    @property
    def ref(self) -> ApiKey:
        return ApiKey(self.label, self.secret)


@dataclass(frozen=True)
class KeyChoice:
    """One key as `order_keys` sees it."""

    usable: bool
    pressure: Pressure | None


def order_keys(keys: Sequence[KeyChoice], rotation: KeyRotation, last_used: int | None) -> list[int]:
    """Indices of the usable keys, best first."""
    count = len(keys)
    start = 0
    if rotation is KeyRotation.ROUND_ROBIN and last_used is not None and count:
        start = (last_used + 1) % count
    rotated = [(start + offset) % count for offset in range(count)]
    usable = [i for i in rotated if keys[i].usable]
    with_room = [i for i in usable if not (p := keys[i].pressure) or not p.over]
    past = sorted((i for i in usable if i not in with_room), key=lambda i: -(keys[i].pressure or _FULL).room)
    return with_room + past


_FULL = Pressure(1.0, "", None, 1.0)
_NO_LIMITS = LocalLimits()


class KeyPool:
    """A provider's keys in config order (environment variables first, then keyring entries)."""

    def __init__(self, rotation: KeyRotation) -> None:
        self.rotation = rotation
        self.keys: list[KeyState] = []
        self.last_used: int | None = None

    def __len__(self) -> int:
        return len(self.keys)

    def replace(self, keys: Sequence[tuple[str, str, str]]) -> None:
        """(label, source, secret) for each key, in pool order."""
        self.keys = [KeyState(label, source, secret) for label, source, secret in keys]
        self.last_used = None

    def add(self, label: str, source: str, secret: str) -> None:
        if all(k.secret != secret for k in self.keys):
            self.keys.append(KeyState(label, source, secret))

    def remove(self, label: str) -> bool:
        kept = [k for k in self.keys if k.label != label]
        removed = len(kept) != len(self.keys)
        self.keys, self.last_used = kept, None
        return removed

    def find(self, label: str) -> KeyState | None:
        return next((k for k in self.keys if k.label == label), None)

    def pressure(self, key: KeyState, threshold: float, estimated_tokens: int, now: float) -> Pressure | None:
        return pressure(key.quota, None, _NO_LIMITS, threshold, estimated_tokens, now)

    def ordered(self, threshold: float, estimated_tokens: int, now: float) -> list[KeyState]:
        choices = [
            KeyChoice(k.state(now) is ProviderState.OK, self.pressure(k, threshold, estimated_tokens, now))
            for k in self.keys
        ]
        return [self.keys[i] for i in order_keys(choices, self.rotation, self.last_used)]

    def take(self, key: KeyState) -> None:
        """An attempt is about to use `key`: round-robin continues after it."""
        self.last_used = self.keys.index(key)

    def best_quota(self, now: float) -> QuotaSnapshot | None:
        """The quota of the usable key with most room: what the provider as a whole has left."""
        usable = [k.quota for k in self.keys if k.state(now) is ProviderState.OK and k.quota is not None]
        if len(usable) < sum(1 for k in self.keys if k.state(now) is ProviderState.OK):
            return None  # a usable key with no headers yet: nothing says the provider is short
        return max(usable, key=lambda q: q.fraction_left if q.fraction_left is not None else 1.0, default=None)

    def fail(self, key: KeyState, failure: Failure, base: float, maximum: float, disable: float, now: float) -> None:
        key.reason = failure.reason
        if failure.kind is FailureKind.DISABLE:
            key.disabled_until = now + (failure.retry_after or disable)
            return
        key.consecutive_failures += 1
        wait = failure.retry_after
        key.cooldown_until = now + (
            wait if wait is not None else backoff_seconds(key.consecutive_failures, base, maximum)
        )

    def succeed(self, key: KeyState) -> None:
        key.consecutive_failures = 0
        key.cooldown_until = 0.0
        key.served += 1

    def clear_waits(self) -> None:
        for key in self.keys:
            key.cooldown_until = key.disabled_until = 0.0
            key.quota = None
