"""Limit avoidance end to end over loopback HTTP: the anthropic SDK -> ccm-tui -> faithful mock upstreams.

Quota thresholds read from each vendor's counting-down rate-limit headers (and local limits for an upstream
that sends none), key pools, session affinity, request classes and the budget guard in each mode.
"""

from __future__ import annotations

from dataclasses import replace

import anthropic
import pytest

from ccm_tui.config import (
    BudgetAction,
    BudgetSettings,
    ClassRule,
    KeyRotation,
    LocalLimits,
    ProviderSettings,
    RoutingSettings,
    SteeringSettings,
)
from ccm_tui.core.contract import Variant
from ccm_tui.core.events import AttemptFailed, BudgetChanged, SteppedOff
from ccm_tui.core.states import ProviderState
from tests.mocks.upstreams import AnthropicMock, OpenAIMock

ASK = {"max_tokens": 100, "messages": [{"role": "user", "content": "Which test is flaky?"}]}
KEYS = {"KEY_A": "sk-ant-api03-first-key-aaaaaaaaaaaa1111", "KEY_B": "sk-ant-api03-second-key-bbbbbbbbbbb2222"}


def anthropic_provider(name: str, url: str, **extra: object) -> ProviderSettings:
    return ProviderSettings(name=name, kind="anthropic", base_url=url, api_key_env="KEY_A", **extra)  # type: ignore[arg-type]


def openai_provider(name: str, url: str, vendor: str = "openai", **extra: object) -> ProviderSettings:
    return ProviderSettings(
        name=name,
        kind="openai",
        vendor=vendor,
        base_url=url,
        api_key_env="KEY_A",
        models={"default": (Variant("mock-large"),)},
        **extra,  # type: ignore[arg-type]
    )


def client(url: str, **headers: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=url, api_key="dummy", max_retries=0, default_headers=headers)


async def ask(sdk: anthropic.AsyncAnthropic, **headers: str) -> None:
    await sdk.messages.create(model="claude-sonnet-4-6", extra_headers=headers or None, **ASK)


# --- 1. quota threshold ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("vendor", ["anthropic", "openai", "groq", "cerebras"])
async def test_counting_down_quota_headers_step_off_before_any_429(start_proxy, vendor: str) -> None:
    """Five requests per window; at 80 % used (four served) the fifth goes elsewhere, so the upstream's own
    429 (scripted for the fifth) is never seen."""
    async with (
        AnthropicMock() if vendor == "anthropic" else OpenAIMock(vendor=vendor) as limited,
        AnthropicMock() as other,
    ):
        limited.requests_limit = 5
        limited.script("text", "text", "text", "text")
        limited.scenario = "rate_limit"  # what a fifth request would get
        if vendor == "anthropic":
            first = anthropic_provider("limited", limited.url)
        else:
            first = openai_provider("limited", limited.url, vendor=vendor)
        proxy = await start_proxy([first, anthropic_provider("other", other.url)], environ=KEYS)
        sdk = client(proxy.url)
        for _ in range(6):
            await ask(sdk)

        assert len(limited.requests) == 4 and len(other.requests) == 2
        assert not [e for e in proxy.events if isinstance(e, AttemptFailed)]  # no 429 was ever met
        window = {"anthropic": "requests/min", "openai": "requests", "groq": "requests", "cerebras": "requests/day"}
        [stepped] = [e for e in proxy.events if isinstance(e, SteppedOff)]
        assert stepped.provider == "limited" and stepped.stepped_off
        assert stepped.text == f"stepped off limited: 80 % of {window[vendor]} used"
        view = proxy.engine.provider_view("limited")
        assert view.stepped_off == f"80 % of {window[vendor]} used"
        assert view.steer.quota_threshold == 0.8 and view.steer.quota_window == window[vendor]
        assert proxy.engine.view().steering.quota_threshold == 0.8  # type: ignore[union-attr]


async def test_a_provider_threshold_overrides_the_routing_one(start_proxy) -> None:
    async with AnthropicMock() as limited, AnthropicMock() as other:
        limited.requests_limit = 10
        proxy = await start_proxy(
            [anthropic_provider("limited", limited.url, quota_threshold=0.5), anthropic_provider("other", other.url)],
            environ=KEYS,
            steering=SteeringSettings(quota_threshold=0.95),
        )
        sdk = client(proxy.url)
        for _ in range(7):
            await ask(sdk)
        assert len(limited.requests) == 5 and len(other.requests) == 2  # stepped off at 50 %, not 95 %


async def test_when_every_provider_is_past_its_threshold_the_one_with_most_room_goes_first(start_proxy) -> None:
    async with AnthropicMock() as tight, AnthropicMock() as roomy:
        tight.requests_limit, roomy.requests_limit = 4, 10
        proxy = await start_proxy(
            [anthropic_provider("tight", tight.url), anthropic_provider("roomy", roomy.url)],
            environ=KEYS,
            steering=SteeringSettings(quota_threshold=0.1),
        )
        sdk = client(proxy.url)
        await ask(sdk)  # tight: 1 of 4 used (25 %), past 10 %
        await ask(sdk)  # roomy has room (nothing known yet): 1 of 10 used (10 %)
        await ask(sdk)  # both past the threshold: roomy has more room (90 % vs 75 %)
        assert (len(tight.requests), len(roomy.requests)) == (1, 2)


async def test_local_limits_step_off_an_upstream_that_sends_no_quota_headers(start_proxy) -> None:
    """GitHub Models' mock sends no rate-limit headers: rpm = 3 is counted here."""
    async with OpenAIMock(vendor="github") as github, AnthropicMock() as other:
        proxy = await start_proxy(
            [
                openai_provider("github", github.url, vendor="github", limits=LocalLimits(rpm=3)),
                anthropic_provider("other", other.url),
            ],
            environ=KEYS,
        )
        sdk = client(proxy.url)
        for _ in range(4):
            await ask(sdk)
        assert (len(github.requests), len(other.requests)) == (3, 1)
        view = proxy.engine.provider_view("github")
        assert view.quota is None and view.stepped_off == "100 % of requests/min used"
        assert view.steer.local_requests_minute == 3 and view.steer.local_limits == LocalLimits(rpm=3)


async def test_a_request_whose_tokens_do_not_fit_the_token_window_skips_the_provider(start_proxy) -> None:
    async with AnthropicMock() as small, AnthropicMock() as other:
        small.tokens_limit = 2000
        proxy = await start_proxy(
            [anthropic_provider("small", small.url), anthropic_provider("other", other.url)], environ=KEYS
        )
        sdk = client(proxy.url)
        await ask(sdk)  # small now reports about 2000 tokens left
        big = {"max_tokens": 100, "messages": [{"role": "user", "content": "word " * 4000}]}  # ~5000 tokens
        await sdk.messages.create(model="claude-sonnet-4-6", **big)
        assert (len(small.requests), len(other.requests)) == (1, 1)


# --- 2. key pools ---------------------------------------------------------------------------------------------


async def test_a_429_on_one_key_is_served_by_the_next_key_of_the_same_provider(start_proxy) -> None:
    async with AnthropicMock() as pooled, AnthropicMock() as other:
        pooled.script("rate_limit")
        pooled.retry_after = 30
        provider = anthropic_provider("pooled", pooled.url, more_key_envs=("KEY_B",))
        proxy = await start_proxy([provider, anthropic_provider("other", other.url)], environ=KEYS)
        sdk = client(proxy.url)
        await ask(sdk)

        assert [r.headers["x-api-key"] for r in pooled.requests] == [KEYS["KEY_A"], KEYS["KEY_B"]]
        assert not other.requests  # no provider change
        [failed] = [e for e in proxy.events if isinstance(e, AttemptFailed)]
        assert failed.next_provider == "pooled" and failed.attempt.reason.startswith("key KEY_A …1111: 429")
        [finished] = proxy.finished()
        assert finished.provider == "pooled" and finished.key_label == "KEY_B …2222"
        assert KEYS["KEY_A"] not in repr(finished) and KEYS["KEY_B"] not in repr(finished)

        view = proxy.engine.provider_view("pooled")
        assert view.state is ProviderState.OK
        assert [(k.label, k.source, k.state) for k in view.keys] == [
            ("KEY_A …1111", "env", ProviderState.COOLING),
            ("KEY_B …2222", "env", ProviderState.OK),
        ]
        assert view.keys[0].until is not None and "429" in view.keys[0].reason
        await ask(sdk)  # round-robin would take KEY_A next, but it is cooling
        assert pooled.requests[-1].headers["x-api-key"] == KEYS["KEY_B"]


async def test_round_robin_alternates_and_fill_first_stays_on_the_first_key(start_proxy) -> None:
    async with AnthropicMock() as rr, AnthropicMock() as ff:
        proxy = await start_proxy(
            [
                anthropic_provider("rr", rr.url, more_key_envs=("KEY_B",)),
                anthropic_provider("ff", ff.url, more_key_envs=("KEY_B",), key_rotation=KeyRotation.FILL_FIRST),
            ],
            environ=KEYS,
        )
        sdk = client(proxy.url)
        for _ in range(3):
            await ask(sdk)
        assert [r.headers["x-api-key"] for r in rr.requests] == [KEYS["KEY_A"], KEYS["KEY_B"], KEYS["KEY_A"]]
        proxy.engine.set_enabled("rr", False)
        for _ in range(2):
            await ask(sdk)
        assert [r.headers["x-api-key"] for r in ff.requests] == [KEYS["KEY_A"]] * 2


async def test_when_every_key_fails_the_provider_fails_over(start_proxy) -> None:
    async with AnthropicMock() as pooled, AnthropicMock() as other:
        pooled.scenario = "rate_limit"
        provider = anthropic_provider("pooled", pooled.url, more_key_envs=("KEY_B",))
        proxy = await start_proxy([provider, anthropic_provider("other", other.url)], environ=KEYS)
        await ask(client(proxy.url))
        assert len(pooled.requests) == 2 and len(other.requests) == 1
        assert proxy.engine.provider_view("pooled").state is ProviderState.COOLING


async def test_keyring_entries_join_the_pool(start_proxy, isolated_environment) -> None:
    isolated_environment.store[("ccm-tui", "pooled#2")] = "sk-ant-api03-keyring-two-cccccccc3333"
    async with AnthropicMock() as pooled:
        proxy = await start_proxy([anthropic_provider("pooled", pooled.url)], environ=KEYS)
        assert [(k.label, k.source) for k in proxy.engine.provider_view("pooled").keys] == [
            ("KEY_A …1111", "env"),
            ("keyring #2 …3333", "keyring"),
        ]
        sdk = client(proxy.url)
        await ask(sdk)
        await ask(sdk)
        assert pooled.requests[-1].headers["x-api-key"] == "sk-ant-api03-keyring-two-cccccccc3333"


# --- 3. session affinity ----------------------------------------------------------------------------------------


async def test_interleaved_sessions_stay_on_their_providers_and_a_new_one_is_placed_by_the_strategy(
    start_proxy,
) -> None:
    async with AnthropicMock() as a, AnthropicMock() as b:
        proxy = await start_proxy([anthropic_provider("a", a.url), anthropic_provider("b", b.url)], environ=KEYS)
        sdk = client(proxy.url)
        proxy.engine.set_enabled("a", False)
        await ask(sdk, **{"x-claude-code-session-id": "s1"})  # a is off: s1 starts on b
        proxy.engine.set_enabled("a", True)
        for _ in range(2):
            await ask(sdk, **{"x-claude-code-session-id": "s2"})  # ordered: a
            await ask(sdk, **{"x-claude-code-session-id": "s1"})  # pinned: b
        await ask(sdk, **{"x-claude-code-session-id": "s3"})  # new: the strategy places it on a
        await ask(sdk)  # no session: the strategy

        served = [(f.hints.session_id, f.provider) for f in proxy.finished()]
        assert served == [
            ("s1", "b"), ("s2", "a"), ("s1", "b"), ("s2", "a"), ("s1", "b"), ("s3", "a"), (None, "a")
        ]  # fmt: skip
        pins = {p.session_id: (p.provider, p.requests) for p in proxy.engine.view().pins}
        assert pins == {"s1": ("b", 3), "s2": ("a", 2), "s3": ("a", 1)}


async def test_a_pinned_provider_past_its_threshold_lets_the_strategy_decide(start_proxy) -> None:
    async with AnthropicMock() as a, AnthropicMock() as b:
        b.requests_limit = 2
        proxy = await start_proxy([anthropic_provider("a", a.url), anthropic_provider("b", b.url)], environ=KEYS)
        sdk = client(proxy.url)
        proxy.engine.set_enabled("a", False)
        await ask(sdk, **{"x-claude-code-session-id": "s1"})  # b: 1 of 2 used (50 %)
        proxy.engine.set_enabled("a", True)
        await ask(sdk, **{"x-claude-code-session-id": "s1"})  # still pinned to b: 2 of 2 used
        await ask(sdk, **{"x-claude-code-session-id": "s1"})  # b is past its threshold: a
        assert [f.provider for f in proxy.finished()] == ["b", "b", "a"]


async def test_session_affinity_off_lets_the_strategy_place_every_request(start_proxy) -> None:
    async with AnthropicMock() as a, AnthropicMock() as b:
        proxy = await start_proxy(
            [anthropic_provider("a", a.url), anthropic_provider("b", b.url)],
            environ=KEYS,
            steering=SteeringSettings(session_affinity=False),
        )
        sdk = client(proxy.url)
        proxy.engine.set_enabled("a", False)
        await ask(sdk, **{"x-claude-code-session-id": "s1"})
        proxy.engine.set_enabled("a", True)
        await ask(sdk, **{"x-claude-code-session-id": "s1"})
        assert [f.provider for f in proxy.finished()] == ["b", "a"]


# --- 4. request classes -----------------------------------------------------------------------------------------


async def test_class_rules_route_auxiliary_to_the_cheap_provider_and_compaction_to_its_list(start_proxy) -> None:
    async with AnthropicMock() as dear, OpenAIMock() as cheap:
        providers = [
            anthropic_provider("dear", dear.url, price_input_mtok=3.0, price_output_mtok=15.0),
            openai_provider("cheap", cheap.url, price_input_mtok=0.1, price_output_mtok=0.4),
        ]
        steering = SteeringSettings(
            classes={"auxiliary": ClassRule(strategy="cost"), "compaction": ClassRule(providers=("cheap",))}
        )
        proxy = await start_proxy(providers, environ=KEYS, steering=steering)
        sdk = client(proxy.url)
        await ask(sdk)  # no header: as before (ordered)
        await ask(sdk, **{"x-claude-code-request-class": "main"})
        await ask(sdk, **{"x-claude-code-request-class": "auxiliary"})
        await ask(sdk, **{"x-claude-code-request-class": "compaction"})
        assert [f.provider for f in proxy.finished()] == ["dear", "dear", "cheap", "cheap"]


# --- 5. budget guard --------------------------------------------------------------------------------------------


def budget_providers(dear_url: str, free_url: str) -> list[ProviderSettings]:
    return [
        anthropic_provider("dear", dear_url, price_input_mtok=1000.0, price_output_mtok=1000.0),
        openai_provider("free", free_url, price_input_mtok=0.0, price_output_mtok=0.0),
    ]


async def test_budget_refuse_answers_an_anthropic_error_that_says_do_not_retry(start_proxy) -> None:
    async with AnthropicMock() as dear, OpenAIMock() as free:
        budget = BudgetSettings(daily_usd=0.01, action=BudgetAction.REFUSE)
        proxy = await start_proxy(budget_providers(dear.url, free.url), environ=KEYS, budget=budget)
        sdk = client(proxy.url)
        await ask(sdk)  # costs well over a cent
        with pytest.raises(anthropic.RateLimitError) as refused:
            await ask(sdk)
        response = refused.value.response
        assert response.headers["x-should-retry"] == "false"
        body = response.json()
        assert body["type"] == "error" and body["error"]["type"] == "rate_limit_error"
        assert body["error"]["message"] == "ccm-tui daily budget of $0.01 reached; resets at 00:00 local."
        assert len(dear.requests) == 1 and not free.requests
        state = proxy.engine.view().budget
        assert state is not None and state.active and state.reached == "day"
        [changed] = [e for e in proxy.events if isinstance(e, BudgetChanged)]
        assert changed.active and changed.action == "refuse" and changed.window == "day"

        lifted = proxy.engine.lift_budget()  # the TUI's key: for the rest of the day
        assert lifted.lifted_until is not None and not lifted.active
        await ask(sdk)
        assert len(dear.requests) == 2


async def test_budget_cheapest_serves_only_from_providers_priced_at_zero(start_proxy) -> None:
    async with AnthropicMock() as dear, OpenAIMock() as free:
        budget = BudgetSettings(daily_usd=0.01, action=BudgetAction.CHEAPEST)
        proxy = await start_proxy(budget_providers(dear.url, free.url), environ=KEYS, budget=budget)
        sdk = client(proxy.url)
        await ask(sdk)
        await ask(sdk)
        await ask(sdk)
        assert [f.provider for f in proxy.finished()] == ["dear", "free", "free"]


async def test_budget_alert_only_reports(start_proxy) -> None:
    async with AnthropicMock() as dear, OpenAIMock() as free:
        budget = BudgetSettings(hourly_usd=0.01, action=BudgetAction.ALERT)
        proxy = await start_proxy(budget_providers(dear.url, free.url), environ=KEYS, budget=budget)
        sdk = client(proxy.url)
        await ask(sdk)
        await ask(sdk)
        assert [f.provider for f in proxy.finished()] == ["dear", "dear"]
        [changed] = [e for e in proxy.events if isinstance(e, BudgetChanged)]
        assert changed.window == "hour" and changed.action == "alert" and changed.active
        assert "hourly budget of $0.01 reached" in changed.message


async def test_routing_settings_and_steering_live_side_by_side(start_proxy) -> None:
    """The failover settings ([routing] numbers) and these keys are separate dataclasses: both apply."""
    async with AnthropicMock() as a:
        proxy = await start_proxy(
            [anthropic_provider("a", a.url)],
            environ=KEYS,
            routing=replace(RoutingSettings(), cooldown_base=1.0),
            steering=SteeringSettings(quota_threshold=0.5),
        )
        assert proxy.engine.settings.routing.cooldown_base == 1.0
        assert proxy.engine.view().steering.quota_threshold == 0.5  # type: ignore[union-attr]
