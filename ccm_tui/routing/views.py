"""Read-only views of routing state: what /health, /v1/models and the TUI show.

Frozen snapshots taken at one instant; readers never touch the health book. `engine_view` builds them from
the engine's state (pure given its inputs).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ccm_tui.config import ClassRule, KeyRotation, LocalLimits
from ccm_tui.core.events import Usage
from ccm_tui.core.states import ProviderState
from ccm_tui.routing.affinity import Pin
from ccm_tui.routing.budget import BudgetState
from ccm_tui.routing.candidates import Servable
from ccm_tui.routing.health import HealthBook, ProviderHealth
from ccm_tui.routing.limits import QuotaSnapshot

LOCAL_WINDOW_SECONDS = 60.0  # the window of the locally counted usage shown when an upstream sends no quota


@dataclass(frozen=True)
class VariantView:
    key: str
    state: ProviderState  # OK, PROBING or COOLING
    cooldown_until: float | None
    reason: str  # why it last failed ("" if never)


@dataclass(frozen=True)
class KeyView:
    """One key of a provider's pool, never the key itself."""

    label: str  # "KEY_A …9f3a" (variable or keyring entry, and the last four characters of a long key)
    source: str  # "env", "keyring" or "session"
    state: ProviderState  # OK, COOLING or DISABLED
    until: float | None  # when a cooling / disabled key is usable again
    reason: str  # why it last failed ("" if never)
    quota: QuotaSnapshot | None  # from this key's latest rate-limit headers
    served: int  # requests it served this session
    next: bool  # the key the next request takes


@dataclass(frozen=True)
class Steer:
    """A provider's limit-avoidance state (routing/steering.py)."""

    quota_threshold: float  # the fraction of a quota window at which it steps off
    stepped_off: str | None  # why it is behind the providers with room ("83 % of requests/min used"), or None
    quota_used: float | None  # 0..1 of its most-used window (headers or local limits), None when unknown
    quota_window: str | None  # that window: "requests/min", "tokens/min", "requests/day" ...
    quota_resets_at: float | None  # when that window resets
    local_limits: LocalLimits  # configured rpm / tpm / rpd (counted here)
    local_requests_minute: int  # counted against them
    local_tokens_minute: int
    local_requests_day: int
    key_rotation: KeyRotation
    keys: tuple[KeyView, ...]  # empty when the adapter holds its own credentials (one key, or cloud auth)


NO_STEER = Steer(0.8, None, None, None, None, LocalLimits(), 0, 0, 0, KeyRotation.ROUND_ROBIN, ())


@dataclass(frozen=True)
class SteeringView:
    """Engine-wide limit-avoidance state: threshold, session pins, class rules, budget guard."""

    quota_threshold: float
    session_affinity: bool
    pins: tuple[Pin, ...]  # most recently used first
    classes: Mapping[str, ClassRule]  # [routing.classes]
    agent_types: Mapping[str, ClassRule]  # [routing.agent_types]
    budget: BudgetState
    providers: Mapping[str, Steer] = field(default_factory=dict)


@dataclass(frozen=True)
class ProviderView:
    name: str
    kind: str
    model_keys: tuple[str, ...]  # the config's [providers.models] keys: tiers, exact names, `default`
    enabled: bool
    state: ProviderState
    until: float | None  # when a cooling / disabled provider is usable again
    reason: str
    requests: int
    errors: int
    latency_p50: float | None  # seconds, recent window
    error_rate: float  # 0..1, recent window
    quota: QuotaSnapshot | None  # from the upstream's rate-limit headers
    local_requests: int  # counted here over LOCAL_WINDOW_SECONDS
    local_tokens: int
    usage_total: Usage  # this session
    variants: tuple[VariantView, ...]
    steer: Steer = NO_STEER  # quota threshold, stepped-off reason, local limits, key pool

    @property
    def stepped_off(self) -> str | None:
        return self.steer.stepped_off

    @property
    def keys(self) -> tuple[KeyView, ...]:
        return self.steer.keys

    @property
    def cooling_variants(self) -> tuple[str, ...]:
        return tuple(v.key for v in self.variants if v.state is ProviderState.COOLING)


@dataclass(frozen=True)
class EngineView:
    strategy: str
    paused: bool
    in_flight: int
    providers: tuple[ProviderView, ...]  # in config order
    steering: SteeringView | None = None  # threshold, pins, class rules, budget guard
    held: tuple[tuple[str, float], ...] = ()  # (request id, until) of requests waiting for a recovery

    @property
    def budget(self) -> BudgetState | None:
        return self.steering.budget if self.steering else None

    @property
    def pins(self) -> tuple[Pin, ...]:
        return self.steering.pins if self.steering else ()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.providers)

    def provider(self, name: str) -> ProviderView:
        for view in self.providers:
            if view.name == name:
                return view
        raise KeyError(name)

    @property
    def ready(self) -> bool:
        return not self.paused and any(p.state.usable for p in self.providers)


def engine_view(
    providers: Mapping[str, Servable],
    health: HealthBook,
    *,
    strategy: str,
    paused: bool,
    in_flight: int,
    now: float,
    steering: SteeringView | None = None,
    held: tuple[tuple[str, float], ...] = (),
) -> EngineView:
    steers = steering.providers if steering else {}
    views = tuple(
        provider_view(name, provider, health[name], now, steers.get(name)) for name, provider in providers.items()
    )
    return EngineView(strategy, paused, in_flight, views, steering, held)


def provider_view(
    name: str, provider: Servable, health: ProviderHealth, now: float, steer: Steer | None = None
) -> ProviderView:
    state, until, reason = _headline(health, provider.has_credentials, now)
    local_requests, local_tokens = health.local_counts(now, LOCAL_WINDOW_SECONDS)
    return ProviderView(
        name=name,
        kind=provider.settings.kind,
        model_keys=tuple(provider.settings.models),
        enabled=health.enabled,
        state=state,
        until=until,
        reason=reason,
        requests=health.requests,
        errors=health.errors,
        latency_p50=health.latency_p50(now),
        error_rate=health.error_rate(now),
        quota=health.quota,
        local_requests=local_requests,
        local_tokens=local_tokens,
        usage_total=health.usage_total,
        variants=tuple(
            VariantView(v.key, v.state(now), v.cooldown_until or None, v.last_reason) for v in health.variants.values()
        ),
        steer=steer or NO_STEER,
    )


def _headline(health: ProviderHealth, has_credentials: bool, now: float) -> tuple[ProviderState, float | None, str]:
    """(state, until, reason) for display: off, disabled, cooling, partial, probing, ok, or no-key."""
    state = health.state(now)
    if state is ProviderState.OK and not has_credentials:
        return ProviderState.NO_KEY, None, "no API key"
    if state is ProviderState.DISABLED:
        return state, health.disabled_until, health.disabled_reason
    if state in (ProviderState.COOLING, ProviderState.PARTIAL):
        reasons = [v.last_reason for v in health.variants.values() if v.cooldown_until > now]
        return state, health.cooling_until(now), reasons[0] if reasons else ""
    return state, None, ""
