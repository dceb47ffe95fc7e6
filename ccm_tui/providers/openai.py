"""The OpenAI-compatible provider family: OpenAI, OpenRouter, Groq, Cerebras, GitHub Models, Gemini's OpenAI
endpoint and any custom Chat Completions server.

Thin I/O only: translate the Anthropic request (translate/openai_request.py), POST it to
`{base_url}/chat/completions`, and hand back an Anthropic Message or Anthropic SSE produced by the translators.
Vendor differences live in the VENDORS quirks table; model-family differences in `quirks_for`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator, Iterable

import httpx
import orjson

from ccm_tui.config import ProviderSettings, RoutingSettings, vendor_of
from ccm_tui.core.contract import MessageReply, ProxyRequest, Reply, Route, StreamMeter, StreamReply, UpstreamError
from ccm_tui.providers.base import header_items, make_http_client, open_response, read_all, transport_error
from ccm_tui.translate.openai_errors import error_from_openai
from ccm_tui.translate.openai_request import OpenAIQuirks, request_to_openai
from ccm_tui.translate.openai_response import OpenAIStreamTranslator, message_from_openai
from ccm_tui.translate.sse import SseEvent, SseParser

VENDORS: dict[str, OpenAIQuirks] = {
    "openai": OpenAIQuirks(use_max_completion_tokens=True, reasoning_request="effort"),
    # OpenRouter reserves credit for max_tokens up front: an uncapped 128k request fails with 402 on small balances.
    "openrouter": OpenAIQuirks(
        default_max_output_tokens=32000,
        reasoning_request="openrouter",
        reasoning_deltas=True,
        extra_headers=(("X-Title", "ccm-tui"),),
    ),
    "groq": OpenAIQuirks(use_max_completion_tokens=True, default_max_output_tokens=32768, usage_in_x_groq=True),
    # Cerebras reserves prompt + max_completion_tokens against the per-minute token bucket: keep the cap low.
    "cerebras": OpenAIQuirks(use_max_completion_tokens=True, default_max_output_tokens=8192, parallel_tool_calls=False),
    "github": OpenAIQuirks(
        default_max_output_tokens=4000,  # the free tiers' per-request output limit
        extra_headers=(("Accept", "application/vnd.github+json"), ("X-GitHub-Api-Version", "2022-11-28")),
    ),
    "gemini": OpenAIQuirks(
        default_max_output_tokens=65536,
        reasoning_request="effort",
        parallel_tool_calls=False,
        send_user=False,
        gemini_schema=True,
    ),
    "custom": OpenAIQuirks(),
}

# Where each vendor's Chat Completions API lives when the settings name no base_url (kind "gemini" providers
# configured from the environment have none).
DEFAULT_BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "openrouter": "https://openrouter.ai/api/v1",
    "groq": "https://api.groq.com/openai/v1",
    "cerebras": "https://api.cerebras.ai/v1",
    "github": "https://models.github.ai/inference",
    "gemini": "https://generativelanguage.googleapis.com/v1beta/openai",
}

# OpenAI reasoning models (o1, o3, o4-mini, gpt-5 ...) want the developer role and max_completion_tokens, and
# refuse temperature / top_p / stop. GitHub Models and custom gateways serve them under `openai/o3` and the like.
_REASONING_MODEL = re.compile(r"^(o\d|gpt-5)")
_REASONING_VENDORS = frozenset({"openai", "github", "custom"})


def quirks_for(vendor: str, model: str) -> OpenAIQuirks:
    """The quirks for one vendor and model: the vendor's row, adjusted for OpenAI reasoning models."""
    quirks = VENDORS.get(vendor, VENDORS["custom"])
    if vendor in _REASONING_VENDORS and _REASONING_MODEL.match(model.rsplit("/", 1)[-1].lower()):
        quirks = dataclasses.replace(
            quirks, system_role="developer", use_max_completion_tokens=True, sampling_params=False
        )
    return quirks


class OpenAIProvider:
    """One OpenAI-compatible endpoint. Never retries: the engine owns retries and failover."""

    def __init__(self, settings: ProviderSettings, routing: RoutingSettings) -> None:
        self.settings = settings
        self.vendor = vendor_of(settings)
        self._api_key: str | None = None
        self._client = make_http_client(settings, routing)
        base_url = settings.base_url or DEFAULT_BASE_URLS.get(self.vendor, "")
        self.endpoint = f"{base_url.rstrip('/')}/chat/completions"

    def set_api_key(self, key: str | None) -> None:
        self._api_key = key or None

    @property
    def has_credentials(self) -> bool:
        # A custom endpoint configured without a key variable is taken to be keyless (a local server).
        return self._api_key is not None or (self.vendor == "custom" and not self.settings.api_key_env)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def count_tokens(self, request: ProxyRequest, route: Route) -> int | None:
        return None  # Chat Completions has no token-counting endpoint; the caller estimates

    async def send(self, request: ProxyRequest, route: Route) -> Reply:
        quirks = quirks_for(self.vendor, route.model)
        body = request_to_openai(request.body, route.model, quirks, max_output_tokens=self.settings.max_output_tokens)
        http_request = self._client.build_request(
            "POST", self.endpoint, content=orjson.dumps(body), headers=self._headers(quirks, request.stream)
        )
        response = await open_response(self._client, http_request, self._error)
        if request.stream and "json" not in response.headers.get("content-type", ""):
            return self._stream_reply(response, request.model, quirks)
        return await self._message_reply(response, request.model, streaming_wanted=request.stream)

    def _headers(self, quirks: OpenAIQuirks, stream: bool) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream" if stream else "application/json"}
        headers.update(quirks.headers)
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        headers.update(self.settings.headers)  # the user's own headers win (gateways, org ids)
        return headers

    def _error(self, status: int, body: bytes, headers: dict[str, str]) -> UpstreamError:
        return error_from_openai(status, body, headers, self.vendor)

    async def _message_reply(self, response: httpx.Response, model: str, *, streaming_wanted: bool) -> MessageReply:
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
        message, usage = message_from_openai(data, model)
        served = data.get("model") if isinstance(data.get("model"), str) else None
        return MessageReply(body=orjson.dumps(message), usage=usage, headers=headers, model=served)

    def _stream_reply(self, response: httpx.Response, model: str, quirks: OpenAIQuirks) -> StreamReply:
        meter = StreamMeter()
        translator = OpenAIStreamTranslator(model, meter, quirks)
        return StreamReply(_anthropic_sse(response, translator), header_items(response.headers), meter, response.aclose)


async def _anthropic_sse(response: httpx.Response, translator: OpenAIStreamTranslator) -> AsyncIterator[bytes]:
    """Upstream SSE bytes -> Anthropic SSE bytes, one yield per upstream read that produced events.

    Events translated before a failure in the same read are still yielded, then the failure is raised, so
    what the client receives does not depend on how the upstream's bytes were split into reads.
    """
    parser = SseParser()
    saw_done = False
    try:
        async for raw in response.aiter_bytes():
            translated, saw_done, failure = _translate(parser.feed(raw), translator)
            if translated:
                yield translated
            if failure is not None:
                raise failure
            if saw_done:
                break
        else:
            translated, saw_done, failure = _translate(parser.flush(), translator)
            if translated:
                yield translated
            if failure is not None:
                raise failure
    except httpx.TransportError as exc:
        raise transport_error(exc) from None
    yield translator.finish(saw_done)


def _translate(
    events: Iterable[SseEvent], translator: OpenAIStreamTranslator
) -> tuple[bytes, bool, UpstreamError | None]:
    """(translated bytes, `[DONE]` seen, the failure that stopped translation if any)."""
    out: list[bytes] = []
    for event in events:
        data = event.data.strip()
        if not data:
            continue
        if data == "[DONE]":
            return b"".join(out), True, None
        try:
            out.append(translator.feed(orjson.loads(data)))
        except orjson.JSONDecodeError:
            return b"".join(out), False, UpstreamError.bad_reply("malformed chunk from upstream")
        except UpstreamError as failure:
            return b"".join(out), False, failure
    return b"".join(out), False, None
