"""What a request cost: per-token prices from genai-prices (bundled data, never fetched) and user overrides.

`PriceBook.cost_usd` runs at the end of every request on the proxy's event loop, so the catalog is consulted once
per (provider, model): the per-token rates are resolved into plain floats and cached, and each call is a dict
lookup plus a few multiplications. `warm()` resolves known pairs ahead of time (call it in a thread at startup:
the first import of genai-prices' data takes ~0.2 s).

Usage here is Anthropic-shaped: `input_tokens` excludes the cached parts, so cache writes and reads are charged at
their own rates on top (genai-prices' `Usage.input_tokens` is the total; we resolve rates instead of calling it
per request, so the distinction only matters when comparing with `calc_price`). A model without a cache price
charges cache tokens at the input rate, as genai-prices does.

Spend windows and alerts live in spend.py; this module only prices one request.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from datetime import time as time_of_day
from typing import Any

from ccm_tui.config import ProviderSettings, vendor_of
from ccm_tui.core.contract import Variant
from ccm_tui.core.events import Usage
from ccm_tui.core.vendors import vendor

log = logging.getLogger(__name__)

_PER_MTOK = 1_000_000.0
# Time-of-day prices (off-peak discounts) are re-resolved this often.
_TIME_OF_DAY_RECHECK_S = 60.0


@dataclass(frozen=True, slots=True)
class Rates:
    """USD per token (and per request) for one model at one price tier."""

    input: float
    output: float
    cache_write: float
    cache_read: float
    per_request: float = 0.0


FREE = Rates(0.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True, slots=True)
class ResolvedPrice:
    """Rates for one (provider, model), with the input-size tiers some models have (Sonnet 4.5 above 200k)."""

    base: Rates
    # (threshold, rates) highest threshold first: the rates apply to the whole request when total input > threshold.
    tiers: tuple[tuple[int, Rates], ...] = ()
    expires_at: float = math.inf  # wall-clock time after which the catalog must be consulted again

    def rates_for(self, total_input_tokens: int) -> Rates:
        for threshold, rates in self.tiers:
            if total_input_tokens > threshold:
                return rates
        return self.base


class PriceBook:
    """Prices requests for the configured providers. Thread-safe enough for `warm` in a thread: the caches are
    dicts whose entries are replaced whole, and two threads resolving the same pair compute the same value."""

    def __init__(self, providers: Sequence[ProviderSettings]) -> None:
        self._providers = {p.name: p for p in providers}
        self._cache: dict[tuple[str, str], ResolvedPrice | None] = {}

    def cost_usd(self, provider: str, model: str, usage: Usage) -> float | None:
        """The request's cost in USD, or None when no price is known for this provider and model."""
        key = (provider, model)
        resolved = self._cache.get(key, _MISSING)
        if resolved is _MISSING or (resolved is not None and resolved.expires_at <= time.time()):
            resolved = self._resolve(provider, model)
        if resolved is None:
            return None
        rates = resolved.rates_for(usage.total_input_tokens) if resolved.tiers else resolved.base
        return (
            usage.input_tokens * rates.input
            + usage.output_tokens * rates.output
            + usage.cache_creation_input_tokens * rates.cache_write
            + usage.cache_read_input_tokens * rates.cache_read
            + rates.per_request
        )

    def price_per_mtok(self, provider: str, model: str) -> tuple[float, float] | None:
        """Base (input, output) USD per million tokens, for ranking providers by cost; None when unknown."""
        resolved = self._cache.get((provider, model), _MISSING)
        if resolved is _MISSING or (resolved is not None and resolved.expires_at <= time.time()):
            resolved = self._resolve(provider, model)
        if resolved is None:
            return None
        return resolved.base.input * _PER_MTOK, resolved.base.output * _PER_MTOK

    def warm(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Resolve prices for these (provider, model) pairs now (blocking: run it in a thread)."""
        for provider, model in pairs:
            self._resolve(provider, model)

    def configured_pairs(self) -> list[tuple[str, str]]:
        """Every (provider, model) the configuration names, for `warm`."""
        return [
            (settings.name, variant.model)
            for settings in self._providers.values()
            for variants in settings.models.values()
            for variant in variants
        ]

    def _resolve(self, provider: str, model: str) -> ResolvedPrice | None:
        settings = self._providers.get(provider)
        resolved = None if settings is None else resolve_price(settings, model, time.time())
        self._cache[(provider, model)] = resolved
        return resolved


_MISSING: Any = object()


def resolve_price(settings: ProviderSettings, model: str, now: float) -> ResolvedPrice | None:
    """Rates for `model` on this provider: the user's override, else the catalog; None when unknown."""
    vendor_name = vendor_of(settings)
    row = vendor(vendor_name)
    free = row is not None and row.free
    catalog = None if free else _catalog_price(vendor_name, model, now)
    if settings.price_input_mtok is None and settings.price_output_mtok is None:
        if free:
            return ResolvedPrice(FREE)
        return catalog
    return _with_override(catalog, settings.price_input_mtok, settings.price_output_mtok)


def _with_override(catalog: ResolvedPrice | None, input_mtok: float | None, output_mtok: float | None) -> ResolvedPrice:
    """The user's flat prices win; cache tokens keep the catalog's ratio to the input price (a cache read is
    typically a tenth of an input token) or cost the input price when the catalog doesn't know the model."""
    base = catalog.base if catalog is not None else None
    input_rate = input_mtok / _PER_MTOK if input_mtok is not None else (base.input if base else 0.0)
    output_rate = output_mtok / _PER_MTOK if output_mtok is not None else (base.output if base else 0.0)
    if base is not None and base.input > 0:
        cache_write = input_rate * base.cache_write / base.input
        cache_read = input_rate * base.cache_read / base.input
    else:
        cache_write = cache_read = input_rate
    expires_at = catalog.expires_at if catalog is not None else math.inf
    return ResolvedPrice(Rates(input_rate, output_rate, cache_write, cache_read), expires_at=expires_at)


def _catalog_price(vendor_name: str, model: str, now: float) -> ResolvedPrice | None:
    """The catalog's price. A registry vendor is looked up under its genai-prices id (any provider when it has
    none); any other vendor string (users may set vendor = "mistral", "together", ...) is tried as a
    genai-prices id first, then under any provider."""
    row = vendor(vendor_name)
    provider_ids: tuple[str | None, ...] = (row.price_provider_id,) if row is not None else (vendor_name, None)
    for provider_id in provider_ids:
        for model_ref in _model_refs(model):
            calculation = _lookup(model_ref, provider_id)
            if calculation is not None:
                return _from_calculation(calculation, now)
    return None


def _model_refs(model: str) -> list[str]:
    """Spellings to try: as given, without a `@region` suffix, and the last path segment (Bedrock ARNs,
    `models/gemini-…`)."""
    refs = [model, Variant.parse(model).model, model.rsplit("/", 1)[-1]]
    return [ref for index, ref in enumerate(refs) if ref and ref not in refs[:index]]


def _lookup(model_ref: str, provider_id: str | None) -> Any:
    from genai_prices import Usage as CatalogUsage
    from genai_prices import calc_price

    try:
        # One token is enough to make genai-prices pick the model and its prices for this moment.
        return calc_price(CatalogUsage(input_tokens=1), model_ref, provider_id=provider_id)
    except (LookupError, ValueError):
        return None


def _from_calculation(calculation: Any, now: float) -> ResolvedPrice | None:
    prices = calculation.model_price
    keys = ("input_mtok", "output_mtok", "cache_write_mtok", "cache_read_mtok")
    values: list[Any] = [getattr(prices, key, None) for key in keys]
    if values[0] is None and values[1] is None:
        return None  # priced in other units only (images, audio, characters)
    requests_kcount = getattr(prices, "requests_kcount", None)
    per_request = float(requests_kcount) / 1000.0 if requests_kcount is not None else 0.0

    thresholds = sorted({tier.start for value in values if _is_tiered(value) for tier in value.tiers}, reverse=True)
    base = _rates_at(values, None, per_request)
    tiers = tuple((threshold, _rates_at(values, threshold, per_request)) for threshold in thresholds)
    return ResolvedPrice(base, tiers, _expiry(calculation.model, now))


def _is_tiered(value: Any) -> bool:
    return value is not None and hasattr(value, "tiers")


def _rates_at(values: list[Any], threshold: int | None, per_request: float) -> Rates:
    """Per-token rates for a request whose total input exceeds `threshold` (None = below every tier)."""

    def per_token(value: Any) -> float | None:
        if value is None:
            return None
        if _is_tiered(value):
            price = value.base
            if threshold is not None:
                for tier in value.tiers:  # sorted ascending: the last tier at or below the threshold wins
                    if tier.start <= threshold:
                        price = tier.price
            return float(price) / _PER_MTOK
        return float(value) / _PER_MTOK

    input_rate, output_rate, cache_write, cache_read = (per_token(value) for value in values)
    input_rate = input_rate or 0.0
    return Rates(
        input=input_rate,
        output=output_rate or 0.0,
        # genai-prices charges cache tokens of a model without a cache price as plain input tokens.
        cache_write=input_rate if cache_write is None else cache_write,
        cache_read=input_rate if cache_read is None else cache_read,
        per_request=per_request,
    )


def _expiry(model_info: Any, now: float) -> float:
    """When the resolved prices may change: a scheduled price change, or time-of-day (off-peak) pricing."""
    prices = getattr(model_info, "prices", None)
    if not isinstance(prices, list):
        return math.inf
    soonest = math.inf
    for conditional in prices:
        constraint = getattr(conditional, "constraint", None)
        if constraint is None:
            continue
        if hasattr(constraint, "start_time"):
            return now + _TIME_OF_DAY_RECHECK_S
        start_date = getattr(constraint, "start_date", None)
        if start_date is not None:
            # genai-prices compares UTC dates, so a new price starts at UTC midnight.
            starts = datetime.combine(start_date, time_of_day(), tzinfo=UTC).timestamp()
            if starts > now:
                soonest = min(soonest, starts)
    return soonest
