"""Table tests for routing.candidates.build_candidates (pure given provider facts, health, prices and time)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from ccm_tui.config import ProviderSettings, RoutingSettings
from ccm_tui.core.contract import ProxyRequest, Variant
from ccm_tui.core.events import Usage
from ccm_tui.core.states import FailureKind, ProviderState
from ccm_tui.routing.candidates import NoPrices, build_candidates
from ccm_tui.routing.health import HealthBook
from ccm_tui.routing.limits import Failure, QuotaSnapshot, QuotaWindow

NOW = 10_000.0


@dataclass(frozen=True)
class Facts:
    settings: ProviderSettings
    has_credentials: bool = True


class Prices(NoPrices):
    def price_per_mtok(self, provider: str, model: str) -> tuple[float, float] | None:
        return (3.0, 15.0) if provider == "priced" else None


def request(body_bytes: int = 400) -> ProxyRequest:
    return ProxyRequest("req_1", {}, b"x" * body_bytes, "claude-sonnet-4-6", "sonnet", False)


def provider(name: str, *models: str) -> ProviderSettings:
    variants = tuple(Variant.parse(m) for m in models) or (Variant("m"),)
    return ProviderSettings(name=name, kind="openai", base_url="http://127.0.0.1:1", models={"sonnet": variants})


def build(setup, *, credentials: bool = True, body_bytes: int = 400):
    providers = {"p": Facts(provider("p", "a", "b@eu-west-1"), credentials)}
    book = HealthBook(["p"], RoutingSettings(), {})
    setup(book)
    return build_candidates(request(body_bytes), providers, book, NoPrices(), NOW)


def cool(book: HealthBook, variant: str = "a", seconds: float = 30) -> None:
    book.record_failure("p", variant, Failure(FailureKind.COOLDOWN, seconds, "429 rate_limit_error"), NOW)


def disable(book: HealthBook) -> None:
    book.record_failure("p", "a", Failure(FailureKind.DISABLE, 600, "401 bad key"), NOW)


def probe(book: HealthBook) -> None:
    cool(book, seconds=5)
    book.clear_waits("p")  # the cool-down is over: the next request is the probe
    book["p"].variant("a").start_attempt()


def tokens_left(book: HealthBook, remaining: int, reset_in: float = 20) -> None:
    window = QuotaWindow(limit=1000, remaining=remaining, reset_at=NOW + reset_in)
    book.note_quota("p", QuotaSnapshot(requests=None, tokens=window, taken_at=NOW))


@pytest.mark.parametrize(
    ("setup", "credentials", "expected"),
    [
        # (state, available_at, reason) for variant a, then variant b
        (lambda b: None, True, [("ok", None, ""), ("ok", None, "")]),
        (lambda b: b.set_enabled("p", False), True, [("off", None, "switched off")] * 2),
        (disable, True, [("disabled", NOW + 600, "401 bad key")] * 2),
        (lambda b: None, False, [("disabled", None, "no API key")] * 2),
        (cool, True, [("cooling", NOW + 30, "429 rate_limit_error"), ("ok", None, "")]),  # per variant
        (probe, True, [("probing", None, "429 rate_limit_error"), ("ok", None, "")]),
        (lambda b: (b.set_enabled("p", False), disable(b)), True, [("off", None, "switched off")] * 2),
    ],
)
def test_candidate_state_follows_switch_disable_key_then_variant(setup, credentials, expected) -> None:
    candidates = build(setup, credentials=credentials)
    assert [c.route.variant.key for c in candidates] == ["a", "b@eu-west-1"]
    assert [(c.state, c.available_at, c.reason) for c in candidates] == expected
    assert all(isinstance(c.state, ProviderState) for c in candidates)


@pytest.mark.parametrize(
    ("remaining", "body_bytes", "reset_in", "exhausted"),
    [
        (900, 400, 20, None),  # plenty left
        (0, 400, 20, NOW + 20),  # nothing left until the reset
        (50, 400, 20, NOW + 20),  # ~100 estimated tokens do not fit in 50
        (150, 400, 20, None),  # they fit in 150
        (50, 400, -1, None),  # the window already reset: the count is stale
    ],
)
def test_quota_marks_candidates_exhausted_until_the_reset(remaining, body_bytes, reset_in, exhausted) -> None:
    candidates = build(lambda b: tokens_left(b, remaining, reset_in), body_bytes=body_bytes)
    assert {c.exhausted_until for c in candidates} == {exhausted}
    assert candidates[0].stats.quota_left == pytest.approx(remaining / 1000)


def test_stats_carry_order_blended_price_and_only_serving_providers() -> None:
    providers = {
        "priced": Facts(provider("priced", "a")),
        "free": Facts(provider("free", "b", "c")),
        "other-tier": Facts(ProviderSettings(name="other-tier", kind="openai", models={"haiku": (Variant("h"),)})),
    }
    book = HealthBook(list(providers), RoutingSettings(), {})
    book.record_success("free", "b", NOW - 1, 0.25, Usage())
    candidates = build_candidates(request(), providers, book, Prices(), NOW)
    assert [(c.route.provider, c.stats.order) for c in candidates] == [("priced", 1), ("free", 2), ("free", 3)]
    assert candidates[0].stats.price_per_mtok == pytest.approx((3.0 * 3 + 15.0) / 4)
    assert candidates[1].stats.price_per_mtok is None
    assert candidates[1].stats.latency_p50 == 0.25 and candidates[0].stats.latency_p50 is None
