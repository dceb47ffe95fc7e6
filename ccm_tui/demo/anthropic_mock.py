"""A faithful Anthropic Messages API upstream (PROTOCOLS.md §1) for tests and demo mode.

`POST /v1/messages` (also `?beta=true`), `POST /v1/messages/count_tokens`, `GET /v1/models[/{id}]`.
Every response carries `request-id` and the full `anthropic-ratelimit-*` set; streams follow §1.6 byte for
byte (event lines, ping after the first block start, split deltas, a leading "" input_json_delta, signature
deltas, cumulative usage in message_delta). Only `/v1/messages` consumes scenarios.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiohttp import web

from ccm_tui.demo.scenarios import (
    ERROR_SCENARIOS,
    ReplyPlan,
    ScenarioMock,
    TextPart,
    ThinkingPart,
    estimate_tokens,
    new_id,
    rfc3339,
    seconds_text,
    split_fragments,
    split_words,
)
from ccm_tui.translate.sse import encode_event, error_event

NEW_VERSION = "2026-10-21"  # rejects temperature / top_p / top_k
_STOP_REASONS = {"end": "end_turn", "tool": "tool_use", "length": "max_tokens"}
# (status, error.type, message, error_code for details) per error scenario.
_ERRORS: dict[str, tuple[int, str, str, str | None]] = {
    "rate_limit": (
        429,
        "rate_limit_error",
        "This request would exceed the rate limit for your organization of 50 requests per minute. "
        "For details, refer to: https://docs.claude.com/en/api/rate-limits.",
        None,
    ),
    "spend_limit": (
        429,
        "rate_limit_error",
        "You have reached your specified workspace API usage limits. You will regain access on the first "
        "of next month at 00:00 UTC.",
        "enforced_spend_limit_reached",
    ),
    "billing": (402, "billing_error", "Your credit balance is too low to access the Anthropic API.", None),
    "auth": (401, "authentication_error", "invalid x-api-key", None),
    "overloaded": (529, "overloaded_error", "Overloaded", None),
    "server_error": (500, "api_error", "Internal server error", None),
    "bad_request": (400, "invalid_request_error", "messages.0.content.0.type: Field required", None),
    "context_length": (400, "invalid_request_error", "prompt is too long: 215000 tokens > 200000 maximum", None),
    "too_large": (413, "request_too_large", "Request exceeds the maximum allowed number of bytes.", None),
}
MODELS = ("claude-opus-4-6", "claude-sonnet-4-6", "claude-haiku-4-5")


def error_body(error_type: str, message: str, request_id: str, error_code: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"type": error_type, "message": message}
    if error_code:
        error["details"] = {"error_code": error_code}
    return {"type": "error", "error": error, "request_id": request_id}


def tools_of(body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (tool["name"], tool.get("input_schema") or {})
        for tool in body.get("tools") or []
        if isinstance(tool, dict) and isinstance(tool.get("name"), str)
    ]


def last_turn_tool_results(messages: list[Any]) -> list[str] | None:
    """Texts of the tool_result blocks in the last user turn; None when that turn has none."""
    for message in reversed(messages):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        blocks = [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []
        results = [b for b in blocks if b.get("type") == "tool_result"]
        if not results:
            return None
        texts = []
        for block in results:
            inner = block.get("content")
            if isinstance(inner, str):
                texts.append(inner)
            elif isinstance(inner, list):
                texts.extend(p.get("text", "") for p in inner if isinstance(p, dict) and p.get("type") == "text")
        return texts
    return None


def message_json(message_id: str, model: str, plan: ReplyPlan, usage: dict[str, Any]) -> dict[str, Any]:
    """The non-streaming Message object (§1.5)."""
    content: list[dict[str, Any]] = []
    for part in plan.parts:
        if isinstance(part, ThinkingPart):
            content.append({"type": "thinking", "thinking": part.thinking, "signature": part.signature})
        elif isinstance(part, TextPart):
            content.append({"type": "text", "text": part.text, "citations": None})
        else:
            content.append({"type": "tool_use", "id": new_id("toolu_01", 22), "name": part.name, "input": part.input})
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": _STOP_REASONS[plan.stop],
        "stop_sequence": None,
        "usage": {**usage, "output_tokens": plan.output_tokens},
    }


def stream_events(
    message_id: str, model: str, plan: ReplyPlan, usage: dict[str, Any], words_per_chunk: int = 3
) -> list[dict[str, Any]]:
    """The §1.6 event sequence for a plan, as JSON objects in order."""
    start_usage = {**usage, "output_tokens": 1}
    events: list[dict[str, Any]] = [
        {
            "type": "message_start",
            "message": {
                "id": message_id,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": start_usage,
            },
        }
    ]
    for index, part in enumerate(plan.parts):
        if isinstance(part, ThinkingPart):
            block: dict[str, Any] = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": t} for t in split_words(part.thinking, words_per_chunk)]
            deltas.append({"type": "signature_delta", "signature": part.signature})
        elif isinstance(part, TextPart):
            block = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": t} for t in split_words(part.text, words_per_chunk)]
        else:
            block = {"type": "tool_use", "id": new_id("toolu_01", 22), "name": part.name, "input": {}}
            fragments = ["", *split_fragments(orjson.dumps(part.input).decode())]
            deltas = [{"type": "input_json_delta", "partial_json": f} for f in fragments]
        events.append({"type": "content_block_start", "index": index, "content_block": block})
        if index == 0:
            events.append({"type": "ping"})
        events.extend({"type": "content_block_delta", "index": index, "delta": d} for d in deltas)
        events.append({"type": "content_block_stop", "index": index})
    final_usage = {
        key: usage[key] for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    }
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": _STOP_REASONS[plan.stop], "stop_sequence": None},
            "usage": {**final_usage, "output_tokens": plan.output_tokens},
        }
    )
    events.append({"type": "message_stop"})
    return events


class AnthropicMock(ScenarioMock):
    """The Anthropic API. `.url` is the origin (clients add `/v1/messages`)."""

    models: tuple[str, ...] = MODELS

    @property
    def url(self) -> str:
        return self.origin

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/messages", self.guarded(self._messages)),
            web.post("/v1/messages/count_tokens", self.guarded(self._count_tokens)),
            web.get("/v1/models", self.guarded(self._list_models)),
            web.get("/v1/models/{model_id}", self.guarded(self._get_model)),
        ]

    # --- headers and errors --------------------------------------------------------------------------------
    def headers(self, request_id: str, *, exhausted: bool = False) -> dict[str, str]:
        """request-id and the anthropic-ratelimit-* set; `exhausted` (a 429 on requests per minute) empties
        the requests bucket until `retry_after` from now."""
        now = time.time()
        requests, input_used, output_used = self.window.used()
        reset = rfc3339(now + self.window.reset_after())
        buckets = {
            "requests": (self.requests_limit, self.requests_limit - requests),
            "tokens": (self.tokens_limit, self.tokens_limit - input_used - output_used),
            "input-tokens": (self.input_tokens_limit, self.input_tokens_limit - input_used),
            "output-tokens": (self.output_tokens_limit, self.output_tokens_limit - output_used),
        }
        headers = {"request-id": request_id, "anthropic-organization-id": "00000000-mock-org"}
        for name, (limit, left) in buckets.items():
            empty = exhausted and name == "requests"
            headers[f"anthropic-ratelimit-{name}-limit"] = str(limit)
            headers[f"anthropic-ratelimit-{name}-remaining"] = "0" if empty else str(max(0, left))
            headers[f"anthropic-ratelimit-{name}-reset"] = rfc3339(now + self.retry_after) if empty else reset
        return headers

    def error(self, request_id: str, scenario: str) -> web.Response:
        status, error_type, message, code = _ERRORS[scenario]
        headers = self.headers(request_id, exhausted=scenario == "rate_limit")
        if status in (429, 529) and code is None:
            headers["retry-after"] = seconds_text(self.retry_after)
            headers["x-should-retry"] = "true"
            if self.retry_after_ms_header:
                headers["retry-after-ms"] = str(round(self.retry_after * 1000))
        elif code is not None:
            headers["x-should-retry"] = "false"
        return self.json_response(status, error_body(error_type, message, request_id, code), headers)

    def _reject(self, request_id: str, status: int, error_type: str, message: str) -> web.Response:
        return self.json_response(status, error_body(error_type, message, request_id), self.headers(request_id))

    def _gate(self, request: web.Request, request_id: str) -> web.Response | None:
        """The checks the real API makes before it looks at the body: a key, a version."""
        key = request.headers.get("x-api-key") or ""
        authorization = request.headers.get("authorization") or ""
        if not key and authorization.lower().startswith("bearer "):
            key = authorization[7:].strip()
        if not key or (self.expected_key is not None and key != self.expected_key):
            message = "invalid x-api-key" if key else "x-api-key header is required"
            return self._reject(request_id, 401, "authentication_error", message)
        if not request.headers.get("anthropic-version"):
            return self._reject(request_id, 400, "invalid_request_error", "anthropic-version: header is required")
        return None

    def _parse(self, request: web.Request, raw: bytes, request_id: str) -> dict[str, Any] | web.Response:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return self._reject(request_id, 400, "invalid_request_error", "The request body is not valid JSON.")
        if not isinstance(body, dict):
            return self._reject(request_id, 400, "invalid_request_error", "The request body must be a JSON object.")
        if (request.headers.get("anthropic-version") or "") >= NEW_VERSION:
            for name in ("temperature", "top_p", "top_k"):
                if name in body:
                    message = f"{name}: not supported with anthropic-version {NEW_VERSION}"
                    return self._reject(request_id, 400, "invalid_request_error", message)
        return body

    # --- handlers ------------------------------------------------------------------------------------------
    async def _messages(self, request: web.Request) -> web.StreamResponse:
        request_id = new_id("req_011C", 20)
        if (rejection := self._gate(request, request_id)) is not None:
            await self.record(request, "rejected")
            return rejection
        scenario = self.next_scenario()
        recorded = await self.record(request, scenario)
        body = self._parse(request, recorded.body, request_id)
        if isinstance(body, web.Response):
            return body
        for name, kind in (("model", str), ("max_tokens", int), ("messages", list)):
            if not isinstance(body.get(name), kind):
                return self._reject(request_id, 400, "invalid_request_error", f"{name}: Field required")

        wait = self.first_byte_wait() + (self.slow_seconds if scenario == "slow_first_byte" else 0.0)
        if wait > 0 and not await self.wait_unless_disconnected(request, wait):
            return web.Response(status=499)
        if scenario in ERROR_SCENARIOS:
            return self.error(request_id, scenario)

        plan = self.plan_reply(
            scenario,
            tools=tools_of(body),
            tool_results=last_turn_tool_results(body["messages"]),
            max_tokens=body["max_tokens"],
        )
        usage: dict[str, Any] = {
            "input_tokens": self.input_tokens_for(recorded.body),
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.cache_creation_input_tokens,
                "ephemeral_1h_input_tokens": 0,
            },
            "service_tier": "standard",
        }
        self.window.add(usage["input_tokens"], plan.output_tokens)
        headers = self.headers(request_id)
        message_id = new_id("msg_01", 22)
        model = body["model"]
        if not body.get("stream"):
            return await self._whole(request, scenario, message_json(message_id, model, plan, usage), headers)
        events = [encode_event(e) for e in stream_events(message_id, model, plan, usage, self.words_per_chunk)]
        return await self._streamed(request, scenario, events, headers)

    async def _whole(
        self, request: web.Request, scenario: str, message: dict[str, Any], headers: dict[str, str]
    ) -> web.StreamResponse:
        if scenario == "mid_stream_cut":  # status and headers, then the connection drops
            return await self.stream(request, [b"{}"], content_type="application/json", headers=headers, cut_after=0)
        if scenario == "mid_stream_error":
            request_id = headers["request-id"]
            return self.json_response(529, error_body("overloaded_error", "Overloaded", request_id), headers)
        if scenario == "malformed_chunk":
            truncated = orjson.dumps(message)[:40]
            return web.Response(status=200, body=truncated, content_type="application/json", headers=headers)
        return self.json_response(200, message, headers)

    async def _streamed(
        self, request: web.Request, scenario: str, events: list[bytes], headers: dict[str, str]
    ) -> web.StreamResponse:
        headers = {**headers, "Cache-Control": "no-cache"}
        # message_start, content_block_start, ping, then two deltas: "some content" before the failure.
        some_content = min(5, len(events) - 2)
        if scenario == "mid_stream_cut":
            return await self.stream(request, events, headers=headers, cut_after=some_content)
        if scenario == "mid_stream_error":
            failing = [*events[:some_content], error_event("overloaded_error", "Overloaded")]
            return await self.stream(request, failing, headers=headers)
        if scenario == "malformed_chunk":
            broken = b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0, "delta": {"ty\n\n'
            events = [*events[:some_content], broken, *events[some_content:]]
        return await self.stream(request, events, headers=headers)

    async def _count_tokens(self, request: web.Request) -> web.Response:
        request_id = new_id("req_011C", 20)
        if (rejection := self._gate(request, request_id)) is not None:
            await self.record(request, "rejected")
            return rejection
        recorded = await self.record(request, "count_tokens")
        body = self._parse(request, recorded.body, request_id)
        if isinstance(body, web.Response):
            return body
        if not isinstance(body.get("messages"), list) or not isinstance(body.get("model"), str):
            return self._reject(request_id, 400, "invalid_request_error", "messages: Field required")
        counted = {key: body.get(key) for key in ("system", "messages", "tools")}
        tokens = self.input_tokens if self.input_tokens is not None else estimate_tokens(len(orjson.dumps(counted)))
        return self.json_response(200, {"input_tokens": tokens}, self.headers(request_id))

    def _model_info(self, model_id: str) -> dict[str, Any]:
        display = model_id.removeprefix("claude-").replace("-", " ").title()
        return {
            "type": "model",
            "id": model_id,
            "display_name": f"Claude {display}",
            "created_at": rfc3339(1_759_104_000),
        }

    async def _list_models(self, request: web.Request) -> web.Response:
        request_id = new_id("req_011C", 20)
        if (rejection := self._gate(request, request_id)) is not None:
            return rejection
        data = [self._model_info(m) for m in self.models]
        payload = {"data": data, "has_more": False, "first_id": self.models[0], "last_id": self.models[-1]}
        return self.json_response(200, payload, self.headers(request_id))

    async def _get_model(self, request: web.Request) -> web.Response:
        request_id = new_id("req_011C", 20)
        if (rejection := self._gate(request, request_id)) is not None:
            return rejection
        model_id = request.match_info["model_id"]
        if model_id not in self.models:
            return self._reject(request_id, 404, "not_found_error", f"model: {model_id}")
        return self.json_response(200, self._model_info(model_id), self.headers(request_id))
