"""Gemini API (native) adapter: generateContent / streamGenerateContent?alt=sse with an API key.

Requests and responses are translated by translate/gemini.py (pure); this module does the HTTP: the
`x-goog-api-key` header (never the `?key=` query, so URLs in logs carry no secret), SSE parsing, metering,
and Google error shapes (providers/google_auth.google_error), including errors sent inside a stream.
A non-streaming request with stop sequences is read as a stream, so the upstream can be closed at the match.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from ccm_tui.config import ProviderSettings, RoutingSettings
from ccm_tui.core.contract import MessageReply, ProxyRequest, Reply, Route, StreamMeter, StreamReply, UpstreamError
from ccm_tui.core.states import TransportFailure
from ccm_tui.core.vendors import vendor_or_custom
from ccm_tui.providers.base import header_items, make_http_client, open_response, read_all, transport_error
from ccm_tui.providers.google_auth import google_error
from ccm_tui.providers.headers import configures, request_headers
from ccm_tui.translate.anthropic_stream import apply_event, usage_of
from ccm_tui.translate.assemble import message_from_events
from ccm_tui.translate.features import TRANSLATION_BUGS, UnsupportedFeature, untranslatable
from ccm_tui.translate.gemini import GeminiStreamTranslator, anthropic_message, gemini_request
from ccm_tui.translate.reply_options import reply_options
from ccm_tui.translate.sse import SseParser, encode_event

log = logging.getLogger(__name__)

_VENDOR = vendor_or_custom("gemini")
_VERSION_SEGMENT = re.compile(r"/v\d+(?:(?:alpha|beta)\d*)?$")
_COUNT_TIMEOUT = httpx.Timeout(10.0)


def gemini_base_url(base_url: str | None) -> str:
    """The versioned API root; a base_url without a version segment gets v1beta (functions, thinking config)."""
    base = (base_url or _VENDOR.base_url_for() or "").rstrip("/")
    return base if _VERSION_SEGMENT.search(base) else base + "/v1beta"


class GeminiProvider:
    def __init__(self, settings: ProviderSettings, routing: RoutingSettings) -> None:
        self.settings = settings
        self._client = make_http_client(settings, routing)
        self._env_key = os.environ.get(settings.api_key_env or _VENDOR.api_key_env or "") or None
        self._api_key = self._env_key
        self._base = gemini_base_url(settings.base_url)

    def set_api_key(self, key: str | None) -> None:
        self._api_key = key or self._env_key

    @property
    def has_credentials(self) -> bool:
        return bool(self._api_key) or configures(self.settings.headers, "x-goog-api-key")

    async def aclose(self) -> None:
        await self._client.aclose()

    def _url(self, model: str, action: str) -> str:
        return f"{self._base}/models/{quote(model.removeprefix('models/'), safe='')}:{action}"

    async def _post(self, url: str, payload: dict[str, Any], route: Route, **kw: Any) -> httpx.Response:
        defaults = {"content-type": "application/json"}
        if key := route.credential(self._api_key):
            defaults["x-goog-api-key"] = key
        elif not configures(self.settings.headers, "x-goog-api-key"):
            raise UpstreamError(401, "no Gemini API key configured", error_type="UNAUTHENTICATED")
        headers = request_headers(defaults, self.settings.headers)
        request = self._client.build_request("POST", url, content=orjson.dumps(payload), headers=headers, **kw)
        return await open_response(self._client, request, google_error)

    async def send(self, request: ProxyRequest, route: Route) -> Reply:
        try:
            payload = gemini_request(request.body, model=route.model, max_output_tokens=self.settings.max_output_tokens)
        except UnsupportedFeature as refused:
            raise refused.upstream_error(self.settings.name) from None
        except TRANSLATION_BUGS as exc:
            log.warning("%s: the request could not be translated", self.settings.name, exc_info=True)
            raise untranslatable(self.settings.name, exc) from None
        options = reply_options(request.body)
        if not request.stream and not options.stop_sequences:
            response = await self._post(self._url(route.model, "generateContent"), payload, route)
            data = await read_all(response)
            try:
                result = orjson.loads(data)
            except orjson.JSONDecodeError:
                raise UpstreamError.bad_reply("Gemini answered with invalid JSON") from None
            message = anthropic_message(result, model=route.model, options=options)
            return MessageReply(
                body=orjson.dumps(message),
                usage=usage_of(message["usage"]),
                headers=header_items(response.headers),
                model=result.get("modelVersion") or route.model,
            )
        response = await self._post(self._url(route.model, "streamGenerateContent?alt=sse"), payload, route)
        meter = StreamMeter(model=route.model)
        events = _translated(response, GeminiStreamTranslator(route.model, options), meter)
        if request.stream:
            return StreamReply(_encoded(events), header_items(response.headers), meter, response.aclose)
        try:
            message = message_from_events([event async for batch in events for event in batch])
        finally:
            await response.aclose()
        return MessageReply(
            body=orjson.dumps(message),
            usage=usage_of(message["usage"]),
            headers=header_items(response.headers),
            model=meter.model or route.model,
        )

    async def count_tokens(self, request: ProxyRequest, route: Route) -> int | None:
        try:
            payload = gemini_request(request.body, model=route.model)
        except UnsupportedFeature:
            return None  # the request itself will be refused; the local estimate answers the count
        model = route.model.removeprefix("models/")
        inner = {key: payload[key] for key in ("contents", "systemInstruction", "tools") if key in payload}
        try:
            response = await self._post(
                self._url(model, "countTokens"),
                {"generateContentRequest": {"model": f"models/{model}", **inner}},
                route,
                timeout=_COUNT_TIMEOUT,
            )
            try:
                data = orjson.loads(await response.aread())
            finally:
                await response.aclose()
        except (UpstreamError, httpx.TransportError, orjson.JSONDecodeError):
            return None
        count = data.get("totalTokens") if isinstance(data, dict) else None
        return count if isinstance(count, int) else None


async def _encoded(events: AsyncIterator[list[dict[str, Any]]]) -> AsyncIterator[bytes]:
    async for batch in events:
        yield b"".join(encode_event(event) for event in batch)


async def _translated(
    response: httpx.Response, translator: GeminiStreamTranslator, meter: StreamMeter
) -> AsyncIterator[list[dict[str, Any]]]:
    """Gemini SSE in, batches of Anthropic events out (one per upstream read that produced any). An error
    object inside the stream raises after what preceded it; a matched stop sequence ends the reading."""
    parser = SseParser()
    ended = False
    try:
        async for raw in response.aiter_bytes():
            events = parser.feed(raw)
            if not events:
                continue
            out, failure = _translate_events(events, translator, meter)
            if out:
                yield out
            if failure is not None:
                raise failure
            if translator.stopped:
                break
        ended = True
    except httpx.TransportError as exc:
        raise transport_error(exc) from None
    out, failure = ([], None) if translator.stopped else _translate_events(parser.flush(), translator, meter)
    if failure is None and ended and translator.finish_reason is None and not translator.stopped:
        failure = UpstreamError.no_response(TransportFailure.READ, "stream ended before a finishReason")
    if failure is None:
        for event in translator.finish():
            apply_event(meter, event)
            out.append(event)
    if out:
        yield out
    if failure is not None:
        raise failure


def _translate_events(
    events: list[Any], translator: GeminiStreamTranslator, meter: StreamMeter
) -> tuple[list[dict[str, Any]], UpstreamError | None]:
    out: list[dict[str, Any]] = []
    for sse in events:
        try:
            chunk = orjson.loads(sse.data)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(chunk, dict):
            continue
        if isinstance(chunk.get("error"), dict):
            status = chunk["error"].get("code")
            return out, google_error(status if isinstance(status, int) else 500, chunk)
        for event in translator.feed(chunk):
            apply_event(meter, event)
            out.append(event)
        if translator.stopped:
            break
    return out, None
