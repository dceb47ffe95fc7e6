"""The proxy end to end over loopback HTTP: the official anthropic SDK -> ccm-tui -> mock upstreams.

Covers pass-through, failover and cool-down, all-cooling 429, mid-stream failures and client disconnects.
"""

from __future__ import annotations

import asyncio

import anthropic
import httpx
import pytest

from ccm_tui.config import ProviderSettings, RoutingSettings
from ccm_tui.core.contract import Variant
from ccm_tui.core.events import AttemptFailed
from tests.conftest import free_port
from tests.mocks.upstreams import AnthropicMock, OpenAIMock


def anthropic_provider(name: str, url: str, **extra: object) -> ProviderSettings:
    return ProviderSettings(name=name, kind="anthropic", base_url=url, api_key_env="TEST_KEY", **extra)  # type: ignore[arg-type]


def openai_provider(name: str, url: str, model: str = "mock-large") -> ProviderSettings:
    return ProviderSettings(
        name=name, kind="openai", base_url=url, api_key_env="TEST_KEY", models={"default": (Variant(model),)}
    )


def client(url: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=url, api_key="dummy", max_retries=0)


ASK = {"max_tokens": 200, "messages": [{"role": "user", "content": "Why is my test flaky?"}]}


@pytest.fixture
async def primary():
    async with AnthropicMock() as mock:
        yield mock


@pytest.fixture
async def secondary():
    async with OpenAIMock() as mock:
        yield mock


async def test_passthrough_stream_reaches_sdk_unchanged(start_proxy, primary) -> None:
    primary.text = "Move the lookup inside the lock."
    proxy = await start_proxy([anthropic_provider("anth", primary.url)])
    async with client(proxy.url).messages.stream(model="claude-sonnet-4-6", **ASK) as stream:
        message = await stream.get_final_message()
    assert message.content[0].text == "Move the lookup inside the lock."
    assert message.stop_reason == "end_turn"
    sent = primary.requests[-1]
    assert sent.headers["x-api-key"] == "test-upstream-key"  # the upstream key, not the client's dummy
    assert sent.json()["model"] == "claude-sonnet-4-6"
    [finished] = proxy.finished()
    assert finished.provider == "anth" and finished.usage.output_tokens == message.usage.output_tokens
    assert finished.ttfb is not None and finished.ttfb <= finished.duration


async def test_passthrough_non_streaming_and_beta_path(start_proxy, primary) -> None:
    primary.text = "Use rglob."
    proxy = await start_proxy([anthropic_provider("anth", primary.url)])
    message = await client(proxy.url).beta.messages.create(
        model="claude-haiku-4-5", betas=["interleaved-thinking-2025-05-14"], **ASK
    )
    assert message.content[0].text == "Use rglob."
    assert primary.requests[-1].headers["anthropic-beta"] == "interleaved-thinking-2025-05-14"


async def test_betas_are_filtered_to_the_providers_list(start_proxy, primary) -> None:
    proxy = await start_proxy([anthropic_provider("anth", primary.url, betas=("keep-me-2025",))])
    await client(proxy.url).beta.messages.create(
        model="claude-haiku-4-5", betas=["keep-me-2025", "drop-me-2026"], **ASK
    )
    assert primary.requests[-1].headers["anthropic-beta"] == "keep-me-2025"


async def test_failover_on_429_uses_next_provider_and_cools_down_the_first(start_proxy, primary, secondary) -> None:
    primary.scenario = "rate_limit"
    primary.retry_after = 30
    secondary.text = "Served by the secondary."
    proxy = await start_proxy([anthropic_provider("first", primary.url), openai_provider("second", secondary.url)])
    sdk = client(proxy.url)

    message = await sdk.messages.create(model="claude-sonnet-4-6", **ASK)
    assert message.content[0].text == "Served by the secondary."
    [failed] = [e for e in proxy.events if isinstance(e, AttemptFailed)]
    assert failed.attempt.provider == "first" and failed.attempt.status == 429
    assert failed.attempt.retry_after == 30 and failed.next_provider == "second"

    # The primary is cooling for 30 s: the next request goes straight to the secondary.
    await sdk.messages.create(model="claude-sonnet-4-6", **ASK)
    assert len(primary.requests) == 1
    assert len(secondary.requests) == 2
    view = proxy.engine.provider_view("first")
    state, until, reason = view.state, view.until, view.reason
    assert state == "cooling" and until is not None and "429" in reason


async def test_all_candidates_cooling_answers_429_with_retry_after(start_proxy, primary) -> None:
    primary.scenario = "rate_limit"
    primary.retry_after = 7
    # hold_seconds=0: answer at once instead of holding the request for the recovery (tests/test_faults.py)
    proxy = await start_proxy([anthropic_provider("only", primary.url)], routing=RoutingSettings(hold_seconds=0))
    sdk = client(proxy.url)
    with pytest.raises(anthropic.RateLimitError) as first:
        await sdk.messages.create(model="claude-sonnet-4-6", **ASK)
    assert 6 <= int(first.value.response.headers["retry-after"]) <= 7
    with pytest.raises(anthropic.RateLimitError) as second:
        await sdk.messages.create(model="claude-sonnet-4-6", **ASK)
    assert "cooling down" in second.value.message
    assert len(primary.requests) == 1  # the cooling upstream was not hammered


async def test_cooled_provider_recovers_with_one_probe(start_proxy, primary, secondary) -> None:
    primary.script("rate_limit")
    primary.retry_after = 0  # cool-down over at once
    proxy = await start_proxy([anthropic_provider("first", primary.url), openai_provider("second", secondary.url)])
    sdk = client(proxy.url)
    await sdk.messages.create(model="claude-sonnet-4-6", **ASK)  # first 429 -> second serves
    assert len(primary.requests) == 1 and len(secondary.requests) == 1
    # The next request is the probe: it goes to the primary again, which answers and is healthy again.
    await sdk.messages.create(model="claude-sonnet-4-6", **ASK)
    assert len(primary.requests) == 2 and len(secondary.requests) == 1
    assert proxy.engine.provider_view("first").state == "ok"
    recovered = [e for e in proxy.events if getattr(e, "reason", "") == "recovered"]
    assert [e.provider for e in recovered] == ["first"]


async def test_while_a_probe_is_in_flight_other_requests_use_healthy_providers(start_proxy, primary, secondary) -> None:
    primary.script("rate_limit")
    primary.retry_after = 0
    primary.chunk_delay = 0.05  # the probe stream takes a while
    proxy = await start_proxy([anthropic_provider("first", primary.url), openai_provider("second", secondary.url)])
    sdk = client(proxy.url)
    await sdk.messages.create(model="claude-sonnet-4-6", **ASK)  # 429 -> second; first now recovering
    async with sdk.messages.stream(model="claude-sonnet-4-6", **ASK) as probe:
        async for _ in probe:  # the probe's first bytes arrived: it is in flight on the primary
            break
        assert proxy.engine.provider_view("first").state == "probing"
        await sdk.messages.create(model="claude-sonnet-4-6", **ASK)  # goes to the healthy secondary
        assert len(secondary.requests) == 2 and len(primary.requests) == 2
        await probe.get_final_message()
    assert proxy.engine.provider_view("first").state == "ok"


@pytest.mark.parametrize(
    ("scenario", "status"),
    [("overloaded", 529), ("server_error", 500)],
)
async def test_overload_and_server_errors_fail_over(start_proxy, primary, secondary, scenario, status) -> None:
    primary.scenario = scenario
    proxy = await start_proxy([anthropic_provider("first", primary.url), openai_provider("second", secondary.url)])
    message = await client(proxy.url).messages.create(model="claude-opus-4-8", **ASK)
    assert message.role == "assistant"
    *retried, failed = [e for e in proxy.events if isinstance(e, AttemptFailed)]
    assert failed.attempt.status == status and failed.attempt.outcome == "cooldown"
    assert [r.attempt.outcome for r in retried] == (["retried"] if status == 500 else [])  # a lone 500: once more


async def test_connection_refused_fails_over(start_proxy, secondary) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    proxy = await start_proxy([anthropic_provider("dead", dead), openai_provider("second", secondary.url)])
    message = await client(proxy.url).messages.create(model="claude-sonnet-4-6", **ASK)
    assert message.role == "assistant"
    [failed] = [e for e in proxy.events if isinstance(e, AttemptFailed)]
    assert failed.attempt.status is None and "connection refused" in failed.attempt.reason


async def test_slow_first_byte_times_out_and_fails_over(start_proxy, primary, secondary) -> None:
    primary.scenario = "slow_first_byte"
    primary.slow_seconds = 30
    proxy = await start_proxy(
        [anthropic_provider("slow", primary.url), openai_provider("second", secondary.url)],
        routing=RoutingSettings(first_byte_timeout=0.5),
    )
    message = await client(proxy.url).messages.create(model="claude-sonnet-4-6", **ASK)
    assert message.role == "assistant"
    [failed] = [e for e in proxy.events if isinstance(e, AttemptFailed)]
    assert failed.attempt.provider == "slow" and "timed out" in failed.attempt.reason


async def test_spend_limit_disables_provider_long_term(start_proxy, primary, secondary) -> None:
    primary.scenario = "spend_limit"
    proxy = await start_proxy([anthropic_provider("first", primary.url), openai_provider("second", secondary.url)])
    await client(proxy.url).messages.create(model="claude-sonnet-4-6", **ASK)
    view = proxy.engine.provider_view("first")
    state, until, reason = view.state, view.until, view.reason
    assert state == "disabled" and "enforced_spend_limit_reached" in reason
    assert until is not None and until - proxy.engine.clock() > 600


async def test_client_error_is_returned_without_failover(start_proxy, primary, secondary) -> None:
    primary.scenario = "bad_request"
    proxy = await start_proxy([anthropic_provider("first", primary.url), openai_provider("second", secondary.url)])
    with pytest.raises(anthropic.BadRequestError):
        await client(proxy.url).messages.create(model="claude-sonnet-4-6", **ASK)
    assert secondary.requests == []


async def test_context_length_skips_to_a_bigger_provider_without_penalty(start_proxy, secondary, primary) -> None:
    secondary.scenario = "context_length"
    proxy = await start_proxy([openai_provider("small", secondary.url), anthropic_provider("big", primary.url)])
    message = await client(proxy.url).messages.create(model="claude-sonnet-4-6", **ASK)
    assert message.role == "assistant"
    assert proxy.engine.provider_view("small").state == "ok"  # skipped for this request only


@pytest.mark.parametrize("scenario", ["mid_stream_error", "mid_stream_cut"])
async def test_mid_stream_failure_becomes_error_event(start_proxy, primary, secondary, scenario) -> None:
    primary.scenario = scenario
    primary.chunk_delay = 0.02  # the failure comes after the first content reached the client, not with it
    proxy = await start_proxy([anthropic_provider("first", primary.url), openai_provider("second", secondary.url)])
    with pytest.raises(anthropic.APIStatusError) as raised:
        async with client(proxy.url).messages.stream(model="claude-sonnet-4-6", **ASK) as stream:
            await stream.get_final_message()
    assert raised.value.status_code == 200  # the stream had started: no failover after the first byte
    assert secondary.requests == []
    [finished] = proxy.finished()
    assert finished.error_type in ("overloaded_error", "api_error") and not finished.ok


async def test_openai_mid_stream_error_chunk_becomes_error_event(start_proxy, secondary) -> None:
    secondary.scenario = "mid_stream_error"
    proxy = await start_proxy([openai_provider("oai", secondary.url)])
    with pytest.raises(anthropic.APIStatusError):
        async with client(proxy.url).messages.stream(model="claude-sonnet-4-6", **ASK) as stream:
            await stream.get_final_message()
    assert not proxy.finished()[0].ok


async def test_client_disconnect_cancels_the_upstream(start_proxy, primary) -> None:
    primary.chunk_delay = 0.2  # a slow stream the client walks away from
    proxy = await start_proxy([anthropic_provider("anth", primary.url)])
    body = {"model": "claude-sonnet-4-6", "stream": True, **ASK}
    url = f"{proxy.url}/v1/messages"
    async with httpx.AsyncClient() as http, http.stream("POST", url, json=body, headers={"x-api-key": "k"}) as r:
        async for _ in r.aiter_bytes():
            break  # first bytes arrived; now hang up
    await asyncio.wait_for(primary.aborted.wait(), timeout=5)
    assert primary.aborts == 1
    # The request is still recorded (never a lost record).
    [finished] = await proxy.wait_finished()
    assert finished.status == 499


async def test_client_leaving_before_the_first_byte_aborts_upstream_and_is_recorded(start_proxy, primary) -> None:
    primary.scenario = "slow_first_byte"
    primary.slow_seconds = 30
    proxy = await start_proxy([anthropic_provider("anth", primary.url)])
    body = {"model": "claude-sonnet-4-6", "stream": True, **ASK}
    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0, read=0.3)) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.post(f"{proxy.url}/v1/messages", json=body)  # the client gives up and disconnects
    await asyncio.wait_for(primary.aborted.wait(), timeout=5)
    [finished] = await proxy.wait_finished()
    assert finished.status == 499 and finished.error_type == "client_closed"


async def test_claude_code_session_headers_reach_the_finished_record(start_proxy, primary) -> None:
    proxy = await start_proxy([anthropic_provider("anth", primary.url)])
    headers = {
        "x-claude-code-session-id": "sess-42",
        "x-claude-code-agent-id": "agent-7",
        "x-claude-code-parent-agent-id": "agent-1",
        "x-claude-code-request-class": "subagent",
        "x-claude-code-agent-type": "Explore",
    }
    await client(proxy.url).messages.create(model="claude-haiku-4-5", extra_headers=headers, **ASK)
    [finished] = await proxy.wait_finished(1)
    hints = finished.hints
    assert (hints.session_id, hints.agent_id, hints.parent_agent_id) == ("sess-42", "agent-7", "agent-1")
    assert hints.request_class == "subagent" and hints.agent_type == "Explore"
    assert not any(name.startswith("x-claude-code") for name in primary.requests[-1].headers)


async def test_made_up_model_names_do_not_grow_provider_state(start_proxy, primary) -> None:
    from ccm_tui.routing.health import MAX_UNCONFIGURED_VARIANTS

    proxy = await start_proxy([anthropic_provider("anth", primary.url)])
    sdk = client(proxy.url)
    for n in range(MAX_UNCONFIGURED_VARIANTS + 20):
        await sdk.messages.create(model=f"claude-made-up-{n}", **ASK)
    [view] = proxy.engine.view().providers
    keys = [v.key for v in view.variants]
    assert len(keys) == MAX_UNCONFIGURED_VARIANTS
    assert keys[-1] == f"claude-made-up-{MAX_UNCONFIGURED_VARIANTS + 19}"  # the newest are kept
