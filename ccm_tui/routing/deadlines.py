"""How long an attempt may take before it is given up: the adaptive time-to-first-token deadline.

Pure. The first-token deadline is distinct from the connect and first-byte timeouts: it runs from sending the
request until the first content (text, thinking or tool input) arrives, and adapts to what the variant usually
needs: `factor` x its recent 90th-percentile time to first token, kept within [floor, ceiling] (per provider,
else [routing]). A variant with no recent samples, or whose last attempt missed its deadline, gets the ceiling:
a model that became slow for good must be able to prove it once, and a thinking model that is always slow
learns a deadline that fits it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ccm_tui.config import ProviderSettings, RoutingSettings


@dataclass(frozen=True)
class FirstTokenBounds:
    floor: float
    ceiling: float
    factor: float

    @classmethod
    def of(cls, routing: RoutingSettings, provider: ProviderSettings) -> FirstTokenBounds:
        floor = provider.ttft_floor if provider.ttft_floor is not None else routing.ttft_floor
        ceiling = provider.ttft_ceiling if provider.ttft_ceiling is not None else routing.ttft_ceiling
        return cls(floor=min(floor, ceiling), ceiling=ceiling, factor=routing.ttft_factor)


def percentile_90(samples: Sequence[float]) -> float:
    ordered = sorted(samples)
    return ordered[int(0.9 * (len(ordered) - 1))]


def first_token_deadline(samples: Sequence[float], bounds: FirstTokenBounds, *, missed_last: bool = False) -> float:
    """Seconds from sending a streaming request to its first content before the attempt fails over."""
    if missed_last or not samples:
        return bounds.ceiling
    return min(bounds.ceiling, max(bounds.floor, bounds.factor * percentile_90(samples)))
