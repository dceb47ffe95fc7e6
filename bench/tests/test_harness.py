"""The mock upstream and the load generator over real loopback sockets, and the generated ccm-tui configs."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import orjson
import pytest

from bench import loadgen, procstat
from bench.mock_upstream import MockUpstream
from bench.scenarios import FAILOVER_PRIMARY, SCENARIOS, proxy_config, request_for
from ccm_tui.config import parse_settings


@pytest.fixture
async def mock() -> AsyncIterator[tuple[MockUpstream, int]]:
    upstream = MockUpstream()
    server = await asyncio.start_server(upstream.serve_connection, "127.0.0.1", 0)
    async with server:
        yield upstream, server.sockets[0].getsockname()[1]


@pytest.mark.parametrize("scenario", ["a", "d", "e", "f"])
async def test_direct_runs_complete_without_errors(mock: tuple[MockUpstream, int], scenario: str) -> None:
    upstream, port = mock
    result = await loadgen.run_job(
        {"scenario": scenario, "target": "direct", "host": "127.0.0.1", "port": port, "concurrency": 4,
         "requests": 12, "time_cap_s": 5, "mock_pid": os.getpid()}
    )  # fmt: skip
    assert (result["completed"], result["errors"]) == (12, 0), result["error_samples"]
    assert len(result["ttfb_ms"]) == 12 and all(
        0 < t <= total for t, total in zip(result["ttfb_ms"], result["total_ms"], strict=True)
    )
    assert upstream.stats["status_200"] == 12


async def test_streaming_pace_follows_the_profile(mock: tuple[MockUpstream, int]) -> None:
    _, port = mock
    result = await loadgen.run_job(
        {"scenario": "b", "target": "direct", "host": "127.0.0.1", "port": port, "concurrency": 2,
         "requests": 2, "time_cap_s": 5}
    )  # fmt: skip
    assert result["errors"] == 0, result["error_samples"]
    # 50 deltas 5 ms apart: the last one leaves 245 ms after the first.
    assert all(240 <= total < 600 for total in result["total_ms"])
    assert all(ttfb < 100 for ttfb in result["ttfb_ms"])


async def test_failover_primary_answers_429_with_retry_after_zero(mock: tuple[MockUpstream, int]) -> None:
    upstream, port = mock
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    spec = request_for(SCENARIOS["f"], "direct")
    body = spec.body
    head = f"POST {FAILOVER_PRIMARY.base_path()}/v1/messages HTTP/1.1\r\nhost: x\r\ncontent-length: {len(body)}\r\n\r\n"
    writer.write(head.encode() + body)
    answer = (await reader.readuntil(b"\r\n\r\n")).decode().lower()
    writer.close()
    assert answer.startswith("http/1.1 429")
    assert "retry-after: 0\r\n" in answer
    assert upstream.stats["status_429"] == 1


async def test_wrong_answers_count_as_errors(mock: tuple[MockUpstream, int]) -> None:
    """The load generator aimed at the mock's 404 route must report errors, not successes."""
    _, port = mock
    spec = request_for(SCENARIOS["a"], "proxy")  # /v1/messages without a profile: the mock says 404
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(spec.wire_request("127.0.0.1", port))
    with pytest.raises(loadgen.ResponseError, match="HTTP 404"):
        await loadgen.read_response(reader, spec.checker())
    writer.close()


async def test_mock_stats_endpoint(mock: tuple[MockUpstream, int]) -> None:
    _, port = mock
    answer = await loadgen.http_get("127.0.0.1", port, "/_stats")
    assert answer["status"] == 200 and orjson.loads(answer["body"])["requests"] == 1


def test_failover_requests_carry_a_new_model_name_each_time() -> None:
    spec = request_for(SCENARIOS["f"], "proxy")
    first, second = spec.wire_request("h", 1, 1), spec.wire_request("h", 1, 2)
    assert b'"model":"bench-f-1"' in first and b'"model":"bench-f-2"' in second
    length = int(first.split(b"content-length: ")[1].split(b"\r\n")[0])
    assert length == len(first.split(b"\r\n\r\n", 1)[1])


def test_main_config_routes_each_scenario_to_its_provider_only() -> None:
    settings = parse_settings(__import__("tomllib").loads(proxy_config("http://127.0.0.1:9", 8082)), "bench.toml")
    assert not settings.history_enabled
    for key in "abcde":
        serving = [p.name for p in settings.providers if p.variants_for(f"bench-{key}", None)]
        assert len(serving) == 1 and serving[0].startswith(f"{key}-"), serving
    openai = next(p for p in settings.providers if p.kind == "openai")
    assert openai.base_url is not None and openai.base_url.endswith("/v1")


def test_failover_config_tries_the_429_primary_first_for_any_model() -> None:
    config = proxy_config("http://127.0.0.1:9", 8082, "f")
    settings = parse_settings(__import__("tomllib").loads(config), "bench.toml")
    names = [p.name for p in settings.providers if p.variants_for("bench-f-17", None)]
    assert names == ["f-primary", "f-secondary"]
    assert FAILOVER_PRIMARY.segment() in (settings.providers[0].base_url or "")


def test_failover_scenario_refuses_to_share_a_proxy() -> None:
    with pytest.raises(ValueError, match="own"):
        proxy_config("http://127.0.0.1:9", 8082, "af")


def test_proc_readers_see_this_process() -> None:
    assert procstat.cpu_ns(os.getpid()) > 0
    assert procstat.rss_kb(os.getpid()) > 1000
    assert procstat.cpu_ns(2**22 + 12345) == 0
