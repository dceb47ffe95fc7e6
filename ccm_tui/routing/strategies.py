"""Pure scoring for the routing strategies: lower sorts first. Ties fall back to the configured order.

- ordered: the providers' order in the config.
- cost: cheapest known price for this request's model first (unknown prices after known ones).
- latency: lowest recent median time-to-first-byte first; a provider with no samples yet is tried first
  so that it gets measured.
- availability: lowest recent error rate, then most quota left.
- balanced: a blend of the three, each normalised to 0..1 across the candidates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ccm_tui.config import STRATEGIES


@dataclass(frozen=True)
class CandidateStats:
    order: int  # position in the config (provider, then variant)
    price_per_mtok: float | None  # blended USD per million tokens (input-weighted), None if unknown
    latency_p50: float | None  # seconds
    error_rate: float  # 0..1 over the recent window
    quota_left: float | None  # 0..1, None when the upstream reports no quota


Score = tuple[float, ...]


def _ordered(c: CandidateStats, _: Sequence[CandidateStats]) -> Score:
    return (c.order,)


def _cost(c: CandidateStats, _: Sequence[CandidateStats]) -> Score:
    return (c.price_per_mtok is None, c.price_per_mtok or 0.0, c.order)


def _latency(c: CandidateStats, _: Sequence[CandidateStats]) -> Score:
    return (c.latency_p50 if c.latency_p50 is not None else -1.0, c.order)


def _availability(c: CandidateStats, _: Sequence[CandidateStats]) -> Score:
    quota = c.quota_left if c.quota_left is not None else 1.0
    return (round(c.error_rate, 2), -quota, c.order)


def _normalised(value: float | None, values: list[float]) -> float:
    if value is None or not values:
        return 0.5
    low, high = min(values), max(values)
    return 0.0 if high == low else (value - low) / (high - low)


def _balanced(c: CandidateStats, everyone: Sequence[CandidateStats]) -> Score:
    prices = [x.price_per_mtok for x in everyone if x.price_per_mtok is not None]
    latencies = [x.latency_p50 for x in everyone if x.latency_p50 is not None]
    quota = c.quota_left if c.quota_left is not None else 1.0
    score = (
        _normalised(c.price_per_mtok, prices)
        + _normalised(c.latency_p50, latencies)
        + 2.0 * c.error_rate
        + (1.0 - quota)
    )
    return (round(score, 3), c.order)


SCORERS: dict[str, Callable[[CandidateStats, Sequence[CandidateStats]], Score]] = {
    "ordered": _ordered,
    "cost": _cost,
    "latency": _latency,
    "availability": _availability,
    "balanced": _balanced,
}
assert tuple(SCORERS) == STRATEGIES


def rank(candidates: Sequence[CandidateStats], strategy: str) -> list[int]:
    """Indices of `candidates` in the order the strategy prefers."""
    scorer = SCORERS[strategy]
    return sorted(range(len(candidates)), key=lambda i: scorer(candidates[i], candidates))
