"""The OpenAI-compatible adapter against real OpenAI-family mock servers on loopback (demo/upstreams.OpenAIMock)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx2
import orjson
import pytest

from ccm_tui.config import ProviderSettings, RoutingSettings
from ccm_tui.core.contract import MessageReply, ProxyRequest, Route, StreamReply, UpstreamError, Variant
from ccm_tui.core.states import ErrorOrigin, TransportFailure
from ccm_tui.providers.openai import OpenAIProvider
from tests.mocks.upstreams import OpenAIMock

KEY = "sk-test-0123456789abcdef"
BASH = {
    "name": "Bash",
    "description": "Run a shell command",
    "input_schema": {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {"command": {"type": "string"}},
        "required": ["command"],
        "additionalProperties": False,
    },
    "cache_control": {"type": "ephemeral"},
}


def request(*, stream: bool, **body: Any) -> ProxyRequest:
    full = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 128000,
        "stream": stream,
        "system": [{"type": "text", "text": "You are Claude Code."}],
        "messages": [{"role": "user", "content": "hello"}],
        "metadata": {"user_id": "user-1"},
        **body,
    }
    return ProxyRequest(
        request_id="req-test",
        body=full,
        raw_body=orjson.dumps(full),
        model="claude-sonnet-4-5",
        tier="sonnet",
        stream=stream,
    )


def route(model: str = "mock-large") -> Route:
    return Route(provider="upstream", variant=Variant(model))


def provider_for(mock: OpenAIMock, *, key: str | None = KEY, **settings: Any) -> OpenAIProvider:
    config = ProviderSettings(
        name="upstream",
        kind="openai",
        base_url=mock.url,
        api_key_env="UPSTREAM_KEY",
        vendor=mock.vendor,
        models={"default": (Variant("mock-large"),)},
        **settings,
    )
    provider = OpenAIProvider(config, RoutingSettings(connect_timeout=2.0, idle_timeout=5.0))
    provider.set_api_key(key)
    return provider


@pytest.fixture
async def mock(request: pytest.FixtureRequest) -> AsyncIterator[OpenAIMock]:
    vendor = getattr(request, "param", "openai")
    server = OpenAIMock(vendor=vendor, seed=1)
    server.text = "Hello from the mock upstream."
    await server.start()
    yield server
    await server.stop()


async def read_all(reply: StreamReply) -> bytes:
    try:
        return b"".join([part async for part in reply])
    finally:
        await reply.aclose()


def sdk_final_message(data: bytes) -> anthropic.types.Message:
    """The official anthropic SDK's accumulator over these bytes (in-memory transport, no network)."""

    def handler(_: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=data, headers={"content-type": "text/event-stream"})

    client = anthropic.Anthropic(
        api_key="test",
        base_url="http://sdk.invalid",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )
    with client.messages.stream(model="claude-test", max_tokens=10, messages=[{"role": "user", "content": "x"}]) as s:
        return s.get_final_message()


# --- success paths --------------------------------------------------------------------------------------------


async def test_streamed_reply_is_anthropic_sse_that_the_sdk_accepts(mock: OpenAIMock) -> None:
    mock.input_tokens, mock.output_tokens, mock.cache_read_input_tokens = 40, 6, 100
    provider = provider_for(mock)
    try:
        reply = await provider.send(request(stream=True), route())
        assert isinstance(reply, StreamReply)
        data = await read_all(reply)
    finally:
        await provider.aclose()
    message = sdk_final_message(data)
    assert message.content[0].text == "Hello from the mock upstream."
    assert message.model == "claude-sonnet-4-5" and message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens, message.usage.output_tokens) == (
        40,
        100,
        6,
    )
    assert reply.meter.completed and reply.meter.usage.output_tokens == 6 and reply.meter.model == "mock-large"
    assert reply.headers["x-ratelimit-limit-requests"]

    sent = mock.requests[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    body = sent.json()
    assert body["model"] == "mock-large" and body["stream_options"] == {"include_usage": True}
    assert body["messages"][0] == {"role": "system", "content": "You are Claude Code."}
    assert body["max_completion_tokens"] == 128000 and "max_tokens" not in body


async def test_non_streamed_reply_is_an_anthropic_message(mock: OpenAIMock) -> None:
    mock.input_tokens, mock.output_tokens = 12, 5
    provider = provider_for(mock)
    try:
        reply = await provider.send(request(stream=False), route())
    finally:
        await provider.aclose()
    assert isinstance(reply, MessageReply)
    message = anthropic.types.Message.model_validate(orjson.loads(reply.body))
    assert message.content[0].text == "Hello from the mock upstream."
    assert message.model == "claude-sonnet-4-5" and reply.model == "mock-large"
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (12, 5)
    assert "x-request-id" in reply.headers


async def test_streamed_tool_call_reaches_the_client_as_tool_use(mock: OpenAIMock) -> None:
    mock.script("tools")
    provider = provider_for(mock)
    try:
        data = await read_all(await provider.send(request(stream=True, tools=[BASH]), route()))
    finally:
        await provider.aclose()
    message = sdk_final_message(data)
    tool_use = [block for block in message.content if block.type == "tool_use"]
    assert len(tool_use) == 1 and tool_use[0].name == "Bash" and "command" in tool_use[0].input
    assert tool_use[0].id.startswith("call_")
    assert message.stop_reason == "tool_use"
    sent_tool = mock.requests[0].json()["tools"][0]
    assert sent_tool["function"]["name"] == "Bash" and "cache_control" not in sent_tool


async def test_parallel_tool_calls_become_two_tool_use_blocks(mock: OpenAIMock) -> None:
    mock.script("parallel_tools")
    provider = provider_for(mock)
    second = {**BASH, "name": "Read", "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}}
    try:
        data = await read_all(await provider.send(request(stream=True, tools=[BASH, second]), route()))
    finally:
        await provider.aclose()
    names = [block.name for block in sdk_final_message(data).content if block.type == "tool_use"]
    assert names == ["Bash", "Read"]


@pytest.mark.parametrize("mock", ["groq"], indirect=True)
async def test_groq_stream_usage_comes_from_x_groq(mock: OpenAIMock) -> None:
    mock.input_tokens, mock.output_tokens = 33, 4
    provider = provider_for(mock)
    try:
        reply = await provider.send(request(stream=True), route())
        await read_all(reply)
    finally:
        await provider.aclose()
    assert (reply.meter.usage.input_tokens, reply.meter.usage.output_tokens) == (33, 4)
    assert mock.requests[0].path == "/openai/v1/chat/completions"


@pytest.mark.parametrize("mock", ["openrouter"], indirect=True)
async def test_openrouter_stream_with_keepalive_comments_and_title_header(mock: OpenAIMock) -> None:
    provider = provider_for(mock)
    try:
        data = await read_all(await provider.send(request(stream=True), route("anthropic/claude-sonnet-4.5")))
    finally:
        await provider.aclose()
    assert sdk_final_message(data).content[0].text == "Hello from the mock upstream."
    sent = mock.requests[0]
    assert sent.headers["x-title"] == "ccm-tui"
    assert sent.json()["max_tokens"] == 32000  # OpenRouter reserves credit for max_tokens: capped


@pytest.mark.parametrize("mock", ["github"], indirect=True)
async def test_github_models_headers_and_output_cap(mock: OpenAIMock) -> None:
    provider = provider_for(mock)
    try:
        await read_all(await provider.send(request(stream=True), route("openai/gpt-4.1")))
    finally:
        await provider.aclose()
    sent = mock.requests[0]
    assert sent.path == "/inference/chat/completions"
    assert sent.headers["x-github-api-version"] == "2022-11-28"
    assert sent.json()["max_tokens"] == 4000


@pytest.mark.parametrize("mock", ["gemini"], indirect=True)
async def test_gemini_compat_gets_a_body_it_accepts(mock: OpenAIMock) -> None:
    provider = provider_for(mock)
    body = {"tools": [BASH], "tool_choice": {"type": "auto", "disable_parallel_tool_use": True}}
    try:
        await read_all(await provider.send(request(stream=True, **body), route("gemini-2.5-flash")))
    finally:
        await provider.aclose()
    sent = mock.requests[0].json()
    assert "parallel_tool_calls" not in sent and "user" not in sent
    parameters = sent["tools"][0]["function"]["parameters"]
    assert "$schema" not in parameters and "additionalProperties" not in parameters


async def test_configured_max_output_tokens_and_headers_apply(mock: OpenAIMock) -> None:
    provider = provider_for(mock, max_output_tokens=2048, headers={"OpenAI-Organization": "org-1"})
    try:
        await provider.send(request(stream=False), route())
    finally:
        await provider.aclose()
    sent = mock.requests[0]
    assert sent.json()["max_completion_tokens"] == 2048
    assert sent.headers["openai-organization"] == "org-1"


# --- failures before the first byte ---------------------------------------------------------------------------

VENDOR_RATE_LIMITS = [
    ("openai", "rate_limit_exceeded"),
    ("groq", "rate_limit_exceeded"),
    ("cerebras", "request_quota_exceeded"),
    ("openrouter", None),
    ("github", "RateLimitReached"),
    ("gemini", "RESOURCE_EXHAUSTED"),
]


@pytest.mark.parametrize(("mock", "code"), VENDOR_RATE_LIMITS, indirect=["mock"])
async def test_rate_limit_is_an_upstream_error_with_vendor_code_and_headers(mock: OpenAIMock, code: str | None) -> None:
    mock.retry_after = 3.0
    mock.script("rate_limit")
    provider = provider_for(mock)
    try:
        with pytest.raises(UpstreamError) as caught:
            await provider.send(request(stream=True), route())
    finally:
        await provider.aclose()
    error = caught.value
    assert error.status == 429 and error.error_code == code
    assert error.headers.get("retry-after") == "3"
    assert KEY not in error.message


@pytest.mark.parametrize(
    ("scenario", "status", "error_type"),
    [
        ("auth", 401, "invalid_request_error"),
        ("spend_limit", 429, "insufficient_quota"),
        ("server_error", 500, "server_error"),
    ],
)
async def test_openai_error_statuses(mock: OpenAIMock, scenario: str, status: int, error_type: str | None) -> None:
    mock.script(scenario)
    provider = provider_for(mock)
    try:
        with pytest.raises(UpstreamError) as caught:
            await provider.send(request(stream=False), route())
    finally:
        await provider.aclose()
    assert caught.value.status == status
    if error_type:
        assert caught.value.error_type == error_type


async def test_missing_key_is_rejected_by_the_upstream(mock: OpenAIMock) -> None:
    provider = provider_for(mock, key=None)
    assert not provider.has_credentials
    try:
        with pytest.raises(UpstreamError) as caught:
            await provider.send(request(stream=False), route())
    finally:
        await provider.aclose()
    assert caught.value.status == 401
    assert "authorization" not in mock.requests[0].headers


async def test_connection_refused_is_a_transport_error() -> None:
    server = await OpenAIMock().start()
    provider = provider_for(server)
    await server.stop()  # nothing listens on that port any more
    try:
        with pytest.raises(UpstreamError) as caught:
            await provider.send(request(stream=True), route())
    finally:
        await provider.aclose()
    assert caught.value.origin is ErrorOrigin.TRANSPORT and caught.value.transport is TransportFailure.CONNECT


# --- failures while streaming ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scenario", "message"),
    [
        ("mid_stream_error", "server had an error"),
        ("mid_stream_cut", None),
        ("malformed_chunk", "malformed chunk from upstream"),
    ],
)
async def test_stream_failure_after_first_bytes_raises_from_the_iterator(
    mock: OpenAIMock, scenario: str, message: str | None
) -> None:
    mock.script(scenario)
    provider = provider_for(mock)
    received: list[bytes] = []
    try:
        reply = await provider.send(request(stream=True), route())
        with pytest.raises(UpstreamError, match=message) as caught:
            async for part in reply:
                received.append(part)
        await reply.aclose()
    finally:
        await provider.aclose()
    assert b"".join(received).startswith(b"event: message_start")
    assert not reply.meter.completed
    assert caught.value.origin is not ErrorOrigin.HTTP


@pytest.mark.parametrize("mock", ["openrouter"], indirect=True)
async def test_openrouter_mid_stream_error_chunk_raises(mock: OpenAIMock) -> None:
    mock.script("mid_stream_error")
    provider = provider_for(mock)
    try:
        reply = await provider.send(request(stream=True), route())
        with pytest.raises(UpstreamError, match="Provider returned error") as caught:
            await read_all(reply)
    finally:
        await provider.aclose()
    assert caught.value.origin is ErrorOrigin.STREAM


async def test_non_streamed_cut_and_malformed_bodies_raise(mock: OpenAIMock) -> None:
    mock.script("mid_stream_cut", "malformed_chunk")
    provider = provider_for(mock)
    try:
        with pytest.raises(UpstreamError) as cut:
            await provider.send(request(stream=False), route())
        with pytest.raises(UpstreamError, match="malformed JSON") as malformed:
            await provider.send(request(stream=False), route())
    finally:
        await provider.aclose()
    assert cut.value.origin is ErrorOrigin.TRANSPORT and malformed.value.origin is ErrorOrigin.REPLY


async def test_client_disconnect_closes_the_upstream_at_once(mock: OpenAIMock) -> None:
    mock.text = " ".join(["word"] * 400)
    mock.words_per_chunk = 1
    mock.chunk_delay = 0.01
    provider = provider_for(mock)
    try:
        reply = await provider.send(request(stream=True), route())
        first = await reply.__aiter__().__anext__()
        assert first.startswith(b"event: message_start")
        await reply.aclose()  # what the proxy does when Claude Code goes away
        await asyncio.wait_for(mock.aborted.wait(), timeout=2.0)
    finally:
        await provider.aclose()
    assert mock.aborts == 1


# --- credentials and quirks -----------------------------------------------------------------------------------


async def test_credentials() -> None:
    custom = ProviderSettings(name="local", kind="openai", base_url="http://127.0.0.1:1/v1")
    keyless = OpenAIProvider(custom, RoutingSettings())
    assert keyless.has_credentials  # a custom endpoint with no key variable is taken to be keyless
    needs_key = OpenAIProvider(
        ProviderSettings(name="oa", kind="openai", base_url="https://api.openai.com/v1", api_key_env="OPENAI_API_KEY"),
        RoutingSettings(),
    )
    assert not needs_key.has_credentials
    needs_key.set_api_key("sk-x")
    assert needs_key.has_credentials
    needs_key.set_api_key(None)
    assert not needs_key.has_credentials
    await keyless.aclose()
    await needs_key.aclose()


async def test_gemini_kind_without_base_url_uses_the_openai_compatible_endpoint() -> None:
    settings = ProviderSettings(name="gemini", kind="gemini", api_key_env="GEMINI_API_KEY")
    provider = OpenAIProvider(settings, RoutingSettings())
    await provider.aclose()
    assert provider.endpoint == "https://generativelanguage.googleapis.com/v1beta/openai/chat/completions"


async def test_count_tokens_has_no_native_counter(mock: OpenAIMock) -> None:
    provider = provider_for(mock)
    try:
        assert await provider.count_tokens(request(stream=False), route()) is None
    finally:
        await provider.aclose()
    assert mock.requests == []
