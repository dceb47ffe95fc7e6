"""Native Anthropic pass-through: Anthropic itself or any Anthropic-compatible base URL.

The request body goes upstream as the client sent it (re-serialised only when the model or max_tokens must
change); response bytes come back untouched, read only for usage. `anthropic-beta` values are filtered to
the provider's configured list when it has one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson

from ccm_tui.config import ProviderSettings, RoutingSettings
from ccm_tui.core.contract import MessageReply, ProxyRequest, Reply, Route, StreamMeter, StreamReply, UpstreamError
from ccm_tui.core.events import Usage
from ccm_tui.core.states import TransportFailure
from ccm_tui.core.vendors import vendor_or_custom
from ccm_tui.providers.base import body_chunks, header_items, make_http_client, open_response, read_all
from ccm_tui.providers.headers import request_headers
from ccm_tui.translate.anthropic_stream import AnthropicStreamMeter
from ccm_tui.translate.continuity import sanitize_history_for_anthropic_target
from ccm_tui.translate.sse import MAX_EVENT_BYTES, error_event

# Fields the count_tokens endpoint accepts (PROTOCOLS.md §1.9); anything else is a 400 there.
_COUNT_FIELDS = ("model", "messages", "system", "tools", "tool_choice", "thinking", "output_config", "cache_control")


def anthropic_error(status: int, body: bytes, headers: dict[str, str]) -> UpstreamError:
    """Normalise an Anthropic-shaped error body (or anything else an Anthropic-compatible host returns)."""
    error_type = error_code = None
    message = ""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        error = data["error"]
        error_type = error.get("type") if isinstance(error.get("type"), str) else None
        message = error.get("message") if isinstance(error.get("message"), str) else ""
        details = error.get("details")
        if isinstance(details, dict) and isinstance(details.get("error_code"), str):
            error_code = details["error_code"]
    if not message:
        message = body[:200].decode("utf-8", errors="replace").strip() or f"HTTP {status}"
    return UpstreamError(status, message, error_type=error_type, error_code=error_code, headers=headers)


def usage_from(fields: Any) -> Usage:
    if not isinstance(fields, dict):
        return Usage()
    return Usage(
        input_tokens=int(fields.get("input_tokens") or 0),
        output_tokens=int(fields.get("output_tokens") or 0),
        cache_creation_input_tokens=int(fields.get("cache_creation_input_tokens") or 0),
        cache_read_input_tokens=int(fields.get("cache_read_input_tokens") or 0),
    )


class AnthropicProvider:
    def __init__(self, settings: ProviderSettings, routing: RoutingSettings) -> None:
        self.settings = settings
        self.base_url = settings.base_url or vendor_or_custom("anthropic").base_url_for() or ""
        self._client = make_http_client(settings, routing)
        self._key: str | None = None

    def set_api_key(self, key: str | None) -> None:
        self._key = key

    @property
    def has_credentials(self) -> bool:
        # A custom Anthropic-compatible endpoint may need no key (a local gateway); api.anthropic.com does.
        return bool(self._key) or (self.settings.base_url is not None and self.settings.api_key_env is None)

    def _headers(self, request: ProxyRequest, route: Route) -> dict[str, str]:
        headers = {
            "content-type": "application/json",
            "accept-encoding": "identity",  # streamed bytes are relayed raw (see metered_anthropic_sse)
            "anthropic-version": request.anthropic_version,
        }
        if key := route.credential(self._key):
            headers["x-api-key"] = key
        allowed = self.settings.betas
        betas = request.betas if allowed is None else tuple(b for b in request.betas if b in allowed)
        if betas:
            headers["anthropic-beta"] = ",".join(betas)
        return request_headers(headers, self.settings.headers)

    def _body(self, request: ProxyRequest, route: Route) -> bytes:
        """The client's bytes when nothing must change (the common case), else a re-serialised body:
        another model name, a clamped max_tokens, or history from another provider made acceptable."""
        cap = self.settings.max_output_tokens
        over_cap = (
            cap is not None and isinstance(request.body.get("max_tokens"), int) and request.body["max_tokens"] > cap
        )
        sanitized = sanitize_history_for_anthropic_target(request.body)
        if route.model == request.model and not over_cap and sanitized is request.body:
            return request.raw_body
        body = dict(sanitized, model=route.model)
        if over_cap:
            body["max_tokens"] = cap
        return orjson.dumps(body)

    async def send(self, request: ProxyRequest, route: Route) -> Reply:
        url = f"{self.base_url}/v1/messages"
        upstream = self._client.build_request(
            "POST", url, content=self._body(request, route), headers=self._headers(request, route)
        )
        response = await open_response(self._client, upstream, anthropic_error)
        headers = header_items(response.headers)
        if not request.stream:
            body = await read_all(response)
            try:
                message = orjson.loads(body)
            except orjson.JSONDecodeError:
                raise UpstreamError.bad_reply("upstream sent a response that is not JSON") from None
            return MessageReply(
                body=body, usage=usage_from(message.get("usage")), headers=headers, model=message.get("model")
            )
        meter = StreamMeter()
        return StreamReply(metered_anthropic_sse(response, meter), headers, meter, response.aclose)

    async def count_tokens(self, request: ProxyRequest, route: Route) -> int | None:
        body = {k: request.body[k] for k in _COUNT_FIELDS if k in request.body}
        body["model"] = route.model
        try:
            response = await self._client.post(
                f"{self.base_url}/v1/messages/count_tokens",
                content=orjson.dumps(body),
                headers=self._headers(request, route),
            )
        except httpx.TransportError:
            return None
        if response.status_code != 200:
            return None
        count = orjson.loads(response.content).get("input_tokens")
        return count if isinstance(count, int) else None

    async def aclose(self) -> None:
        await self._client.aclose()


async def metered_anthropic_sse(
    response: httpx.Response, meter: StreamMeter, max_event_bytes: int = MAX_EVENT_BYTES
) -> AsyncIterator[bytes]:
    """Upstream Anthropic SSE bytes, unchanged, metered as they pass (shared with Vertex); one yield per
    upstream read that completes at least one event.

    The unfinished tail of an event is held (as pieces, joined once its end arrives: linear however the
    bytes are split) and forwarded with the read that completes it; an upstream that sends more than
    `max_event_bytes` without ending an event is an unusable reply, as in translate/sse.py. A connection
    lost mid-stream raises; a stream that stops without message_stop or an error event is a failure too (the
    engine turns either into an `event: error`).
    """
    scanner = AnthropicStreamMeter(meter)
    held: list[bytes] = []  # pieces of an event not yet complete
    held_bytes = 0
    tail = b""  # the last bytes held: a blank line may straddle them and the next read
    error_relayed = False
    async for chunk in body_chunks(response):
        scanner.feed(chunk)
        end = _last_event_end(chunk)
        if not end and held:
            end = max(_last_event_end(tail + chunk[:3]) - len(tail), 0)
        if end:
            if held:
                held.append(chunk[:end])
                out = b"".join(held)
            else:
                out = chunk if end == len(chunk) else chunk[:end]
            if meter.error_type is not None and not error_relayed and b'"error"' in out:
                error_relayed = True
                out = _scrubbed_error_event(out, meter)
            yield out
            rest = chunk[end:]
            held = [rest] if rest else []
            held_bytes, tail = len(rest), rest[-3:]
            continue
        held.append(chunk)
        held_bytes += len(chunk)
        tail = (tail + chunk)[-3:]
        if held_bytes > max_event_bytes:
            raise UpstreamError.bad_reply(
                f"upstream sent a stream event larger than {max_event_bytes // (1024 * 1024)} MiB"
            )
    if not meter.completed and meter.error_type is None:
        raise UpstreamError.no_response(TransportFailure.READ, "the upstream stream ended before message_stop")


def _scrubbed_error_event(data: bytes, meter: StreamMeter) -> bytes:
    """`data` with its error event re-encoded from the meter's scrubbed fields: upstream error text may quote
    the key, and these bytes go to the client as they are. What precedes the error event is kept unchanged."""
    start = data.rfind(b"event: error")
    if start == -1:  # an error sent as a bare data line
        start = data.rfind(b"data:")
    return data[:start] + error_event(meter.error_type or "api_error", meter.error_message or "")


def _last_event_end(data: bytes) -> int:
    """Index just past the last blank line (`\n\n` or `\r\n\r\n`) in data, or 0 when there is none."""
    lf, crlf = data.rfind(b"\n\n"), data.rfind(b"\r\n\r\n")
    return max(lf + 2 if lf >= 0 else 0, crlf + 4 if crlf >= 0 else 0)
