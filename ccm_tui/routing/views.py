"""Read-only views of routing state: what /health, /v1/models and the TUI show.

Frozen snapshots taken at one instant; readers never touch the health book. `engine_view` builds them from
the engine's state (pure given its inputs).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ccm_tui.core.events import Usage
from ccm_tui.core.states import ProviderState
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

    @property
    def cooling_variants(self) -> tuple[str, ...]:
        return tuple(v.key for v in self.variants if v.state is ProviderState.COOLING)


@dataclass(frozen=True)
class EngineView:
    strategy: str
    paused: bool
    in_flight: int
    providers: tuple[ProviderView, ...]  # in config order
    held: tuple[tuple[str, float], ...] = ()  # (request id, until) of requests waiting for a recovery

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
    held: tuple[tuple[str, float], ...] = (),
) -> EngineView:
    views = tuple(provider_view(name, provider, health[name], now) for name, provider in providers.items())
    return EngineView(strategy, paused, in_flight, views, held)


def provider_view(name: str, provider: Servable, health: ProviderHealth, now: float) -> ProviderView:
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
