"""The fault matrix: each upstream fault x streaming / non-streaming x provider kind, over loopback HTTP.

A client posts to a real proxy; a FaultMock (tests/mocks/faults.py) misbehaves as the primary, a healthy
Anthropic-protocol FaultMock is the fallback. Each case asserts what the client receives (status, headers,
events, the complete text), which providers were tried, and the RequestFinished record.
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import httpx
import orjson
import pytest

from ccm_tui.config import ProviderSettings, RoutingSettings
from ccm_tui.core.contract import Variant
from ccm_tui.core.events import RequestFinished
from ccm_tui.core.states import AttemptOutcome, ProviderState
from tests.mocks.anthropic_script import parse_sse, stream_grammar_problem
from tests.mocks.faults import ANSWER, SOME_WORDS, FaultMock, _words

KINDS = ("anthropic", "openai")
FALLBACK_MODEL = "claude-fallback-1"
PRIMARY_MODEL = {"anthropic": "claude-primary-1", "openai": "gpt-primary-1"}
# Short deadlines so a fault costs the test little; every one is the engine's own timer, not a sleep here.
FAST = RoutingSettings(
    ping_interval=0.05, stall_seconds=0.5, ttft_floor=0.2, ttft_ceiling=2.0, hold_seconds=0, first_byte_timeout=5.0
)
ASK: dict[str, Any] = {"max_tokens": 300, "messages": [{"role": "user", "content": "Why is my test flaky?"}]}


def settings_for(name: str, mock: FaultMock, **extra: Any) -> ProviderSettings:
    model = PRIMARY_MODEL[mock.kind] if name == "primary" else FALLBACK_MODEL
    return ProviderSettings(
        name=name,
        kind=mock.kind,
        base_url=mock.url,
        api_key_env="TEST_KEY",
        models={"default": (Variant(model),)},
        **extra,
    )


async def post(url: str, stream: bool, body: dict[str, Any] | None = None) -> httpx.Response:
    payload = {"model": "claude-sonnet-4-6", "stream": stream, **(body or ASK)}
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.post(f"{url}/v1/messages", json=payload, headers={"x-api-key": "k"})


def received(response: httpx.Response, stream: bool) -> tuple[str, str | None, list[dict[str, Any]]]:
    """(the complete text, the model named, the events) of a successful answer."""
    if not stream:
        message = response.json()
        return "".join(b.get("text", "") for b in message["content"]), message["model"], []
    events = parse_sse(response.content)
    text = "".join(e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta")
    starts = [e for e in events if e["type"] == "message_start"]
    assert len(starts) == 1, "exactly one message_start reaches the client"
    return text, starts[0]["message"]["model"], events


def only_finished(proxy: Any) -> RequestFinished:
    [finished] = proxy.finished()
    return finished


def tried(finished: RequestFinished) -> list[tuple[str, str]]:
    return [(a.provider, a.outcome.value) for a in finished.attempts]


@pytest.fixture
async def fallback():
    async with FaultMock("anthropic") as mock:
        yield mock


# --- failures before the first content: failover, the fallback's model and headers --------------------------

PRE_CONTENT = (
    "rate_limit",
    "overloaded",
    "server_error",
    "bad_gateway",
    "reset",
    "garbage",
    "json_array",
    "usage_huge",
    "retry_after_inf",
    "retry_after_negative",
    "retry_after_absurd",
    "auth",
)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fault", PRE_CONTENT)
async def test_a_fault_before_content_fails_over_to_the_fallback(start_proxy, fallback, kind, stream, fault) -> None:
    if fault == "usage_huge" and stream:
        pytest.skip("usage in a stream arrives after content; tested in test_usage_past_64_bits_in_a_stream")
    async with FaultMock(kind, fault) as primary:
        proxy = await start_proxy([settings_for("primary", primary), settings_for("fallback", fallback)], routing=FAST)
        response = await post(proxy.url, stream)
        finished = (await proxy.wait_finished())[0]
        assert response.status_code == 200, response.text
        text, model, events = received(response, stream)
        assert text == ANSWER and model == FALLBACK_MODEL  # the model that answered, never the failed one
        assert response.headers["x-ccm-provider"] == "fallback"
        assert int(response.headers["x-ccm-failovers"]) == len(finished.attempts) - 1 >= 1
        assert response.headers["request-id"].startswith("req_fault_")  # the answering upstream's id
        assert response.headers["anthropic-ratelimit-unified-status"] == "allowed"
        if stream:
            assert stream_grammar_problem(events) is None
        assert finished.ok and finished.provider == "fallback" and finished.model == FALLBACK_MODEL
        retried = fault in ("server_error", "bad_gateway", "reset")  # once more on the same provider, then on
        outcomes = [o for p, o in tried(finished) if p == "primary"]
        assert outcomes[0] == ("retried" if retried else outcomes[0]) and len(outcomes) == (2 if retried else 1)
        assert tried(finished)[-1] == ("fallback", "ok")
        view = proxy.engine.view()
        assert view.in_flight == 0
        state = view.provider("primary")
        assert state.state in (ProviderState.COOLING, ProviderState.DISABLED)
        if fault.startswith("retry_after_"):
            until = state.until
            assert until is not None and 0 < until - proxy.engine.clock() <= FAST.cooldown_max


@pytest.mark.parametrize("kind", KINDS)
async def test_corrupt_gzip_and_string_usage_fail_over(start_proxy, fallback, kind) -> None:
    faults = ("gzip_corrupt", "usage_string") if kind == "anthropic" else ("gzip_corrupt",)
    for fault in faults:
        async with FaultMock(kind, fault) as primary:
            proxy = await start_proxy(
                [settings_for("primary", primary), settings_for("fallback", fallback)], routing=FAST
            )
            response = await post(proxy.url, stream=False)
            assert response.status_code == 200 and received(response, False)[0] == ANSWER
            finished = (await proxy.wait_finished())[0]
            assert tried(finished) == [("primary", "cooldown"), ("fallback", "ok")], fault


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("kind", KINDS)
async def test_a_silent_upstream_costs_one_deadline_and_is_not_retried(start_proxy, fallback, kind, stream) -> None:
    async with FaultMock(kind, "silent") as primary:
        first_byte = {} if stream else {"first_byte_timeout": 0.5}
        providers = [settings_for("primary", primary, **first_byte), settings_for("fallback", fallback)]
        proxy = await start_proxy(providers, routing=FAST)
        response = await post(proxy.url, stream)
        finished = (await proxy.wait_finished())[0]
    assert response.status_code == 200 and received(response, stream)[0] == ANSWER
    assert len(primary.requests) == 1  # one deadline, then the next provider: never the same route again
    [failed, served] = finished.attempts
    assert failed.outcome is AttemptOutcome.COOLDOWN and served.provider == "fallback"
    limit = FAST.ttft_ceiling if stream else 0.5  # no samples yet: the ceiling
    assert limit <= failed.duration < limit + 1.0
    assert ("no first token" if stream else "no answer") in failed.reason or "timed out" in failed.reason


# --- the time-to-first-token deadline ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_a_slow_first_token_on_a_fast_provider_fails_over_in_a_fraction_of_it(
    start_proxy, fallback, kind
) -> None:
    async with FaultMock(kind) as primary:
        proxy = await start_proxy([settings_for("primary", primary), settings_for("fallback", fallback)], routing=FAST)
        for _ in range(3):  # it usually answers at once: the deadline learns that (bounded by the floor)
            assert (await post(proxy.url, stream=True)).status_code == 200
        primary.scenario, primary.first_token_delay = "slow_first_token", 5.0
        response = await post(proxy.url, stream=True)
        finished = (await proxy.wait_finished(4))[-1]
    text, model, _events = received(response, stream=True)
    assert text == ANSWER and model == FALLBACK_MODEL  # the primary's held-back message_start never left
    failed = finished.attempts[0]
    assert failed.provider == "primary" and "no first token within 0.2 s" in failed.reason
    assert failed.duration < 1.0  # a fraction of the 5 s first token


async def test_a_provider_that_is_always_slow_is_not_cut(start_proxy, fallback) -> None:
    async with FaultMock("anthropic", "slow_first_token") as primary:
        primary.first_token_delay = 0.5  # above the floor (0.2), below the ceiling (2.0): its normal pace
        proxy = await start_proxy([settings_for("primary", primary), settings_for("fallback", fallback)], routing=FAST)
        for _ in range(3):
            response = await post(proxy.url, stream=True)
            assert received(response, stream=True)[0] == ANSWER
        finished = await proxy.wait_finished(3)
    assert all(f.provider == "primary" and len(f.attempts) == 1 for f in finished)
    assert fallback.requests == []


# --- after content was sent: rescue from a prefill, or one clean error -----------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fault", ["cut", "stall", "overload_mid"])
async def test_a_stream_cut_after_content_is_rescued_with_a_prefill(start_proxy, fallback, kind, fault) -> None:
    async with FaultMock(kind, fault) as primary:
        primary.gap = 0.01  # the first words reach the client before the fault
        proxy = await start_proxy([settings_for("primary", primary), settings_for("fallback", fallback)], routing=FAST)
        response = await post(proxy.url, stream=True)
        finished = (await proxy.wait_finished())[0]
    assert response.status_code == 200
    text, model, events = received(response, stream=True)
    assert text == ANSWER  # one complete answer: the continuation only, no repeat
    assert model == PRIMARY_MODEL[kind]  # the message started on the primary
    assert stream_grammar_problem(events) is None
    assert [e["type"] for e in events].count("content_block_start") == 1  # the continuation merged into it
    [sent] = fallback.requests
    prefill = orjson.loads(sent.body)["messages"][-1]
    assert prefill == {"role": "assistant", "content": "".join(_words(ANSWER)[:SOME_WORDS]).rstrip()}
    assert tried(finished) == [("primary", "stream_error"), ("fallback", "ok")]
    assert finished.ok and finished.provider == "fallback"
    assert proxy.engine.provider_view("primary").state is ProviderState.COOLING  # cuts count against health


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fault", ["tool_cut", "thinking_cut"])
async def test_a_cut_inside_a_tool_call_or_thinking_ends_in_one_error_event(start_proxy, fallback, kind, fault) -> None:
    if kind == "openai" and fault == "thinking_cut":
        pytest.skip("the OpenAI translator emits no thinking blocks")
    async with FaultMock(kind, fault) as primary:
        primary.gap = 0.01
        proxy = await start_proxy([settings_for("primary", primary), settings_for("fallback", fallback)], routing=FAST)
        response = await post(proxy.url, stream=True)
        finished = (await proxy.wait_finished())[0]
    events = parse_sse(response.content)
    assert response.status_code == 200 and events[-1]["type"] == "error"
    assert [e["type"] for e in events].count("error") == 1 and "message_stop" not in [e["type"] for e in events]
    assert fallback.requests == []  # a tool call or a thought cannot be continued from a prefill
    assert not finished.ok and finished.error_type == "api_error"


async def test_no_rescue_without_a_prefill_candidate_and_a_refused_prefill_is_not_the_error(start_proxy) -> None:
    async with (
        FaultMock("anthropic", "cut") as primary,
        FaultMock("anthropic") as refusing,
        FaultMock("openai") as plain,
    ):
        primary.gap, refusing.reject_prefill = 0.01, True
        providers = [settings_for("primary", primary), settings_for("refusing", refusing), settings_for("plain", plain)]
        proxy = await start_proxy(providers, routing=FAST)
        response = await post(proxy.url, stream=True)
        finished = (await proxy.wait_finished())[0]
    events = parse_sse(response.content)
    assert events[-1]["type"] == "error" and "primary failed mid-stream" in events[-1]["error"]["message"]
    assert "prefill" not in events[-1]["error"]["message"]
    assert len(refusing.requests) == 1 and plain.requests == []  # plain: a custom endpoint, prefill unknown
    assert tried(finished) == [("primary", "stream_error"), ("refusing", "skip")]
    assert proxy.engine.provider_view("refusing").state is ProviderState.OK  # a refused prefill costs nothing


async def test_a_refused_prefill_moves_on_to_the_next_prefill_candidate(start_proxy, fallback) -> None:
    async with FaultMock("anthropic", "cut") as primary, FaultMock("anthropic") as refusing:
        primary.gap, refusing.reject_prefill = 0.01, True
        providers = [settings_for("primary", primary), settings_for("refusing", refusing)]
        providers.append(settings_for("fallback", fallback))
        proxy = await start_proxy(providers, routing=FAST)
        response = await post(proxy.url, stream=True)
    assert received(response, stream=True)[0] == ANSWER
    assert len(refusing.requests) == 1 and len(fallback.requests) == 1


async def test_an_openai_provider_that_says_it_accepts_prefill_can_rescue(start_proxy) -> None:
    async with FaultMock("anthropic", "cut") as primary, FaultMock("openai") as compatible:
        primary.gap = 0.01
        providers = [settings_for("primary", primary), settings_for("compatible", compatible, prefill=True)]
        proxy = await start_proxy(providers, routing=FAST)
        response = await post(proxy.url, stream=True)
    assert received(response, stream=True)[0] == ANSWER
    [sent] = compatible.requests
    assert orjson.loads(sent.body)["messages"][-1]["role"] == "assistant"


# --- odd streams that are still whole answers ------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fault", ["malformed", "no_close", "no_done"])
async def test_odd_but_complete_streams_finish_at_once(start_proxy, fallback, kind, fault) -> None:
    if fault == "no_done" and kind == "anthropic":
        pytest.skip("[DONE] is an OpenAI stream's end marker")
    async with FaultMock(kind, fault) as primary:
        proxy = await start_proxy([settings_for("primary", primary), settings_for("fallback", fallback)], routing=FAST)
        response = await post(proxy.url, stream=True)
        finished = (await proxy.wait_finished())[0]
    text, _model, events = received(response, stream=True)
    assert text == ANSWER and stream_grammar_problem(events) is None
    assert finished.ok and finished.provider == "primary" and fallback.requests == []
    assert finished.usage.output_tokens == len(ANSWER.split())  # usage travelled, [DONE] or not
    assert finished.duration < FAST.stall_seconds  # an upstream that keeps the connection open is not waited for
    if fault == "malformed":
        assert finished.skipped_events == (2 if kind == "anthropic" else 1)


async def test_usage_past_64_bits_in_a_stream_never_loses_the_record(start_proxy, fallback) -> None:
    async with FaultMock("anthropic", "usage_huge") as primary:
        proxy = await start_proxy([settings_for("primary", primary)], routing=FAST, history=True)
        response = await post(proxy.url, stream=True)
        finished = (await proxy.wait_finished())[0]
    text, _, events = received(response, stream=True)
    assert text == ANSWER and stream_grammar_problem(events) is None  # the message_delta still reached the client
    assert finished.ok and finished.usage.output_tokens < 2**63  # never stored as an overflowing integer
    rows = await asyncio.to_thread(_history_rows, proxy)
    assert [r[0] for r in rows] == [finished.request_id]


def _history_rows(proxy: Any) -> list[tuple[Any, ...]]:
    proxy.runtime.history.close()  # flushes what it holds
    with sqlite3.connect(proxy.runtime.history_path) as db:
        return db.execute("SELECT request_id FROM requests").fetchall()


# --- pings while the upstream is silent ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_pings_reach_the_client_during_upstream_silence(start_proxy, kind) -> None:
    async with FaultMock(kind) as primary:
        primary.gap = 0.2  # four ping intervals between two events
        proxy = await start_proxy([settings_for("primary", primary)], routing=FAST)
        response = await post(proxy.url, stream=True)
    text, _, events = received(response, stream=True)
    kinds = [e["type"] for e in events]
    assert text == ANSWER and kinds.count("ping") > len(_words(ANSWER))
    deltas = [i for i, k in enumerate(kinds) if k == "content_block_delta"]
    assert any(k == "ping" for k in kinds[deltas[0] : deltas[-1]])  # between content, not only before it
