"""AWS Bedrock adapter: Claude through InvokeModel / InvokeModelWithResponseStream.

Auth is an API key (`Authorization: Bearer`, from set_api_key or the registry's key variable,
AWS_BEARER_TOKEN_BEDROCK), the user's own `authorization` header, or SigV4 (over the final headers) with
credentials from botocore's standard chain (env, profile, SSO, container, instance), resolved in a thread and
refreshed before they expire. Streams arrive as AWS eventstream frames (decoded with botocore's
EventStreamBuffer) and leave as Anthropic SSE. Errors are normalised from `x-amzn-ErrorType` + body into
UpstreamError(status, error_type=<exception name>). Body shaping lives in translate/continuity.py.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote

import botocore.session
import httpx
import orjson
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, ReadOnlyCredentials, RefreshableCredentials
from botocore.eventstream import EventStreamBuffer, EventStreamMessage, ParserError

from ccm_tui.config import ProviderSettings, RoutingSettings
from ccm_tui.core.contract import MessageReply, ProxyRequest, Reply, Route, StreamMeter, StreamReply, UpstreamError
from ccm_tui.core.scrub import remember_secret
from ccm_tui.core.states import TransportFailure
from ccm_tui.core.vendors import vendor_or_custom
from ccm_tui.providers.base import header_items, make_http_client, open_response, read_all, transport_error
from ccm_tui.providers.headers import configures, request_headers
from ccm_tui.translate.anthropic_stream import apply_event, usage_of
from ccm_tui.translate.continuity import BEDROCK_DEFAULT_BETAS, cloud_claude_body, filter_betas
from ccm_tui.translate.features import UnsupportedFeature
from ccm_tui.translate.sse import encode_event

BEDROCK_ANTHROPIC_VERSION = "bedrock-2023-05-31"
_VENDOR = vendor_or_custom("bedrock")
_REFRESH_MARGIN = 300.0  # seconds before expiry at which temporary credentials are renewed
_COUNT_TIMEOUT = httpx.Timeout(10.0)
# Cross-region inference profile prefixes; CountTokens only knows the base model id behind them.
_PROFILE_PREFIX = re.compile(r"^(?:us|us-gov|eu|apac|jp|au|ca|global)\.(?=anthropic\.)")
# In-stream exception frames carry no HTTP status: use the one the same exception has as a response.
_STATUS_OF_EXCEPTION = {
    "ThrottlingException": 429,
    "ServiceUnavailableException": 503,
    "InternalServerException": 500,
    "ModelStreamErrorException": 424,
    "ModelTimeoutException": 408,
    "ValidationException": 400,
}


class AwsCredentialSource:
    """botocore's credential chain, resolved off the event loop once and renewed before expiry."""

    def __init__(self) -> None:
        self._source: Credentials | None = None
        self._frozen: ReadOnlyCredentials | None = None
        self._lock = asyncio.Lock()
        self.missing = False  # the chain was searched and found nothing

    async def get(self) -> ReadOnlyCredentials:
        if self._frozen is None or self._expiring():
            async with self._lock:
                if self._frozen is None or self._expiring():
                    frozen = await asyncio.to_thread(self._resolve)
                    remember_secret(frozen.secret_key)
                    remember_secret(frozen.token)
                    self._frozen = frozen
        return self._frozen

    def _expiring(self) -> bool:
        return isinstance(self._source, RefreshableCredentials) and self._source.refresh_needed(_REFRESH_MARGIN)

    def _resolve(self) -> ReadOnlyCredentials:
        # Blocking: reads files, may call SSO / IMDS endpoints; get_frozen_credentials refreshes when due.
        if self._source is None:
            self._source = botocore.session.Session().get_credentials()
        if self._source is None:
            self.missing = True
            raise UpstreamError(401, "no AWS credentials found", error_type="UnrecognizedClientException")
        self.missing = False
        return self._source.get_frozen_credentials()


class BedrockProvider:
    def __init__(self, settings: ProviderSettings, routing: RoutingSettings) -> None:
        self.settings = settings
        self._client = make_http_client(settings, routing)
        self._env_bearer = os.environ.get(_VENDOR.api_key_env or "") or None
        self._api_key = self._env_bearer
        self._aws = AwsCredentialSource()
        self._allowed_betas = settings.betas if settings.betas is not None else BEDROCK_DEFAULT_BETAS

    def set_api_key(self, key: str | None) -> None:
        self._api_key = key or self._env_bearer

    @property
    def has_credentials(self) -> bool:
        return bool(self._api_key) or configures(self.settings.headers, "authorization") or not self._aws.missing

    async def aclose(self) -> None:
        await self._client.aclose()

    # --- requests ----------------------------------------------------------------------------------------
    def invoke_body(self, request: ProxyRequest) -> dict[str, Any]:
        try:
            body = cloud_claude_body(request.body, anthropic_version=BEDROCK_ANTHROPIC_VERSION)
        except UnsupportedFeature as refused:
            raise refused.upstream_error(self.settings.name) from None
        requested = list(request.betas) + list(body.get("anthropic_beta") or ())
        betas = filter_betas(requested, self._allowed_betas)
        body.pop("anthropic_beta", None)
        if betas:
            body["anthropic_beta"] = betas
        if self.settings.max_output_tokens and isinstance(body.get("max_tokens"), int):
            body["max_tokens"] = min(body["max_tokens"], self.settings.max_output_tokens)
        return body

    def _url(self, model: str, region: str, action: str) -> str:
        base = self.settings.base_url or _VENDOR.base_url_for(region) or ""
        # ":" stays raw: the HTTP transport (yarl) would decode %3A anyway, and the signature must cover the
        # path exactly as sent. "/" inside an ARN must be escaped to stay one path segment.
        return f"{base.rstrip('/')}/model/{quote(model, safe=':')}/{action}"

    async def _headers(self, url: str, content: bytes, region: str, accept: str, key: str | None) -> dict[str, str]:
        defaults = {"content-type": "application/json", "accept": accept}
        if accept != "application/json":
            defaults["x-amzn-bedrock-accept"] = "application/json"
        if key:
            defaults["authorization"] = f"Bearer {key}"
        headers = request_headers(defaults, self.settings.headers)
        if "authorization" in headers:
            return headers  # an API key, or the user's own authorization header: nothing to sign
        # Signed last, so the signature covers the user's headers exactly as they are sent.
        credentials = await self._aws.get()
        signed = AWSRequest(method="POST", url=url, data=content, headers=headers)
        SigV4Auth(credentials, "bedrock", region).add_auth(signed)
        return dict(signed.headers.items())

    async def _post(
        self, url: str, content: bytes, region: str, accept: str, route: Route, **kw: Any
    ) -> httpx.Response:
        headers = await self._headers(url, content, region, accept, route.credential(self._api_key))
        request = self._client.build_request("POST", url, content=content, headers=headers, **kw)
        return await open_response(self._client, request, _bedrock_error)

    async def send(self, request: ProxyRequest, route: Route) -> Reply:
        region = route.variant.region or self.settings.region or "us-east-1"
        content = orjson.dumps(self.invoke_body(request))
        if not request.stream:
            response = await self._post(
                self._url(route.model, region, "invoke"), content, region, "application/json", route
            )
            data = await read_all(response)
            message = _json_object(data)
            return MessageReply(
                body=data,
                usage=usage_of(message.get("usage")),
                headers=header_items(response.headers),
                model=message.get("model") or route.model,
            )
        url = self._url(route.model, region, "invoke-with-response-stream")
        response = await self._post(url, content, region, "application/vnd.amazon.eventstream", route)
        meter = StreamMeter(model=route.model)
        return StreamReply(_anthropic_sse(response, meter), header_items(response.headers), meter, response.aclose)

    async def count_tokens(self, request: ProxyRequest, route: Route) -> int | None:
        if route.model.startswith("arn:"):
            return None  # CountTokens takes foundation model ids only
        region = route.variant.region or self.settings.region or "us-east-1"
        try:
            invoke = self.invoke_body(request)
        except UpstreamError:
            return None  # the request itself will be refused; the local estimate answers the count
        invoke.setdefault("max_tokens", 1)
        payload = {"input": {"invokeModel": {"body": base64.b64encode(orjson.dumps(invoke)).decode()}}}
        url = self._url(_PROFILE_PREFIX.sub("", route.model), region, "count-tokens")
        try:
            response = await self._post(
                url, orjson.dumps(payload), region, "application/json", route, timeout=_COUNT_TIMEOUT
            )
            try:
                data = _json_object(await response.aread())
            finally:
                await response.aclose()
        except (UpstreamError, httpx.TransportError):
            return None
        count = data.get("inputTokens")
        return count if isinstance(count, int) else None


def _bedrock_error(status: int, body: bytes, headers: dict[str, str]) -> UpstreamError:
    return bedrock_error(status, httpx.Headers(headers), body)


# --- responses -----------------------------------------------------------------------------------------------


async def _anthropic_sse(response: httpx.Response, meter: StreamMeter) -> AsyncIterator[bytes]:
    """Eventstream frames in (split anywhere), Anthropic SSE out; an exception frame raises after what preceded it."""
    buffer = EventStreamBuffer()
    try:
        async for raw in response.aiter_bytes():
            buffer.add_data(raw)
            out: list[bytes] = []
            failure: UpstreamError | None = None
            for message in buffer:
                if message.headers.get(":message-type") != "event":
                    failure = frame_error(message)
                    break
                event = chunk_event(message)
                if event is not None:
                    apply_event(meter, event)
                    out.append(encode_event(event))
            if out:
                yield b"".join(out)
            if failure is not None:
                raise failure
    except httpx.TransportError as exc:
        raise transport_error(exc) from None
    except ParserError as exc:
        raise UpstreamError(502, f"malformed eventstream ({type(exc).__name__})", error_type="api_error") from None
    if not meter.completed:
        raise UpstreamError.no_response(TransportFailure.READ, "stream ended before message_stop")


def chunk_event(message: EventStreamMessage) -> dict[str, Any] | None:
    """The Anthropic event inside a `chunk` frame, without Bedrock's invocation metrics."""
    if message.headers.get(":event-type") != "chunk":
        return None
    payload = _json_object(message.payload)
    encoded = payload.get("bytes")
    if not isinstance(encoded, str):
        return None
    event = orjson.loads(base64.b64decode(encoded))
    if not isinstance(event, dict):
        return None
    event.pop("amazon-bedrock-invocationMetrics", None)
    return event


def frame_error(message: EventStreamMessage) -> UpstreamError:
    name = str(
        message.headers.get(":exception-type") or message.headers.get(":error-code") or "InternalServerException"
    )
    error_type = name[:1].upper() + name[1:]
    payload = _json_object(message.payload)
    text = payload.get("message") or message.headers.get(":error-message") or "stream failed"
    return UpstreamError(_STATUS_OF_EXCEPTION.get(error_type, 500), f"{error_type}: {text}", error_type=error_type)


def bedrock_error(status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
    """An HTTP error response: the exception name from `x-amzn-ErrorType` (else `__type`), message from the body."""
    error_type = headers.get("x-amzn-errortype", "").split(":", 1)[0] or None
    data = _json_object(body)
    if error_type is None and isinstance(data.get("__type"), str):
        error_type = data["__type"].rsplit("#", 1)[-1] or None
    message = data.get("message") or data.get("Message") or body[:200].decode("utf-8", "replace") or f"HTTP {status}"
    return UpstreamError(
        status,
        f"{error_type or 'HTTP ' + str(status)}: {message}",
        error_type=error_type,
        headers=header_items(headers) if isinstance(headers, httpx.Headers) else dict(headers),
        long_quota=error_type == "ServiceQuotaExceededException",
    )


def _json_object(data: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
