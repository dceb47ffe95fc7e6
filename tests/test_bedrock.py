"""Bedrock adapter against the Bedrock mock over loopback HTTP: SigV4, API keys, eventstream, errors."""

from __future__ import annotations

import base64
import json
import random
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from anthropic.types import Message
from botocore.eventstream import EventStreamBuffer

from ccm_tui.config import ProviderSettings, RoutingSettings
from ccm_tui.core.contract import MessageReply, Route, StreamReply, UpstreamError, Variant
from ccm_tui.core.states import ErrorOrigin, TransportFailure
from ccm_tui.providers.bedrock import BedrockProvider
from tests.mocks.anthropic_script import parse_sse, stream_grammar_problem
from tests.mocks.cloud_mocks import BedrockMock, eventstream_frame, split_at_odd_boundaries
from tests.stream_helpers import make_request, read_all, sdk_message

MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Static credentials from the environment only: no profile files, no instance metadata calls."""
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_BEARER_TOKEN_BEDROCK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", BedrockMock.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", BedrockMock.secret_key)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "missing-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "missing-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
async def mock() -> AsyncIterator[BedrockMock]:
    async with BedrockMock() as server:
        assert isinstance(server, BedrockMock)
        yield server


@pytest.fixture
async def provider(mock: BedrockMock, aws_env: None) -> AsyncIterator[BedrockProvider]:
    settings = ProviderSettings(name="bedrock", kind="bedrock", base_url=mock.url, region="us-west-2")
    adapter = BedrockProvider(settings, RoutingSettings())
    yield adapter
    await adapter.aclose()


ROUTE = Route("bedrock", Variant(MODEL))


async def test_text_stream_is_decoded_from_eventstream_into_anthropic_sse(provider: BedrockProvider, mock: BedrockMock):
    reply = await provider.send(make_request(), ROUTE)
    assert isinstance(reply, StreamReply)
    data = await read_all(reply)
    events = parse_sse(data)
    assert stream_grammar_problem(events) is None
    assert b"amazon-bedrock-invocationMetrics" not in data
    message = sdk_message(events)
    assert message.content[0].text == "Hello from the Bedrock mock. How can I help?"
    assert reply.meter.completed and reply.meter.stop_reason == "end_turn"
    assert reply.meter.usage.input_tokens > 0 and reply.meter.usage.output_tokens > 0
    assert mock.signatures == [("us-west-2", "bedrock")]


async def test_request_body_is_shaped_for_invoke_model(provider: BedrockProvider, mock: BedrockMock):
    betas = ("claude-code-20250219", "interleaved-thinking-2025-05-14", "oauth-2025-04-20")
    await read_all(await provider.send(make_request(betas=betas), ROUTE))
    sent = mock.requests[0]
    assert sent.path == f"/model/{MODEL}/invoke-with-response-stream"
    body = sent.json()
    assert body["anthropic_version"] == "bedrock-2023-05-31"
    assert body["anthropic_beta"] == ["interleaved-thinking-2025-05-14"]
    assert "model" not in body and "stream" not in body and "metadata" not in body
    assert sent.headers["x-amzn-bedrock-accept"] == "application/json"


async def test_non_streaming_reply_passes_the_message_through(provider: BedrockProvider, mock: BedrockMock):
    mock.scenario = "tools"
    reply = await provider.send(make_request(stream=False), ROUTE)
    assert isinstance(reply, MessageReply)
    message = Message.model_validate_json(reply.body)
    assert [b.type for b in message.content] == ["text", "tool_use"]
    assert message.stop_reason == "tool_use"
    assert reply.usage.input_tokens == message.usage.input_tokens
    assert mock.requests[0].path.endswith("/invoke")


@pytest.mark.parametrize(
    ("scenario", "types", "stop_reason"),
    [
        ("tools", ["text", "tool_use"], "tool_use"),
        ("parallel_tools", ["tool_use", "tool_use"], "tool_use"),
        ("thinking", ["thinking", "text"], "end_turn"),
    ],
)
async def test_streamed_scenarios_parse_with_the_sdk(
    provider: BedrockProvider, mock: BedrockMock, scenario: str, types: list[str], stop_reason: str
):
    mock.scenario = scenario
    events = parse_sse(await read_all(await provider.send(make_request(), ROUTE)))
    assert stream_grammar_problem(events) is None
    message = sdk_message(events)
    assert [b.type for b in message.content] == types
    assert message.stop_reason == stop_reason
    if scenario == "parallel_tools":
        assert message.content[1].input == {"timezone": "Europe/Paris"}
    if scenario == "thinking":
        assert message.content[0].signature


async def test_wrong_secret_is_rejected_by_signature_check(
    provider: BedrockProvider, mock: BedrockMock, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    other = BedrockProvider(provider.settings, RoutingSettings())
    try:
        with pytest.raises(UpstreamError) as caught:
            await other.send(make_request(), ROUTE)
    finally:
        await other.aclose()
    assert caught.value.status == 403
    assert caught.value.error_type == "InvalidSignatureException"
    assert "not-the-secret" not in caught.value.message


async def test_bearer_api_key_replaces_sigv4(provider: BedrockProvider, mock: BedrockMock):
    provider.set_api_key(BedrockMock.api_key)
    await read_all(await provider.send(make_request(), ROUTE))
    assert mock.requests[0].headers["authorization"] == f"Bearer {BedrockMock.api_key}"
    assert mock.bearer_requests == 1 and mock.signatures == []
    provider.set_api_key("wrong-key")
    with pytest.raises(UpstreamError) as caught:
        await provider.send(make_request(), ROUTE)
    assert (caught.value.status, caught.value.error_type) == (403, "UnrecognizedClientException")


async def test_bearer_token_from_environment(mock: BedrockMock, aws_env: None, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", BedrockMock.api_key)
    adapter = BedrockProvider(
        ProviderSettings(name="b", kind="bedrock", base_url=mock.url, region="eu-west-1"), RoutingSettings()
    )
    try:
        await read_all(await adapter.send(make_request(), ROUTE))
    finally:
        await adapter.aclose()
    assert mock.bearer_requests == 1


async def test_variant_region_is_used_for_signing(provider: BedrockProvider, mock: BedrockMock):
    route = Route("bedrock", Variant("anthropic.claude-sonnet-4-5-20250929-v1:0", region="eu-central-1"))
    await read_all(await provider.send(make_request(), route))
    assert mock.signatures == [("eu-central-1", "bedrock")]


async def test_inference_profile_arn_is_one_path_segment(provider: BedrockProvider, mock: BedrockMock):
    arn = "arn:aws:bedrock:us-west-2:123456789012:inference-profile/us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    reply = await provider.send(make_request(stream=False), Route("bedrock", Variant(arn)))
    assert isinstance(reply, MessageReply)
    assert mock.signatures == [("us-west-2", "bedrock")]


@pytest.mark.parametrize(
    ("scenario", "status", "error_type"),
    [
        ("rate_limit", 429, "ThrottlingException"),
        ("not_ready", 429, "ModelNotReadyException"),
        ("overloaded", 503, "ServiceUnavailableException"),
        ("server_error", 500, "InternalServerException"),
        ("auth", 403, "AccessDeniedException"),
    ],
)
async def test_errors_are_normalised_from_the_error_type_header(
    provider: BedrockProvider, mock: BedrockMock, scenario: str, status: int, error_type: str
):
    mock.scenario = scenario
    with pytest.raises(UpstreamError) as caught:
        await provider.send(make_request(), ROUTE)
    assert (caught.value.status, caught.value.error_type) == (status, error_type)
    assert caught.value.message.startswith(error_type)


async def test_validation_error_is_a_client_error(mock: BedrockMock, aws_env: None):
    # A configured beta list is trusted as-is; the service rejects a beta it does not know.
    settings = ProviderSettings(name="b", kind="bedrock", base_url=mock.url, region="us-west-2", betas=("bogus-beta",))
    adapter = BedrockProvider(settings, RoutingSettings())
    try:
        with pytest.raises(UpstreamError) as caught:
            await adapter.send(make_request(betas=("bogus-beta",)), ROUTE)
    finally:
        await adapter.aclose()
    assert (caught.value.status, caught.value.error_type) == (400, "ValidationException")


async def test_mid_stream_exception_frame_raises_after_the_first_events(provider: BedrockProvider, mock: BedrockMock):
    mock.scenario = "mid_stream_error"
    reply = await provider.send(make_request(), ROUTE)
    received = b""
    with pytest.raises(UpstreamError) as caught:
        async for chunk in reply:
            received += chunk
    await reply.aclose()
    assert b"event: message_start" in received
    assert caught.value.error_type == "ModelStreamErrorException"
    assert caught.value.status == 424


async def test_connection_cut_mid_stream_raises_a_transport_error(provider: BedrockProvider, mock: BedrockMock):
    mock.scenario = "mid_stream_cut"
    reply = await provider.send(make_request(), ROUTE)
    with pytest.raises(UpstreamError) as caught:
        async for _ in reply:
            pass
    await reply.aclose()
    assert caught.value.origin is ErrorOrigin.TRANSPORT and caught.value.transport is TransportFailure.READ


async def test_closing_the_reply_aborts_the_upstream_stream(provider: BedrockProvider, mock: BedrockMock):
    mock.chunk_delay = 0.01
    provider.set_api_key(BedrockMock.api_key)
    reply = await provider.send(make_request(), ROUTE)
    iterator = reply.__aiter__()
    await anext(iterator)
    await reply.aclose()
    await mock.aborted.wait()
    assert mock.aborts == 1


async def test_count_tokens_uses_the_base_model_id(provider: BedrockProvider, mock: BedrockMock):
    count = await provider.count_tokens(make_request(stream=False), ROUTE)
    assert isinstance(count, int) and count > 0
    sent = mock.requests[0]
    assert sent.path == "/model/anthropic.claude-sonnet-4-5-20250929-v1:0/count-tokens"
    inner = orjson.loads(base64.b64decode(sent.json()["input"]["invokeModel"]["body"]))
    assert inner["anthropic_version"] == "bedrock-2023-05-31"


async def test_count_tokens_failure_is_none(provider: BedrockProvider, mock: BedrockMock):
    mock.scenario = "rate_limit"
    assert await provider.count_tokens(make_request(stream=False), ROUTE) is None


async def test_foreign_history_continues_without_a_400(provider: BedrockProvider, mock: BedrockMock):
    messages = [
        {"role": "user", "content": "list files"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "gemini:abc"},
                {"type": "tool_use", "id": "call_abc.123", "name": "Bash", "input": {"command": "ls"}},
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_abc.123", "content": "a.txt"}]},
    ]
    messages.insert(1, {"role": "system", "content": "Claude Code's mid-conversation reminder"})
    request = make_request(messages=messages, thinking={"type": "enabled", "budget_tokens": 2048})
    events = parse_sse(await read_all(await provider.send(request, ROUTE)))
    assert stream_grammar_problem(events) is None
    sent = mock.requests[0].json()
    tool_use = sent["messages"][1]["content"][0]
    assert tool_use["type"] == "tool_use" and tool_use["id"] == sent["messages"][2]["content"][0]["tool_use_id"]
    assert "thinking" not in sent
    assert sent["system"] == [{"type": "text", "text": "Claude Code's mid-conversation reminder"}]


CREDENTIAL_PROCESS = """
import datetime, json, pathlib, sys
counter = pathlib.Path(sys.argv[1])
counter.write_text(counter.read_text() + "x" if counter.exists() else "x")
expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=int(sys.argv[2]))
print(json.dumps({"Version": 1, "AccessKeyId": sys.argv[3], "SecretAccessKey": sys.argv[4],
                  "SessionToken": "mock-session-token", "Expiration": expires.isoformat()}))
"""


@pytest.mark.parametrize(("lifetime", "renewals"), [(3600, 0), (120, 1)])
async def test_temporary_credentials_are_renewed_before_they_expire(
    mock: BedrockMock, aws_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, lifetime: int, renewals: int
):
    # botocore's credential_process provider yields expiring credentials, like SSO or an assumed role.
    script, counter = tmp_path / "creds.py", tmp_path / "fetches"
    script.write_text(CREDENTIAL_PROCESS)
    command = [sys.executable, str(script), str(counter), str(lifetime), BedrockMock.access_key, BedrockMock.secret_key]
    config = tmp_path / "config"
    config.write_text("[default]\ncredential_process = " + " ".join(json.dumps(part) for part in command) + "\n")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    adapter = BedrockProvider(
        ProviderSettings(name="b", kind="bedrock", base_url=mock.url, region="us-west-2"), RoutingSettings()
    )
    try:
        await adapter.send(make_request(stream=False), ROUTE)
        fetched_before = len(counter.read_text())
        await adapter.send(make_request(stream=False), ROUTE)
    finally:
        await adapter.aclose()
    # Credentials good for an hour are reused; ones expiring within the margin are fetched again.
    assert len(counter.read_text()) - fetched_before == renewals
    assert mock.requests[0].headers["x-amz-security-token"] == "mock-session-token"
    assert mock.signatures == [("us-west-2", "bedrock")] * 2


async def test_no_aws_credentials_is_an_auth_failure(mock: BedrockMock, aws_env: None, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    adapter = BedrockProvider(
        ProviderSettings(name="b", kind="bedrock", base_url=mock.url, region="us-west-2"), RoutingSettings()
    )
    try:
        with pytest.raises(UpstreamError) as caught:
            await adapter.send(make_request(), ROUTE)
    finally:
        await adapter.aclose()
    assert (caught.value.status, caught.value.error_type) == (401, "UnrecognizedClientException")
    assert adapter.has_credentials is False and mock.requests == []


def test_mock_eventstream_frames_decode_with_botocore():
    rng = random.Random(1)
    frame = eventstream_frame({":message-type": "event", ":event-type": "chunk"}, b'{"bytes":"e30="}')
    buffer = EventStreamBuffer()
    messages = []
    for piece in split_at_odd_boundaries(frame * 3, rng, largest=5):
        buffer.add_data(piece)
        messages.extend(buffer)
    assert len(messages) == 3
    assert messages[0].headers[":event-type"] == "chunk" and messages[0].payload == b'{"bytes":"e30="}'
