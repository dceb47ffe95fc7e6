"""Candidate state for one request: which provider variants could serve it, in what state, at what price.

Pure given its inputs (the providers' settings and credentials, their health, the price book and the time):
the engine calls `build_candidates` and hands the result to routing/plan.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from ccm_tui.config import ProviderSettings
from ccm_tui.core.contract import ProxyRequest, Route, Variant
from ccm_tui.core.events import Usage
from ccm_tui.core.states import ProviderState
from ccm_tui.routing.health import HealthBook, ProviderHealth
from ccm_tui.routing.plan import Candidate
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
) -> list[Candidate]:
    """Every (provider, variant) that serves the request's model, in config order, with its routing state."""
    estimated_tokens = len(request.raw_body) // BYTES_PER_TOKEN
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
            exhausted = _exhausted_until(book, estimated_tokens, now)
            candidates.append(Candidate(Route(name, variant), stats, state, available_at, exhausted, reason))
    return candidates


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
