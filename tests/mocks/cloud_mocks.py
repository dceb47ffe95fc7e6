"""Faithful mock upstreams for the cloud kinds: AWS Bedrock, Google Vertex AI (Claude) and the Gemini API.

Each is a real loopback HTTP server (MockServer) that checks what a real service checks and answers in its
wire format: Bedrock verifies SigV4 (or a Bearer API key) and streams AWS eventstream frames split at odd
byte boundaries; Vertex is also the OAuth token endpoint for the service account it generates and accepts
only tokens it issued; Gemini checks `x-goog-api-key`, function-calling history and thought signatures.
`.url` is what goes in the provider's base_url. Requests are recorded (`.requests`).

Scenarios (`.scenario`, or `.script(...)` for the next requests; names as in ccm_tui/demo/scenarios.py):
text, tools, parallel_tools, thinking, tool_loop (first turn calls `.tool_name` with `.tool_input`; once the last
user turn holds the tool's result, answer text echoing it), rate_limit, auth, overloaded, mid_stream_error,
mid_stream_cut; Bedrock also not_ready and server_error, Vertex also precondition, Gemini also quota_day
(a per-day quota).
VertexMock lives in vertex_mock.py, GeminiMock in gemini_mock.py (re-exported here); the shared
Anthropic-protocol pieces (scripts, validation, events) in anthropic_script.py.
"""

from __future__ import annotations

import base64
import hmac
import json
import random
import string
import struct
import time
import zlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from ccm_tui.demo.mockserver import MockServer
from tests.mocks import anthropic_script as script
from tests.mocks.gemini_mock import GeminiMock
from tests.mocks.vertex_mock import VertexMock

__all__ = ["BedrockMock", "GeminiMock", "VertexMock", "eventstream_frame", "split_at_odd_boundaries"]

_PADDING_ALPHABET = string.ascii_letters + string.digits
_BEDROCK_ERRORS = {
    "rate_limit": (429, "ThrottlingException", "Too many requests, please wait before trying again."),
    "not_ready": (429, "ModelNotReadyException", "Model is not ready for inference. Wait and try your request again."),
    "auth": (403, "AccessDeniedException", "You don't have access to the model with the specified model ID."),
    "overloaded": (503, "ServiceUnavailableException", "Bedrock is unable to process your request."),
    "server_error": (500, "InternalServerException", "The server encountered an internal error."),
}


def eventstream_frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One AWS eventstream message: prelude (total, headers length, CRC), string headers, payload, CRC."""
    encoded = b"".join(
        struct.pack("B", len(name.encode()))
        + name.encode()
        + b"\x07"
        + struct.pack(">H", len(value.encode()))
        + value.encode()
        for name, value in headers.items()
    )
    prelude = struct.pack(">II", 12 + len(encoded) + len(payload) + 4, len(encoded))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + encoded + payload
    return message + struct.pack(">I", zlib.crc32(message))


def split_at_odd_boundaries(data: bytes, rng: random.Random, largest: int = 97) -> list[bytes]:
    """Cut bytes into pieces of random sizes, so frames and lines straddle network chunks."""
    pieces, start = [], 0
    while start < len(data):
        size = rng.randint(1, largest)
        pieces.append(data[start : start + size])
        start += size
    return pieces


def _chunk_frame(event: dict[str, Any], rng: random.Random) -> bytes:
    padding = _PADDING_ALPHABET[: rng.randint(0, len(_PADDING_ALPHABET))]
    payload = {"bytes": base64.b64encode(json.dumps(event).encode()).decode(), "p": padding}
    headers = {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"}
    return eventstream_frame(headers, json.dumps(payload).encode())


def _exception_frame(kind: str, message: str) -> bytes:
    headers = {":exception-type": kind, ":content-type": "application/json", ":message-type": "exception"}
    payload = {"message": message, "originalStatusCode": 500, "originalMessage": message}
    return eventstream_frame(headers, json.dumps(payload).encode())


class BedrockMock(MockServer):
    """InvokeModel / InvokeModelWithResponseStream / CountTokens at `/model/{id}/...`."""

    access_key = "AKIAMOCKBEDROCK00001"
    secret_key = "mock+Bedrock/secret-key-0000000000000000"
    api_key = "ABSKbW9jay1iZWRyb2NrLWtleQ=="  # Bedrock API keys are sent as Authorization: Bearer

    def __init__(self, scenario: str = "text", *, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(scenario, host=host, port=port)
        self.tool_name = "Bash"
        self.tool_input: dict[str, Any] = dict(script.DEFAULT_TOOL_INPUT)
        self.signatures: list[tuple[str, str]] = []  # (region, service) of each verified SigV4 request
        self.bearer_requests = 0
        self.rng = random.Random(20251101)

    @property
    def url(self) -> str:
        return self.origin

    def routes(self) -> Iterable[web.RouteDef]:
        return [
            web.post("/model/{model:.+}/invoke", self._invoke),
            web.post("/model/{model:.+}/invoke-with-response-stream", self._invoke_stream),
            web.post("/model/{model:.+}/count-tokens", self._count_tokens),
        ]

    @staticmethod
    def error(status: int, name: str, message: str) -> web.Response:
        headers = {
            "x-amzn-ErrorType": f"{name}:http://internal.amazon.com/coral/com.amazon.bedrock/",
            "x-amzn-RequestId": script.request_id(),
        }
        return MockServer.json_response(status, {"message": message}, headers)

    # --- auth ----------------------------------------------------------------------------------------------
    def authenticate(self, request: web.Request, body: bytes) -> web.Response | None:
        authorization = request.headers.get("Authorization", "")
        if authorization.startswith("Bearer "):
            if hmac.compare_digest(authorization[7:], self.api_key):
                self.bearer_requests += 1
                return None
            return self.error(
                403, "UnrecognizedClientException", "The security token included in the request is invalid."
            )
        if not authorization.startswith("AWS4-HMAC-SHA256 "):
            return self.error(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
        fields = dict(item.strip().split("=", 1) for item in authorization[17:].split(",") if "=" in item)
        scope = fields.get("Credential", "").split("/")
        if len(scope) != 5 or scope[0] != self.access_key:
            return self.error(
                403, "UnrecognizedClientException", "The security token included in the request is invalid."
            )
        amz_date = request.headers.get("X-Amz-Date", "")
        try:
            signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
        except ValueError:
            return self.error(403, "IncompleteSignatureException", "Date must be in ISO-8601 'basic format'.")
        if abs(time.time() - signed_at) > 300:
            return self.error(403, "InvalidSignatureException", "Signature expired: the request is too old.")
        _, _, region, service, _ = scope
        signed_names = fields.get("SignedHeaders", "").split(";")
        headers = {name: request.headers.get(name, "") for name in signed_names}
        recomputed = AWSRequest(
            method=request.method, url=f"http://{request.host}{request.raw_path}", data=body, headers=headers
        )
        recomputed.context["timestamp"] = amz_date
        signer = SigV4Auth(Credentials(self.access_key, self.secret_key), service, region)
        canonical = signer.canonical_request(recomputed)
        expected = signer.signature(signer.string_to_sign(recomputed, canonical), recomputed)
        if not hmac.compare_digest(expected, fields.get("Signature", "")):
            return self.error(
                403,
                "InvalidSignatureException",
                "The request signature we calculated does not match the signature you provided. "
                "Check your AWS Secret Access Key and signing method.",
            )
        self.signatures.append((region, service))
        return None

    # --- handlers ------------------------------------------------------------------------------------------
    async def _prepare(self, request: web.Request) -> tuple[str, dict[str, Any] | None, web.Response | None]:
        scenario = self.next_scenario()
        recorded = await self.record(request, scenario)
        denied = self.authenticate(request, recorded.body)
        if denied is not None:
            return scenario, None, denied
        if scenario in _BEDROCK_ERRORS:
            return scenario, None, self.error(*_BEDROCK_ERRORS[scenario])
        try:
            body = json.loads(recorded.body)
        except ValueError:
            return (
                scenario,
                None,
                self.error(
                    400, "ValidationException", "Malformed input request, please reformat your input and try again."
                ),
            )
        problem = script.claude_body_problem(body, "bedrock-2023-05-31", script.CLOUD_KEYS)
        if problem is not None:
            return scenario, None, self.error(400, "ValidationException", problem)
        return scenario, body, None

    async def _invoke(self, request: web.Request) -> web.StreamResponse:
        scenario, body, failure = await self._prepare(request)
        if failure is not None or body is None:
            return failure or web.Response(status=500)
        model = request.match_info["model"]
        message = script.message_for(scenario, body, model, self.tool_name, self.tool_input, "Bedrock")
        usage = message["usage"]
        headers = {
            "x-amzn-RequestId": script.request_id(),
            "X-Amzn-Bedrock-Input-Token-Count": str(usage["input_tokens"]),
            "X-Amzn-Bedrock-Output-Token-Count": str(usage["output_tokens"]),
            "X-Amzn-Bedrock-Invocation-Latency": "321",
        }
        return self.json_response(200, message, headers)

    async def _invoke_stream(self, request: web.Request) -> web.StreamResponse:
        scenario, body, failure = await self._prepare(request)
        if failure is not None or body is None:
            return failure or web.Response(status=500)
        model = request.match_info["model"]
        events = script.events_for(scenario, body, model, self.tool_name, self.tool_input, "Bedrock")
        events = [e for e in events if e["type"] != "ping"]  # Bedrock does not forward pings
        frames: list[bytes] = []
        for event in events:
            if event["type"] == "error":
                frames.append(_exception_frame("modelStreamErrorException", event["error"]["message"]))
                break
            if event["type"] == "message_stop":
                usage = events[0]["message"]["usage"]
                event = {
                    **event,
                    "amazon-bedrock-invocationMetrics": {
                        "inputTokenCount": usage["input_tokens"],
                        "outputTokenCount": 12,
                        "invocationLatency": 321,
                        "firstByteLatency": 123,
                    },
                }
            frames.append(_chunk_frame(event, self.rng))
        chunks = split_at_odd_boundaries(b"".join(frames), self.rng)
        headers = {"x-amzn-RequestId": script.request_id(), "X-Amzn-Bedrock-Content-Type": "application/json"}
        cut_after = len(chunks) // 2 if scenario == "mid_stream_cut" else None
        return await self.stream(
            request, chunks, content_type="application/vnd.amazon.eventstream", headers=headers, cut_after=cut_after
        )

    async def _count_tokens(self, request: web.Request) -> web.StreamResponse:
        scenario = self.next_scenario()
        recorded = await self.record(request, scenario)
        denied = self.authenticate(request, recorded.body)
        if denied is not None:
            return denied
        if scenario in _BEDROCK_ERRORS:
            return self.error(*_BEDROCK_ERRORS[scenario])
        try:
            inner = base64.b64decode(json.loads(recorded.body)["input"]["invokeModel"]["body"])
            body = json.loads(inner)
        except (ValueError, KeyError, TypeError):
            return self.error(
                400, "ValidationException", "Malformed input request, please reformat your input and try again."
            )
        problem = script.claude_body_problem(body, "bedrock-2023-05-31", script.CLOUD_KEYS)
        if problem is not None:
            return self.error(400, "ValidationException", problem)
        return self.json_response(200, {"inputTokens": script.estimate_tokens(body)})
