"""Vertex adapter against the Vertex mock (which is also the service account's OAuth token endpoint)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from anthropic.types import Message

from ccm_tui.config import ProviderSettings, RoutingSettings
from ccm_tui.core.contract import MessageReply, Route, StreamReply, UpstreamError, Variant
from ccm_tui.core.states import ErrorOrigin, TransportFailure
from ccm_tui.providers.vertex import VertexProvider, vertex_base_url
from tests.mocks.anthropic_script import parse_sse, stream_grammar_problem
from tests.mocks.cloud_mocks import VertexMock
from tests.stream_helpers import make_request, read_all, sdk_message

MODEL = "claude-sonnet-4-5@20250929"
ROUTE = Route("vertex", Variant(MODEL))


@pytest.fixture
async def mock() -> AsyncIterator[VertexMock]:
    async with VertexMock() as server:
        assert isinstance(server, VertexMock)
        yield server


@pytest.fixture
async def provider(mock: VertexMock, tmp_path: Path) -> AsyncIterator[VertexProvider]:
    credentials = mock.write_service_account(tmp_path / "sa.json")
    settings = ProviderSettings(
        name="vertex",
        kind="vertex",
        base_url=mock.url,
        region="us-east5",
        project="mock-project",
        credentials_file=str(credentials),
    )
    adapter = VertexProvider(settings, RoutingSettings())
    yield adapter
    await adapter.aclose()


@pytest.mark.parametrize(
    ("region", "expected"),
    [
        ("global", "https://aiplatform.googleapis.com/v1"),
        ("us", "https://aiplatform.us.rep.googleapis.com/v1"),
        ("eu", "https://aiplatform.eu.rep.googleapis.com/v1"),
        ("us-east5", "https://us-east5-aiplatform.googleapis.com/v1"),
    ],
)
def test_base_url_by_region(region: str, expected: str):
    assert vertex_base_url(region) == expected


async def test_stream_passes_anthropic_sse_through_and_meters_it(provider: VertexProvider, mock: VertexMock):
    reply = await provider.send(make_request(), ROUTE)
    assert isinstance(reply, StreamReply)
    events = parse_sse(await read_all(reply))
    assert stream_grammar_problem(events) is None
    assert sdk_message(events).content[0].text == "Hello from the Vertex mock. How can I help?"
    assert reply.meter.completed and reply.meter.stop_reason == "end_turn"
    assert reply.meter.usage.input_tokens > 0 and reply.meter.model == MODEL


async def test_request_goes_to_stream_raw_predict_with_vertex_body(provider: VertexProvider, mock: VertexMock):
    betas = ("claude-code-20250219", "context-management-2025-06-27")
    await read_all(await provider.send(make_request(betas=betas), ROUTE))
    sent = mock.requests[-1]
    assert (
        sent.path
        == f"/v1/projects/mock-project/locations/us-east5/publishers/anthropic/models/{MODEL}:streamRawPredict"
    )
    body = sent.json()
    assert body["anthropic_version"] == "vertex-2023-10-16" and body["stream"] is True
    assert "model" not in body and "metadata" not in body
    assert sent.headers["anthropic-beta"] == "context-management-2025-06-27"
    assert sent.headers["authorization"].startswith("Bearer ya29.mock-")


async def test_oauth_token_is_fetched_once_and_cached(provider: VertexProvider, mock: VertexMock):
    await asyncio.gather(*(provider.send(make_request(stream=False), ROUTE) for _ in range(4)))
    await provider.send(make_request(stream=False), ROUTE)
    assert mock.token_requests == 1
    assert len(mock.issued_tokens) == 1
    assert len(mock.requests) == 5


async def test_token_near_expiry_is_refreshed(provider: VertexProvider, mock: VertexMock):
    mock.token_lifetime = 60  # inside the refresh margin: every request needs a new token
    await provider.send(make_request(stream=False), ROUTE)
    await provider.send(make_request(stream=False), ROUTE)
    assert mock.token_requests == 2


@pytest.mark.parametrize(
    ("scenario", "types", "stop_reason"),
    [
        ("tools", ["text", "tool_use"], "tool_use"),
        ("parallel_tools", ["tool_use", "tool_use"], "tool_use"),
        ("thinking", ["thinking", "text"], "end_turn"),
    ],
)
async def test_non_streaming_scenarios_parse_with_the_sdk(
    provider: VertexProvider, mock: VertexMock, scenario: str, types: list[str], stop_reason: str
):
    mock.scenario = scenario
    reply = await provider.send(make_request(stream=False), ROUTE)
    assert isinstance(reply, MessageReply)
    message = Message.model_validate_json(reply.body)
    assert [b.type for b in message.content] == types and message.stop_reason == stop_reason
    assert reply.usage.input_tokens == message.usage.input_tokens
    assert mock.requests[-1].path.endswith(":rawPredict") and "stream" not in mock.requests[-1].json()


@pytest.mark.parametrize(
    ("scenario", "stream", "status", "error_type"),
    [
        ("rate_limit", True, 429, "RESOURCE_EXHAUSTED"),  # streamRawPredict errors come as a JSON array
        ("rate_limit", False, 429, "RESOURCE_EXHAUSTED"),
        ("auth", False, 403, "PERMISSION_DENIED"),
        ("precondition", False, 403, "FAILED_PRECONDITION"),
        ("overloaded", True, 503, "UNAVAILABLE"),
    ],
)
async def test_google_errors_are_normalised(
    provider: VertexProvider, mock: VertexMock, scenario: str, stream: bool, status: int, error_type: str
):
    mock.scenario = scenario
    with pytest.raises(UpstreamError) as caught:
        await provider.send(make_request(stream=stream), ROUTE)
    assert (caught.value.status, caught.value.error_type) == (status, error_type)


async def test_rejected_token_is_refetched_next_time(provider: VertexProvider, mock: VertexMock):
    await provider.send(make_request(stream=False), ROUTE)
    mock.issued_tokens.clear()  # the service forgets the token (revoked)
    with pytest.raises(UpstreamError) as caught:
        await provider.send(make_request(stream=False), ROUTE)
    assert (caught.value.status, caught.value.error_type) == (401, "UNAUTHENTICATED")
    await provider.send(make_request(stream=False), ROUTE)
    assert mock.token_requests == 2


async def test_missing_credentials_file_is_an_auth_failure(mock: VertexMock, tmp_path: Path):
    settings = ProviderSettings(
        name="v",
        kind="vertex",
        base_url=mock.url,
        region="global",
        project="p",
        credentials_file=str(tmp_path / "none.json"),
    )
    adapter = VertexProvider(settings, RoutingSettings())
    try:
        with pytest.raises(UpstreamError) as caught:
            await adapter.send(make_request(), ROUTE)
    finally:
        await adapter.aclose()
    assert caught.value.status == 401 and adapter.has_credentials is False
    assert mock.requests == []


async def test_mid_stream_error_event_passes_through_to_the_meter(provider: VertexProvider, mock: VertexMock):
    mock.scenario = "mid_stream_error"
    reply = await provider.send(make_request(), ROUTE)
    events = parse_sse(await read_all(reply))
    assert events[-1]["type"] == "error"
    assert reply.meter.error_type == "overloaded_error" and not reply.meter.completed


async def test_connection_cut_mid_stream_raises_from_the_iterator(provider: VertexProvider, mock: VertexMock):
    mock.scenario = "mid_stream_cut"
    reply = await provider.send(make_request(), ROUTE)
    received = b""
    with pytest.raises(UpstreamError) as caught:
        async for chunk in reply:
            received += chunk
    await reply.aclose()
    assert received.startswith(b"event: message_start")
    assert caught.value.origin is ErrorOrigin.TRANSPORT and caught.value.transport is TransportFailure.READ


async def test_closing_the_reply_aborts_the_upstream_stream(provider: VertexProvider, mock: VertexMock):
    mock.chunk_delay = 0.05
    reply = await provider.send(make_request(), ROUTE)
    await anext(reply.__aiter__())
    await reply.aclose()
    await mock.aborted.wait()
    assert mock.aborts == 1


async def test_tool_loop_scenario_answers_with_the_tool_result(provider: VertexProvider, mock: VertexMock):
    mock.scenario = "tool_loop"
    first = Message.model_validate_json((await provider.send(make_request(stream=False), ROUTE)).body)  # type: ignore[union-attr]
    call = first.content[0]
    assert call.type == "tool_use" and call.name == "Bash" and call.input["command"] == "echo ccm-mock-ran-this"
    messages = [
        {"role": "user", "content": "run it"},
        {"role": "assistant", "content": [call.model_dump(exclude_none=True)]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "ccm-mock-ran-this"}]},
    ]
    second = await provider.send(make_request(stream=False, messages=messages), ROUTE)
    assert "The tool returned: ccm-mock-ran-this" in Message.model_validate_json(second.body).content[0].text  # type: ignore[union-attr]


async def test_foreign_tool_ids_are_sanitised_before_sending(provider: VertexProvider, mock: VertexMock):
    messages = [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "call_abc.123", "name": "Bash", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_abc.123", "content": "ok"}]},
    ]
    reply = await provider.send(make_request(stream=False, messages=messages), ROUTE)
    assert isinstance(reply, MessageReply)


async def test_count_tokens_keeps_model_in_the_body(provider: VertexProvider, mock: VertexMock):
    count = await provider.count_tokens(make_request(stream=False), ROUTE)
    assert isinstance(count, int) and count > 0
    sent = mock.requests[-1]
    assert sent.path.endswith("/publishers/anthropic/models/count-tokens:rawPredict")
    assert sent.json()["model"] == MODEL
    mock.scenario = "rate_limit"
    assert await provider.count_tokens(make_request(stream=False), ROUTE) is None
