"""Mock Vertex AI serving Claude, with its own OAuth token endpoint; also the Google error body shape.

VertexMock generates a service account (RSA key made with `cryptography`), answers google-auth's JWT-bearer
grant at `/token` after verifying the assertion's RS256 signature and claims, and serves rawPredict /
streamRawPredict / count-tokens only to tokens it issued. Scenarios: see cloud_mocks.py.
"""

from __future__ import annotations

import base64
import functools
import json
import random
import secrets
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ccm_tui.demo.mockserver import MockServer
from tests.mocks import anthropic_script as script

GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
# What Google's front end answers an oversized request with (Gemini and Vertex alike): HTML, not a JSON error.
TOO_LARGE_HTML = (
    "<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n  <title>Error 413 (Request Entity Too Large)!!1</title>"
    "\n  <style>\n    *{margin:0;padding:0}html,code{font:15px/22px arial,sans-serif}\n  </style>\n"
    "  <a href=//www.google.com/><span id=logo aria-label=Google></span></a>\n"
    "  <p><b>413.</b> <ins>That\u2019s an error.</ins>\n"
    "  <p>Your client issued a request that was too large.  <ins>That\u2019s all we know.</ins>\n"
)


def google_error_body(
    code: int, status: str, message: str, details: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return {"error": error}


@functools.cache
def _service_account_key() -> rsa.RSAPrivateKey:
    # One key per process: generating RSA keys costs ~50 ms and the tests make many mocks.
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _anthropic_error(status: int, kind: str, message: str) -> web.Response:
    return MockServer.json_response(status, {"type": "error", "error": {"type": kind, "message": message}})


class VertexMock(MockServer):
    """`{url}/projects/{p}/locations/{r}/publishers/anthropic/models/{model}:rawPredict|streamRawPredict` + `/token`."""

    client_email = "ccm-mock@mock-project.iam.gserviceaccount.com"
    project = "mock-project"

    def __init__(self, scenario: str = "text", *, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(scenario, host=host, port=port)
        self.tool_name = "Bash"
        self.tool_input: dict[str, Any] = dict(script.DEFAULT_TOOL_INPUT)
        self.token_requests = 0
        self.token_lifetime = 3599
        self.issued_tokens: set[str] = set()
        self.rng = random.Random(4242)

    @property
    def url(self) -> str:
        return self.origin + "/v1"

    @property
    def token_uri(self) -> str:
        return self.origin + "/token"

    def routes(self) -> Iterable[web.RouteDef]:
        return [
            web.post("/token", self._token),
            web.post(
                "/v1/projects/{project}/locations/{location}/publishers/anthropic/models/{model_action}", self._predict
            ),
        ]

    def service_account_info(self) -> dict[str, str]:
        """A service-account JSON whose token_uri is this mock (start the mock first: the port is in it)."""
        pem = _service_account_key().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return {
            "type": "service_account",
            "project_id": self.project,
            "private_key_id": "mock-key-1",
            "private_key": pem.decode(),
            "client_email": self.client_email,
            "client_id": "100000000000000000001",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_uri,
            "universe_domain": "googleapis.com",
        }

    def write_service_account(self, path: str | Path) -> Path:
        target = Path(path)
        target.write_text(json.dumps(self.service_account_info()), encoding="utf-8")
        return target

    def _assertion_problem(self, assertion: str) -> str | None:
        try:
            header, payload, signature = assertion.split(".")
            _service_account_key().public_key().verify(
                _b64url_decode(signature), f"{header}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256()
            )
            claims = json.loads(_b64url_decode(payload))
        except (ValueError, InvalidSignature):
            return "Invalid JWT Signature."
        # google-auth always puts Google's token endpoint in `aud`, whatever token_uri says.
        if claims.get("iss") != self.client_email or claims.get("aud") not in (GOOGLE_TOKEN_AUDIENCE, self.token_uri):
            return "Invalid JWT: issuer or audience mismatch."
        if "https://www.googleapis.com/auth/cloud-platform" not in str(claims.get("scope", "")).split():
            return "Invalid OAuth scope or ID token audience provided."
        if not isinstance(claims.get("exp"), int) or claims["exp"] < time.time():
            return "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe."
        return None

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.token_requests += 1
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return self.json_response(
                400, {"error": "unsupported_grant_type", "error_description": "Invalid grant_type."}
            )
        problem = self._assertion_problem(str(form.get("assertion", "")))
        if problem is not None:
            return self.json_response(400, {"error": "invalid_grant", "error_description": problem})
        token = "ya29.mock-" + secrets.token_urlsafe(24)
        self.issued_tokens.add(token)
        return self.json_response(
            200, {"access_token": token, "expires_in": self.token_lifetime, "token_type": "Bearer"}
        )

    def _google_error(self, code: int, status: str, message: str, as_array: bool) -> web.Response:
        body = google_error_body(code, status, message)
        return self.json_response(code, [body] if as_array else body)

    async def _predict(self, request: web.Request) -> web.StreamResponse:
        scenario = self.next_scenario()
        recorded = await self.record(request, scenario)
        model, _, action = request.match_info["model_action"].rpartition(":")
        streaming = action == "streamRawPredict"
        if action not in ("rawPredict", "streamRawPredict"):
            return self._google_error(404, "NOT_FOUND", f"Unknown method {action}", False)
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token not in self.issued_tokens:
            message = (
                "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie "
                "or other valid authentication credential."
            )
            return self._google_error(401, "UNAUTHENTICATED", message, streaming)
        failure = self._scenario_failure(scenario, model, streaming)
        if failure is not None:
            return failure
        try:
            body = json.loads(recorded.body)
        except ValueError:
            return _anthropic_error(400, "invalid_request_error", "Invalid JSON body")
        if model == "count-tokens":
            keys = script.CLOUD_KEYS | {"model"}
            body_for_check = {**body, "max_tokens": body.get("max_tokens", 1)}
            problem = script.claude_body_problem(body_for_check, "vertex-2023-10-16", keys)
            if problem is not None:
                return _anthropic_error(400, "invalid_request_error", problem)
            return self.json_response(200, {"input_tokens": script.estimate_tokens(body.get("messages"))})
        problem = script.claude_body_problem(body, "vertex-2023-10-16", script.CLOUD_KEYS | {"stream"})
        if problem is None and request.headers.get("anthropic-beta"):
            unknown = [b for b in request.headers["anthropic-beta"].split(",") if b.strip() not in script.KNOWN_BETAS]
            problem = f"Unexpected value(s) `{','.join(unknown)}` for the `anthropic-beta` header." if unknown else None
        if problem is not None:
            return _anthropic_error(400, "invalid_request_error", problem)
        if not streaming:
            return self.json_response(
                200, script.message_for(scenario, body, model, self.tool_name, self.tool_input, "Vertex")
            )
        events = script.events_for(scenario, body, model, self.tool_name, self.tool_input, "Vertex")
        data = b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)
        chunks = [data[i : i + 61] for i in range(0, len(data), 61)]
        cut_after = len(chunks) // 2 if scenario == "mid_stream_cut" else None
        return await self.stream(request, chunks, headers={"Cache-Control": "no-cache"}, cut_after=cut_after)

    def _scenario_failure(self, scenario: str, model: str, streaming: bool) -> web.Response | None:
        if scenario == "too_large_html":  # Google's front end answers oversized bodies with an HTML page
            return web.Response(status=413, text=TOO_LARGE_HTML, content_type="text/html")
        if scenario == "rate_limit":
            message = (
                "Quota exceeded for aiplatform.googleapis.com/online_prediction_requests_per_base_model "
                "with base model: "
                f"anthropic-{model.split('@')[0]}. Please submit a quota increase request. "
                "https://cloud.google.com/vertex-ai/docs/generative-ai/quotas-genai."
            )
            return self._google_error(429, "RESOURCE_EXHAUSTED", message, streaming)
        if scenario == "auth":
            message = (
                "Permission 'aiplatform.endpoints.predict' denied on resource "
                f"'//aiplatform.googleapis.com/projects/{self.project}' (or it may not exist)."
            )
            return self._google_error(403, "PERMISSION_DENIED", message, streaming)
        if scenario == "precondition":
            message = f"Project `{self.project}` is not allowed to use Publisher Model `{model}`"
            return self._google_error(400, "FAILED_PRECONDITION", message, streaming)
        if scenario == "overloaded":
            return self._google_error(503, "UNAVAILABLE", "The service is currently unavailable.", streaming)
        return None
