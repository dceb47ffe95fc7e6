"""The user's configured provider `headers` win over every adapter's defaults, auth headers included.

Each adapter talks over loopback HTTP to the mock of its kind; the mock records the headers it received and
checks credentials the way the real service does, so a 200 means the user's header was the one that counted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from ccm_tui.config import ProviderSettings, RoutingSettings
from ccm_tui.core.contract import MessageReply, Route, Variant
from ccm_tui.demo.mockserver import MockServer
from ccm_tui.providers.build import build_provider
from ccm_tui.providers.headers import configures, request_headers
from tests.mocks.cloud_mocks import BedrockMock, GeminiMock, VertexMock
from tests.mocks.upstreams import AnthropicMock, OpenAIMock
from tests.stream_helpers import make_request

USER_KEY = "user-gateway-key"
STALE_KEY = "stale-adapter-key"  # what the adapter would send on its own: the mocks reject it
MODELS = {
    "anthropic": "claude-sonnet-4-5",
    "openai": "mock-large",
    "bedrock": "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
    "vertex": "claude-sonnet-4-5@20250929",
    "gemini": "gemini-2.5-pro",
}
KINDS = tuple(MODELS)


@pytest.fixture(autouse=True)
def no_cloud_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Neither AWS nor Google credentials anywhere: only what the test configures can authenticate."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", STALE_KEY)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "missing-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "missing-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing-service-account.json"))
    monkeypatch.setenv("GEMINI_API_KEY", STALE_KEY)


MOCKS: dict[str, type[MockServer]] = {
    "anthropic": AnthropicMock,
    "openai": OpenAIMock,
    "bedrock": BedrockMock,
    "vertex": VertexMock,
    "gemini": GeminiMock,
}


@asynccontextmanager
async def running(kind: str) -> AsyncIterator[MockServer]:
    async with MOCKS[kind]() as server:
        if isinstance(server, AnthropicMock | OpenAIMock):
            server.expected_key = USER_KEY
        yield server


def user_auth(kind: str, mock: MockServer) -> dict[str, str]:
    """An auth header the user configures for a gateway (a name spelled in its own case), valid at the mock."""
    if kind == "anthropic":
        return {"X-Api-Key": USER_KEY}
    if kind == "openai":
        return {"Authorization": f"Bearer {USER_KEY}"}
    if kind == "bedrock":
        return {"Authorization": f"Bearer {BedrockMock.api_key}"}
    if kind == "vertex":
        assert isinstance(mock, VertexMock)
        mock.issued_tokens.add("ya29.user-token")  # a token the user got from gcloud, say
        return {"Authorization": "Bearer ya29.user-token"}
    return {"X-Goog-Api-Key": GeminiMock.api_key}


async def send(kind: str, mock: MockServer, headers: dict[str, str]) -> Any:
    settings = ProviderSettings(
        name=kind,
        kind=kind,
        base_url=mock.url,  # type: ignore[attr-defined]
        api_key_env="UPSTREAM_KEY",
        region="us-east5" if kind == "vertex" else "us-west-2",
        project=VertexMock.project if kind == "vertex" else None,
        models={"default": (Variant(MODELS[kind]),)},
        headers=headers,
    )
    provider = build_provider(settings, RoutingSettings(connect_timeout=2.0, idle_timeout=5.0))
    if kind in ("anthropic", "openai"):
        provider.set_api_key(STALE_KEY)
    try:
        assert provider.has_credentials
        return await provider.send(make_request(stream=False), Route(kind, Variant(MODELS[kind])))
    finally:
        await provider.aclose()


@pytest.mark.parametrize("kind", KINDS)
async def test_a_configured_auth_header_wins_over_the_adapters_own(kind: str) -> None:
    async with running(kind) as mock:
        configured = user_auth(kind, mock)
        reply = await send(kind, mock, configured)
    assert isinstance(reply, MessageReply)
    [recorded] = mock.requests
    [(name, value)] = configured.items()
    assert recorded.headers[name.lower()] == value


@pytest.mark.parametrize("kind", KINDS)
async def test_a_configured_content_type_replaces_the_default(kind: str) -> None:
    async with running(kind) as mock:
        configured = {**user_auth(kind, mock), "Content-Type": "application/json; charset=utf-8", "X-Route": "blue"}
        reply = await send(kind, mock, configured)
    assert isinstance(reply, MessageReply)
    [recorded] = mock.requests
    assert recorded.headers["content-type"] == "application/json; charset=utf-8"
    assert recorded.headers["x-route"] == "blue"


async def test_bedrock_signs_the_users_headers_as_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_BEARER_TOKEN_BEDROCK")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", BedrockMock.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", BedrockMock.secret_key)
    async with running("bedrock") as mock:
        reply = await send("bedrock", mock, {"Content-Type": "application/json; charset=utf-8", "X-Route": "blue"})
    assert isinstance(reply, MessageReply)  # the mock verified the signature over what it received
    [recorded] = mock.requests
    assert recorded.headers["authorization"].startswith("AWS4-HMAC-SHA256 ")
    signed = recorded.headers["authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    assert {"content-type", "x-route"} <= set(signed)
    assert recorded.headers["content-type"] == "application/json; charset=utf-8"


@pytest.mark.parametrize(
    ("defaults", "configured", "expected"),
    [
        ({"content-type": "a"}, {}, {"content-type": "a"}),
        ({"content-type": "a"}, {"Content-Type": "b"}, {"content-type": "b"}),
        ({"Authorization": "Bearer adapter"}, {"authorization": "Bearer user"}, {"authorization": "Bearer user"}),
        ({"accept": "a", "Accept": "vendor"}, {}, {"accept": "vendor"}),
        ({"x-api-key": "k"}, {"X-Org": "o"}, {"x-api-key": "k", "x-org": "o"}),
    ],
)
def test_request_headers_lets_configured_headers_win_whatever_their_case(defaults, configured, expected) -> None:
    assert request_headers(defaults, configured) == expected


def test_configures_compares_names_without_case() -> None:
    assert configures({"X-Goog-Api-Key": "k"}, "x-goog-api-key")
    assert not configures({"x-goog-api-key-2": "k"}, "x-goog-api-key")
