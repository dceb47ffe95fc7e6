"""Endpoints other than the happy path: bad input, auth, count_tokens, models, health, root, unknown routes."""

from __future__ import annotations

import anthropic
import httpx
import orjson
import pytest

from ccm_tui.config import ProviderSettings
from ccm_tui.core.contract import Variant
from ccm_tui.proxy.server import bind_socket
from ccm_tui.runtime import Runtime, StartupError
from tests.mocks.upstreams import AnthropicMock, OpenAIMock


@pytest.fixture
async def upstream():
    async with AnthropicMock() as mock:
        yield mock


@pytest.fixture
async def proxy(start_proxy, upstream):
    return await start_proxy(
        [ProviderSettings(name="anth", kind="anthropic", base_url=upstream.url, api_key_env="TEST_KEY")]
    )


GOOD = {"model": "claude-sonnet-4-6", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}

BAD_INPUT = [
    (b"{not json", 400, "not valid JSON"),
    (b"", 400, "empty"),
    (b"[1, 2]", 400, "must be a JSON object"),
    (orjson.dumps({k: v for k, v in GOOD.items() if k != "model"}), 400, "model: Field required"),
    (orjson.dumps({**GOOD, "model": 42}), 400, "model: expected a non-empty string"),
    (orjson.dumps({k: v for k, v in GOOD.items() if k != "max_tokens"}), 400, "max_tokens: Field required"),
    (orjson.dumps({**GOOD, "max_tokens": "10"}), 400, "max_tokens: expected a non-negative integer"),
    (orjson.dumps({**GOOD, "max_tokens": -1}), 400, "max_tokens"),
    (orjson.dumps({k: v for k, v in GOOD.items() if k != "messages"}), 400, "messages: Field required"),
    (orjson.dumps({**GOOD, "messages": "hi"}), 400, "messages: expected an array"),
    (orjson.dumps({**GOOD, "messages": []}), 400, "at least one message"),
    (orjson.dumps({**GOOD, "messages": [{"role": "robot", "content": "x"}]}), 400, "messages.0.role"),
    (orjson.dumps({**GOOD, "messages": [{"role": "user"}]}), 400, "messages.0.content: Field required"),
    (orjson.dumps({**GOOD, "messages": [{"role": "user", "content": 5}]}), 400, "messages.0.content"),
    (
        orjson.dumps({**GOOD, "messages": [{"role": "user", "content": [{"text": "x"}]}]}),
        400,
        "messages.0.content.0.type",
    ),
    (orjson.dumps({**GOOD, "stream": "yes"}), 400, "stream: expected a boolean"),
    (orjson.dumps({**GOOD, "system": 3}), 400, "system"),
    (orjson.dumps({**GOOD, "tools": [{"description": "x"}]}), 400, "tools.0.name"),
    (orjson.dumps({**GOOD, "tool_choice": {"type": "sometimes"}}), 400, "tool_choice.type"),
    (orjson.dumps({**GOOD, "temperature": "hot"}), 400, "temperature"),
    (orjson.dumps({**GOOD, "stop_sequences": "END"}), 400, "stop_sequences"),
]


@pytest.mark.parametrize(("body", "status", "fragment"), BAD_INPUT)
async def test_bad_input_gets_anthropic_shaped_4xx_naming_the_field(proxy, upstream, body, status, fragment) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{proxy.url}/v1/messages", content=body, headers={"x-api-key": "k", "content-type": "application/json"}
        )
    assert response.status_code == status
    payload = response.json()
    assert payload["type"] == "error" and payload["error"]["type"] == "invalid_request_error"
    assert fragment in payload["error"]["message"]
    assert payload["request_id"].startswith("req_") and response.headers["request-id"] == payload["request_id"]
    assert upstream.requests == []


async def test_bad_input_through_the_sdk_raises_bad_request(proxy) -> None:
    sdk = anthropic.AsyncAnthropic(base_url=proxy.url, api_key="k", max_retries=0)
    with pytest.raises(anthropic.BadRequestError, match="messages"):
        await sdk.messages.create(model="claude-sonnet-4-6", max_tokens=5, messages="hello")  # type: ignore[arg-type]


async def test_oversize_body_is_413_request_too_large(start_proxy, upstream) -> None:
    from ccm_tui.config import ServerSettings

    proxy = await start_proxy(
        [ProviderSettings(name="anth", kind="anthropic", base_url=upstream.url, api_key_env="TEST_KEY")],
        server=ServerSettings(max_body_mb=0.01),
    )
    big = {**GOOD, "messages": [{"role": "user", "content": "x" * 20_000}]}
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{proxy.url}/v1/messages", json=big)
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "request_too_large"


async def test_unknown_fields_and_both_auth_styles_pass_through(proxy, upstream) -> None:
    body = {**GOOD, "output_config": {"effort": "high"}, "context_management": {"edits": []}, "speed": "fast"}
    async with httpx.AsyncClient() as http:
        for headers in (
            {"x-api-key": "a", "anthropic-version": "2023-06-01"},
            {"authorization": "Bearer b", "anthropic-version": "2026-10-21"},
        ):
            response = await http.post(f"{proxy.url}/v1/messages?beta=true", json=body, headers=headers)
            assert response.status_code == 200, response.text
    forwarded = upstream.requests[-1]
    assert forwarded.json()["output_config"] == {"effort": "high"}
    assert forwarded.headers["anthropic-version"] == "2026-10-21"


async def test_proxy_key_required_when_configured(start_proxy, upstream) -> None:
    from ccm_tui.config import ServerSettings

    proxy = await start_proxy(
        [ProviderSettings(name="anth", kind="anthropic", base_url=upstream.url, api_key_env="TEST_KEY")],
        server=ServerSettings(auth_key_env="PROXY_KEY"),
        environ={"TEST_KEY": "up", "PROXY_KEY": "s3cret"},
    )
    async with httpx.AsyncClient() as http:
        denied = await http.post(f"{proxy.url}/v1/messages", json=GOOD, headers={"x-api-key": "wrong"})
        bearer = await http.post(f"{proxy.url}/v1/messages", json=GOOD, headers={"authorization": "Bearer s3cret"})
        header = await http.post(f"{proxy.url}/v1/messages", json=GOOD, headers={"x-api-key": "s3cret"})
    assert denied.status_code == 401 and denied.json()["error"]["type"] == "authentication_error"
    assert "s3cret" not in denied.text
    assert bearer.status_code == 200 and header.status_code == 200


def test_proxy_key_env_must_be_set() -> None:
    from ccm_tui.config import ServerSettings, Settings

    with pytest.raises(StartupError, match="PROXY_KEY"):
        Runtime(Settings(server=ServerSettings(auth_key_env="PROXY_KEY")), environ={})


async def test_count_tokens_uses_the_native_counter(proxy, upstream) -> None:
    sdk = anthropic.AsyncAnthropic(base_url=proxy.url, api_key="k", max_retries=0)
    counted = await sdk.messages.count_tokens(model="claude-sonnet-4-6", messages=[{"role": "user", "content": "hi"}])
    assert counted.input_tokens > 0
    assert upstream.requests[-1].path == "/v1/messages/count_tokens"


async def test_count_tokens_estimates_locally_for_openai_family(start_proxy) -> None:
    async with OpenAIMock() as mock:
        proxy = await start_proxy(
            [
                ProviderSettings(
                    name="oai",
                    kind="openai",
                    base_url=mock.url,
                    api_key_env="TEST_KEY",
                    models={"default": (Variant("m"),)},
                )
            ]
        )
        sdk = anthropic.AsyncAnthropic(base_url=proxy.url, api_key="k", max_retries=0)
        tools = [
            {
                "name": "Bash",
                "description": "Run a shell command " * 20,
                "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
            }
        ]
        short = await sdk.messages.count_tokens(model="claude-sonnet-4-6", messages=[{"role": "user", "content": "hi"}])
        longer = await sdk.messages.count_tokens(
            model="claude-sonnet-4-6",
            system="You are a careful engineer.",
            tools=tools,
            messages=[
                {"role": "user", "content": "List the files " * 50},
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "ls -la"}}],
                },
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "a.py\nb.py\n" * 40}],
                },
            ],
        )
    assert 1 <= short.input_tokens < 20
    assert longer.input_tokens > short.input_tokens + 300  # system, tools, tool input and results all count
    assert mock.requests == []


async def test_models_health_root_and_unknown_routes(proxy) -> None:
    async with httpx.AsyncClient() as http:
        models = (await http.get(f"{proxy.url}/v1/models")).json()
        health = (await http.get(f"{proxy.url}/health")).json()
        head = await http.head(f"{proxy.url}/")
        root = await http.get(f"{proxy.url}/")
        missing = await http.get(f"{proxy.url}/v2/nothing")
        wrong_method = await http.get(f"{proxy.url}/v1/messages")
    ids = [m["id"] for m in models["data"]]
    assert {"claude-haiku-4-5", "claude-sonnet-4-5", "claude-opus-4-5"} <= set(ids)
    assert health["ready"] is True and health["providers"][0]["name"] == "anth"
    assert head.status_code == 200 and root.status_code == 200
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"
    assert wrong_method.status_code == 405 and wrong_method.json()["type"] == "error"


async def test_unmapped_model_is_404_naming_the_model(start_proxy) -> None:
    async with OpenAIMock() as mock:
        proxy = await start_proxy(
            [
                ProviderSettings(
                    name="oai",
                    kind="openai",
                    base_url=mock.url,
                    api_key_env="TEST_KEY",
                    models={"haiku": (Variant("small"),)},
                )
            ]
        )
        sdk = anthropic.AsyncAnthropic(base_url=proxy.url, api_key="k", max_retries=0)
        with pytest.raises(anthropic.NotFoundError, match="claude-opus-4-8"):
            await sdk.messages.create(
                model="claude-opus-4-8", max_tokens=5, messages=[{"role": "user", "content": "x"}]
            )


async def test_paused_proxy_refuses_new_requests_clearly(proxy) -> None:
    proxy.engine.set_paused(True)
    sdk = anthropic.AsyncAnthropic(base_url=proxy.url, api_key="k", max_retries=0)
    with pytest.raises(anthropic.APIStatusError) as raised:
        await sdk.messages.create(**GOOD)
    assert raised.value.status_code == 529 and "paused" in raised.value.message


async def test_upstream_key_never_reaches_the_client_or_events(start_proxy, upstream) -> None:
    upstream.scenario = "auth"
    proxy = await start_proxy(
        [ProviderSettings(name="anth", kind="anthropic", base_url=upstream.url, api_key_env="TEST_KEY")],
        environ={"TEST_KEY": "sk-ant-SECRET-123"},
    )
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{proxy.url}/v1/messages", json=GOOD)
    assert response.status_code >= 400
    assert "SECRET" not in response.text
    assert all("SECRET" not in repr(event) for event in proxy.events)


async def test_busy_port_is_a_clear_error() -> None:
    from ccm_tui.proxy.server import BindError

    holder = bind_socket("127.0.0.1", 0)
    port = holder.getsockname()[1]
    try:
        with pytest.raises(BindError, match=f"Port {port} on 127.0.0.1 is already in use"):
            bind_socket("127.0.0.1", port)
    finally:
        holder.close()
