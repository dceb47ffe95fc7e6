"""Table-driven tests for routing.plan and routing.strategies (pure)."""

from __future__ import annotations

import pytest

from ccm_tui.core.contract import Route, Variant
from ccm_tui.core.states import ProviderState
from ccm_tui.routing.plan import Candidate, plan_routes
from ccm_tui.routing.strategies import CandidateStats, rank

NOW = 1000.0


def cand(
    name: str,
    order: int,
    state: str = "ok",  # a ProviderState value
    *,
    price=None,
    p50=None,
    err=0.0,
    quota=None,
    available_at=None,
    exhausted=None,
) -> Candidate:
    stats = CandidateStats(order=order, price_per_mtok=price, latency_p50=p50, error_rate=err, quota_left=quota)
    return Candidate(Route(name, Variant("m")), stats, ProviderState(state), available_at, exhausted)


def names(plan) -> list[str]:
    return [r.provider for r in plan.routes]


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("ordered", ["a", "b", "c"]),
        ("cost", ["c", "a", "b"]),  # b has no known price: after the priced ones
        ("latency", ["b", "c", "a"]),
        ("availability", ["c", "b", "a"]),
        ("balanced", ["c", "b", "a"]),
    ],
)
def test_strategies_order_healthy_candidates(strategy, expected) -> None:
    candidates = [
        cand("a", 1, price=10.0, p50=0.9, err=0.3, quota=0.9),
        cand("b", 2, price=None, p50=0.2, err=0.0, quota=0.1),
        cand("c", 3, price=1.0, p50=0.5, err=0.0, quota=0.8),
    ]
    assert names(plan_routes(candidates, strategy, NOW)) == expected


def test_latency_tries_unmeasured_providers_first() -> None:
    order = rank([CandidateStats(1, None, 0.3, 0.0, None), CandidateStats(2, None, None, 0.0, None)], "latency")
    assert order == [1, 0]


def test_cooling_off_and_disabled_are_left_out_probing_and_exhausted_go_last() -> None:
    plan = plan_routes(
        [
            cand("cooling", 1, "cooling", available_at=NOW + 30),
            cand("probing", 2, "probing"),
            cand("off", 3, "off"),
            cand("disabled", 4, "disabled", available_at=NOW + 3600),
            cand("exhausted", 5, exhausted=NOW + 10),
            cand("healthy", 6),
        ],
        "ordered",
        NOW,
    )
    assert names(plan) == ["healthy", "probing", "exhausted"]
    assert plan.soonest_available == NOW + 30
    assert {c.route.provider for c in plan.blocked} == {"cooling", "off", "disabled"}


def test_everything_cooling_reports_the_soonest_recovery() -> None:
    plan = plan_routes(
        [cand("a", 1, "cooling", available_at=NOW + 50), cand("b", 2, "cooling", available_at=NOW + 9)], "ordered", NOW
    )
    assert plan.routes == () and plan.soonest_available == NOW + 9


def test_recovery_probe_is_taken_once_then_traffic_waits_for_it() -> None:
    from ccm_tui.config import RoutingSettings
    from ccm_tui.core.events import Usage
    from ccm_tui.core.states import FailureKind
    from ccm_tui.routing.health import HealthBook
    from ccm_tui.routing.limits import Failure

    book = HealthBook(["p"], RoutingSettings(), {})
    variant = book["p"].variant("m")
    book.record_failure("p", "m", Failure(FailureKind.COOLDOWN, 5.0, "429"), now=NOW)
    assert variant.state(NOW + 1) == "cooling"
    assert variant.state(NOW + 6) == "ok"  # cool-down over: the next request may take it as the probe
    variant.start_attempt()
    assert variant.state(NOW + 6) == "probing"  # others now go elsewhere first
    assert book.record_success("p", "m", NOW + 7, 0.1, Usage()) is True
    assert variant.state(NOW + 7) == "ok" and not variant.recovering
    variant.start_attempt()
    assert variant.state(NOW + 8) == "ok"  # a healthy variant is never "probing"
