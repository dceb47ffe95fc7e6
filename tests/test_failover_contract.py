"""What Claude Code is told when providers fail (statuses, headers), holding, recovery and same-provider retry.

All over loopback HTTP against FaultMocks (tests/mocks/faults.py) and the cloud mocks; the recovery schedule
runs on an injected clock, so a minute of downtime costs no time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from ccm_tui.config import ProviderSettings, RoutingSettings, Settings
from ccm_tui.core.events import RequestFinished, RequestHeld
from ccm_tui.proxy.server import bind_socket, serve
from ccm_tui.runtime import Runtime
from tests.conftest import free_port
from tests.mocks.anthropic_script import parse_sse
from tests.mocks.cloud_mocks import BedrockMock, GeminiMock, VertexMock
from tests.mocks.faults import ANSWER, FaultMock
from tests.test_claude_code_e2e import ENVIRON, bedrock_kind, gemini_kind, vertex_kind
from tests.test_faults import FAST, post, received, settings_for, tried


def body_of(response: httpx.Response) -> dict[str, Any]:
    return response.json()["error"]


# --- statuses and headers when every candidate failed ------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize(
    ("faults", "status", "error_type", "should_retry"),
    [
        (("rate_limit", "rate_limit"), 429, "rate_limit_error", "true"),
        (("overloaded", "overloaded"), 529, "overloaded_error", "true"),
        (("rate_limit", "overloaded"), 529, "overloaded_error", "true"),
        (("auth", "auth"), 503, "overloaded_error", "false"),
    ],
)
async def test_every_candidate_failing_is_told_truthfully(
    start_proxy, faults, status, error_type, should_retry, stream
):
    async with FaultMock("anthropic", faults[0]) as first, FaultMock("openai", faults[1]) as second:
        proxy = await start_proxy([settings_for("primary", first), settings_for("fallback", second)], routing=FAST)
        response = await post(proxy.url, stream)
        again = await post(proxy.url, stream)  # now every candidate is cooling: the same answer, from memory
    for answer in (response, again):
        assert answer.status_code == status and body_of(answer)["type"] == error_type
        assert answer.headers["x-should-retry"] == should_retry
    if status in (429, 529):
        assert response.headers["retry-after"].isdigit() and int(again.headers["retry-after"]) >= 1
    assert response.headers["anthropic-ratelimit-requests-limit"] == "1000"  # the Anthropic upstream's own
    assert len(first.requests) == len(second.requests) == 1


async def test_every_candidate_unreachable_names_host_and_port_and_is_not_a_rate_limit(start_proxy) -> None:
    ports = [free_port(), free_port()]
    providers = [
        ProviderSettings(name=f"dead{i}", kind="anthropic", base_url=f"http://127.0.0.1:{port}", api_key_env="TEST_KEY")
        for i, port in enumerate(ports)
    ]
    proxy = await start_proxy(providers, routing=FAST)
    response = await post(proxy.url, stream=True)
    error = body_of(response)
    assert response.status_code == 502 and error["type"] == "api_error"
    assert all(f"127.0.0.1:{port}" in error["message"] for port in ports)
    assert "rate" not in error["message"].lower() and response.headers["x-should-retry"] == "true"


async def test_a_client_error_passes_through_with_the_upstreams_headers(start_proxy) -> None:
    async with FaultMock("anthropic", "bad_request") as first, FaultMock("anthropic") as second:
        proxy = await start_proxy([settings_for("primary", first), settings_for("fallback", second)], routing=FAST)
        response = await post(proxy.url, stream=False)
    assert response.status_code == 400 and body_of(response)["message"] == "messages.0.content: Field required"
    assert response.headers["x-should-retry"] == "false" and response.headers["request-id"].startswith("req_fault_")
    assert second.requests == []


# --- same-provider retry -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["anthropic", "openai"])
@pytest.mark.parametrize("fault", ["reset", "server_error", "bad_gateway"])
async def test_one_reset_or_lone_5xx_is_retried_on_the_same_provider(start_proxy, kind, fault) -> None:
    async with FaultMock(kind) as primary, FaultMock("anthropic") as fallback:
        primary.script(fault)
        proxy = await start_proxy([settings_for("primary", primary), settings_for("fallback", fallback)], routing=FAST)
        response = await post(proxy.url, stream=True)
        [finished] = await proxy.wait_finished()
    assert received(response, stream=True)[0] == ANSWER and response.headers["x-ccm-provider"] == "primary"
    assert tried(finished) == [("primary", "retried"), ("primary", "ok")] and fallback.requests == []


@pytest.mark.parametrize("fault", ["rate_limit", "overloaded", "silent"])
async def test_busy_or_silent_upstreams_are_not_retried_on_the_same_provider(start_proxy, fault) -> None:
    async with FaultMock("anthropic") as primary, FaultMock("anthropic") as fallback:
        primary.script(fault)
        proxy = await start_proxy([settings_for("primary", primary), settings_for("fallback", fallback)], routing=FAST)
        await post(proxy.url, stream=True)
    assert len(primary.requests) == 1 and len(fallback.requests) == 1


# --- holding instead of failing ------------------------------------------------------------------------------

HOLDING = RoutingSettings(ping_interval=0.05, stall_seconds=0.5, ttft_floor=0.2, ttft_ceiling=2.0, hold_seconds=20)


async def _held(proxy: Any) -> RequestHeld:
    async with proxy.changed:
        await asyncio.wait_for(
            proxy.changed.wait_for(lambda: any(isinstance(e, RequestHeld) for e in proxy.events)), timeout=5
        )
    return next(e for e in proxy.events if isinstance(e, RequestHeld))


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_a_request_is_held_while_every_candidate_cools_and_served_on_recovery(start_proxy, stream) -> None:
    async with FaultMock("anthropic", "rate_limit") as primary:
        primary.retry_after = 10  # within hold_seconds
        proxy = await start_proxy([settings_for("primary", primary)], routing=HOLDING)
        pending = asyncio.create_task(post(proxy.url, stream))
        held = await _held(proxy)
        assert held.until is not None and 8 <= held.until - proxy.engine.clock() <= 10  # the TUI's countdown
        assert [h[0] for h in proxy.engine.view().held] == [held.request_id]
        primary.scenario = "ok"
        proxy.engine.retry_now("primary")  # the provider is back: the held request goes at once
        response = await asyncio.wait_for(pending, timeout=5)
    assert response.status_code == 200 and received(response, stream)[0] == ANSWER
    assert proxy.engine.view().held == ()
    if stream:
        assert parse_sse(response.content)[0]["type"] == "ping"  # kept alive while held
    finished = [e for e in proxy.events if isinstance(e, RequestFinished)]
    assert len(finished) == 1 and finished[0].ok and len(primary.requests) == 2


async def test_a_held_request_tries_again_when_the_cool_down_ends(start_proxy) -> None:
    async with FaultMock("anthropic") as primary:
        primary.script("rate_limit")
        primary.retry_after = 1
        proxy = await start_proxy([settings_for("primary", primary)], routing=HOLDING)
        response = await post(proxy.url, stream=True)
    events = parse_sse(response.content)
    assert received(response, True)[0] == ANSWER and [e["type"] for e in events].count("ping") >= 5


async def test_no_hold_when_the_recovery_is_further_than_hold_seconds(start_proxy) -> None:
    async with FaultMock("anthropic", "rate_limit") as primary:
        primary.retry_after = 60
        proxy = await start_proxy([settings_for("primary", primary)], routing=HOLDING)
        response = await post(proxy.url, stream=True)
    assert response.status_code == 429 and int(response.headers["retry-after"]) in (59, 60)
    assert not any(isinstance(e, RequestHeld) for e in proxy.events)


# --- bounded recovery, on an injected clock ------------------------------------------------------------------


@pytest.fixture
async def clocked_proxy(tmp_path: Path) -> AsyncIterator[Any]:
    started: list[tuple[asyncio.Event, asyncio.Task[None], Runtime]] = []

    async def start(providers: list[ProviderSettings], routing: RoutingSettings, clock: Any) -> tuple[str, Runtime]:
        settings = Settings(providers=tuple(providers), routing=routing, history_enabled=False)
        runtime = Runtime(settings, environ={"TEST_KEY": "k"}, clock=clock)
        await runtime.start()
        sock = bind_socket("127.0.0.1", 0)
        shutdown = asyncio.Event()
        started.append((shutdown, asyncio.create_task(serve(runtime.app, sock, shutdown, drain_seconds=5.0)), runtime))
        return f"http://127.0.0.1:{sock.getsockname()[1]}", runtime

    yield start
    for shutdown, task, runtime in started:
        shutdown.set()
        await task
        await runtime.aclose()


@pytest.mark.parametrize("down", [60.0, 300.0])  # the example, and long enough to reach cooldown_max
async def test_a_provider_gets_traffic_back_soon_after_it_recovers_however_long_it_was_down(
    clocked_proxy, down
) -> None:
    now = [1_000_000.0]
    async with FaultMock("anthropic", "overloaded") as primary, FaultMock("anthropic") as fallback:
        url, _runtime = await clocked_proxy(
            [settings_for("primary", primary), settings_for("fallback", fallback)], FAST, lambda: now[0]
        )
        served: list[tuple[float, str]] = []
        for step in range(int(down + 120) // 4):  # one request every 4 s; down for the first `down` seconds
            second = step * 4.0
            now[0] = 1_000_000.0 + second
            primary.scenario = "overloaded" if second < down else "ok"
            response = await post(url, stream=False)
            assert response.status_code == 200
            served.append((second, response.headers["x-ccm-provider"]))
    back = [t for t, provider in served if provider == "primary"]
    assert back and back[0] - down <= 20  # bounded (backoff_max + one request interval), however long it was down
    assert all(provider == "primary" for t, provider in served if t >= back[0])  # one success closed the circuit
    # The cool-downs it got while down were capped: probes every backoff_max at most.
    assert len(primary.requests) >= 5


# --- bedrock, vertex and gemini: failover before content, rescue after it ------------------------------------

CLOUD = {
    "bedrock": (BedrockMock, bedrock_kind),
    "vertex": (VertexMock, vertex_kind),
    "gemini": (GeminiMock, gemini_kind),
}


@pytest.mark.parametrize("kind", list(CLOUD))
@pytest.mark.parametrize("scenario", ["rate_limit", "overloaded", "mid_stream_cut"])
async def test_cloud_kinds_fail_over_or_are_rescued(start_proxy, tmp_path, monkeypatch, kind, scenario) -> None:
    make_mock, make_settings = CLOUD[kind]
    async with make_mock(scenario) as primary, FaultMock("anthropic") as fallback:
        primary.chunk_delay = 0.01
        settings = make_settings(primary, tmp_path, monkeypatch)
        proxy = await start_proxy([settings, settings_for("fallback", fallback)], environ=ENVIRON, routing=FAST)
        response = await post(proxy.url, stream=True)
        [finished] = await proxy.wait_finished()
    text, model, events = received(response, stream=True)
    assert response.status_code == 200 and finished.ok and finished.provider == "fallback"
    last = fallback.requests[0].json()["messages"][-1]
    if last["role"] != "assistant":
        assert text == ANSWER and model == "claude-fallback-1"  # failed over before any content
    else:  # rescued: the cloud's words so far, then the fallback's continuation of them
        assert text.startswith(last["content"]) and text.endswith(ANSWER)
        assert tried(finished)[0] == (settings.name, "stream_error")
    assert "error" not in [e["type"] for e in events]


async def test_eventstream_upstream_silence_gets_pings(start_proxy, tmp_path, monkeypatch) -> None:
    async with BedrockMock("text") as primary:
        primary.chunk_delay = 0.1  # the mock splits its frames at odd boundaries: many small, slow reads
        settings = replace(bedrock_kind(primary, tmp_path, monkeypatch), ttft_ceiling=30.0)
        proxy = await start_proxy([settings], environ=ENVIRON, routing=FAST)
        response = await post(proxy.url, stream=True)
    assert response.status_code == 200, response.text
    kinds = [e["type"] for e in parse_sse(response.content)]
    assert kinds[-1] == "message_stop" and kinds.count("ping") >= 3
