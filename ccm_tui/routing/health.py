"""Provider state: who is switched on, who is cooling down or disabled, and rolling health statistics.

One `ProviderHealth` per configured provider, holding one `VariantHealth` per (model, region) variant, because
cloud quotas are per model and region. Cool-downs apply to a variant; disables (auth, billing) to the whole
provider. Recovery is bounded and gradual: a cool-down the upstream gave no time for is capped at
`backoff_max` (however long the provider was down), so a probe is due on that schedule; when a cool-down
ends the next request that plans the variant takes it as its normal place in the order — that request is
the probe, and one probe success closes the circuit. An upstream's own wait (retry-after, reset headers) is
capped at `cooldown_max`. While the probe is in flight the variant is
`probing` and other requests use it only after every healthy candidate; a success returns it to `ok`, a
failure cools it down again (longer).

This is the one class to move behind a shared store (Redis) when several instances run; keep it small.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field

from ccm_tui.config import RoutingSettings
from ccm_tui.core.events import Usage
from ccm_tui.core.states import FailureKind, ProviderState
from ccm_tui.routing.limits import Failure, FailureCause, QuotaSnapshot, backoff_seconds, bounded_wait

RECENT_WINDOW_SECONDS = 300.0
RECENT_MAX_SAMPLES = 200
# Pass-through providers serve whatever model name a client sends; each name gets a variant here. Configured
# variants are always kept; made-up names are capped so a client cannot grow this state (and /health) forever.
MAX_UNCONFIGURED_VARIANTS = 32
DAY = 86_400.0
TTFT_SAMPLES = 20  # recent times to first token kept per variant (routing/deadlines.py reads them)


@dataclass
class VariantHealth:
    key: str
    cooldown_until: float = 0.0
    consecutive_failures: int = 0
    recovering: bool = False  # failed before; the next success proves it healthy again
    probe_in_flight: bool = False  # one request is testing it right now
    last_reason: str = ""
    configured: bool = False  # named in the provider's [models] table (never evicted)
    cause: FailureCause | None = None  # why it last failed (what a refusal tells the client)
    first_tokens: deque[float] = field(default_factory=lambda: deque(maxlen=TTFT_SAMPLES))
    missed_deadline: bool = False  # its last attempt missed the first-token deadline: the next one gets the ceiling

    def state(self, now: float) -> ProviderState:
        if self.cooldown_until > now:
            return ProviderState.COOLING
        return ProviderState.PROBING if self.probe_in_flight else ProviderState.OK

    def start_attempt(self) -> None:
        """Called as a request is sent here: the first one after a cool-down becomes the probe."""
        if self.recovering:
            self.probe_in_flight = True


@dataclass
class ProviderHealth:
    name: str
    enabled: bool = True
    disabled_until: float = 0.0  # a long disable after auth / billing failures
    disabled_reason: str = ""
    variants: dict[str, VariantHealth] = field(default_factory=dict)
    quota: QuotaSnapshot | None = None
    requests: int = 0
    errors: int = 0
    usage_total: Usage = field(default_factory=Usage)
    # (finished_at, ttfb_seconds, ok) for the recent window
    recent: deque[tuple[float, float | None, bool]] = field(default_factory=lambda: deque(maxlen=RECENT_MAX_SAMPLES))
    # (finished_at, tokens) for locally counted usage when the upstream sends no rate-limit headers
    local_usage: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=10_000))

    def variant(self, key: str, *, configured: bool = False) -> VariantHealth:
        found = self.variants.get(key)
        if found is None:
            found = self.variants[key] = VariantHealth(key, configured=configured)
            self._evict_unconfigured()
        return found

    def _evict_unconfigured(self) -> None:
        """Forget the oldest unconfigured variants past the cap, sparing ones whose state matters (cooling or
        probing) until the cap is doubled."""
        unconfigured = [v for v in self.variants.values() if not v.configured]
        excess = len(unconfigured) - MAX_UNCONFIGURED_VARIANTS
        if excess <= 0:
            return
        idle = [v for v in unconfigured[:-1] if not v.cooldown_until and not v.probe_in_flight]
        doomed = idle[:excess]
        if len(unconfigured) - len(doomed) > 2 * MAX_UNCONFIGURED_VARIANTS:
            doomed = unconfigured[: len(unconfigured) - 2 * MAX_UNCONFIGURED_VARIANTS]
        for variant in doomed:
            del self.variants[variant.key]

    def is_disabled(self, now: float) -> bool:
        return self.disabled_until > now

    def state(self, now: float) -> ProviderState:
        """The provider's headline state for the UI: off > disabled > cooling (all variants) > probing > ok."""
        if not self.enabled:
            return ProviderState.OFF
        if self.is_disabled(now):
            return ProviderState.DISABLED
        states = [v.state(now) for v in self.variants.values()]
        if states and all(s is ProviderState.COOLING for s in states):
            return ProviderState.COOLING
        if ProviderState.COOLING in states:
            return ProviderState.PARTIAL
        return ProviderState.PROBING if ProviderState.PROBING in states else ProviderState.OK

    def cooling_until(self, now: float) -> float | None:
        times = [v.cooldown_until for v in self.variants.values() if v.cooldown_until > now]
        return min(times) if times else None

    # --- statistics ---------------------------------------------------------------------------------------
    def _trim(self, now: float) -> None:
        while self.recent and self.recent[0][0] < now - RECENT_WINDOW_SECONDS:
            self.recent.popleft()

    def latency_p50(self, now: float) -> float | None:
        self._trim(now)
        samples = [ttfb for _, ttfb, ok in self.recent if ok and ttfb is not None]
        return statistics.median(samples) if samples else None

    def error_rate(self, now: float) -> float:
        self._trim(now)
        if not self.recent:
            return 0.0
        return sum(1 for _, _, ok in self.recent if not ok) / len(self.recent)

    def local_counts(self, now: float, window: float) -> tuple[int, int]:
        """Requests and tokens this provider served in the last `window` seconds (counted here)."""
        requests = tokens = 0
        for at, used in reversed(self.local_usage):
            if at < now - window:
                break
            requests += 1
            tokens += used
        return requests, tokens


class HealthBook:
    """All providers' health; the engine's only mutable routing state."""

    def __init__(self, names: list[str], routing: RoutingSettings, enabled: dict[str, bool]) -> None:
        self.routing = routing
        self.providers = {name: ProviderHealth(name, enabled=enabled.get(name, True)) for name in names}

    def __getitem__(self, name: str) -> ProviderHealth:
        return self.providers[name]

    def record_success(
        self, name: str, variant: str, now: float, ttfb: float | None, usage: Usage, first_token: float | None = None
    ) -> bool:
        """Returns True when the variant recovered (it was probing or had failures). `first_token` is the
        attempt's time to first content (streams), a sample for its adaptive deadline."""
        provider = self.providers[name]
        state = provider.variant(variant)
        recovered = state.recovering or state.consecutive_failures > 0
        state.recovering = state.probe_in_flight = state.missed_deadline = False
        state.consecutive_failures = 0
        state.cooldown_until = 0.0
        state.cause = None
        if first_token is not None:
            state.first_tokens.append(first_token)
        provider.requests += 1
        provider.recent.append((now, ttfb, True))
        provider.usage_total = _add(provider.usage_total, usage)
        provider.local_usage.append((now, usage.total_input_tokens + usage.output_tokens))
        return recovered

    def record_failure(self, name: str, variant: str, failure: Failure, now: float) -> float | None:
        """Apply a classified failure; returns the time the provider/variant is usable again, if it changed."""
        provider = self.providers[name]
        state = provider.variant(variant)
        provider.requests += 1
        provider.errors += 1
        provider.recent.append((now, None, False))
        state.last_reason = failure.reason
        state.cause = failure.cause
        routing = self.routing
        if failure.kind is FailureKind.COOLDOWN:
            state.consecutive_failures += 1
            wait = bounded_wait(failure.retry_after, routing.cooldown_max)
            if wait is None:
                # A configured base above the cap is the user's own minimum: honoured.
                cap = min(max(routing.backoff_max, routing.cooldown_base), routing.cooldown_max)
                wait = backoff_seconds(state.consecutive_failures, routing.cooldown_base, cap)
            state.cooldown_until = now + wait
            state.recovering, state.probe_in_flight = True, False
            return state.cooldown_until
        state.probe_in_flight = False
        if failure.kind is FailureKind.DISABLE:
            # A per-day quota may reset in more than disable_seconds; nothing sane is further off than a day.
            wait = bounded_wait(failure.retry_after, max(routing.disable_seconds, DAY)) or routing.disable_seconds
            provider.disabled_until = now + wait
            provider.disabled_reason = failure.reason
            return provider.disabled_until
        return None

    def record_stream_error(self, name: str, variant: str, now: float) -> None:
        """A failure after the first byte that is not an overload: counted, no cool-down."""
        provider = self.providers[name]
        provider.variant(variant).probe_in_flight = False
        provider.requests += 1
        provider.errors += 1
        provider.recent.append((now, None, False))

    def note_missed_deadline(self, name: str, variant: str) -> None:
        """The attempt got no first token in time: its next try waits the ceiling, so a variant that became
        slower for good is not cut forever by deadlines learnt when it was fast."""
        self.providers[name].variant(variant).missed_deadline = True

    def abandon_probe(self, name: str, variant: str) -> None:
        """The client left before an answer: nothing was learned about the upstream."""
        self.providers[name].variant(variant).probe_in_flight = False

    def note_quota(self, name: str, snapshot: QuotaSnapshot | None) -> None:
        """The provider's live quota from its latest rate-limit headers; None forgets it."""
        self.providers[name].quota = snapshot

    def set_enabled(self, name: str, enabled: bool) -> None:
        self.providers[name].enabled = enabled
        if enabled:
            self.clear_waits(name)  # switching a provider back on is the user's way to say "try again now"

    def clear_disable(self, name: str) -> None:
        provider = self.providers[name]
        provider.disabled_until = 0.0
        provider.disabled_reason = ""

    def clear_waits(self, name: str) -> None:
        """End the provider's disable and every variant's cool-down; the next request tries it (as a probe)."""
        self.clear_disable(name)
        for state in self.providers[name].variants.values():
            state.cooldown_until = 0.0


def _add(a: Usage, b: Usage) -> Usage:
    return Usage(
        input_tokens=a.input_tokens + b.input_tokens,
        output_tokens=a.output_tokens + b.output_tokens,
        cache_creation_input_tokens=a.cache_creation_input_tokens + b.cache_creation_input_tokens,
        cache_read_input_tokens=a.cache_read_input_tokens + b.cache_read_input_tokens,
    )
