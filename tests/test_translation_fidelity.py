"""Issue 11: the translated kinds behave like Anthropic for what Claude Code and the SDK use.

The official anthropic SDK talks to a real ccm-tui proxy on loopback; the upstreams are the faithful mocks
(OpenAI family, Gemini, Bedrock, Vertex), which check what the real services check (thinking-budget ranges,
OpenAI's four stop sequences, a schema together with functions on Gemini 2.x ...). Every behaviour is checked
streaming and not, and on what reached the upstream.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import pytest

from ccm_tui.config import ProviderSettings
from ccm_tui.core.contract import Variant
from ccm_tui.core.vendors import openai_quirks
from ccm_tui.tokens import estimate_input_tokens, quick_input_estimate
from ccm_tui.translate.continuity import sanitize_history_for_anthropic_target
from ccm_tui.translate.gemini import GeminiStreamTranslator, gemini_request
from ccm_tui.translate.openai_request import request_to_openai
from ccm_tui.translate.reply_options import ReplyOptions
from ccm_tui.translate.stop_sequences import StopScanner
from tests.mocks.cloud_mocks import BedrockMock, GeminiMock, VertexMock
from tests.mocks.upstreams import AnthropicMock, OpenAIMock

ENVIRON = {"TEST_KEY": "test-upstream-key", "GEMINI_API_KEY": GeminiMock.api_key}
STREAMING = pytest.mark.parametrize("stream", [False, True], ids=["message", "stream"])
HELLO = [{"role": "user", "content": "Hello"}]
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Weather for a place",
    "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
}
TIME_TOOL = {
    "name": "get_time",
    "description": "Time in a timezone",
    "input_schema": {"type": "object", "properties": {"timezone": {"type": "string"}}, "required": ["timezone"]},
}
ANSWER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city", "population"],
    "additionalProperties": False,
}


@dataclass
class Reply:
    message: anthropic.types.Message
    start_usage: anthropic.types.Usage | None  # message_start's usage (streams only)


def sdk(proxy_url: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=proxy_url, api_key="dummy", max_retries=0)


async def ask(client: anthropic.AsyncAnthropic, stream: bool, **params: Any) -> Reply:
    params = {"model": "claude-sonnet-4-6", "max_tokens": 1024, "messages": HELLO, **params}
    if not stream:
        return Reply(await client.messages.create(**params, timeout=60), None)  # no 10-minute guard on 128k
    start: anthropic.types.Usage | None = None
    async with client.messages.stream(**params) as events:
        async for event in events:
            if event.type == "message_start":
                start = event.message.usage
        return Reply(await events.get_final_message(), start)


def openai_provider(mock: OpenAIMock, model: str = "mock-large") -> ProviderSettings:
    return ProviderSettings(
        name=f"{mock.vendor}-mock",
        kind="openai",
        vendor=mock.vendor,
        base_url=mock.url,
        api_key_env="TEST_KEY",
        models={"default": (Variant(model),)},
    )


def gemini_provider(mock: GeminiMock, model: str = "gemini-2.5-pro") -> ProviderSettings:
    return ProviderSettings(
        name="gemini-mock",
        kind="gemini",
        base_url=mock.url,
        api_key_env="GEMINI_API_KEY",
        models={"default": (Variant(model),)},
    )


def last_body(mock: Any) -> dict[str, Any]:
    return mock.requests[-1].json()


@pytest.fixture
async def gemini() -> AsyncIterator[GeminiMock]:
    async with GeminiMock() as mock:
        assert isinstance(mock, GeminiMock)
        yield mock


@pytest.fixture
async def openrouter() -> AsyncIterator[OpenAIMock]:
    async with OpenAIMock(vendor="openrouter", seed=1) as mock:
        assert isinstance(mock, OpenAIMock)
        yield mock


@pytest.fixture
async def openai_mock() -> AsyncIterator[OpenAIMock]:
    async with OpenAIMock(vendor="openai", seed=1) as mock:
        assert isinstance(mock, OpenAIMock)
        yield mock


# --- thinking budgets and output caps ---------------------------------------------------------------------


@STREAMING
async def test_gemini_flash_takes_claude_codes_haiku_thinking_budget(start_proxy, gemini, stream) -> None:
    gemini.scenario = "thinking"
    proxy = await start_proxy([gemini_provider(gemini, "gemini-2.5-flash")], environ=ENVIRON)
    thinking = {"type": "enabled", "budget_tokens": 31999}
    reply = await ask(sdk(proxy.url), stream, model="claude-haiku-4-5", max_tokens=128000, thinking=thinking)
    assert [block.type for block in reply.message.content][:1] == ["thinking"]
    config = last_body(gemini)["generationConfig"]
    assert config["thinkingConfig"]["thinkingBudget"] == 24576  # gemini-2.5-flash's largest budget
    assert config["maxOutputTokens"] == 65536


@STREAMING
async def test_openrouter_reasoning_budget_is_clamped_to_the_model_behind_it(start_proxy, openrouter, stream) -> None:
    openrouter.reasoning_budget_limit = 24576  # what Gemini 2.5 Flash accepts
    proxy = await start_proxy([openai_provider(openrouter, "google/gemini-2.5-flash")])
    thinking = {"type": "enabled", "budget_tokens": 31999}
    reply = await ask(sdk(proxy.url), stream, max_tokens=32000, thinking=thinking)
    assert reply.message.stop_reason == "end_turn"
    assert last_body(openrouter)["reasoning"] == {"max_tokens": 24576}


# --- prompt caching on OpenRouter -------------------------------------------------------------------------

CACHED_SYSTEM = [
    {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.330; cch=1"},
    {"type": "text", "text": "You are Claude Code."},
    {"type": "text", "text": "Project instructions.", "cache_control": {"type": "ephemeral"}},
]
CACHED_MESSAGES = [
    {"role": "user", "content": [{"type": "text", "text": "What's the weather?"}]},
    {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"location": "Paris"}}],
    },
    {
        "role": "user",
        "content": [
            {
                "type": "tool_result",
                "tool_use_id": "toolu_1",
                "content": "Sunny",
                "cache_control": {"type": "ephemeral"},
            },
            {"type": "text", "text": "And tomorrow?", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
        ],
    },
]


def cache_marks(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        found = [value["cache_control"]] if "cache_control" in value else []
        return found + [m for v in value.values() for m in cache_marks(v)]
    if isinstance(value, list):
        return [m for v in value for m in cache_marks(v)]
    return []


@STREAMING
async def test_openrouter_receives_cache_breakpoints_and_reports_cache_usage(start_proxy, openrouter, stream) -> None:
    openrouter.input_tokens, openrouter.cache_read_input_tokens, openrouter.cache_creation_input_tokens = 50, 1000, 200
    proxy = await start_proxy([openai_provider(openrouter, "anthropic/claude-sonnet-4.5")])
    reply = await ask(sdk(proxy.url), stream, system=CACHED_SYSTEM, messages=CACHED_MESSAGES, tools=[WEATHER_TOOL])
    messages = last_body(openrouter)["messages"]
    assert len(cache_marks(messages)) == 3  # every breakpoint arrived
    assert messages[0] == {
        "role": "system",
        "content": [
            {"type": "text", "text": "You are Claude Code."},
            {"type": "text", "text": "Project instructions.", "cache_control": {"type": "ephemeral"}},
        ],
    }
    tool = next(m for m in messages if m["role"] == "tool")
    assert tool["content"] == [{"type": "text", "text": "Sunny", "cache_control": {"type": "ephemeral"}}]
    usage = reply.message.usage
    assert (usage.input_tokens, usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (50, 1000, 200)


async def test_cache_marks_stay_off_vendors_that_reject_them(start_proxy, openai_mock) -> None:
    proxy = await start_proxy([openai_provider(openai_mock)])
    await ask(sdk(proxy.url), False, system=CACHED_SYSTEM, messages=CACHED_MESSAGES, tools=[WEATHER_TOOL])
    messages = last_body(openai_mock)["messages"]
    assert cache_marks(messages) == []
    assert messages[0] == {"role": "system", "content": "You are Claude Code.\n\nProject instructions."}


# --- message_start usage ----------------------------------------------------------------------------------


async def test_openai_stream_starts_with_the_local_input_estimate(start_proxy, openai_mock) -> None:
    openai_mock.input_tokens = 4321
    proxy = await start_proxy([openai_provider(openai_mock)])
    prompt = "word " * 4000
    reply = await ask(sdk(proxy.url), True, messages=[{"role": "user", "content": prompt}])
    assert reply.start_usage is not None and 4000 <= reply.start_usage.input_tokens <= 8000
    assert reply.message.usage.input_tokens == 4321  # the exact number from message_delta wins


async def test_gemini_stream_start_usage_is_never_zero(start_proxy, gemini) -> None:
    proxy = await start_proxy([gemini_provider(gemini)], environ=ENVIRON)
    reply = await ask(sdk(proxy.url), True, messages=[{"role": "user", "content": "word " * 4000}])
    assert reply.start_usage is not None and reply.start_usage.input_tokens >= 4000
    assert reply.message.usage.input_tokens > 0


# --- structured outputs -----------------------------------------------------------------------------------

FORMAT = {"output_config": {"format": {"type": "json_schema", "schema": ANSWER_SCHEMA}}}


@STREAMING
async def test_structured_output_reaches_openai_as_response_format(start_proxy, openai_mock, stream) -> None:
    proxy = await start_proxy([openai_provider(openai_mock)])
    reply = await ask(sdk(proxy.url), stream, extra_body=FORMAT)
    sent = last_body(openai_mock)["response_format"]
    assert sent == {"type": "json_schema", "json_schema": {"name": "output", "schema": ANSWER_SCHEMA}}
    assert set(json.loads(reply.message.content[0].text)) == {"city", "population"}


@STREAMING
async def test_structured_output_reaches_gemini_as_response_schema(start_proxy, gemini, stream) -> None:
    proxy = await start_proxy([gemini_provider(gemini)], environ=ENVIRON)
    reply = await ask(sdk(proxy.url), stream, extra_body=FORMAT)
    config = last_body(gemini)["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseSchema"]["required"] == ["city", "population"]
    assert "additionalProperties" not in config["responseSchema"]
    assert set(json.loads(reply.message.content[0].text)) == {"city", "population"}


@STREAMING
async def test_structured_output_with_tools_on_gemini_2_is_a_clear_400(start_proxy, gemini, stream) -> None:
    proxy = await start_proxy([gemini_provider(gemini)], environ=ENVIRON)
    with pytest.raises(anthropic.BadRequestError) as caught:
        await ask(sdk(proxy.url), stream, tools=[WEATHER_TOOL], extra_body=FORMAT)
    message = caught.value.message
    assert "structured outputs" in message and "'gemini-mock'" in message
    assert gemini.requests == []


# --- stop sequences ---------------------------------------------------------------------------------------


@STREAMING
async def test_openai_reports_which_stop_sequence_matched_even_the_fifth(start_proxy, openai_mock, stream) -> None:
    openai_mock.text = "alpha beta END gamma delta"
    proxy = await start_proxy([openai_provider(openai_mock)])
    stops = ["s1", "s2", "s3", "s4", "END"]
    reply = await ask(sdk(proxy.url), stream, stop_sequences=stops)
    assert (reply.message.stop_reason, reply.message.stop_sequence) == ("stop_sequence", "END")
    assert reply.message.content[0].text == "alpha beta "
    assert "stop" not in last_body(openai_mock)  # enforced here: OpenAI would refuse five and not say which


@STREAMING
async def test_gemini_reports_which_stop_sequence_matched(start_proxy, gemini, stream) -> None:
    proxy = await start_proxy([gemini_provider(gemini)], environ=ENVIRON)
    stops = ["s1", "s2", "s3", "s4", "s5", "mock."]
    reply = await ask(sdk(proxy.url), stream, stop_sequences=stops)
    assert (reply.message.stop_reason, reply.message.stop_sequence) == ("stop_sequence", "mock.")
    assert reply.message.content[0].text == "Hello from the Gemini "


@STREAMING
async def test_a_stop_sequence_that_never_matches_ends_the_turn_normally(start_proxy, openai_mock, stream) -> None:
    openai_mock.text = "nothing to see"
    proxy = await start_proxy([openai_provider(openai_mock)])
    reply = await ask(sdk(proxy.url), stream, stop_sequences=["seen"])
    assert (reply.message.stop_reason, reply.message.stop_sequence) == ("end_turn", None)
    assert reply.message.content[0].text == "nothing to see"


# --- reasoning on the OpenAI family -----------------------------------------------------------------------


@pytest.mark.parametrize("vendor", ["openrouter", "groq", "openai"])  # reasoning / reasoning / reasoning_content
@STREAMING
async def test_reasoning_comes_back_as_a_thinking_block(start_proxy, vendor, stream) -> None:
    async with OpenAIMock("thinking", vendor=vendor, seed=1) as mock:
        assert isinstance(mock, OpenAIMock)
        proxy = await start_proxy([openai_provider(mock)])
        thinking = {"type": "enabled", "budget_tokens": 2048}
        reply = await ask(sdk(proxy.url), stream, max_tokens=4096, thinking=thinking)
    blocks = reply.message.content
    assert [block.type for block in blocks] == ["thinking", "text"]
    assert blocks[0].thinking == mock.thinking_text  # once, although OpenRouter sends it in two fields


def test_reasoning_in_history_goes_to_no_other_provider() -> None:
    history = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "messages": [
            {"role": "user", "content": "Hi"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "unsigned reasoning", "signature": ""},
                    {"type": "text", "text": "Hello"},
                ],
            },
            {"role": "user", "content": "Again"},
        ],
    }
    anthropic_body = sanitize_history_for_anthropic_target(history)
    assert [b["type"] for b in anthropic_body["messages"][1]["content"]] == ["text"]
    openai_body = request_to_openai(history, "gpt-test", openai_quirks("openai", "gpt-4.1"))
    assert "unsigned reasoning" not in json.dumps(openai_body)
    assert "unsigned reasoning" not in json.dumps(gemini_request(history, model="gemini-2.5-pro"))


# --- Gemini: search results, URL images, one tool call, 413 -------------------------------------------------

SEARCH_RESULT = {
    "type": "search_result",
    "source": "https://docs.example.com/timeouts",
    "title": "Timeouts",
    "content": [{"type": "text", "text": "asyncio.timeout() cancels the block."}],
}


@STREAMING
async def test_gemini_carries_search_results_as_text(start_proxy, gemini, stream) -> None:
    gemini.scenario = "tool_loop"
    gemini.tool_name = "search"
    proxy = await start_proxy([gemini_provider(gemini)], environ=ENVIRON)
    messages = [
        {"role": "user", "content": [SEARCH_RESULT, {"type": "text", "text": "Summarise, then search more."}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_9", "name": "search", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": [SEARCH_RESULT]}]},
    ]
    search_tool = {"name": "search", "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}}
    reply = await ask(sdk(proxy.url), stream, messages=messages, tools=[search_tool])
    contents = last_body(gemini)["contents"]
    assert contents[0]["parts"][0]["text"].count("asyncio.timeout() cancels the block.") == 1
    response = contents[2]["parts"][0]["functionResponse"]["response"]
    assert "asyncio.timeout() cancels the block." in response["content"]
    assert "asyncio.timeout()" in reply.message.content[0].text  # the mock echoed the tool result


@STREAMING
async def test_gemini_url_image_gets_an_image_mime_type(start_proxy, gemini, stream) -> None:
    proxy = await start_proxy([gemini_provider(gemini)], environ=ENVIRON)
    image = {"type": "image", "source": {"type": "url", "url": "https://example.com/chart.png?x=1"}}
    await ask(sdk(proxy.url), stream, messages=[{"role": "user", "content": [image, {"type": "text", "text": "?"}]}])
    part = last_body(gemini)["contents"][0]["parts"][0]
    assert part == {"fileData": {"fileUri": "https://example.com/chart.png?x=1", "mimeType": "image/png"}}


@STREAMING
async def test_gemini_returns_one_tool_call_when_parallel_use_is_disabled(start_proxy, gemini, stream) -> None:
    gemini.scenario = "parallel_tools"
    proxy = await start_proxy([gemini_provider(gemini)], environ=ENVIRON)
    choice = {"type": "auto", "disable_parallel_tool_use": True}
    reply = await ask(sdk(proxy.url), stream, tools=[WEATHER_TOOL, TIME_TOOL], tool_choice=choice)
    uses = [block for block in reply.message.content if block.type == "tool_use"]
    assert [use.name for use in uses] == ["get_weather"] and reply.message.stop_reason == "tool_use"


@STREAMING
async def test_cerebras_returns_one_tool_call_when_parallel_use_is_disabled(start_proxy, stream) -> None:
    async with OpenAIMock("parallel_tools", vendor="cerebras", seed=1) as mock:  # cannot be sent parallel_tool_calls
        proxy = await start_proxy([openai_provider(mock)])  # type: ignore[arg-type]
        choice = {"type": "auto", "disable_parallel_tool_use": True}
        reply = await ask(sdk(proxy.url), stream, tools=[WEATHER_TOOL, TIME_TOOL], tool_choice=choice)
    assert [block.name for block in reply.message.content if block.type == "tool_use"] == ["get_weather"]


@pytest.fixture
def google_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)


@pytest.mark.parametrize("kind", ["gemini", "vertex"])
@STREAMING
async def test_html_413_is_a_clean_message(start_proxy, tmp_path: Path, google_env, kind, stream) -> None:
    mock_type = GeminiMock if kind == "gemini" else VertexMock
    async with mock_type("too_large_html") as mock:
        settings = gemini_provider(mock) if isinstance(mock, GeminiMock) else vertex_provider(mock, tmp_path)  # type: ignore[arg-type]
        proxy = await start_proxy([settings], environ=ENVIRON)
        with pytest.raises(anthropic.APIStatusError) as caught:
            await ask(sdk(proxy.url), stream)
    assert caught.value.status_code == 413
    message = caught.value.message
    assert "request too large" in message and "Your client issued a request that was too large." in message
    assert "<" not in message and "font:" not in message


def vertex_provider(mock: VertexMock, tmp_path: Path) -> ProviderSettings:
    return ProviderSettings(
        name="vertex-mock",
        kind="vertex",
        base_url=mock.url,
        region="us-east5",
        project=VertexMock.project,
        credentials_file=str(mock.write_service_account(tmp_path / "service-account.json")),
        models={"default": (Variant("claude-sonnet-4-5@20250929"),)},
    )


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_BEARER_TOKEN_BEDROCK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", BedrockMock.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", BedrockMock.secret_key)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "missing-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "missing-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def bedrock_provider(mock: BedrockMock) -> ProviderSettings:
    model = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    return ProviderSettings(
        name="bedrock-mock",
        kind="bedrock",
        base_url=mock.url,
        region="us-west-2",
        models={"default": (Variant(model),)},
    )


# --- server tools and MCP connectors ----------------------------------------------------------------------

WEB_SEARCH = {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}


@pytest.mark.parametrize(
    ("tool", "built_in", "reply_text"),
    [
        (WEB_SEARCH, "googleSearch", "According to a web search"),
        ({"type": "web_fetch_20250910", "name": "web_fetch"}, "urlContext", "Hello from"),
        ({"type": "code_execution_20250825", "name": "code_execution"}, "codeExecution", "print(6 * 7)"),
    ],
)
@STREAMING
async def test_gemini_maps_server_tools_to_its_built_ins(
    start_proxy, gemini, tool, built_in, reply_text, stream
) -> None:
    proxy = await start_proxy([gemini_provider(gemini)], environ=ENVIRON)
    reply = await ask(sdk(proxy.url), stream, tools=[tool])
    assert last_body(gemini)["tools"] == [{built_in: {}}]
    text = "".join(block.text for block in reply.message.content if block.type == "text")
    assert reply_text in text
    if built_in == "codeExecution":
        assert "42" in text  # the execution result travels too


@STREAMING
async def test_openrouter_maps_web_search_to_its_web_plugin(start_proxy, openrouter, stream) -> None:
    proxy = await start_proxy([openai_provider(openrouter)])
    await ask(sdk(proxy.url), stream, tools=[WEB_SEARCH, WEATHER_TOOL])
    body = last_body(openrouter)
    assert body["plugins"] == [{"id": "web"}]
    assert [tool["function"]["name"] for tool in body["tools"]] == ["get_weather"]


async def refused(proxy_url: str, stream: bool, **params: Any) -> str:
    with pytest.raises(anthropic.BadRequestError) as caught:
        await ask(sdk(proxy_url), stream, **params)
    return caught.value.message


@pytest.mark.parametrize(
    ("vendor", "tool", "named"),
    [
        ("groq", WEB_SEARCH, "web_search"),
        ("openai", {"type": "code_execution_20250825", "name": "code_execution"}, "code_execution"),
        ("openrouter", {"type": "web_fetch_20250910", "name": "web_fetch"}, "web_fetch"),
        ("openai", {"type": "bash_20250124", "name": "bash"}, "bash"),
        ("openai", {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"}, "text_editor"),
    ],
)
@STREAMING
async def test_openai_family_refuses_server_tools_it_cannot_run(start_proxy, vendor, tool, named, stream) -> None:
    async with OpenAIMock(vendor=vendor, seed=1) as mock:
        proxy = await start_proxy([openai_provider(mock)])  # type: ignore[arg-type]
        message = await refused(proxy.url, stream, tools=[tool, WEATHER_TOOL])
        assert mock.requests == []
    assert named in message and f"'{vendor}-mock'" in message


@STREAMING
async def test_gemini_refuses_anthropic_client_tools_without_equivalent(start_proxy, gemini, stream) -> None:
    proxy = await start_proxy([gemini_provider(gemini)], environ=ENVIRON)
    message = await refused(proxy.url, stream, tools=[{"type": "bash_20250124", "name": "bash"}])
    assert "bash" in message and "'gemini-mock'" in message and gemini.requests == []


MCP = {"mcp_servers": [{"type": "url", "url": "https://mcp.example.com/sse", "name": "example"}]}


@pytest.mark.parametrize("kind", ["openai", "gemini", "bedrock", "vertex"])
@STREAMING
async def test_mcp_servers_are_refused_where_they_cannot_run(
    start_proxy, tmp_path, aws_env, google_env, kind, stream
) -> None:
    mocks = {"openai": lambda: OpenAIMock(seed=1), "gemini": GeminiMock, "bedrock": BedrockMock, "vertex": VertexMock}
    async with mocks[kind]() as mock:
        settings = {
            "openai": lambda: openai_provider(mock),  # type: ignore[arg-type]
            "gemini": lambda: gemini_provider(mock),  # type: ignore[arg-type]
            "bedrock": lambda: bedrock_provider(mock),  # type: ignore[arg-type]
            "vertex": lambda: vertex_provider(mock, tmp_path),  # type: ignore[arg-type]
        }[kind]()
        proxy = await start_proxy([settings], environ=ENVIRON)
        message = await refused(proxy.url, stream, extra_body=MCP)
        assert [r for r in mock.requests if r.path != "/token"] == []
    assert "mcp_servers" in message and settings.name in message


# --- URL images to Bedrock and Vertex -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["bedrock", "vertex"])
@STREAMING
async def test_url_images_to_base64_only_clouds_are_a_clear_400(
    start_proxy, tmp_path, aws_env, google_env, kind, stream
) -> None:
    async with BedrockMock() if kind == "bedrock" else VertexMock() as mock:
        settings = bedrock_provider(mock) if kind == "bedrock" else vertex_provider(mock, tmp_path)  # type: ignore[arg-type]
        proxy = await start_proxy([settings], environ=ENVIRON)
        image = {"type": "image", "source": {"type": "url", "url": "http://127.0.0.1:9/cat.png"}}
        content = [image, {"type": "text", "text": "What is this?"}]
        message = await refused(proxy.url, stream, messages=[{"role": "user", "content": content}])
        assert [r for r in mock.requests if r.path != "/token"] == []
    assert "URL source" in message and "base64" in message and settings.name in message


# --- the pure pieces ----------------------------------------------------------------------------------------


def test_gemini_start_usage_falls_back_to_the_estimate_when_the_first_chunk_has_none() -> None:
    translator = GeminiStreamTranslator("gemini-2.5-pro", ReplyOptions(input_estimate=777))
    first = translator.feed({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hi"}]}}]})
    assert first[0]["message"]["usage"]["input_tokens"] == 777


@pytest.mark.parametrize(
    ("pieces", "emitted", "matched"),
    [
        (["alpha E", "N", "D beta"], "alpha ", "END"),  # a sequence split over three deltas
        (["no match E"], "no match E", None),  # held back "E", released at the end
        (["xx STOP yy END"], "xx ", "STOP"),  # the earliest match wins
        (["a", "b"], "ab", None),
    ],
)
def test_stop_scanner(pieces: list[str], emitted: str, matched: str | None) -> None:
    scanner = StopScanner(["END", "STOP"])
    out = "".join(scanner.feed(piece) for piece in pieces)
    out += scanner.flush() if scanner.matched is None else ""
    assert (out, scanner.matched) == (emitted, matched)


def test_quick_estimate_is_in_the_tokenizers_range() -> None:
    body = {
        "system": "You are Claude Code.",
        "messages": [{"role": "user", "content": "def f(x):\n    return x * 2\n" * 200}],
    }
    exact = estimate_input_tokens(body)
    assert 0.5 * exact <= quick_input_estimate(body) <= 2 * exact


async def test_a_feature_one_target_cannot_run_fails_over_to_one_that_can(start_proxy) -> None:
    async with OpenAIMock() as openai_mock, AnthropicMock() as anthropic_mock:
        proxy = await start_proxy(
            [
                ProviderSettings(
                    name="oai",
                    kind="openai",
                    base_url=openai_mock.url,
                    api_key_env="TEST_KEY",
                    models={"default": (Variant("mock-large"),)},
                ),
                ProviderSettings(name="anth", kind="anthropic", base_url=anthropic_mock.url, api_key_env="TEST_KEY"),
            ]
        )
        sdk = anthropic.AsyncAnthropic(base_url=proxy.url, api_key="dummy", max_retries=0)
        message = await sdk.messages.create(
            model="claude-sonnet-4-6",
            max_tokens=100,
            messages=[{"role": "user", "content": "search the web"}],
            tools=[{"type": "web_search_20250305", "name": "web_search", "max_uses": 2}],
        )
        assert message.content
        [finished] = await proxy.wait_finished(1)
        assert finished.provider == "anth"
        assert [a.outcome for a in finished.attempts] == ["skip", "ok"]
        assert not openai_mock.requests and anthropic_mock.requests
