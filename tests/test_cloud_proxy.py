"""The cloud kinds end to end: the official anthropic SDK -> ccm-tui -> Bedrock, Vertex and Gemini mocks.

Each mock checks what the real service checks (SigV4 / OAuth tokens it issued / API key, body rules, thought
signatures), so a 200 here means the proxy shaped the request the way the service wants it. Covers streaming
and not, tool use, thinking, failover and the state each failure leaves behind, mid-stream failures, variant
rotation (model@region) and /health, count_tokens, and conversations that move between provider kinds.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from ccm_tui.config import ProviderSettings, RoutingSettings
from ccm_tui.core.contract import Variant
from ccm_tui.core.events import AttemptFailed, ProviderChanged
from ccm_tui.demo.mockserver import MockServer
from tests.mocks.anthropic_script import estimate_tokens, parse_sse
from tests.mocks.cloud_mocks import BedrockMock, GeminiMock, VertexMock
from tests.mocks.gemini_mock import PLACEHOLDER_SIGNATURE
from tests.mocks.upstreams import AnthropicMock, OpenAIMock

BEDROCK_MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
VERTEX_MODEL = "claude-sonnet-4-5@20250929"
GEMINI_MODEL = "gemini-2.5-pro"
CLOUD_KINDS = ("bedrock", "vertex", "gemini")
ENVIRON = {"TEST_KEY": "test-upstream-key", "GEMINI_API_KEY": GeminiMock.api_key}
GREETING = {
    "bedrock": "Hello from the Bedrock mock. How can I help?",
    "vertex": "Hello from the Vertex mock. How can I help?",
    "gemini": "Hello from the Gemini mock. How can I help?",
}
ASK = {"max_tokens": 1024, "messages": [{"role": "user", "content": "Hello"}]}
# A tool schema as Claude Code sends it: JSON-schema keywords Gemini rejects must be cleaned on the way.
BASH_TOOL = {
    "name": "Bash",
    "description": "Run a shell command",
    "input_schema": {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {"command": {"type": "string"}, "description": {"type": "string"}},
        "required": ["command"],
        "additionalProperties": False,
    },
}
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


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Static AWS credentials from the environment only: no profile files, no instance metadata calls."""
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_BEARER_TOKEN_BEDROCK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", BedrockMock.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", BedrockMock.secret_key)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "missing-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "missing-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)


@dataclass
class Fleet:
    """One running mock per provider kind, and the ProviderSettings that reach each."""

    anthropic: AnthropicMock
    openai: OpenAIMock
    bedrock: BedrockMock
    vertex: VertexMock
    gemini: GeminiMock
    service_account: Path

    def mock(self, kind: str) -> MockServer:
        return getattr(self, kind)

    def settings(self, kind: str, models: dict[str, tuple[Variant, ...]] | None = None) -> ProviderSettings:
        """A provider named after its kind; `models` defaults to one model for every request."""
        name = kind
        if kind == "anthropic":
            return ProviderSettings(
                name=name, kind=kind, base_url=self.anthropic.url, api_key_env="TEST_KEY", models=models or {}
            )
        if kind == "openai":
            models = models or {"default": (Variant("mock-large"),)}
            return ProviderSettings(
                name=name, kind=kind, base_url=self.openai.url, api_key_env="TEST_KEY", models=models
            )
        if kind == "bedrock":
            models = models or {"default": (Variant(BEDROCK_MODEL),)}
            return ProviderSettings(name=name, kind=kind, base_url=self.bedrock.url, region="us-west-2", models=models)
        if kind == "vertex":
            return ProviderSettings(
                name=name,
                kind=kind,
                base_url=self.vertex.url,
                region="us-east5",
                project=VertexMock.project,
                credentials_file=str(self.service_account),
                models=models or {"default": (Variant(VERTEX_MODEL),)},
            )
        models = models or {"default": (Variant(GEMINI_MODEL),)}
        return ProviderSettings(
            name=name, kind=kind, base_url=self.gemini.url, api_key_env="GEMINI_API_KEY", models=models
        )


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[Fleet]:
    async with (
        AnthropicMock() as anthropic_mock,
        OpenAIMock() as openai_mock,
        BedrockMock() as bedrock,
        VertexMock() as vertex,
        GeminiMock() as gemini,
    ):
        assert isinstance(vertex, VertexMock)
        service_account = vertex.write_service_account(tmp_path / "service-account.json")
        yield Fleet(anthropic_mock, openai_mock, bedrock, vertex, gemini, service_account)  # type: ignore[arg-type]


def client(url: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=url, api_key="dummy", max_retries=0)


def failures(proxy: Any) -> list[AttemptFailed]:
    """Failed attempts that moved on (a lone 500 is first retried on the same provider: not counted here)."""
    return [e for e in proxy.events if isinstance(e, AttemptFailed) and e.attempt.outcome != "retried"]


# --- the SDK through the proxy to each cloud kind --------------------------------------------------------------


@pytest.mark.parametrize("kind", CLOUD_KINDS)
async def test_sdk_streams_text_from_each_cloud_kind(start_proxy, fleet: Fleet, kind: str) -> None:
    proxy = await start_proxy([fleet.settings(kind)], environ=ENVIRON)
    async with client(proxy.url).messages.stream(model="claude-sonnet-4-6", **ASK) as stream:
        message = await stream.get_final_message()
    assert message.content[0].text == GREETING[kind]
    assert message.stop_reason == "end_turn"
    [finished] = proxy.finished()
    assert finished.ok and finished.provider == kind
    assert finished.usage.input_tokens > 0 and finished.usage.output_tokens > 0


@pytest.mark.parametrize("kind", CLOUD_KINDS)
async def test_sdk_non_streaming_from_each_cloud_kind(start_proxy, fleet: Fleet, kind: str) -> None:
    proxy = await start_proxy([fleet.settings(kind)], environ=ENVIRON)
    message = await client(proxy.url).messages.create(model="claude-haiku-4-5", **ASK)
    assert message.content[0].text == GREETING[kind]
    assert proxy.finished()[0].usage.output_tokens == message.usage.output_tokens


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
@pytest.mark.parametrize("kind", CLOUD_KINDS)
async def test_sdk_tool_loop_round_trips_through_each_cloud_kind(
    start_proxy, fleet: Fleet, kind: str, stream: bool
) -> None:
    fleet.mock(kind).scenario = "tool_loop"
    proxy = await start_proxy([fleet.settings(kind)], environ=ENVIRON)
    sdk = client(proxy.url)
    ask: dict[str, Any] = {"model": "claude-sonnet-4-6", "max_tokens": 1024, "tools": [BASH_TOOL]}
    history: list[dict[str, Any]] = [{"role": "user", "content": "Run the marker command."}]

    async def turn() -> Any:
        if not stream:
            return await sdk.messages.create(messages=history, **ask)
        async with sdk.messages.stream(messages=history, **ask) as events:
            return await events.get_final_message()

    first = await turn()
    assert first.stop_reason == "tool_use"
    [call] = [b for b in first.content if b.type == "tool_use"]
    assert call.name == "Bash" and call.input["command"] == "echo ccm-mock-ran-this"
    history += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "ccm-mock-ran-this"}]},
    ]
    second = await turn()  # the mocks reject a broken pairing or a lost Gemini thought signature
    assert second.content[0].text == "The tool returned: ccm-mock-ran-this"
    assert all(f.ok for f in proxy.finished())


@pytest.mark.parametrize("kind", CLOUD_KINDS)
async def test_parallel_tool_calls_and_thinking_reach_the_sdk(start_proxy, fleet: Fleet, kind: str) -> None:
    fleet.mock(kind).script("parallel_tools", "thinking")
    proxy = await start_proxy([fleet.settings(kind)], environ=ENVIRON)
    sdk = client(proxy.url)
    async with sdk.messages.stream(model="claude-sonnet-4-6", tools=[WEATHER_TOOL, TIME_TOOL], **ASK) as stream:
        calls = await stream.get_final_message()
    assert [(b.name, b.input) for b in calls.content if b.type == "tool_use"] == [
        ("get_weather", {"location": "Paris"}),
        ("get_time", {"timezone": "Europe/Paris"}),
    ]
    thinking = {"type": "enabled", "budget_tokens": 1024}
    async with sdk.messages.stream(model="claude-sonnet-4-6", thinking=thinking, **ASK) as stream:  # type: ignore[arg-type]
        thought = await stream.get_final_message()
    assert thought.content[0].type == "thinking" and "6 times 7" in thought.content[0].thinking
    assert "42" in "".join(b.text for b in thought.content if b.type == "text")
    if kind == "gemini":
        # Gemini signed the last text part: the signature rides in a redacted_thinking block after it, marked
        # so that Claude targets can drop it.
        assert [b.type for b in thought.content] == ["thinking", "text", "redacted_thinking"]
        assert thought.content[2].data.startswith("gemini:")
    else:
        assert thought.content[0].signature


@pytest.mark.parametrize("kind", CLOUD_KINDS)
async def test_count_tokens_uses_each_clouds_native_counter(start_proxy, fleet: Fleet, kind: str) -> None:
    proxy = await start_proxy([fleet.settings(kind)], environ=ENVIRON)
    counted = await client(proxy.url).messages.count_tokens(model="claude-sonnet-4-6", messages=ASK["messages"])
    [request] = fleet.mock(kind).requests
    assert re.search(r"count-tokens|countTokens", request.path)
    body = request.json()
    if kind == "bedrock":  # the InvokeModel body, base64 inside the CountTokens request
        counted_body = json.loads(base64.b64decode(body["input"]["invokeModel"]["body"]))
    elif kind == "vertex":
        counted_body = body["messages"]
    else:
        counted_body = body["generateContentRequest"]
    assert counted.input_tokens == estimate_tokens(counted_body)  # the upstream's number, not a local estimate


async def test_bedrock_api_key_is_sent_as_bearer_instead_of_sigv4(start_proxy, fleet: Fleet) -> None:
    settings = ProviderSettings(
        name="bedrock",
        kind="bedrock",
        base_url=fleet.bedrock.url,
        region="us-west-2",
        api_key_env="BEDROCK_KEY",
        models={"default": (Variant(BEDROCK_MODEL),)},
    )
    proxy = await start_proxy([settings], environ={"BEDROCK_KEY": BedrockMock.api_key})
    await client(proxy.url).messages.create(model="claude-sonnet-4-6", **ASK)
    assert fleet.bedrock.bearer_requests == 1 and fleet.bedrock.signatures == []


async def test_vertex_finds_credentials_through_google_application_credentials(
    start_proxy, fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(fleet.service_account))
    settings = ProviderSettings(
        name="vertex",
        kind="vertex",
        base_url=fleet.vertex.url,
        region="us-east5",
        project=VertexMock.project,
        models={"default": (Variant(VERTEX_MODEL),)},
    )
    proxy = await start_proxy([settings], environ=ENVIRON)
    message = await client(proxy.url).messages.create(model="claude-sonnet-4-6", **ASK)
    assert message.content[0].text == GREETING["vertex"]
    assert fleet.vertex.token_requests == 1


# --- failures: failover, and the state a failure leaves behind -------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "scenario", "status", "state", "reason_part"),
    [
        ("bedrock", "rate_limit", 429, "cooling", "ThrottlingException"),
        ("bedrock", "not_ready", 429, "cooling", "ModelNotReadyException"),
        ("bedrock", "overloaded", 503, "cooling", "ServiceUnavailableException"),
        ("bedrock", "server_error", 500, "cooling", "InternalServerException"),
        ("bedrock", "auth", 403, "disabled", "AccessDeniedException"),
        ("vertex", "rate_limit", 429, "cooling", "RESOURCE_EXHAUSTED"),
        ("vertex", "overloaded", 503, "cooling", "UNAVAILABLE"),
        ("vertex", "auth", 403, "disabled", "PERMISSION_DENIED"),
        ("vertex", "precondition", 403, "disabled", "FAILED_PRECONDITION"),
        ("gemini", "rate_limit", 429, "cooling", "RESOURCE_EXHAUSTED"),
        ("gemini", "overloaded", 503, "cooling", "UNAVAILABLE"),
        ("gemini", "auth", 403, "disabled", "PERMISSION_DENIED"),
        ("gemini", "quota_day", 429, "disabled", "RESOURCE_EXHAUSTED"),
    ],
)
async def test_cloud_failure_fails_over_and_sets_the_providers_state(
    start_proxy, fleet: Fleet, kind: str, scenario: str, status: int, state: str, reason_part: str
) -> None:
    fleet.mock(kind).scenario = scenario
    proxy = await start_proxy([fleet.settings(kind), fleet.settings("anthropic")], environ=ENVIRON)
    sdk = client(proxy.url)
    message = await sdk.messages.create(model="claude-sonnet-4-6", **ASK)
    assert message.content[0].text  # the second provider answered
    [failed] = failures(proxy)
    assert failed.attempt.provider == kind and failed.attempt.status == status
    assert failed.next_provider == "anthropic"
    view = proxy.engine.provider_view(kind)
    current, until, reason = view.state, view.until, view.reason
    assert current == state and reason_part in reason and until is not None
    await sdk.messages.create(model="claude-sonnet-4-6", **ASK)
    retried = 1 if status == 500 else 0  # a lone 500 is tried once more at once
    assert len(fleet.mock(kind).requests) == 1 + retried  # not asked again while cooling / disabled
    assert len(fleet.anthropic.requests) == 2


@pytest.mark.parametrize(
    ("kind", "scenario", "at_least", "at_most"),
    [
        ("gemini", "rate_limit", 36, 38),  # RetryInfo.retryDelay "37s"
        ("gemini", "quota_day", 5000, 5401),  # a per-day quota: a long disable
        ("bedrock", "rate_limit", 1.9, 2.1),  # no reset time at all: the first back-off step (cooldown_base)
        ("vertex", "rate_limit", 1.9, 2.1),
    ],
)
async def test_cool_down_length_follows_what_the_cloud_says(
    start_proxy, fleet: Fleet, kind: str, scenario: str, at_least: float, at_most: float
) -> None:
    fleet.mock(kind).scenario = scenario
    proxy = await start_proxy([fleet.settings(kind), fleet.settings("anthropic")], environ=ENVIRON)
    await client(proxy.url).messages.create(model="claude-sonnet-4-6", **ASK)
    until = proxy.engine.provider_view(kind).until
    assert until is not None and at_least <= until - proxy.engine.clock() <= at_most


async def test_throttling_backs_off_exponentially_without_a_reset_time(start_proxy, fleet: Fleet) -> None:
    fleet.bedrock.scenario = "rate_limit"
    proxy = await start_proxy([fleet.settings("bedrock")], environ=ENVIRON, routing=RoutingSettings(hold_seconds=0))
    offset = [0.0]
    wall = proxy.engine.clock
    proxy.engine.clock = lambda: wall() + offset[0]  # let cool-downs pass without sleeping
    sdk = client(proxy.url)
    waits = []
    for _ in range(3):
        with pytest.raises(anthropic.RateLimitError):
            await sdk.messages.create(model="claude-sonnet-4-6", **ASK)
        [*_, changed] = [e for e in proxy.events if isinstance(e, ProviderChanged)]
        assert changed.until is not None
        waits.append(round(changed.until - proxy.engine.clock()))
        offset[0] += waits[-1] + 0.5  # cool-down over: the variant is probing and gets the next request
    assert waits == [2, 4, 8]
    assert len(fleet.bedrock.requests) == 3


@pytest.mark.parametrize(
    ("kind", "reason_part"),
    [
        ("bedrock", "InvalidSignatureException"),  # a wrong AWS secret key
        ("vertex", "token refresh failed"),  # a service account the token endpoint does not know
        ("gemini", "API_KEY_INVALID"),  # a wrong API key
    ],
)
async def test_wrong_credentials_disable_the_provider(
    start_proxy, fleet: Fleet, monkeypatch: pytest.MonkeyPatch, kind: str, reason_part: str
) -> None:
    wrong = "wrong-credential-0123456789"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong)
    info = fleet.vertex.service_account_info()
    fleet.service_account.write_text(json.dumps({**info, "client_email": "stranger@elsewhere.iam.gserviceaccount.com"}))
    proxy = await start_proxy(
        [fleet.settings(kind), fleet.settings("anthropic")], environ={**ENVIRON, "GEMINI_API_KEY": wrong}
    )
    message = await client(proxy.url).messages.create(model="claude-sonnet-4-6", **ASK)
    assert message.content[0].text  # the next provider answered
    view = proxy.engine.provider_view(kind)
    state, until, reason = view.state, view.until, view.reason
    assert state == "disabled" and reason_part in reason
    assert until is not None and until - proxy.engine.clock() > 600
    assert wrong not in reason and BedrockMock.secret_key not in reason  # secrets never reach the UI or history


@pytest.mark.parametrize(
    ("kind", "scenario"),
    # The Vertex mock cuts its stream before the first text delta: that fails over before content (nothing
    # was sent yet), which tests/test_faults.py covers.
    [
        (kind, scenario)
        for kind in CLOUD_KINDS
        for scenario in ("mid_stream_error", "mid_stream_cut")
        if (kind, scenario) != ("vertex", "mid_stream_cut")
    ],
)
async def test_mid_stream_failure_becomes_an_error_event(start_proxy, fleet: Fleet, kind: str, scenario: str) -> None:
    fleet.mock(kind).scenario = scenario
    fleet.mock(kind).chunk_delay = 0.02  # the failure comes after the first content reached the client
    # The fallback accepts no prefill, so the answer cannot be rescued (tests/test_faults.py covers rescue).
    proxy = await start_proxy([fleet.settings(kind), fleet.settings("openai")], environ=ENVIRON)
    body = {"model": "claude-sonnet-4-6", "stream": True, **ASK}
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{proxy.url}/v1/messages", json=body, headers={"x-api-key": "k"})
    assert response.status_code == 200  # the stream had started: no failover after the first byte
    assert b"\nevent: error\n" in response.content
    events = parse_sse(response.content)  # every event whole: no half event before the error
    assert events[0]["type"] == "message_start" and events[-1]["type"] == "error"
    assert events[-1]["error"]["type"] in ("overloaded_error", "api_error")
    assert fleet.openai.requests == []
    [finished] = proxy.finished()
    assert not finished.ok and finished.provider == kind
    # The SDK surfaces it as an error (Claude Code retries), never as a short answer.
    alone = await start_proxy([fleet.settings(kind)], environ=ENVIRON)
    with pytest.raises(anthropic.APIStatusError) as raised:
        async with client(alone.url).messages.stream(model="claude-sonnet-4-6", **ASK) as stream:
            await stream.get_final_message()
    assert raised.value.status_code == 200


async def test_overload_mid_stream_cools_the_provider_for_the_next_request(start_proxy, fleet: Fleet) -> None:
    fleet.gemini.script("mid_stream_error")
    fleet.gemini.chunk_delay = 0.02
    proxy = await start_proxy([fleet.settings("gemini"), fleet.settings("openai")], environ=ENVIRON)
    sdk = client(proxy.url)
    with pytest.raises(anthropic.APIStatusError):
        async with sdk.messages.stream(model="claude-sonnet-4-6", **ASK) as stream:
            await stream.get_final_message()
    assert proxy.engine.provider_view("gemini").state == "cooling"
    await sdk.messages.create(model="claude-sonnet-4-6", **ASK)
    assert len(fleet.gemini.requests) == 1 and len(fleet.openai.requests) == 1


# --- variants: model@region rotation, per-variant cool-downs, /health ------------------------------------------


def variant_settings(fleet: Fleet, kind: str) -> tuple[ProviderSettings, Callable[[Any], str]]:
    """A provider with two variants of one model in two regions, and how to tell from a request which served."""
    if kind == "bedrock":
        variants = (Variant.parse(f"{BEDROCK_MODEL}@us-east-1"), Variant.parse(f"{BEDROCK_MODEL}@us-west-2"))
        return fleet.settings(kind, models={"sonnet": variants}), lambda r: _sigv4_region(r.headers["authorization"])
    variants = (Variant.parse(f"{VERTEX_MODEL}@us-east5"), Variant.parse(f"{VERTEX_MODEL}@europe-west1"))
    return fleet.settings(kind, models={"sonnet": variants}), lambda r: r.path.split("/locations/")[1].split("/")[0]


def _sigv4_region(authorization: str) -> str:
    return authorization.split("Credential=")[1].split("/")[2]


@pytest.mark.parametrize("kind", ["bedrock", "vertex"])
async def test_throttled_variant_rotates_to_the_next_region_and_rests(start_proxy, fleet: Fleet, kind: str) -> None:
    mock = fleet.mock(kind)
    mock.script("rate_limit")
    settings, region_of = variant_settings(fleet, kind)
    first_region, second_region = (v.region for v in settings.models["sonnet"])
    proxy = await start_proxy([settings], environ=ENVIRON, routing=RoutingSettings(cooldown_base=60))
    sdk = client(proxy.url)
    for _ in range(3):
        message = await sdk.messages.create(model="claude-sonnet-4-6", **ASK)
        assert message.content[0].text == GREETING[kind]
    # Variant 1 throttled once, variant 2 served; during variant 1's cool-down it is not asked again.
    assert [region_of(r) for r in mock.requests] == [first_region, second_region, second_region, second_region]
    [failed] = failures(proxy)
    assert failed.attempt.variant == settings.models["sonnet"][0].key and failed.next_provider == kind
    assert all(f.ok and f.attempts[-1].variant == settings.models["sonnet"][1].key for f in proxy.finished())
    assert proxy.engine.provider_view(kind).state == "partial"  # one variant cooling, the provider still serves

    async with httpx.AsyncClient() as http:
        report = (await http.get(f"{proxy.url}/health")).json()
    [provider] = report["providers"]
    assert provider["state"] == "partial"
    variants = {v["variant"]: v for v in provider["variants"]}
    assert set(variants) == {v.key for v in settings.models["sonnet"]}
    cooling = variants[settings.models["sonnet"][0].key]
    assert cooling["state"] == "cooling" and cooling["cooldown_until"] > proxy.engine.clock() + 50
    assert variants[settings.models["sonnet"][1].key]["state"] == "ok"


async def test_every_variant_throttled_answers_429_with_the_soonest_retry(start_proxy, fleet: Fleet) -> None:
    fleet.bedrock.scenario = "rate_limit"
    settings, _ = variant_settings(fleet, "bedrock")
    routing = RoutingSettings(cooldown_base=20, hold_seconds=0)  # answer at once, do not hold for the recovery
    proxy = await start_proxy([settings], environ=ENVIRON, routing=routing)
    with pytest.raises(anthropic.RateLimitError) as raised:
        await client(proxy.url).messages.create(model="claude-sonnet-4-6", **ASK)
    assert 19 <= int(raised.value.response.headers["retry-after"]) <= 20
    assert len(fleet.bedrock.requests) == 2  # each variant once, then the proxy stops hammering
    assert proxy.engine.provider_view("bedrock").state == "cooling"


async def test_health_lists_configured_variants_before_any_request(start_proxy, fleet: Fleet) -> None:
    settings, _ = variant_settings(fleet, "vertex")
    proxy = await start_proxy([settings], environ=ENVIRON)
    async with httpx.AsyncClient() as http:
        report = (await http.get(f"{proxy.url}/health")).json()
    [provider] = report["providers"]
    assert [v["variant"] for v in provider["variants"]] == [v.key for v in settings.models["sonnet"]]
    assert all(v["state"] == "ok" for v in provider["variants"])


@pytest.mark.parametrize(
    ("text", "model", "region"),
    [
        (f"{BEDROCK_MODEL}@eu-central-1", BEDROCK_MODEL, "eu-central-1"),
        (BEDROCK_MODEL, BEDROCK_MODEL, None),
        (VERTEX_MODEL, VERTEX_MODEL, None),  # `@date` in a Vertex id is not a region
        (f"{VERTEX_MODEL}@europe-west1", VERTEX_MODEL, "europe-west1"),
        (f"{VERTEX_MODEL}@global", VERTEX_MODEL, "global"),
        ("claude-opus-4-1@20250805@us", "claude-opus-4-1@20250805", "us"),
    ],
)
def test_variant_syntax_documented_in_cloud_providers_md(text: str, model: str, region: str | None) -> None:
    assert Variant.parse(text) == Variant(model, region)


# --- cross-provider continuity ---------------------------------------------------------------------------------
# A conversation produced by one provider continues on every other kind without a 400: each target gets the
# history in a form it accepts (tool ids it allows, no signatures it cannot verify), judged by what it received.

SOURCES = ("anthropic", "openai", "gemini", "foreign_ids")
TARGETS = ("anthropic", "openai", "bedrock", "vertex", "gemini")
ROUTED_MODEL = {
    "anthropic": "claude-sonnet-4-6",
    "openai": "mock-large",
    "bedrock": BEDROCK_MODEL,
    "vertex": VERTEX_MODEL,
    "gemini": GEMINI_MODEL,
}
THINKING = {"type": "enabled", "budget_tokens": 1024}
ANTHROPIC_TOOL_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
OPENAI_MAX_TOOL_ID = 40  # OpenAI answers 400 string_above_max_length for longer tool_calls[].id


def routed_fleet(fleet: Fleet) -> list[ProviderSettings]:
    """Every kind behind one proxy, each reached by asking for model `via-<kind>`."""
    return [fleet.settings(kind, models={f"via-{kind}": (Variant(ROUTED_MODEL[kind]),)}) for kind in TARGETS]


def foreign_id_history() -> list[dict[str, Any]]:
    """History as OpenAI-compatible hosts of other models leave it: `functions.name:index` ids (Kimi via
    OpenRouter, with dots and colons) and a thinking block whose signature no Claude service issued."""
    calls = [("functions.get_weather:0", "get_weather", {"location": "Paris"}), ("call.7:b", "get_time", {})]
    return [
        {"role": "user", "content": "Weather and time in Paris?"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Two lookups.", "signature": "reasoning-from-another-model"},
                {"type": "text", "text": "Looking both up."},
                *({"type": "tool_use", "id": i, "name": n, "input": a} for i, n, a in calls),
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": i, "content": "ok"} for i, _, _ in calls]},
    ]


async def produced_history(sdk: anthropic.AsyncAnthropic, fleet: Fleet, source: str) -> list[dict[str, Any]]:
    """Two real turns served by the source provider through the proxy: one with thinking, one with parallel
    tool calls, ending in the tool results (as Claude Code would send them next)."""
    if source == "foreign_ids":
        return foreign_id_history()
    fleet.mock(source).script("thinking", "parallel_tools")
    model = f"via-{source}"
    history: list[dict[str, Any]] = [{"role": "user", "content": "What is 6 times 7?"}]
    first = await sdk.messages.create(model=model, max_tokens=2048, thinking=THINKING, messages=history)  # type: ignore[arg-type]
    history += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": "And the weather and time in Paris?"},
    ]
    tools = [WEATHER_TOOL, TIME_TOOL]
    second = await sdk.messages.create(model=model, max_tokens=2048, tools=tools, messages=history)  # type: ignore[arg-type]
    calls = [b for b in second.content if b.type == "tool_use"]
    assert len(calls) == 2
    results = [{"type": "tool_result", "tool_use_id": c.id, "content": f"{c.name}: ok"} for c in calls]
    answer = [b.model_dump(exclude_none=True) for b in second.content]
    return [*history, {"role": "assistant", "content": answer}, {"role": "user", "content": results}]


def blocks_of(history: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [b for m in history if isinstance(m["content"], list) for b in m["content"] if b["type"] == kind]


def signatures_in(history: list[dict[str, Any]]) -> list[str]:
    return [b["signature"] for b in blocks_of(history, "thinking") if b.get("signature")] + [
        b["data"] for b in blocks_of(history, "redacted_thinking")
    ]


def anthropic_tool_pairs(messages: list[dict[str, Any]]) -> list[tuple[list[str], list[str]]]:
    """(tool_use ids of an assistant turn, tool_result ids of the user turn after it) for each tool turn."""
    pairs = []
    for message, reply in itertools.pairwise(messages):
        calls = [b["id"] for b in blocks_of([message], "tool_use")] if message["role"] == "assistant" else []
        if calls:
            pairs.append((calls, [b["tool_use_id"] for b in blocks_of([reply], "tool_result")]))
    return pairs


def check_anthropic_protocol_target(received: dict[str, Any], raw: bytes, history: list[dict[str, Any]]) -> None:
    [(calls, results)] = anthropic_tool_pairs(received["messages"])
    assert calls == results  # rewritten ids stay paired
    assert all(ANTHROPIC_TOOL_ID.match(tool_id) for tool_id in calls)
    source_ids = [b["id"] for b in blocks_of(history, "tool_use")]
    for original, sent in zip(source_ids, calls, strict=True):
        assert sent == original if ANTHROPIC_TOOL_ID.match(original) else sent != original
    kept = [b["signature"] for b in blocks_of(received["messages"], "thinking")]
    assert kept == [s for s in signatures_in(history) if re.fullmatch(r"[A-Za-z0-9+/]{16,}={0,2}", s)]
    assert b"gemini:" not in raw and b"reasoning-from-another-model" not in raw
    # The last tool turn has no thinking block any more: with thinking on, the API would answer 400.
    assert "thinking" not in received


def check_openai_target(received: dict[str, Any], raw: bytes, history: list[dict[str, Any]]) -> None:
    messages = received["messages"]
    [calling] = [m for m in messages if m.get("tool_calls")]
    call_ids = [c["id"] for c in calling["tool_calls"]]
    start = messages.index(calling) + 1
    assert [m["tool_call_id"] for m in messages[start : start + len(call_ids)]] == call_ids
    assert all(0 < len(tool_id) <= OPENAI_MAX_TOOL_ID for tool_id in call_ids)
    for signature in signatures_in(history):
        assert signature.encode() not in raw


def check_gemini_target(
    received: dict[str, Any], raw: bytes, history: list[dict[str, Any]], source: str, issued: set[str]
) -> None:
    contents = received["contents"]
    [calling] = [c for c in contents if any("functionCall" in p for p in c["parts"])]
    calls = [p for p in calling["parts"] if "functionCall" in p]
    answer = contents[contents.index(calling) + 1]
    responses = [p["functionResponse"]["name"] for p in answer["parts"] if "functionResponse" in p]
    assert responses == [p["functionCall"]["name"] for p in calls]
    if source == "gemini":  # Gemini's own signature comes back on the part it was issued for
        assert calls[0]["thoughtSignature"] in issued
    else:
        assert calls[0]["thoughtSignature"] == PLACEHOLDER_SIGNATURE
        for signature in signatures_in(history):
            assert signature.encode() not in raw


@pytest.mark.parametrize(
    ("source", "target"),
    [(source, target) for source in SOURCES for target in TARGETS if source != target],
)
async def test_history_from_one_provider_continues_on_another(
    start_proxy, fleet: Fleet, source: str, target: str
) -> None:
    proxy = await start_proxy(routed_fleet(fleet), environ=ENVIRON)
    sdk = client(proxy.url)
    history = await produced_history(sdk, fleet, source)
    mock = fleet.mock(target)
    ask: dict[str, Any] = {"max_tokens": 2048, "thinking": THINKING, "tools": [WEATHER_TOOL, TIME_TOOL]}
    reply = await sdk.messages.create(model=f"via-{target}", messages=history, **ask)  # a 400 would raise
    assert reply.content and proxy.finished()[-1].provider == target
    sent = mock.requests[-1]
    if target == "openai":
        check_openai_target(sent.json(), sent.body, history)
    elif target == "gemini":
        check_gemini_target(sent.json(), sent.body, history, source, fleet.gemini.issued_signatures)
    else:
        check_anthropic_protocol_target(sent.json(), sent.body, history)
        # Rewriting is deterministic: the same history gives the same ids (prompt caches stay warm).
        await sdk.messages.create(model=f"via-{target}", messages=history, **ask)
        assert anthropic_tool_pairs(mock.requests[-1].json()["messages"]) == anthropic_tool_pairs(
            sent.json()["messages"]
        )


async def test_gemini_history_continues_on_gemini_with_its_signatures(start_proxy, fleet: Fleet) -> None:
    proxy = await start_proxy(routed_fleet(fleet), environ=ENVIRON)
    sdk = client(proxy.url)
    history = await produced_history(sdk, fleet, "gemini")
    await sdk.messages.create(model="via-gemini", max_tokens=2048, messages=history)
    contents = fleet.gemini.requests[-1].json()["contents"]
    signed = [p["thoughtSignature"] for c in contents for p in c["parts"] if "thoughtSignature" in p]
    assert signed and set(signed) <= fleet.gemini.issued_signatures  # every signature back where it came from
