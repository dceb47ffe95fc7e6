"""The mock upstreams speak each vendor's wire format well enough for the official clients to parse them.

AnthropicMock is driven by the `anthropic` SDK, OpenAIMock (every vendor) by the `openai` SDK; raw httpx
checks the bytes the SDKs hide (event lines, ping placement, chunked encoding, comment lines, headers).
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx
import openai
import orjson
import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState

from ccm_tui.demo.scenarios import go_duration, split_words
from ccm_tui.translate.sse import SseParser
from tests.mocks.upstreams import VENDORS, AnthropicMock, OpenAIMock

MODEL = "claude-sonnet-4-6"
HELLO = [{"role": "user", "content": "Why does my test fail?"}]
REPLY = "Pass tzinfo=timezone.utc when you build expected, and the assertion holds."
GO_DURATION = re.compile(r"^(\d+h)?(\d+m)?(\d+(\.\d+)?s|\d+ms)$")
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
}
BASH = {
    "name": "Bash",
    "description": "Run a shell command",
    "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]},
}


_open_clients: list[anthropic.AsyncAnthropic | openai.AsyncOpenAI] = []


@pytest.fixture(autouse=True)
async def close_sdk_clients() -> AsyncIterator[None]:
    """Close every SDK client a test made while its loop still runs (else their finalisers log errors)."""
    yield
    while _open_clients:
        await _open_clients.pop().close()


@pytest.fixture
async def claude() -> AsyncIterator[AnthropicMock]:
    async with AnthropicMock(seed=1) as mock:
        assert isinstance(mock, AnthropicMock)
        mock.text = REPLY
        yield mock


def sdk(mock: AnthropicMock, **options: Any) -> anthropic.AsyncAnthropic:
    client = anthropic.AsyncAnthropic(api_key="sk-ant-test", base_url=mock.url, max_retries=0, **options)
    _open_clients.append(client)
    return client


async def raw_events(mock: AnthropicMock, body: dict[str, Any]) -> tuple[httpx.Response, list[tuple[str, Any]]]:
    headers = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{mock.url}/v1/messages?beta=true", json=body, headers=headers)
    events = SseParser().feed(response.content)
    return response, [(e.event, orjson.loads(e.data)) for e in events]


# --- Anthropic ----------------------------------------------------------------------------------------------


async def test_anthropic_stream_accumulates_in_the_sdk(claude: AnthropicMock) -> None:
    claude.input_tokens, claude.output_tokens, claude.cache_read_input_tokens = 377, 65, 12
    async with sdk(claude).messages.stream(model=MODEL, max_tokens=1024, messages=HELLO) as stream:
        pieces = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    assert len(pieces) > 3 and "".join(pieces) == REPLY
    assert final.model == MODEL and final.stop_reason == "end_turn"
    assert final.content[0].type == "text" and final.content[0].text == REPLY
    assert (final.usage.input_tokens, final.usage.output_tokens, final.usage.cache_read_input_tokens) == (377, 65, 12)


async def test_anthropic_stream_wire_format(claude: AnthropicMock) -> None:
    response, events = await raw_events(claude, {"model": MODEL, "max_tokens": 50, "messages": HELLO, "stream": True})
    assert response.headers["transfer-encoding"] == "chunked"
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["request-id"].startswith("req_")
    assert all(name == data["type"] for name, data in events)
    names = [name for name, _ in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-2:] == ["message_delta", "message_stop"]
    assert names.count("content_block_delta") == len(split_words(REPLY))
    assert events[0][1]["message"]["usage"]["output_tokens"] == 1
    assert events[-2][1]["usage"]["output_tokens"] > 1 and "input_tokens" in events[-2][1]["usage"]


async def test_anthropic_headers_report_a_shrinking_quota(claude: AnthropicMock) -> None:
    client = sdk(claude)
    first = await client.messages.with_raw_response.create(model=MODEL, max_tokens=10, messages=HELLO)
    second = await client.messages.with_raw_response.create(model=MODEL, max_tokens=10, messages=HELLO)
    for kind in ("requests", "tokens", "input-tokens", "output-tokens"):
        for suffix in ("limit", "remaining", "reset"):
            assert f"anthropic-ratelimit-{kind}-{suffix}" in first.headers
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", first.headers["anthropic-ratelimit-requests-reset"])
    remaining = [int(r.headers["anthropic-ratelimit-requests-remaining"]) for r in (first, second)]
    assert remaining[1] == remaining[0] - 1
    message = await second.parse()
    assert message.content[0].text == REPLY and message.id.startswith("msg_")


async def test_anthropic_tool_use_streams_a_leading_empty_fragment(claude: AnthropicMock) -> None:
    claude.scenario = "tools"
    async with sdk(claude).messages.stream(
        model=MODEL, max_tokens=1024, messages=HELLO, tools=[WEATHER, BASH]
    ) as stream:
        final = await stream.get_final_message()
    tool = final.content[-1]
    assert final.stop_reason == "tool_use"
    assert tool.type == "tool_use" and tool.name == "get_weather" and tool.input == {"location": "Paris"}
    assert tool.id.startswith("toolu_")
    _, events = await raw_events(claude, {"model": MODEL, "max_tokens": 9, "messages": HELLO, "stream": True})
    fragments = [d["delta"]["partial_json"] for _, d in events if d.get("delta", {}).get("type") == "input_json_delta"]
    assert fragments[0] == "" and len(fragments) > 2
    assert orjson.loads("".join(fragments)) == {"location": "Paris"}


async def test_anthropic_parallel_tools_and_made_up_weather_tool(claude: AnthropicMock) -> None:
    claude.scenario = "parallel_tools"
    message = await sdk(claude).messages.create(model=MODEL, max_tokens=100, messages=HELLO)
    calls = [block for block in message.content if block.type == "tool_use"]
    assert [c.name for c in calls] == ["get_weather", "get_weather"]
    assert [c.input for c in calls] == [{"location": "Paris"}, {"location": "Tokyo"}]
    assert calls[0].id != calls[1].id


async def test_anthropic_thinking_block_carries_a_signature(claude: AnthropicMock) -> None:
    claude.scenario = "thinking"
    async with sdk(claude).messages.stream(model=MODEL, max_tokens=2048, messages=HELLO) as stream:
        final = await stream.get_final_message()
    thinking, text = final.content
    assert thinking.type == "thinking" and thinking.thinking == claude.thinking_text and thinking.signature
    assert text.type == "text" and text.text == REPLY


async def test_anthropic_tool_loop_runs_the_tool_once_then_echoes_its_output(claude: AnthropicMock) -> None:
    claude.scenario = "tool_loop"
    client = sdk(claude)
    first = await client.messages.create(model=MODEL, max_tokens=100, messages=HELLO, tools=[BASH])
    call = first.content[-1]
    assert call.type == "tool_use" and call.name == "Bash" and call.input["command"] == "echo ccm-mock-ran-this"
    result = [
        {"type": "tool_result", "tool_use_id": call.id, "content": [{"type": "text", "text": "ccm-mock-ran-this"}]}
    ]
    history = [
        *HELLO,
        {"role": "assistant", "content": first.to_dict()["content"]},
        {"role": "user", "content": result},
    ]
    second = await client.messages.create(model=MODEL, max_tokens=100, messages=history, tools=[BASH])
    assert second.stop_reason == "end_turn" and "ccm-mock-ran-this" in second.content[0].text
    without_tools = await client.messages.create(model=MODEL, max_tokens=100, messages=HELLO)
    assert without_tools.stop_reason == "end_turn"


async def test_anthropic_long_reply_stops_at_max_tokens(claude: AnthropicMock) -> None:
    claude.scenario = "long"
    message = await sdk(claude).messages.create(model=MODEL, max_tokens=40, messages=HELLO)
    assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 40


async def test_anthropic_rate_limit_is_a_rate_limit_error_with_retry_after(claude: AnthropicMock) -> None:
    claude.script("rate_limit")
    claude.retry_after, claude.retry_after_ms_header = 7, True
    with pytest.raises(anthropic.RateLimitError) as caught:
        await sdk(claude).messages.create(model=MODEL, max_tokens=10, messages=HELLO)
    error = caught.value
    assert error.type == "rate_limit_error" and error.request_id and error.request_id.startswith("req_")
    assert error.response.headers["retry-after"] == "7" and error.response.headers["retry-after-ms"] == "7000"
    assert error.response.headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert error.response.headers["anthropic-ratelimit-tokens-remaining"] != "0"
    assert error.response.headers["x-should-retry"] == "true"
    again = await sdk(claude).messages.create(model=MODEL, max_tokens=10, messages=HELLO)
    assert again.content[0].text == REPLY  # the script is spent, the standing scenario applies


@pytest.mark.parametrize(
    ("scenario", "status", "error_type", "exception"),
    [
        ("spend_limit", 429, "rate_limit_error", anthropic.RateLimitError),
        ("billing", 402, "billing_error", anthropic.PaymentRequiredError),
        ("auth", 401, "authentication_error", anthropic.AuthenticationError),
        ("overloaded", 529, "overloaded_error", anthropic.OverloadedError),
        ("server_error", 500, "api_error", anthropic.InternalServerError),
        ("bad_request", 400, "invalid_request_error", anthropic.BadRequestError),
        ("context_length", 400, "invalid_request_error", anthropic.BadRequestError),
        ("too_large", 413, "request_too_large", anthropic.ContentTooLargeError),
    ],
)
async def test_anthropic_error_scenarios_parse_as_sdk_errors(
    claude: AnthropicMock, scenario: str, status: int, error_type: str, exception: type[Exception]
) -> None:
    claude.scenario = scenario
    with pytest.raises(exception) as caught:
        await sdk(claude).messages.create(model=MODEL, max_tokens=10, messages=HELLO)
    error = caught.value
    assert isinstance(error, anthropic.APIStatusError)
    assert error.status_code == status and error.type == error_type
    assert error.response.headers["request-id"] == error.request_id
    assert error.error_code == ("enforced_spend_limit_reached" if scenario == "spend_limit" else None)


async def test_anthropic_mid_stream_error_raises_after_content(claude: AnthropicMock) -> None:
    claude.scenario = "mid_stream_error"
    seen: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as caught:
        async with sdk(claude).messages.stream(model=MODEL, max_tokens=100, messages=HELLO) as stream:
            async for text in stream.text_stream:
                seen.append(text)
    assert seen and caught.value.type == "overloaded_error"


@pytest.mark.parametrize("scenario", ["mid_stream_cut", "malformed_chunk"])
async def test_anthropic_broken_streams_fail_in_the_sdk(claude: AnthropicMock, scenario: str) -> None:
    claude.scenario = scenario
    with pytest.raises(Exception) as caught:
        async with sdk(claude).messages.stream(model=MODEL, max_tokens=100, messages=HELLO) as stream:
            await stream.get_final_message()
    assert not isinstance(caught.value, AssertionError)


async def test_anthropic_rejects_missing_key_and_version(claude: AnthropicMock) -> None:
    body = {"model": MODEL, "max_tokens": 5, "messages": HELLO}
    async with httpx.AsyncClient(base_url=claude.url) as client:
        no_key = await client.post("/v1/messages", json=body, headers={"anthropic-version": "2023-06-01"})
        no_version = await client.post("/v1/messages", json=body, headers={"x-api-key": "k"})
        sampling = await client.post(
            "/v1/messages",
            json={**body, "temperature": 1.0},
            headers={"authorization": "Bearer k", "anthropic-version": "2026-10-21"},
        )
        bearer = await client.post(
            "/v1/messages", json=body, headers={"authorization": "Bearer k", "anthropic-version": "2026-10-21"}
        )
    assert no_key.status_code == 401 and no_key.json()["error"]["type"] == "authentication_error"
    assert no_version.status_code == 400 and "anthropic-version" in no_version.json()["error"]["message"]
    assert sampling.status_code == 400 and "temperature" in sampling.json()["error"]["message"]
    assert bearer.status_code == 200 and "anthropic-ratelimit-requests-remaining" in no_key.headers


async def test_anthropic_count_tokens_and_models(claude: AnthropicMock) -> None:
    client = sdk(claude)
    counted = await client.messages.count_tokens(model=MODEL, messages=HELLO)
    models = await client.models.list()
    assert counted.input_tokens > 0
    assert MODEL in [m.id for m in models.data]


async def test_slow_first_byte_returns_promptly_when_the_client_gives_up(claude: AnthropicMock) -> None:
    claude.scenario, claude.slow_seconds = "slow_first_byte", 30.0
    with pytest.raises(anthropic.APITimeoutError):
        await sdk(claude, timeout=0.2).messages.create(model=MODEL, max_tokens=10, messages=HELLO)
    await asyncio.wait_for(claude.aborted.wait(), 2)
    assert claude.aborts == 1


async def test_a_client_leaving_mid_stream_is_observed(claude: AnthropicMock) -> None:
    claude.chunk_delay = 0.02
    body = {"model": MODEL, "max_tokens": 50, "messages": HELLO, "stream": True}
    headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
    async with (
        httpx.AsyncClient() as client,
        client.stream("POST", f"{claude.url}/v1/messages", json=body, headers=headers) as response,
    ):
        async for _ in response.aiter_bytes():
            break
    await asyncio.wait_for(claude.aborted.wait(), 2)
    assert claude.aborts >= 1


def test_rate_limit_every_is_reproducible_with_a_seed() -> None:
    def pattern(seed: int) -> list[str]:
        mock = AnthropicMock(seed=seed)
        mock.rate_limit_every = (3, 5)
        return [mock.next_scenario() for _ in range(30)]

    first = pattern(7)
    limited = [i for i, s in enumerate(first) if s == "rate_limit"]
    assert first == pattern(7) and len(limited) >= 6
    assert all(3 <= b - a <= 5 for a, b in itertools.pairwise([-1, *limited]))


def test_chances_pick_scenarios_reproducibly_and_a_script_wins() -> None:
    def pattern(seed: int) -> list[str]:
        mock = OpenAIMock(seed=seed)
        mock.chances = {"server_error": 0.3}
        mock.script("auth")
        return [mock.next_scenario() for _ in range(60)]

    first = pattern(3)
    assert first[0] == "auth" and set(first[1:]) == {"text", "server_error"}
    assert 5 <= first.count("server_error") <= 35 and pattern(3) == first


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.012, "12ms"), (7.66, "7.66s"), (1, "1s"), (179.56, "2m59.56s"), (3600, "1h0m0s")]
)
def test_go_durations(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


# --- OpenAI family -----------------------------------------------------------------------------------------


@pytest.fixture(params=VENDORS)
async def compat(request: pytest.FixtureRequest) -> AsyncIterator[OpenAIMock]:
    async with OpenAIMock(vendor=request.param, seed=1) as mock:
        assert isinstance(mock, OpenAIMock)
        mock.text = REPLY
        yield mock


def oai(mock: OpenAIMock) -> openai.AsyncOpenAI:
    client = openai.AsyncOpenAI(api_key="sk-test", base_url=mock.url, max_retries=0)
    _open_clients.append(client)
    return client


OAI_HELLO: list[Any] = [{"role": "user", "content": "Why does my test fail?"}]
OAI_TOOLS: list[Any] = [
    {"type": "function", "function": {"name": t["name"], "parameters": t["input_schema"]}} for t in (WEATHER, BASH)
]


async def test_openai_stream_accumulates_with_usage(compat: OpenAIMock) -> None:
    compat.input_tokens, compat.output_tokens, compat.cache_read_input_tokens = 100, 9, 20
    stream = await oai(compat).chat.completions.create(
        model="mock-large", messages=OAI_HELLO, stream=True, stream_options={"include_usage": True}
    )
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    usages = []
    async for chunk in stream:
        state.handle_chunk(chunk)
        extra = (chunk.model_extra or {}).get("x_groq") or {}
        usages.extend(u for u in (chunk.usage, extra.get("usage")) if u)
    final = state.get_final_completion()
    assert final.model == "mock-large" and final.choices[0].message.content == REPLY
    assert final.choices[0].finish_reason == "stop"
    usage = usages[-1] if isinstance(usages[-1], dict) else usages[-1].model_dump()
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (120, 9)
    assert usage["prompt_tokens_details"]["cached_tokens"] == 20


async def test_openai_non_stream_and_vendor_headers(compat: OpenAIMock) -> None:
    raw = await oai(compat).chat.completions.with_raw_response.create(model="mock-small", messages=OAI_HELLO)
    completion = raw.parse()
    assert completion.choices[0].message.content == REPLY and completion.model == "mock-small"
    assert completion.usage is not None and completion.usage.total_tokens > 0
    headers = raw.headers
    if compat.vendor in ("openai", "groq"):
        assert GO_DURATION.match(headers["x-ratelimit-reset-requests"])
        assert int(headers["x-ratelimit-remaining-requests"]) == compat.requests_limit - 1
    elif compat.vendor == "cerebras":
        assert float(headers["x-ratelimit-reset-tokens-minute"]) >= 0
        assert int(headers["x-ratelimit-remaining-requests-day"]) == compat.requests_limit - 1
    else:
        assert not [name for name in headers if name.startswith("x-ratelimit")]


async def test_openai_parallel_tool_calls_stream_in_fragments(compat: OpenAIMock) -> None:
    compat.scenario = "parallel_tools"
    stream = await oai(compat).chat.completions.create(
        model="mock-large", messages=OAI_HELLO, tools=OAI_TOOLS, stream=True
    )
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    fragments = 0
    async for chunk in stream:
        state.handle_chunk(chunk)
        fragments += sum(1 for c in chunk.choices for _ in c.delta.tool_calls or [])
    message = state.get_final_completion().choices[0]
    calls = message.message.tool_calls or []
    assert message.finish_reason == "tool_calls" and fragments > 4
    assert [c.function.name for c in calls] == ["get_weather", "Bash"]
    assert [orjson.loads(c.function.arguments) for c in calls] == [{"location": "Paris"}, {"command": "ls -la 2"}]


async def test_openai_tool_loop_echoes_the_tool_output(compat: OpenAIMock) -> None:
    compat.scenario = "tool_loop"
    client = oai(compat)
    first = await client.chat.completions.create(model="m", messages=OAI_HELLO, tools=OAI_TOOLS)
    call = (first.choices[0].message.tool_calls or [])[0]
    assert call.function.name == "Bash" and "ccm-mock-ran-this" in call.function.arguments
    history = [
        *OAI_HELLO,
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "ccm-mock-ran-this"},
    ]
    second = await client.chat.completions.create(model="m", messages=history, tools=OAI_TOOLS)
    assert second.choices[0].finish_reason == "stop"
    assert "ccm-mock-ran-this" in (second.choices[0].message.content or "")


RATE_LIMIT_CODES = {
    "openai": "rate_limit_exceeded",
    "groq": "rate_limit_exceeded",
    "cerebras": "request_quota_exceeded",
    "openrouter": 429,
    "github": "RateLimitReached",
}


async def test_openai_rate_limit_parses_with_retry_after(compat: OpenAIMock) -> None:
    compat.scenario, compat.retry_after = "rate_limit", 2
    with pytest.raises(openai.RateLimitError) as caught:
        await oai(compat).chat.completions.create(model="mock-large", messages=OAI_HELLO)
    error = caught.value
    assert error.response.headers["retry-after"] == "2"
    if compat.vendor == "gemini":  # the compat endpoint answers in Google's shape, wrapped in a list
        assert isinstance(error.body, list) and error.body[0]["error"]["status"] == "RESOURCE_EXHAUSTED"
    else:
        assert isinstance(error.body, dict) and error.body["code"] == RATE_LIMIT_CODES[compat.vendor]
    headers = error.response.headers
    if compat.vendor == "openai":  # "requests per min" in the message: that bucket is empty for 2 s
        assert (headers["x-ratelimit-remaining-requests"], headers["x-ratelimit-reset-requests"]) == ("0", "2s")
    elif compat.vendor == "groq":  # tokens per minute
        assert (headers["x-ratelimit-remaining-tokens"], headers["x-ratelimit-reset-tokens"]) == ("0", "2s")
        assert headers["x-ratelimit-remaining-requests"] != "0"
    elif compat.vendor == "cerebras":
        assert headers["x-ratelimit-remaining-tokens-minute"] == "0"
        assert float(headers["x-ratelimit-reset-tokens-minute"]) == 2


@pytest.mark.parametrize(
    ("vendor", "scenario", "status", "code"),
    [
        ("openai", "spend_limit", 429, "insufficient_quota"),
        ("openai", "context_length", 400, "context_length_exceeded"),
        ("openai", "auth", 401, "invalid_api_key"),
        ("openai", "overloaded", 503, None),
        ("openrouter", "billing", 402, 402),
        ("openrouter", "spend_limit", 402, 402),
        ("github", "too_large", 413, "tokens_limit_reached"),
        ("cerebras", "auth", 401, "wrong_api_key"),
        ("groq", "server_error", 500, None),
    ],
)
async def test_openai_vendor_error_shapes(vendor: str, scenario: str, status: int, code: Any) -> None:
    async with OpenAIMock(scenario, vendor=vendor) as mock:
        assert isinstance(mock, OpenAIMock)
        with pytest.raises(openai.APIStatusError) as caught:
            await oai(mock).chat.completions.create(model="mock-large", messages=OAI_HELLO)
    body = caught.value.body
    assert caught.value.status_code == status and isinstance(body, dict) and body["code"] == code  # the raw value


async def test_openai_requires_a_bearer_token(compat: OpenAIMock) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{compat.url}/chat/completions", json={"model": "m", "messages": OAI_HELLO})
    assert response.status_code == 401
    body = response.json()
    error = body[0]["error"] if compat.vendor == "gemini" else body.get("error", body)
    assert error["message"] and compat.requests[-1].scenario == "rejected"


async def test_openai_mid_stream_error_raises_api_error(compat: OpenAIMock) -> None:
    compat.scenario = "mid_stream_error"
    seen: list[str] = []
    with pytest.raises(openai.APIError):
        stream = await oai(compat).chat.completions.create(model="m", messages=OAI_HELLO, stream=True)
        async for chunk in stream:
            seen.extend(c.delta.content or "" for c in chunk.choices)
    assert "".join(seen)


async def test_openai_long_reply_finishes_with_length(compat: OpenAIMock) -> None:
    compat.scenario = "long"
    completion = await oai(compat).chat.completions.create(model="m", messages=OAI_HELLO, max_completion_tokens=30)
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.completion_tokens == 30


async def test_openrouter_sends_processing_comments_and_groq_usage_rides_x_groq() -> None:
    body = {"model": "m", "messages": OAI_HELLO, "stream": True, "stream_options": {"include_usage": True}}
    headers = {"authorization": "Bearer k"}
    async with (
        OpenAIMock(vendor="openrouter") as router,
        OpenAIMock(vendor="groq") as groq,
        httpx.AsyncClient() as client,
    ):
        routed = await client.post(f"{router.origin}/api/v1/chat/completions", json=body, headers=headers)
        grouped = await client.post(f"{groq.origin}/openai/v1/chat/completions", json=body, headers=headers)
    assert routed.text.startswith(": OPENROUTER PROCESSING\n\n") and routed.text.endswith("data: [DONE]\n\n")
    data = [orjson.loads(e.data) for e in SseParser().feed(grouped.content) if e.data != "[DONE]"]
    assert data[-1]["choices"][0]["finish_reason"] == "stop" and data[-1]["x_groq"]["usage"]["total_tokens"] > 0
    assert all(d["choices"] for d in data)  # Groq sends no separate usage chunk


async def test_openai_malformed_chunk_breaks_the_sdk_stream() -> None:
    async with OpenAIMock("malformed_chunk") as mock:
        assert isinstance(mock, OpenAIMock)
        with pytest.raises(ValueError):  # json.JSONDecodeError
            stream = await oai(mock).chat.completions.create(model="m", messages=OAI_HELLO, stream=True)
            async for _ in stream:
                pass


async def test_openai_slow_first_byte_notices_the_client_leaving() -> None:
    async with OpenAIMock("slow_first_byte", vendor="groq") as mock:
        assert isinstance(mock, OpenAIMock)
        mock.slow_seconds = 30.0
        client = openai.AsyncOpenAI(api_key="k", base_url=mock.url, max_retries=0, timeout=0.2)
        _open_clients.append(client)
        with pytest.raises(openai.APITimeoutError):
            await client.chat.completions.create(model="m", messages=OAI_HELLO, stream=True)
        await asyncio.wait_for(mock.aborted.wait(), 2)
