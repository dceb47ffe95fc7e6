"""Google Vertex AI adapter: Claude through rawPredict / streamRawPredict (Anthropic protocol on Google auth).

The body is the Anthropic body without `model`, with anthropic_version "vertex-2023-10-16"; betas travel in
the `anthropic-beta` header, filtered to what Vertex takes. Auth is an OAuth access token from google-auth
(the provider's credentials_file, else Application Default Credentials), or a token handed to set_api_key.
Streams are Anthropic SSE and pass through byte for byte, metered on the way. Errors are Google-shaped.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import orjson

from ccm_tui.config import ProviderSettings, RoutingSettings
from ccm_tui.core.contract import MessageReply, ProxyRequest, Reply, Route, StreamMeter, StreamReply, UpstreamError
from ccm_tui.core.vendors import vendor_or_custom
from ccm_tui.providers.anthropic import metered_anthropic_sse
from ccm_tui.providers.base import header_items, make_http_client, open_response, read_all
from ccm_tui.providers.google_auth import GoogleTokenSource, google_error
from ccm_tui.providers.headers import configures, request_headers
from ccm_tui.translate.anthropic_stream import usage_of
from ccm_tui.translate.continuity import (
    CLOUD_CLAUDE_KEYS,
    VERTEX_DEFAULT_BETAS,
    cloud_claude_body,
    filter_betas,
    sanitize_history_for_anthropic_target,
)
from ccm_tui.translate.features import UnsupportedFeature

VERTEX_ANTHROPIC_VERSION = "vertex-2023-10-16"
_BODY_KEYS = CLOUD_CLAUDE_KEYS | {"stream"}  # unlike Bedrock, streamRawPredict keeps `stream` in the body
_COUNT_KEYS = frozenset({"messages", "system", "tools", "tool_choice", "thinking"})
_COUNT_TIMEOUT = httpx.Timeout(10.0)


def vertex_base_url(region: str) -> str:
    """The API root for a region: global and the multi-regions have their own hosts (see the registry row)."""
    return vendor_or_custom("vertex").base_url_for(region) or ""


class VertexProvider:
    def __init__(self, settings: ProviderSettings, routing: RoutingSettings) -> None:
        self.settings = settings
        self._client = make_http_client(settings, routing)
        self._tokens = GoogleTokenSource(settings.credentials_file)
        self._static_token: str | None = None
        self._allowed_betas = settings.betas if settings.betas is not None else VERTEX_DEFAULT_BETAS

    def set_api_key(self, key: str | None) -> None:
        """A ready OAuth access token (e.g. from `gcloud auth print-access-token`) instead of google-auth."""
        self._static_token = key or None

    @property
    def has_credentials(self) -> bool:
        user_token = configures(self.settings.headers, "authorization")
        return bool(self._static_token) or user_token or not self._tokens.missing

    async def aclose(self) -> None:
        await self._client.aclose()

    def _model_url(self, route: Route, model_action: str) -> str:
        region = route.variant.region or self.settings.region or "global"
        base = (self.settings.base_url or vertex_base_url(region)).rstrip("/")
        project = quote(self.settings.project or "", safe="")
        return f"{base}/projects/{project}/locations/{region}/publishers/anthropic/models/{model_action}"

    async def _post(self, url: str, payload: dict[str, Any], betas: list[str], **kw: Any) -> httpx.Response:
        defaults = {"content-type": "application/json"}
        if not configures(self.settings.headers, "authorization"):  # else the user's own token is the credential
            defaults["authorization"] = f"Bearer {self._static_token or await self._tokens.token()}"
        if betas:
            defaults["anthropic-beta"] = ",".join(betas)
        headers = request_headers(defaults, self.settings.headers)
        request = self._client.build_request("POST", url, content=orjson.dumps(payload), headers=headers, **kw)
        try:
            return await open_response(self._client, request, google_error)
        except UpstreamError as error:
            if error.status == 401:
                self._tokens.invalidate()  # a revoked or expired token: fetch a new one next time
            raise

    async def send(self, request: ProxyRequest, route: Route) -> Reply:
        try:
            body = cloud_claude_body(request.body, anthropic_version=VERTEX_ANTHROPIC_VERSION, keep=_BODY_KEYS)
        except UnsupportedFeature as refused:
            raise refused.upstream_error(self.settings.name) from None
        requested_betas = [*request.betas, *(body.pop("anthropic_beta", None) or ())]
        if request.stream:
            body["stream"] = True
        else:
            body.pop("stream", None)
        if self.settings.max_output_tokens and isinstance(body.get("max_tokens"), int):
            body["max_tokens"] = min(body["max_tokens"], self.settings.max_output_tokens)
        betas = filter_betas(requested_betas, self._allowed_betas)
        action = "streamRawPredict" if request.stream else "rawPredict"
        response = await self._post(self._model_url(route, f"{quote(route.model, safe='@')}:{action}"), body, betas)
        if not request.stream:
            data = await read_all(response)
            message = _json_object(data)
            return MessageReply(
                body=data,
                usage=usage_of(message.get("usage")),
                headers=header_items(response.headers),
                model=message.get("model") or route.model,
            )
        meter = StreamMeter(model=route.model)
        return StreamReply(
            metered_anthropic_sse(response, meter), header_items(response.headers), meter, response.aclose
        )

    async def count_tokens(self, request: ProxyRequest, route: Route) -> int | None:
        body = sanitize_history_for_anthropic_target(request.body)
        payload = {key: value for key, value in body.items() if key in _COUNT_KEYS}
        payload |= {"model": route.model, "anthropic_version": VERTEX_ANTHROPIC_VERSION}
        betas = filter_betas(request.betas, self._allowed_betas)
        try:
            response = await self._post(
                self._model_url(route, "count-tokens:rawPredict"), payload, betas, timeout=_COUNT_TIMEOUT
            )
            try:
                data = _json_object(await response.aread())
            finally:
                await response.aclose()
        except (UpstreamError, httpx.TransportError):
            return None
        count = data.get("input_tokens")
        return count if isinstance(count, int) else None


def _json_object(data: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
