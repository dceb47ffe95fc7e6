"""The OpenAI-compatible provider family: OpenAI, OpenRouter, Groq, Cerebras, GitHub Models, Gemini's OpenAI
endpoint and any custom Chat Completions server.

Thin I/O only: translate the Anthropic request (translate/openai_request.py), POST it to
`{base_url}/chat/completions`, and hand back an Anthropic Message or Anthropic SSE produced by the translators.
Vendor and model-family differences come from the vendor registry (core/vendors.py `openai_quirks`).
A non-streaming request with stop sequences is read as a stream: the translator enforces them and the upstream
is closed at the match (translate/stop_sequences.py).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable

import httpx
import orjson

from ccm_tui.config import ProviderSettings, RoutingSettings, vendor_of
from ccm_tui.core.contract import MessageReply, ProxyRequest, Reply, Route, StreamMeter, StreamReply, UpstreamError
from ccm_tui.core.vendors import CUSTOM, openai_quirks, vendor_or_custom
from ccm_tui.providers.base import body_chunks, header_items, make_http_client, open_response, read_all
from ccm_tui.providers.headers import request_headers
from ccm_tui.translate.assemble import events_of_sse, message_from_events
from ccm_tui.translate.features import TRANSLATION_BUGS, UnsupportedFeature, untranslatable
from ccm_tui.translate.openai_errors import error_from_openai
from ccm_tui.translate.openai_request import OpenAIQuirks, request_to_openai
from ccm_tui.translate.openai_response import OpenAIStreamTranslator, message_from_openai
from ccm_tui.translate.reply_options import ReplyOptions, reply_options
from ccm_tui.translate.sse import SseEvent, SseParser

log = logging.getLogger(__name__)


class OpenAIProvider:
    """One OpenAI-compatible endpoint. Never retries: the engine owns retries and failover."""

    def __init__(self, settings: ProviderSettings, routing: RoutingSettings) -> None:
        self.settings = settings
        self.vendor = vendor_of(settings)
        self._api_key: str | None = None
        self._client = make_http_client(settings, routing)
        base_url = settings.base_url or vendor_or_custom(self.vendor).chat_completions_base_url or ""
        self.endpoint = f"{base_url.rstrip('/')}/chat/completions"

    def set_api_key(self, key: str | None) -> None:
        self._api_key = key or None

    @property
    def has_credentials(self) -> bool:
        # A custom endpoint configured without a key variable is taken to be keyless (a local server).
        return self._api_key is not None or (self.vendor == CUSTOM and not self.settings.api_key_env)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def count_tokens(self, request: ProxyRequest, route: Route) -> int | None:
        return None  # Chat Completions has no token-counting endpoint; the caller estimates

    async def send(self, request: ProxyRequest, route: Route) -> Reply:
        quirks = openai_quirks(self.vendor, route.model)
        options = reply_options(request.body)
        # Stop sequences are enforced on the stream; a non-streaming request that has some is streamed upstream.
        stream = request.stream or bool(options.stop_sequences)
        try:
            body = request_to_openai(
                {**request.body, "stream": stream},
                route.model,
                quirks,
                max_output_tokens=self.settings.max_output_tokens,
            )
        except UnsupportedFeature as refused:
            raise refused.upstream_error(self.settings.name) from None
        except TRANSLATION_BUGS as exc:
            log.warning("%s: the request could not be translated", self.settings.name, exc_info=True)
            raise untranslatable(self.settings.name, exc) from None
        http_request = self._client.build_request(
            "POST", self.endpoint, content=orjson.dumps(body), headers=self._headers(quirks, stream, route)
        )
        response = await open_response(self._client, http_request, self._error)
        if stream and "json" not in response.headers.get("content-type", ""):
            reply = self._stream_reply(response, request.model, quirks, options)
            return reply if request.stream else await _collected(reply)
        return await self._message_reply(response, request.model, options, streaming_wanted=request.stream)

    def _headers(self, quirks: OpenAIQuirks, stream: bool, route: Route) -> dict[str, str]:
        accept = "text/event-stream" if stream else "application/json"
        headers = {"content-type": "application/json", "accept": accept, **quirks.headers}  # a vendor's Accept wins
        if key := route.credential(self._api_key):
            headers["authorization"] = f"Bearer {key}"
        return request_headers(headers, self.settings.headers)

    def _error(self, status: int, body: bytes, headers: dict[str, str]) -> UpstreamError:
        return error_from_openai(status, body, headers, self.vendor)

    async def _message_reply(
        self, response: httpx.Response, model: str, options: ReplyOptions, *, streaming_wanted: bool
    ) -> MessageReply:
        headers = header_items(response.headers)
        raw = await read_all(response)
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise UpstreamError.bad_reply("malformed JSON from upstream", headers) from None
        if isinstance(data, list) or (isinstance(data, dict) and data.get("error") and not data.get("choices")):
            raise error_from_openai(response.status_code, raw, headers, self.vendor)
        if streaming_wanted:
            # A JSON completion where a stream was asked for: this adapter's caller expects SSE.
            raise UpstreamError.bad_reply("upstream answered a streaming request without a stream", headers)
        message, usage = message_from_openai(data, model, options)
        served = data.get("model") if isinstance(data.get("model"), str) else None
        return MessageReply(body=orjson.dumps(message), usage=usage, headers=headers, model=served)

    def _stream_reply(
        self, response: httpx.Response, model: str, quirks: OpenAIQuirks, options: ReplyOptions
    ) -> StreamReply:
        meter = StreamMeter()
        translator = OpenAIStreamTranslator(model, meter, quirks, options)
        chunks = _anthropic_sse(response, translator, meter)
        return StreamReply(chunks, header_items(response.headers), meter, response.aclose)


async def _collected(reply: StreamReply) -> MessageReply:
    """A whole Message from a translated stream (a non-streaming request read as a stream)."""
    try:
        data = b"".join([chunk async for chunk in reply])
    finally:
        await reply.aclose()
    message = message_from_events(events_of_sse(data))
    return MessageReply(
        body=orjson.dumps(message), usage=reply.meter.usage, headers=reply.headers, model=reply.meter.model
    )


async def _anthropic_sse(
    response: httpx.Response, translator: OpenAIStreamTranslator, meter: StreamMeter
) -> AsyncIterator[bytes]:
    """Upstream SSE bytes -> Anthropic SSE bytes, one yield per upstream read that produced events.

    Events translated before a failure in the same read are still yielded, then the failure is raised, so
    what the client receives does not depend on how the upstream's bytes were split into reads.
    """
    parser = SseParser()
    saw_done = False
    async for raw in body_chunks(response):
        translated, saw_done, failure = _translate(parser.feed(raw), translator, meter)
        if translated:
            yield translated
        if failure is not None:
            raise failure
        if saw_done or translator.stopped:
            break  # a stop sequence matched: the upstream is closed by the caller's aclose()
    else:
        translated, saw_done, failure = _translate(parser.flush(), translator, meter)
        if translated:
            yield translated
        if failure is not None:
            raise failure
    yield translator.finish(saw_done)


def _translate(
    events: Iterable[SseEvent], translator: OpenAIStreamTranslator, meter: StreamMeter
) -> tuple[bytes, bool, UpstreamError | None]:
    """(translated bytes, `[DONE]` seen, the failure that stopped translation if any). A chunk that is not
    JSON and names no choices (a vendor's keep-alive) carries no content: skipped, logged and counted; one
    that may have carried content fails the stream (skipping it would lose part of the answer)."""
    out: list[bytes] = []
    for event in events:
        data = event.data.strip()
        if not data:
            continue
        if data == "[DONE]":
            return b"".join(out), True, None
        try:
            out.append(translator.feed(orjson.loads(data)))
            if translator.stopped:
                break
        except orjson.JSONDecodeError:
            if '"choices"' in data or '"delta"' in data:
                return b"".join(out), False, UpstreamError.bad_reply("malformed chunk from upstream")
            meter.skipped_events += 1
            log.info("skipped a stream chunk that is not JSON (%d bytes)", len(data))
        except UpstreamError as failure:
            return b"".join(out), False, failure
    return b"".join(out), False, None
