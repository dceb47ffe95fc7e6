"""Pure planning: which routes to try for a request, in which order, given provider state and a strategy.

Rules: switched-off and disabled providers are left out; cooling variants are left out; a variant whose
recovery probe is in flight, or whose quota headers say it is exhausted, goes after every healthy one (one
request proves recovery before full traffic returns). The strategy orders each group.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ccm_tui.core.contract import Route
from ccm_tui.core.states import ProviderState
from ccm_tui.routing.strategies import CandidateStats, rank


@dataclass(frozen=True)
class Candidate:
    route: Route
    stats: CandidateStats
    state: ProviderState  # OK, PROBING, COOLING, DISABLED or OFF
    available_at: float | None = None  # when a cooling / disabled candidate is usable again
    exhausted_until: float | None = None  # quota headers say nothing is left until then
    reason: str = ""


@dataclass(frozen=True)
class Plan:
    routes: tuple[Route, ...]
    soonest_available: float | None  # when everything is cooling: when the first one recovers
    blocked: tuple[Candidate, ...]  # candidates left out, for the error message


_BLOCKED = (ProviderState.OFF, ProviderState.DISABLED, ProviderState.COOLING)


def plan_routes(candidates: Sequence[Candidate], strategy: str, now: float) -> Plan:
    ready: list[Candidate] = []
    deferred: list[Candidate] = []
    blocked: list[Candidate] = []
    for candidate in candidates:
        if candidate.state in _BLOCKED:
            blocked.append(candidate)
        elif candidate.state is ProviderState.PROBING or (candidate.exhausted_until or 0) > now:
            deferred.append(candidate)
        else:
            ready.append(candidate)

    ordered = [group[i] for group in (ready, deferred) for i in rank([c.stats for c in group], strategy)]
    times = [c.available_at for c in blocked if c.state is ProviderState.COOLING and c.available_at]
    return Plan(
        routes=tuple(c.route for c in ordered),
        soonest_available=min(times) if times else None,
        blocked=tuple(blocked),
    )
