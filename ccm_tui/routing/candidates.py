"""Candidate state for one request: which provider variants could serve it, in what state, at what price.

Pure given its inputs (the providers' settings and credentials, their health, the price book, the quota
lookup and the time): the engine calls `build_candidates` and hands the result to routing/plan.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from ccm_tui.config import ProviderSettings
from ccm_tui.core.contract import ProxyRequest, Route, Variant
from ccm_tui.core.events import Usage
from ccm_tui.core.states import ProviderState
from ccm_tui.routing.health import HealthBook, ProviderHealth
from ccm_tui.routing.limits import QuotaSnapshot
from ccm_tui.routing.plan import Candidate
from ccm_tui.routing.quota import Pressure
from ccm_tui.routing.strategies import CandidateStats

BYTES_PER_TOKEN = 4  # a cheap estimate of a request's input tokens, good enough to compare with a quota


class CostLookup(Protocol):
    """What routing needs from telemetry.costs.PriceBook."""

    def cost_usd(self, provider: str, model: str, usage: Usage) -> float | None: ...

    def price_per_mtok(self, provider: str, model: str) -> tuple[float, float] | None: ...


class NoPrices:
    """A CostLookup that knows no prices (tests, and routing before the price catalogue has loaded)."""

    def cost_usd(self, provider: str, model: str, usage: Usage) -> float | None:
        return None

    def price_per_mtok(self, provider: str, model: str) -> tuple[float, float] | None:
        return None


class QuotaLookup(Protocol):
    """A variant's quota pressure (routing/steering.py: threshold, local limits, key pools)."""

    def pressure(
        self, route: Route, snapshot: QuotaSnapshot | None, estimated_tokens: int, now: float
    ) -> Pressure | None: ...


class Servable(Protocol):
    """The two facts about a provider adapter that candidate state depends on."""

    @property
    def settings(self) -> ProviderSettings: ...

    @property
    def has_credentials(self) -> bool: ...


def build_candidates(
    request: ProxyRequest,
    providers: Mapping[str, Servable],
    health: HealthBook,
    prices: CostLookup,
    now: float,
    quota: QuotaLookup | None = None,
) -> list[Candidate]:
    """Every (provider, variant) that serves the request's model, in config order, with its routing state."""
    estimated_tokens = estimate_tokens(request)
    candidates: list[Candidate] = []
    order = 0
    for name, provider in providers.items():
        book = health[name]
        for variant in provider.settings.variants_for(request.model, request.tier):
            order += 1
            state, available_at, reason = _state(book, variant, provider.has_credentials, now)
            price = prices.price_per_mtok(name, variant.model)
            stats = CandidateStats(
                order=order,
                price_per_mtok=(price[0] * 3 + price[1]) / 4 if price else None,
                latency_p50=book.latency_p50(now),
                error_rate=book.error_rate(now),
                quota_left=book.quota.fraction_left if book.quota else None,
            )
            route = Route(name, variant)
            pressure = quota.pressure(route, book.quota, estimated_tokens, now) if quota else None
            exhausted = _later(_exhausted_until(book, estimated_tokens, now), _full_until(pressure, now))
            candidates.append(Candidate(route, stats, state, available_at, exhausted, reason, pressure))
    return candidates


def estimate_tokens(request: ProxyRequest) -> int:
    return len(request.raw_body) // BYTES_PER_TOKEN


def _full_until(pressure: Pressure | None, now: float) -> float | None:
    """A window counted full (locally, or no room for this request's tokens): until it has room again."""
    if pressure is None:
        return None
    if pressure.used >= 1.0 and (pressure.reset_at or 0) > now:
        return pressure.reset_at
    return pressure.short_until if (pressure.short_until or 0) > now else None


def _later(a: float | None, b: float | None) -> float | None:
    return max(a, b) if a is not None and b is not None else (a if a is not None else b)


def _state(
    book: ProviderHealth, variant: Variant, has_credentials: bool, now: float
) -> tuple[ProviderState, float | None, str]:
    """(state, available_at, reason): switched off > disabled > no key > the variant's own state."""
    if not book.enabled:
        return ProviderState.OFF, None, "switched off"
    if book.is_disabled(now):
        return ProviderState.DISABLED, book.disabled_until, book.disabled_reason
    if not has_credentials:
        return ProviderState.DISABLED, None, "no API key"
    health = book.variant(variant.key)
    state = health.state(now)
    return state, health.cooldown_until if state is ProviderState.COOLING else None, health.last_reason


def _exhausted_until(book: ProviderHealth, estimated_tokens: int, now: float) -> float | None:
    """When the quota headers say nothing is left (or not enough tokens for this request): until the reset."""
    quota = book.quota
    if quota is None:
        return None
    exhausted = quota.exhausted_until(now)
    tokens = quota.tokens
    if (
        exhausted is None
        and tokens is not None
        and tokens.remaining is not None
        and tokens.remaining < estimated_tokens
        and (tokens.reset_at or 0) > now
    ):
        return tokens.reset_at
    return exhausted
