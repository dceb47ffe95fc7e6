"""Demo mode's simulated providers start and answer, swiftai rate-limits on a seeded schedule, and the
synthetic client keeps sending realistic requests through failures until it is stopped."""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator

import httpx
import pytest

from ccm_tui.config import vendor_of
from ccm_tui.demo.simulation import (
    DEMO_API_KEY,
    DEMO_KEY_ENV,
    DemoUpstreams,
    SyntheticClient,
    start_demo_upstreams,
)
from tests.mocks.upstreams import AnthropicMock

ANTHROPIC_HEADERS = {"x-api-key": DEMO_API_KEY, "anthropic-version": "2023-06-01"}
HELLO = [{"role": "user", "content": "Why does my test fail?"}]


def quick(demo: DemoUpstreams) -> DemoUpstreams:
    """Same behaviour without the realistic delays, so tests stay fast."""
    for mock in (demo.swiftai, demo.slowpoke, demo.bigspender):
        mock.first_byte_delay_range, mock.chunk_delay = None, 0.0
    return demo


@pytest.fixture(autouse=True)
def demo_key_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    """start_demo_upstreams sets the demo key variable; undo that after each test."""
    monkeypatch.setenv(DEMO_KEY_ENV, "placeholder")
    monkeypatch.delenv(DEMO_KEY_ENV)


@pytest.fixture
async def demo() -> AsyncIterator[DemoUpstreams]:
    upstreams = await start_demo_upstreams(seed=42)
    yield upstreams
    await upstreams.stop()


async def test_demo_providers_are_cheap_mid_and_expensive(demo: DemoUpstreams) -> None:
    providers = {p.name: p for p in demo.settings_providers()}
    assert [p.name for p in demo.settings_providers()] == ["swiftai", "bigspender", "slowpoke"]
    prices = [providers[n].price_input_mtok or 0 for n in ("swiftai", "slowpoke", "bigspender")]
    assert prices == sorted(prices) and len(set(prices)) == 3
    assert [vendor_of(providers[n]) for n in ("swiftai", "slowpoke", "bigspender")] == ["anthropic", "openai", "openai"]
    served = {tier for p in providers.values() for tier in p.models}
    assert served == {"haiku", "sonnet", "opus"}
    assert demo.slowpoke.first_byte_delay_range is not None and demo.slowpoke.first_byte_delay_range[0] >= 0.6
    assert os.environ[DEMO_KEY_ENV] == DEMO_API_KEY and set(demo.api_keys()) == set(providers)


async def test_every_demo_provider_answers_at_its_base_url(demo: DemoUpstreams) -> None:
    quick(demo)
    demo.swiftai.rate_limit_every = None
    providers = {p.name: p for p in demo.settings_providers()}
    async with httpx.AsyncClient() as client:
        swift = await client.post(
            f"{providers['swiftai'].base_url}/v1/messages",
            json={"model": "claude-haiku-4-5", "max_tokens": 100, "messages": HELLO},
            headers=ANTHROPIC_HEADERS,
        )
        for name in ("slowpoke", "bigspender"):
            model = providers[name].models["sonnet"][0].model
            answer = await client.post(
                f"{providers[name].base_url}/chat/completions",
                json={"model": model, "messages": HELLO},
                headers={"authorization": f"Bearer {DEMO_API_KEY}"},
            )
            assert answer.status_code == 200 and answer.json()["model"] == model
            assert answer.json()["choices"][0]["message"]["content"]
    assert swift.status_code == 200 and swift.json()["content"][0]["text"]


async def swiftai_statuses(seed: int, count: int) -> list[int]:
    upstreams = quick(await start_demo_upstreams(seed=seed))
    try:
        async with httpx.AsyncClient() as client:
            statuses = []
            for _ in range(count):
                response = await client.post(
                    f"{upstreams.swiftai.url}/v1/messages",
                    json={"model": "claude-sonnet-4-6", "max_tokens": 50, "messages": HELLO},
                    headers=ANTHROPIC_HEADERS,
                )
                if response.status_code == 429:
                    assert float(response.headers["retry-after"]) > 0
                    assert response.json()["error"]["type"] == "rate_limit_error"
                statuses.append(response.status_code)
            return statuses
    finally:
        await upstreams.stop()


async def test_swiftai_rate_limits_every_sixth_to_tenth_request_repeatably() -> None:
    first = await swiftai_statuses(seed=7, count=20)
    limited = [i + 1 for i, status in enumerate(first) if status == 429]
    assert 6 <= limited[0] <= 10 and len(limited) >= 2
    assert all(6 <= b - a <= 10 for a, b in itertools.pairwise(limited))
    assert set(first) == {200, 429}
    assert await swiftai_statuses(seed=7, count=20) == first


async def test_synthetic_client_sends_a_realistic_mix_including_tool_turns() -> None:
    async with AnthropicMock("auto", seed=3) as upstream:
        client = SyntheticClient(upstream.url, interval=(0.0, 0.005), seed=5)
        client.start()
        try:
            await client.wait_for_exchanges(16)
        finally:
            await client.stop()
    bodies = [r.json() for r in upstream.requests]
    assert {b["model"].split("-")[1] for b in bodies} >= {"haiku", "sonnet"}
    assert {bool(b["stream"]) for b in bodies} == {True, False}
    tool_results = [
        block
        for b in bodies
        for block in b["messages"][-1]["content"]
        if isinstance(block, dict) and block.get("type") == "tool_result"
    ]
    assert tool_results and all(r["content"] for r in tool_results)
    assert all(r.query == {"beta": "true"} and r.headers["x-api-key"] == DEMO_API_KEY for r in upstream.requests)
    assert client.failures == 0


@pytest.mark.parametrize("scenario", ["server_error", "mid_stream_cut", "mid_stream_error", "malformed_chunk"])
async def test_synthetic_client_keeps_going_through_failures(scenario: str) -> None:
    async with AnthropicMock(scenario, seed=1) as upstream:
        client = SyntheticClient(upstream.url, interval=(0.0, 0.005), seed=2)
        client.start()
        try:
            await client.wait_for_exchanges(4)
            assert client._task is not None and not client._task.done()
        finally:
            await client.stop()
    assert client.failures >= 3  # a stream can break after the client has all it needs


async def test_synthetic_client_survives_an_unreachable_proxy() -> None:
    upstream = AnthropicMock()
    await upstream.start()
    url = upstream.url
    await upstream.stop()  # nothing listens on this port any more
    client = SyntheticClient(url, interval=(0.0, 0.005), seed=2)
    client.start()
    try:
        await client.wait_for_exchanges(3)
    finally:
        await client.stop()
    assert client.failures == client.exchanges >= 3
