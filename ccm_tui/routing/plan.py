"""Pure planning: which routes to try for a request, in which order, given provider state and a strategy.

Rules: switched-off and disabled providers are left out; cooling variants are left out; a variant at or past
its quota threshold (routing/quota.py) goes behind every variant with room, the one with most room first; a
variant whose recovery probe is in flight, or whose quota says it is exhausted (or too short of tokens for
this request), goes after those (one request proves recovery before full traffic returns). The strategy orders
each group. A session's pinned variant (routing/affinity.py) goes first while it is in the group with room.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ccm_tui.core.contract import Route
from ccm_tui.core.states import ProviderState
from ccm_tui.routing.quota import Pressure
from ccm_tui.routing.strategies import CandidateStats, rank


@dataclass(frozen=True)
class Candidate:
    route: Route
    stats: CandidateStats
    state: ProviderState  # OK, PROBING, COOLING, DISABLED or OFF
    available_at: float | None = None  # when a cooling / disabled candidate is usable again
    exhausted_until: float | None = None  # quota headers say nothing is left until then
    reason: str = ""
    pressure: Pressure | None = None  # how much of its quota is used (None: nothing known)

    @property
    def stepped_off(self) -> bool:
        return self.pressure is not None and self.pressure.over


@dataclass(frozen=True)
class Plan:
    routes: tuple[Route, ...]
    soonest_available: float | None  # when everything is cooling: when the first one recovers
    blocked: tuple[Candidate, ...]  # candidates left out, for the error message
    stepped_off: tuple[Candidate, ...] = ()  # past their quota threshold: behind every candidate with room
    pinned: bool = False  # the session's pinned variant goes first


_BLOCKED = (ProviderState.OFF, ProviderState.DISABLED, ProviderState.COOLING)


def plan_routes(candidates: Sequence[Candidate], strategy: str, now: float, pinned: str | None = None) -> Plan:
    """`pinned` is a Route.key (a session's last variant)."""
    ready: list[Candidate] = []
    stepped: list[Candidate] = []
    deferred: list[Candidate] = []
    blocked: list[Candidate] = []
    for candidate in candidates:
        if candidate.state in _BLOCKED:
            blocked.append(candidate)
        elif candidate.state is ProviderState.PROBING or (candidate.exhausted_until or 0) > now:
            deferred.append(candidate)
        elif candidate.stepped_off:
            stepped.append(candidate)
        else:
            ready.append(candidate)

    ordered = [ready[i] for i in rank([c.stats for c in ready], strategy)]
    honoured = False
    for index, candidate in enumerate(ordered):
        if pinned is not None and candidate.route.key == pinned:
            ordered.insert(0, ordered.pop(index))
            honoured = True
            break
    by_strategy = rank([c.stats for c in stepped], strategy)
    place = {index: position for position, index in enumerate(by_strategy)}
    most_room = sorted(range(len(stepped)), key=lambda i: (-_room(stepped[i]), place[i]))
    ordered += [stepped[i] for i in most_room]
    ordered += [deferred[i] for i in rank([c.stats for c in deferred], strategy)]
    times = [c.available_at for c in blocked if c.state is ProviderState.COOLING and c.available_at]
    return Plan(
        routes=tuple(c.route for c in ordered),
        soonest_available=min(times) if times else None,
        blocked=tuple(blocked),
        stepped_off=tuple(stepped),
        pinned=honoured,
    )


def _room(candidate: Candidate) -> float:
    return candidate.pressure.room if candidate.pressure is not None else 1.0
