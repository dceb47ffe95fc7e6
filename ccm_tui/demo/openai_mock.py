"""A faithful OpenAI Chat Completions upstream for the whole compatible family (PROTOCOLS.md §2).

`OpenAIMock(vendor=...)` serves `POST {prefix}/chat/completions` and `GET {prefix}/models` (OpenRouter also
`GET /api/v1/key`); `.url` = origin + the vendor's prefix, i.e. what a user puts in `base_url`. Streams follow
§2.3: role chunk, content deltas, tool-call fragments (index/id/name first, then arguments), finish chunk,
usage chunk on `stream_options.include_usage` (Groq: `x_groq.usage` on the finish chunk), `data: [DONE]`;
OpenRouter adds `: OPENROUTER PROCESSING` comments. Vendor headers and error shapes: openai_vendors.py.
Also as the vendors do: `stop` cuts the text before the first match (OpenAI refuses more than four),
`response_format: json_schema` makes the reply a JSON instance of the schema, the thinking scenario streams
reasoning in the vendor's field (`reasoning_content`, or `reasoning` + `reasoning_details`), OpenRouter reports
cache writes, and `reasoning_budget_limit` refuses larger `reasoning.max_tokens` like the model behind it.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiohttp import web

from ccm_tui.demo.openai_vendors import (
    EXHAUSTED_BUCKET,
    PREFIXES,
    REASONING_FIELDS,
    REQUEST_WINDOW_MINUTES,
    Quota,
    error_status_and_body,
    identity_headers,
    quota_headers,
    request_id,
)
from ccm_tui.demo.scenarios import (
    ERROR_SCENARIOS,
    ReplyPlan,
    ScenarioMock,
    TextPart,
    ThinkingPart,
    ToolPart,
    new_id,
    sample_tool_input,
    seconds_text,
    split_fragments,
    split_words,
)

_FINISH_REASONS = {"end": "stop", "tool": "tool_calls", "length": "length"}
_PROCESSING = b": OPENROUTER PROCESSING\n\n"
_DONE = b"data: [DONE]\n\n"


def sse(payload: Any) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def tools_of(body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for tool in body.get("tools") or []:
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            found.append((function["name"], function.get("parameters") or {}))
    return found


def last_turn_tool_results(messages: list[Any]) -> list[str] | None:
    """Contents of the `tool` messages after the last assistant message; None when there are none."""
    texts: list[str] = []
    found = False
    for message in reversed(messages):
        if not isinstance(message, dict) or message.get("role") == "assistant":
            break
        if message.get("role") == "tool":
            found = True
            content = message.get("content")
            if isinstance(content, str):
                texts.insert(0, content)
            elif isinstance(content, list):
                texts[:0] = [p.get("text", "") for p in content if isinstance(p, dict)]
    return texts if found else None


def tool_calls_of(plan: ReplyPlan) -> list[dict[str, Any]]:
    return [
        {
            "id": new_id("call_", 24),
            "type": "function",
            "function": {"name": p.name, "arguments": orjson.dumps(p.input).decode()},
        }
        for p in plan.parts
        if isinstance(p, ToolPart)
    ]


def reasoning_of(plan: ReplyPlan) -> str:
    return "".join(p.thinking for p in plan.parts if isinstance(p, ThinkingPart))


def shaped_plan(plan: ReplyPlan, body: dict[str, Any]) -> ReplyPlan:
    """The plan after `response_format` (a JSON instance of the schema) and `stop` (text cut at the first match)."""
    parts = plan.parts
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema") or {}
        text = orjson.dumps(sample_tool_input(schema)).decode()
        parts = tuple(TextPart(text) if isinstance(p, TextPart) else p for p in parts)
    stops = body.get("stop")
    stops = [stops] if isinstance(stops, str) else [s for s in stops or () if isinstance(s, str) and s]
    if stops:
        cut: list[Any] = []
        for part in parts:
            if isinstance(part, TextPart):
                hits = [i for i in (part.text.find(s) for s in stops) if i != -1]
                if hits:
                    cut.append(TextPart(part.text[: min(hits)]))
                    return ReplyPlan(tuple(cut), "end", plan.output_tokens)
            cut.append(part)
    return ReplyPlan(parts, plan.stop, plan.output_tokens)


def content_of(plan: ReplyPlan) -> str | None:
    """OpenAI models rarely talk before calling tools, so text goes out only when there are no calls."""
    if any(isinstance(p, ToolPart) for p in plan.parts):
        return None
    return "".join(p.text for p in plan.parts if isinstance(p, TextPart))


class OpenAIMock(ScenarioMock):
    """One OpenAI-compatible vendor. Knobs as in ScenarioMock; `.vendor` picks paths, headers, error shapes."""

    def __init__(
        self,
        scenario: str = "text",
        *,
        vendor: str = "openai",
        seed: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if vendor not in PREFIXES:
            raise ValueError(f"unknown vendor {vendor!r} (expected one of {', '.join(PREFIXES)})")
        super().__init__(scenario, seed=seed, host=host, port=port)
        self.vendor = vendor
        self.prefix = PREFIXES[vendor]
        self.requests_limit = 14_400 if vendor in ("groq", "cerebras") else 5000
        self.tokens_limit = 6000 if vendor == "groq" else 160_000
        self.models: tuple[str, ...] = ("mock-large", "mock-small")
        self.reasoning_budget_limit: int | None = None  # refuse a larger reasoning.max_tokens (the model's limit)

    @property
    def url(self) -> str:
        return self.origin + self.prefix

    def routes(self) -> list[web.RouteDef]:
        routes = [
            web.post(f"{self.prefix}/chat/completions", self.guarded(self._completions)),
            web.get(f"{self.prefix}/models", self.guarded(self._list_models)),
        ]
        if self.vendor == "openrouter":
            routes.append(web.get("/api/v1/key", self.guarded(self._openrouter_key)))
        return routes

    # --- headers and errors --------------------------------------------------------------------------------
    def headers(self, rid: str, *, exhausted: bool = False) -> dict[str, str]:
        """Identity and quota headers; `exhausted` (a 429) empties the bucket the vendor's message names."""
        requests, input_used, output_used = self.window.used()
        reset = self.window.reset_after()
        empty = EXHAUSTED_BUCKET.get(self.vendor) if exhausted else None
        quota = Quota(
            requests_limit=self.requests_limit,
            requests_remaining=0 if empty == "requests" else max(0, self.requests_limit - requests),
            requests_reset=self.retry_after
            if empty == "requests"
            else reset * REQUEST_WINDOW_MINUTES.get(self.vendor, 1),
            tokens_limit=self.tokens_limit,
            tokens_remaining=0 if empty == "tokens" else max(0, self.tokens_limit - input_used - output_used),
            tokens_reset=self.retry_after if empty == "tokens" else reset,
        )
        return {**identity_headers(self.vendor, rid), **quota_headers(self.vendor, quota)}

    def error(self, rid: str, scenario: str, model: str) -> web.Response:
        status, body = error_status_and_body(self.vendor, scenario, model, self.retry_after)
        headers = self.headers(rid, exhausted=scenario == "rate_limit")
        if scenario == "rate_limit":
            headers["retry-after"] = seconds_text(self.retry_after)
            if self.retry_after_ms_header:
                headers["retry-after-ms"] = str(round(self.retry_after * 1000))
        return self.json_response(status, body, headers)

    def _authorised(self, request: web.Request) -> bool:
        authorization = request.headers.get("authorization") or ""
        key = authorization[7:].strip() if authorization.lower().startswith("bearer ") else ""
        return bool(key) and (self.expected_key is None or key == self.expected_key)

    def _bad_request(self, rid: str, message: str, param: str) -> web.Response:
        body: Any = {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}}
        if self.vendor == "cerebras":
            body = body["error"]
        return self.json_response(400, body, self.headers(rid))

    # --- handlers ------------------------------------------------------------------------------------------
    async def _completions(self, request: web.Request) -> web.StreamResponse:
        rid = request_id(self.vendor)
        if not self._authorised(request):
            await self.record(request, "rejected")
            return self.error(rid, "auth", "")
        scenario = self.next_scenario()
        recorded = await self.record(request, scenario)
        try:
            body = orjson.loads(recorded.body)
        except orjson.JSONDecodeError:
            return self._bad_request(rid, "We could not parse the JSON body of your request.", "body")
        if not isinstance(body, dict):
            return self._bad_request(rid, "The request body must be a JSON object.", "body")
        for name, kind in (("model", str), ("messages", list)):
            if not isinstance(body.get(name), kind):
                return self._bad_request(rid, f"Missing required parameter: '{name}'.", name)

        refusal = self._refusal(body)
        if refusal is not None:
            return self._bad_request(rid, *refusal)

        wait = self.first_byte_wait() + (self.slow_seconds if scenario == "slow_first_byte" else 0.0)
        if wait > 0 and not await self.wait_unless_disconnected(request, wait):
            return web.Response(status=499)
        model = body["model"]
        if scenario in ERROR_SCENARIOS:
            return self.error(rid, scenario, model)

        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or 4096
        plan = self.plan_reply(
            scenario,
            tools=tools_of(body),
            tool_results=last_turn_tool_results(body["messages"]),
            max_tokens=int(max_tokens),
        )
        plan = shaped_plan(plan, body)
        input_tokens = self.input_tokens_for(recorded.body)
        self.window.add(input_tokens, plan.output_tokens)
        usage = self._usage(input_tokens, plan.output_tokens)
        headers = self.headers(rid)
        base = {
            "id": "chatcmpl-" + new_id("", 29),
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_" + new_id("", 10).lower(),
        }
        if self.vendor == "openrouter":
            base["provider"] = "MockCloud"
        if not body.get("stream"):
            return await self._whole(request, scenario, self._completion(base, plan, usage, rid), headers)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        chunks = self._chunks(base, plan, usage, rid, include_usage)
        return await self._streamed(request, scenario, chunks, base, headers)

    def _refusal(self, body: dict[str, Any]) -> tuple[str, str] | None:
        """(message, param) of a 400 the vendor answers this body with, or None."""
        stops = body.get("stop")
        if self.vendor == "openai" and isinstance(stops, list) and len(stops) > 4:
            return (
                f"Invalid 'stop': array too long. Expected an array with maximum length 4, but got an array with "
                f"length {len(stops)} instead.",
                "stop",
            )
        budget = (body.get("reasoning") or {}).get("max_tokens")
        if self.reasoning_budget_limit is not None and isinstance(budget, int) and budget > self.reasoning_budget_limit:
            return (
                f"The thinking budget {budget} is invalid. Please choose a value between 0 and "
                f"{self.reasoning_budget_limit}.",
                "reasoning.max_tokens",
            )
        return None

    def _usage(self, input_tokens: int, output_tokens: int) -> dict[str, Any]:
        # The knobs mean what Anthropic means; OpenAI's prompt_tokens include the cached (and cache-written) part.
        prompt = input_tokens + self.cache_read_input_tokens
        if self.vendor == "openrouter":
            prompt += self.cache_creation_input_tokens
        usage: dict[str, Any] = {
            "prompt_tokens": prompt,
            "completion_tokens": output_tokens,
            "total_tokens": prompt + output_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cache_read_input_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }
        if self.vendor == "groq":
            usage.update(queue_time=0.012, prompt_time=0.004, completion_time=0.09, total_time=0.106)
        elif self.vendor == "openrouter":
            usage["cost"] = round((prompt * 3 + output_tokens * 15) / 1_000_000, 8)
            usage["prompt_tokens_details"]["cache_write_tokens"] = self.cache_creation_input_tokens
        return usage

    def _reasoning_fields(self, text: str) -> dict[str, Any]:
        field = REASONING_FIELDS.get(self.vendor, "reasoning_content")
        fields: dict[str, Any] = {field: text}
        if self.vendor == "openrouter":
            fields["reasoning_details"] = [{"type": "reasoning.text", "text": text, "format": "unknown", "index": 0}]
        return fields

    def _completion(self, base: dict[str, Any], plan: ReplyPlan, usage: dict[str, Any], rid: str) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": content_of(plan), "refusal": None, "annotations": []}
        if reasoning := reasoning_of(plan):
            message |= self._reasoning_fields(reasoning)
        if calls := tool_calls_of(plan):
            message["tool_calls"] = calls
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": _FINISH_REASONS[plan.stop]}
        completion = {**base, "object": "chat.completion", "choices": [choice], "usage": usage}
        completion["service_tier"] = "default"
        if self.vendor == "groq":
            completion["x_groq"] = {"id": rid}
        return completion

    def _chunks(
        self, base: dict[str, Any], plan: ReplyPlan, usage: dict[str, Any], rid: str, include_usage: bool
    ) -> list[bytes]:
        head = {**base, "object": "chat.completion.chunk"}
        if include_usage:
            head["usage"] = None

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return {**head, "choices": [choice]}

        payloads = [chunk({"role": "assistant", "content": "", "refusal": None})]
        reasoning = reasoning_of(plan)
        if reasoning:
            pieces = split_words(reasoning, self.words_per_chunk)
            payloads.extend(chunk({"content": None, **self._reasoning_fields(piece)}) for piece in pieces)
        text = content_of(plan)
        if text:
            payloads.extend(chunk({"content": piece}) for piece in split_words(text, self.words_per_chunk))
        for index, call in enumerate(tool_calls_of(plan)):
            opening = {**call, "index": index, "function": {"name": call["function"]["name"], "arguments": ""}}
            payloads.append(chunk({"tool_calls": [opening]}))
            for fragment in split_fragments(call["function"]["arguments"]):
                payloads.append(chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]}))
        finish = chunk({}, _FINISH_REASONS[plan.stop])
        if self.vendor == "groq":
            finish["x_groq"] = {"id": rid, "usage": usage}
        payloads.append(finish)
        if include_usage and self.vendor != "groq":
            payloads.append({**head, "choices": [], "usage": usage})
        chunks = [sse(p) for p in payloads]
        if self.vendor == "openrouter":
            chunks = [_PROCESSING, _PROCESSING, *chunks]
        return [*chunks, _DONE]

    async def _whole(
        self, request: web.Request, scenario: str, completion: dict[str, Any], headers: dict[str, str]
    ) -> web.StreamResponse:
        if scenario == "mid_stream_cut":  # status and headers, then the connection drops
            return await self.stream(request, [b"{}"], content_type="application/json", headers=headers, cut_after=0)
        if scenario == "mid_stream_error":
            return self.error(headers.get("x-request-id", ""), "overloaded", completion["model"])
        if scenario == "malformed_chunk":
            truncated = orjson.dumps(completion)[:40]
            return web.Response(status=200, body=truncated, content_type="application/json", headers=headers)
        return self.json_response(200, completion, headers)

    async def _streamed(
        self, request: web.Request, scenario: str, chunks: list[bytes], base: dict[str, Any], headers: dict[str, str]
    ) -> web.StreamResponse:
        headers = {**headers, "Cache-Control": "no-cache"}
        # The role chunk and two content chunks (plus OpenRouter's comments) reach the client before a failure.
        some_content = min(3 + (2 if self.vendor == "openrouter" else 0), len(chunks) - 1)
        if scenario == "mid_stream_cut":
            return await self.stream(request, chunks, headers=headers, cut_after=some_content)
        if scenario == "mid_stream_error":
            return await self.stream(request, [*chunks[:some_content], self._stream_error(base)], headers=headers)
        if scenario == "malformed_chunk":
            broken = b'data: {"id": "' + base["id"].encode() + b'", "choices": [{"index": 0, "delta": {"cont\n\n'
            chunks = [*chunks[:some_content], broken, *chunks[some_content:]]
        return await self.stream(request, chunks, headers=headers)

    def _stream_error(self, base: dict[str, Any]) -> bytes:
        if self.vendor == "openrouter":
            choice = {"index": 0, "delta": {"content": ""}, "finish_reason": "error"}
            error = {"code": 502, "message": "Provider returned error"}
            return sse({**base, "object": "chat.completion.chunk", "error": error, "choices": [choice]})
        error = {"message": "The server had an error while processing your request.", "type": "server_error"}
        return sse({"error": {**error, "param": None, "code": None}})

    async def _list_models(self, request: web.Request) -> web.Response:
        rid = request_id(self.vendor)
        if not self._authorised(request):
            return self.error(rid, "auth", "")
        data = [{"id": m, "object": "model", "created": 1_759_104_000, "owned_by": "mock"} for m in self.models]
        return self.json_response(200, {"object": "list", "data": data}, self.headers(rid))

    async def _openrouter_key(self, request: web.Request) -> web.Response:
        rid = request_id(self.vendor)
        if not self._authorised(request):
            return self.error(rid, "auth", "")
        requests, _, _ = self.window.used()
        data = {
            "label": "sk-or-v1-mock...",
            "limit": None,
            "limit_remaining": None,
            "usage": 0.0,
            "is_free_tier": False,
            "free_model_daily_requests": {"limit": 1000, "remaining": max(0, 1000 - requests), "used": requests},
        }
        return self.json_response(200, {"data": data}, self.headers(rid))
