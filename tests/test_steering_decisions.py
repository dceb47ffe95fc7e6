"""Table tests for the pure limit-avoidance decisions: quota pressure, plan order with thresholds and pins,
key order and key failures, class rules, the budget guard, session pins, and their config."""

from __future__ import annotations

import pytest

from ccm_tui.config import (
    BudgetAction,
    BudgetSettings,
    ClassRule,
    ConfigError,
    KeyRotation,
    LocalLimits,
    SteeringSettings,
    parse_settings,
)
from ccm_tui.core.contract import Route, UpstreamError, Variant
from ccm_tui.core.hints import ClientHints, RequestClass
from ccm_tui.core.states import FailureKind, ProviderState
from ccm_tui.routing.affinity import AffinityBook
from ccm_tui.routing.budget import BudgetWindow, budget_state, is_cheap
from ccm_tui.routing.classes import apply_rule, rule_for, strategy_for
from ccm_tui.routing.keys import KeyChoice, is_key_failure, key_label, order_keys
from ccm_tui.routing.limits import Failure, QuotaSnapshot, QuotaWindow, quota_from_headers
from ccm_tui.routing.plan import Candidate, plan_routes
from ccm_tui.routing.quota import LocalCounts, Pressure, pressure
from ccm_tui.routing.strategies import CandidateStats

NOW = 1_000_000.0


def snapshot(
    requests: tuple[int, int] | None, tokens: tuple[int, int] | None = None, reset: float = 30
) -> QuotaSnapshot:
    def window(pair: tuple[int, int] | None, label: str) -> QuotaWindow | None:
        return QuotaWindow(pair[0], pair[1], NOW + reset, label) if pair else None

    return QuotaSnapshot(window(requests, "requests/min"), window(tokens, "tokens/min"), NOW)


@pytest.mark.parametrize(
    ("quota", "local", "limits", "tokens", "used", "window", "over", "short"),
    [
        (None, None, LocalLimits(), 0, None, None, None, False),
        (snapshot((100, 90)), None, LocalLimits(), 0, 0.1, "requests/min", False, False),
        (snapshot((100, 17)), None, LocalLimits(), 0, 0.83, "requests/min", True, False),
        (snapshot((100, 90), (1000, 100)), None, LocalLimits(), 0, 0.9, "tokens/min", True, False),
        (snapshot((100, 90), (1000, 500)), None, LocalLimits(), 600, 0.5, "tokens/min", False, True),
        (snapshot((100, 0), reset=-1), None, LocalLimits(), 0, None, None, None, False),  # window has reset
        (None, LocalCounts(requests_minute=8), LocalLimits(rpm=10), 0, 0.8, "requests/min", True, False),
        (None, LocalCounts(requests_day=5), LocalLimits(rpm=10, rpd=100), 0, 0.05, "requests/day", False, False),
        (None, LocalCounts(tokens_minute=900), LocalLimits(tpm=1000), 200, 0.9, "tokens/min", True, True),
        (None, LocalCounts(requests_minute=50), LocalLimits(), 0, None, None, None, False),  # no limits: unknown
    ],
)
def test_pressure(quota, local, limits, tokens, used, window, over, short) -> None:
    found = pressure(quota, local, limits, 0.8, tokens, NOW)
    if used is None:
        assert found is None
        return
    assert found is not None
    assert (round(found.used, 2), found.window, found.over) == (used, window, over)
    assert (found.short_until is not None) == short


def test_pressure_reason_reads_as_the_stream_note() -> None:
    assert Pressure(0.83, "requests/min", None, 0.8).reason == "83 % of requests/min used"


@pytest.mark.parametrize(
    ("headers", "labels"),
    [
        ({"anthropic-ratelimit-requests-limit": "50", "anthropic-ratelimit-requests-remaining": "9"}, "requests/min"),
        ({"x-ratelimit-limit-requests": "50", "x-ratelimit-remaining-requests": "9"}, "requests"),
        ({"x-ratelimit-limit-requests-day": "50", "x-ratelimit-remaining-requests-day": "9"}, "requests/day"),
    ],
)
def test_quota_windows_are_labelled_per_dialect(headers: dict[str, str], labels: str) -> None:
    found = quota_from_headers(headers, NOW)
    assert found is not None and found.requests is not None and found.requests.label == labels


def candidate(name: str, order: int, used: float | None = None, state: ProviderState = ProviderState.OK) -> Candidate:
    stats = CandidateStats(order, None, None, 0.0, None)
    found = Pressure(used, "requests/min", NOW + 30, 0.8) if used is not None else None
    return Candidate(Route(name, Variant("m")), stats, state, pressure=found)


@pytest.mark.parametrize(
    ("candidates", "pinned", "expected", "honoured"),
    [
        ([candidate("a", 1), candidate("b", 2)], None, ["a", "b"], False),
        ([candidate("a", 1, 0.83), candidate("b", 2, 0.1)], None, ["b", "a"], False),
        ([candidate("a", 1, 0.9), candidate("b", 2, 0.85), candidate("c", 3)], None, ["c", "b", "a"], False),
        ([candidate("a", 1, 0.95), candidate("b", 2, 0.85)], None, ["b", "a"], False),  # all past: most room first
        ([candidate("a", 1), candidate("b", 2)], "b/m", ["b", "a"], True),
        ([candidate("a", 1), candidate("b", 2, 0.9)], "b/m", ["a", "b"], False),  # pin past its threshold
        ([candidate("a", 1), candidate("b", 2, state=ProviderState.COOLING)], "b/m", ["a"], False),
        ([candidate("a", 1, state=ProviderState.PROBING), candidate("b", 2, 0.9)], None, ["b", "a"], False),
    ],
)
def test_plan_order_with_thresholds_and_pins(candidates, pinned, expected, honoured) -> None:
    plan = plan_routes(candidates, "ordered", NOW, pinned)
    assert [r.provider for r in plan.routes] == expected
    assert plan.pinned is honoured


def choice(usable: bool = True, used: float | None = None) -> KeyChoice:
    return KeyChoice(usable, Pressure(used, "requests/min", None, 0.8) if used is not None else None)


@pytest.mark.parametrize(
    ("keys", "rotation", "last", "expected"),
    [
        ([choice(), choice(), choice()], KeyRotation.ROUND_ROBIN, None, [0, 1, 2]),
        ([choice(), choice(), choice()], KeyRotation.ROUND_ROBIN, 0, [1, 2, 0]),
        ([choice(), choice(), choice()], KeyRotation.ROUND_ROBIN, 2, [0, 1, 2]),
        ([choice(), choice(False), choice()], KeyRotation.ROUND_ROBIN, 0, [2, 0]),
        ([choice(), choice(), choice()], KeyRotation.FILL_FIRST, 1, [0, 1, 2]),
        ([choice(used=0.9), choice(used=0.2)], KeyRotation.FILL_FIRST, None, [1, 0]),
        ([choice(used=0.9), choice(used=0.95)], KeyRotation.FILL_FIRST, None, [0, 1]),
        ([choice(False), choice(False)], KeyRotation.ROUND_ROBIN, None, []),
    ],
)
def test_key_order(keys, rotation, last, expected) -> None:
    assert order_keys(keys, rotation, last) == expected


@pytest.mark.parametrize(
    ("kind", "status", "long_quota", "expected"),
    [
        (FailureKind.COOLDOWN, 429, False, True),
        (FailureKind.DISABLE, 401, False, True),
        (FailureKind.DISABLE, 402, False, True),
        (FailureKind.DISABLE, 400, True, True),
        (FailureKind.COOLDOWN, 529, False, False),  # the upstream is overloaded, whichever key
        (FailureKind.COOLDOWN, 503, False, False),
        (FailureKind.COOLDOWN, None, False, False),  # timeout
        (FailureKind.SKIP, 413, False, False),
        (FailureKind.CLIENT_ERROR, 400, False, False),
    ],
)
def test_key_failures(kind: FailureKind, status: int | None, long_quota: bool, expected: bool) -> None:
    error = UpstreamError(status, "x", long_quota=long_quota)
    assert is_key_failure(Failure(kind, None, "x"), error) is expected


def test_key_labels_never_show_more_than_four_characters() -> None:
    assert key_label("KEY_A", "sk-ant-api03-abcdefghijklmnop1234") == "KEY_A …1234"
    assert key_label("KEY_A", "short-key") == "KEY_A"


STEERING = SteeringSettings(
    classes={"auxiliary": ClassRule(strategy="cost"), "compaction": ClassRule(providers=("b",))},
    agent_types={"Explore": ClassRule(strategy="latency")},
)


@pytest.mark.parametrize(
    ("hints", "matched", "strategy", "providers"),
    [
        (ClientHints(), None, "ordered", ["a", "b"]),
        (ClientHints(request_class=RequestClass.MAIN), None, "ordered", ["a", "b"]),
        (ClientHints(request_class=RequestClass.AUXILIARY), "class auxiliary", "cost", ["a", "b"]),
        (ClientHints(request_class=RequestClass.COMPACTION), "class compaction", "ordered", ["b"]),
        (
            ClientHints(request_class=RequestClass.AUXILIARY, agent_type="Explore"),
            "agent Explore",
            "latency",
            ["a", "b"],
        ),
    ],
)
def test_class_rules(hints: ClientHints, matched, strategy: str, providers: list[str]) -> None:
    found = rule_for(hints, STEERING)
    rule = found[1] if found else None
    assert (found[0] if found else None) == matched
    assert strategy_for(rule, "ordered") == strategy
    assert [c.route.provider for c in apply_rule([candidate("a", 1), candidate("b", 2)], rule)] == providers


def test_a_class_rule_naming_no_candidate_is_ignored() -> None:
    assert len(apply_rule([candidate("a", 1)], ClassRule(providers=("b",)))) == 1


@pytest.mark.parametrize(
    ("settings", "today", "hour", "lifted", "reached", "active", "restricts"),
    [
        (BudgetSettings(), 50.0, 50.0, None, None, False, False),
        (BudgetSettings(daily_usd=20), 19.99, 0, None, None, False, False),
        (BudgetSettings(daily_usd=20), 20.0, 0, None, BudgetWindow.DAY, True, False),  # alert only
        (BudgetSettings(daily_usd=20, action=BudgetAction.REFUSE), 21, 0, None, BudgetWindow.DAY, True, True),
        (BudgetSettings(daily_usd=20, action=BudgetAction.REFUSE), 21, 0, NOW + 60, BudgetWindow.DAY, False, False),
        (BudgetSettings(daily_usd=20, action=BudgetAction.REFUSE), 21, 0, NOW - 1, BudgetWindow.DAY, True, True),
        (BudgetSettings(hourly_usd=5, action=BudgetAction.CHEAPEST), 6, 5, None, BudgetWindow.HOUR, True, True),
    ],
)
def test_budget_guard(settings, today, hour, lifted, reached, active, restricts) -> None:
    state = budget_state(settings, today, hour, lifted, NOW)
    assert (state.reached, state.active, state.restricts) == (reached, active, restricts)


def test_budget_message_names_the_cap_and_the_reset() -> None:
    state = budget_state(BudgetSettings(daily_usd=20, action=BudgetAction.REFUSE), 21, 0, None, NOW)
    assert state.message == "ccm-tui daily budget of $20 reached; resets at 00:00 local"


@pytest.mark.parametrize(
    ("price", "cheap", "expected"), [(0.0, 1.0, True), (0.5, 1.0, True), (1.0, 1.0, False), (None, 1.0, False)]
)
def test_cheap_prices(price: float | None, cheap: float, expected: bool) -> None:
    assert is_cheap(price, cheap) is expected


def test_session_pins_are_bounded_and_expire() -> None:
    book = AffinityBook(max_sessions=2, ttl=100)
    a, b = Route("a", Variant("m")), Route("b", Variant("m"))
    book.record("s1", "sonnet", a, NOW)
    book.record("s2", "sonnet", b, NOW)
    book.record("s1", "sonnet", a, NOW + 1)  # s1 used again: s2 is now the least recently used
    book.record("s3", "sonnet", b, NOW + 2)
    assert [p.session_id for p in book.pins(NOW + 2)] == ["s3", "s1"]
    assert book.get("s1", "sonnet", NOW + 2).requests == 2  # type: ignore[union-attr]
    assert book.get("s1", "haiku", NOW + 2) is None  # a pin is per requested model
    assert book.get("s1", "sonnet", NOW + 101) is None  # idle past the ttl
    assert book.get(None, "sonnet", NOW) is None


@pytest.mark.parametrize(
    ("toml", "problem"),
    [
        ({"routing": {"quota_threshold": 1.5}}, "routing.quota_threshold"),
        ({"routing": {"classes": {"background": {"strategy": "cost"}}}}, "unknown request class"),
        ({"routing": {"classes": {"auxiliary": {"strategy": "cheapest"}}}}, "routing.classes.auxiliary.strategy"),
        ({"routing": {"classes": {"compaction": {"providers": ["nobody"]}}}}, "not a configured provider"),
        ({"budget": {"action": "panic"}}, "budget.action"),
        ({"providers": [{"name": "a", "kind": "anthropic", "key_rotation": "random"}]}, "key_rotation"),
        ({"providers": [{"name": "a", "kind": "anthropic", "api_key_env": ["A", "A"]}]}, "twice"),
        ({"providers": [{"name": "a", "kind": "anthropic", "rpm": 0}]}, "providers[0].rpm"),
    ],
)
def test_config_errors_name_the_key(toml: dict, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        parse_settings(toml, "config.toml")


def test_config_reads_every_setting() -> None:
    settings = parse_settings(
        {
            "routing": {
                "quota_threshold": 0.7,
                "session_affinity": False,
                "classes": {"auxiliary": {"strategy": "cost"}, "compaction": {"providers": ["a"]}},
                "agent_types": {"Explore": {"strategy": "latency"}},
            },
            "budget": {"daily_usd": 20, "hourly_usd": 5, "action": "cheapest", "cheap_usd_per_mtok": 0.5},
            "providers": [
                {
                    "name": "a",
                    "kind": "anthropic",
                    "api_key_env": ["KEY_A", "KEY_B"],
                    "key_rotation": "fill-first",
                    "quota_threshold": 0.9,
                    "rpm": 50,
                    "tpm": 40000,
                    "rpd": 1000,
                    "variant_limits": {"claude-opus-4-1": {"rpm": 5}},
                }
            ],
        },
        "config.toml",
    )
    assert settings.steering.quota_threshold == 0.7 and not settings.steering.session_affinity
    assert settings.steering.classes["compaction"].providers == ("a",)
    assert settings.steering.agent_types["Explore"].strategy == "latency"
    assert settings.budget == BudgetSettings(20.0, 5.0, BudgetAction.CHEAPEST, 0.5)
    [provider] = settings.providers
    assert provider.key_envs == ("KEY_A", "KEY_B") and provider.api_key_env == "KEY_A"
    assert provider.key_rotation is KeyRotation.FILL_FIRST and provider.quota_threshold == 0.9
    assert provider.limits == LocalLimits(50, 40000, 1000)
    assert provider.variant_limits["claude-opus-4-1"] == LocalLimits(rpm=5)
