"""Gemini adapter against the Gemini mock over loopback HTTP: translation on the wire, signatures, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from anthropic.types import Message

from ccm_tui.config import ProviderSettings, RoutingSettings
from ccm_tui.core.contract import MessageReply, ProxyRequest, Route, StreamReply, UpstreamError, Variant
from ccm_tui.core.states import ErrorOrigin, TransportFailure
from ccm_tui.providers.gemini import GeminiProvider, gemini_base_url
from tests.mocks.anthropic_script import parse_sse, stream_grammar_problem
from tests.mocks.cloud_mocks import GeminiMock
from tests.stream_helpers import read_all, sdk_message

ROUTE = Route("gemini", Variant("gemini-2.5-pro"))


@pytest.fixture
async def mock() -> AsyncIterator[GeminiMock]:
    async with GeminiMock() as server:
        assert isinstance(server, GeminiMock)
        yield server


@pytest.fixture
async def provider(mock: GeminiMock, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[GeminiProvider]:
    monkeypatch.setenv("CCM_TEST_GEMINI_KEY", GeminiMock.api_key)
    settings = ProviderSettings(name="gemini", kind="gemini", base_url=mock.url, api_key_env="CCM_TEST_GEMINI_KEY")
    adapter = GeminiProvider(settings, RoutingSettings())
    yield adapter
    await adapter.aclose()


def make_request(stream: bool = True, messages: list[dict[str, Any]] | None = None, **extra: Any) -> ProxyRequest:
    body: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 32000,
        "stream": stream,
        "system": [{"type": "text", "text": "You are helpful."}],
        "messages": messages or [{"role": "user", "content": "Hello"}],
        **extra,
    }
    return ProxyRequest("req_1", body, orjson.dumps(body), body["model"], "sonnet", stream)


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        (None, "https://generativelanguage.googleapis.com/v1beta"),
        ("https://generativelanguage.googleapis.com", "https://generativelanguage.googleapis.com/v1beta"),
        ("http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1"),
        ("http://127.0.0.1:9/v1alpha/", "http://127.0.0.1:9/v1alpha"),
    ],
)
def test_base_url(base_url: str | None, expected: str):
    assert gemini_base_url(base_url) == expected


async def test_text_stream_is_translated_to_anthropic_sse(provider: GeminiProvider, mock: GeminiMock):
    reply = await provider.send(make_request(), ROUTE)
    assert isinstance(reply, StreamReply)
    events = parse_sse(await read_all(reply))
    assert stream_grammar_problem(events) is None
    assert sdk_message(events).content[0].text == "Hello from the Gemini mock. How can I help?"
    assert reply.meter.completed and reply.meter.stop_reason == "end_turn"
    assert reply.meter.usage.input_tokens > 0 and reply.meter.usage.output_tokens == 11
    sent = mock.requests[0]
    assert sent.path == "/v1beta/models/gemini-2.5-pro:streamGenerateContent" and sent.query == {"alt": "sse"}
    assert sent.headers["x-goog-api-key"] == GeminiMock.api_key and "key" not in sent.query
    assert sent.json()["systemInstruction"] == {"parts": [{"text": "You are helpful."}]}


async def test_v1_base_url_works_too(mock: GeminiMock):
    settings = ProviderSettings(name="g", kind="gemini", base_url=mock.origin + "/v1")
    adapter = GeminiProvider(settings, RoutingSettings())
    adapter.set_api_key(GeminiMock.api_key)
    try:
        reply = await adapter.send(make_request(stream=False), ROUTE)
    finally:
        await adapter.aclose()
    assert isinstance(reply, MessageReply) and mock.requests[0].path.startswith("/v1/models/")


@pytest.mark.parametrize(
    ("scenario", "types", "stop_reason"),
    [
        ("tools", ["text", "tool_use"], "tool_use"),
        ("parallel_tools", ["tool_use", "tool_use"], "tool_use"),
        ("thinking", ["thinking", "text", "redacted_thinking"], "end_turn"),
    ],
)
async def test_scenarios_stream_and_non_stream_agree(
    provider: GeminiProvider, mock: GeminiMock, scenario: str, types: list[str], stop_reason: str
):
    mock.scenario = scenario
    streamed = sdk_message(parse_sse(await read_all(await provider.send(make_request(), ROUTE))))
    reply = await provider.send(make_request(stream=False), ROUTE)
    assert isinstance(reply, MessageReply)
    whole = Message.model_validate_json(reply.body)
    for message in (streamed, whole):
        assert [b.type for b in message.content] == types and message.stop_reason == stop_reason
    assert reply.usage.output_tokens == whole.usage.output_tokens > 0


async def test_thought_signature_is_echoed_back_on_the_next_request(provider: GeminiProvider, mock: GeminiMock):
    mock.scenario = "parallel_tools"
    first = sdk_message(parse_sse(await read_all(await provider.send(make_request(), ROUTE))))
    calls = [block.model_dump(exclude_none=True) for block in first.content]
    messages = [
        {"role": "user", "content": "weather and time?"},
        {"role": "assistant", "content": calls},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": calls[0]["id"], "content": "sunny"},
                {"type": "tool_result", "tool_use_id": calls[1]["id"], "content": "noon"},
            ],
        },
    ]
    mock.scenario = "text"
    await read_all(await provider.send(make_request(messages=messages), ROUTE))
    model_turn = mock.requests[-1].json()["contents"][1]
    assert model_turn["parts"][0]["thoughtSignature"] in mock.issued_signatures
    assert "thoughtSignature" not in model_turn["parts"][1]
    responses = mock.requests[-1].json()["contents"][2]["parts"]
    assert [r["functionResponse"]["name"] for r in responses] == ["get_weather", "get_time"]


async def test_a_lost_signature_is_what_gemini_rejects(provider: GeminiProvider, mock: GeminiMock):
    # Guard for the test above: the mock does reject a corrupted signature.
    messages = [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1__gsig_Zm9v", "name": "a", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1__gsig_Zm9v", "content": "r"}]},
    ]
    with pytest.raises(UpstreamError) as caught:
        await provider.send(make_request(messages=messages), ROUTE)
    assert caught.value.status == 400 and "Corrupted thought signature" in caught.value.message


async def test_history_from_another_provider_continues(provider: GeminiProvider, mock: GeminiMock):
    messages = [
        {"role": "user", "content": "list"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "t", "signature": "EqQBCkgIARABGAIiQL2b8Yc0mHcS"},
                {"type": "tool_use", "id": "call_abc.123", "name": "Bash", "input": {"command": "ls"}},
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_abc.123", "content": "a.txt"}]},
    ]
    events = parse_sse(await read_all(await provider.send(make_request(messages=messages), ROUTE)))
    assert stream_grammar_problem(events) is None


async def test_tool_schemas_are_cleaned_before_sending(provider: GeminiProvider, mock: GeminiMock):
    tools = [
        {
            "name": "Edit",
            "description": "Edit a file",
            "input_schema": {
                "$schema": "http://json-schema.org/draft-07/schema#",
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "path": {"type": "string", "format": "uri"},
                    "count": {"type": "integer", "exclusiveMinimum": 0},
                    "opts": {"type": "object", "properties": {"x": {"type": "boolean"}}, "additionalProperties": False},
                },
                "required": ["path"],
            },
        }
    ]
    reply = await provider.send(make_request(stream=False, tools=tools), ROUTE)
    assert isinstance(reply, MessageReply)
    parameters = mock.requests[0].json()["tools"][0]["functionDeclarations"][0]["parameters"]
    assert "additionalProperties" not in orjson.dumps(parameters).decode()


async def test_tool_loop_scenario_echoes_the_function_response(provider: GeminiProvider, mock: GeminiMock):
    mock.scenario = "tool_loop"
    first = Message.model_validate_json((await provider.send(make_request(stream=False), ROUTE)).body)  # type: ignore[union-attr]
    call = first.content[0]
    assert call.type == "tool_use" and call.name == "Bash"
    messages = [
        {"role": "user", "content": "run"},
        {"role": "assistant", "content": [call.model_dump(exclude_none=True)]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "ccm-mock-ran-this"}]},
    ]
    events = parse_sse(await read_all(await provider.send(make_request(messages=messages), ROUTE)))
    assert sdk_message(events).content[0].text == "The tool returned: ccm-mock-ran-this"


@pytest.mark.parametrize(
    ("scenario", "status", "error_type", "retry_after", "long_quota"),
    [
        ("rate_limit", 429, "RESOURCE_EXHAUSTED", 37.0, False),
        ("quota_day", 429, "RESOURCE_EXHAUSTED", 5400.0, True),
        ("auth", 403, "PERMISSION_DENIED", None, False),
        ("overloaded", 503, "UNAVAILABLE", None, False),
    ],
)
async def test_google_errors_are_normalised(
    provider: GeminiProvider,
    mock: GeminiMock,
    scenario: str,
    status: int,
    error_type: str,
    retry_after: float | None,
    long_quota: bool,
):
    mock.scenario = scenario
    with pytest.raises(UpstreamError) as caught:
        await provider.send(make_request(), ROUTE)
    error = caught.value
    assert (error.status, error.error_type, error.retry_after, error.long_quota) == (
        status,
        error_type,
        retry_after,
        long_quota,
    )


async def test_invalid_api_key_is_an_authentication_failure(provider: GeminiProvider, mock: GeminiMock):
    provider.set_api_key("AIza-wrong")
    with pytest.raises(UpstreamError) as caught:
        await provider.send(make_request(), ROUTE)
    assert (caught.value.status, caught.value.error_type, caught.value.error_code) == (
        401,
        "UNAUTHENTICATED",
        "API_KEY_INVALID",
    )
    assert "AIza-wrong" not in caught.value.message


async def test_no_key_fails_without_calling_the_upstream(mock: GeminiMock, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    adapter = GeminiProvider(ProviderSettings(name="g", kind="gemini", base_url=mock.url), RoutingSettings())
    try:
        assert adapter.has_credentials is False
        with pytest.raises(UpstreamError) as caught:
            await adapter.send(make_request(), ROUTE)
    finally:
        await adapter.aclose()
    assert caught.value.status == 401 and mock.requests == []


async def test_error_inside_the_stream_raises_after_the_first_text(provider: GeminiProvider, mock: GeminiMock):
    mock.scenario = "mid_stream_error"
    reply = await provider.send(make_request(), ROUTE)
    received = b""
    with pytest.raises(UpstreamError) as caught:
        async for chunk in reply:
            received += chunk
    await reply.aclose()
    assert b'"text":"Hello from"' in received
    assert (caught.value.status, caught.value.error_type) == (503, "UNAVAILABLE")


async def test_connection_cut_mid_stream_raises_a_transport_error(provider: GeminiProvider, mock: GeminiMock):
    mock.scenario = "mid_stream_cut"
    reply = await provider.send(make_request(), ROUTE)
    with pytest.raises(UpstreamError) as caught:
        async for _ in reply:
            pass
    await reply.aclose()
    assert caught.value.origin is ErrorOrigin.TRANSPORT and caught.value.transport is TransportFailure.READ


async def test_closing_the_reply_aborts_the_upstream_stream(provider: GeminiProvider, mock: GeminiMock):
    mock.chunk_delay = 0.1
    reply = await provider.send(make_request(), ROUTE)
    await anext(reply.__aiter__())
    await reply.aclose()
    await mock.aborted.wait()
    assert mock.aborts == 1


async def test_count_tokens(provider: GeminiProvider, mock: GeminiMock):
    count = await provider.count_tokens(make_request(stream=False), ROUTE)
    assert isinstance(count, int) and count > 0
    sent = mock.requests[0]
    assert sent.path == "/v1beta/models/gemini-2.5-pro:countTokens"
    assert sent.json()["generateContentRequest"]["model"] == "models/gemini-2.5-pro"
    mock.scenario = "rate_limit"
    assert await provider.count_tokens(make_request(stream=False), ROUTE) is None
