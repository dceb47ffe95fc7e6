"""A faithful upstream that misbehaves on demand: the fault matrix's mock (tests/test_faults.py).

`FaultMock(kind)` speaks the Anthropic Messages API (`kind="anthropic"`: POST /v1/messages, SSE with event
lines, `request-id`, `anthropic-ratelimit-*`, `x-should-retry`) or OpenAI Chat Completions (`kind="openai"`:
POST /chat/completions, `data:` chunks, `[DONE]`, `x-ratelimit-*`). It answers `text` (split into several
deltas). `script(...)` queues faults for the next requests, else the standing `fault` applies (see FAULTS).
A request whose last message is an assistant prefill of `text` is answered with the rest of `text` — a
continuation, as a model that accepts prefill continues — unless `reject_prefill` is set.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from ccm_tui.demo.mockserver import MockServer

ANSWER = "The flaky test shares a temporary directory between workers; give each worker its own and it passes."
# What each fault does (before any byte, or after some content).
FAULTS = (
    "ok",
    "rate_limit",  # 429 with retry-after `retry_after` and the vendor's rate-limit headers
    "overloaded",  # 529 (anthropic) / 503 (openai), no retry-after
    "server_error",  # 500
    "bad_gateway",  # 502
    "auth",  # 401
    "bad_request",  # 400
    "reset",  # the connection is dropped before any response
    "silent",  # accepts the request and never answers
    "slow_first_token",  # headers and message_start at once, the first content after `first_token_delay`
    "cut",  # some content, then the connection drops
    "stall",  # some content, then nothing more (the connection stays open)
    "overload_mid",  # some content, then an overloaded error event
    "tool_cut",  # cut inside a tool_use block
    "thinking_cut",  # cut inside a thinking block
    "no_close",  # the whole answer, message_stop / [DONE], then the connection stays open
    "no_done",  # openai: the whole answer with a finish_reason and usage, but no [DONE]; then it closes
    "malformed",  # an invalid-JSON keep-alive and an unknown event among the answer's events
    "garbage",  # bytes that are not HTTP
    "gzip_corrupt",  # content-encoding gzip over bytes that are not gzip
    "json_array",  # a 200 whose body is a JSON array
    "usage_string",  # usage.output_tokens as a string
    "usage_huge",  # usage.output_tokens beyond 64 bits
    "retry_after_inf",  # 429 with retry-after: inf
    "retry_after_negative",  # 429 with retry-after: -5
    "retry_after_absurd",  # 429 with retry-after: 10^12
)
SOME_WORDS = 4  # text deltas sent before a mid-stream fault


def _words(text: str) -> list[str]:
    pieces, word = [], ""
    for char in text:
        word += char
        if char == " ":
            pieces.append(word)
            word = ""
    return [*pieces, word] if word else pieces


def _prefill_of(body: dict[str, Any]) -> str | None:
    """The text of a trailing assistant message (a prefill to continue), if the request ends with one."""
    messages = body.get("messages") or []
    last = messages[-1] if messages else None
    if not isinstance(last, dict) or last.get("role") != "assistant":
        return None
    content = last.get("content")
    if isinstance(content, str):
        return content
    texts = [b.get("text", "") for b in content or [] if isinstance(b, dict) and b.get("type") == "text"]
    return "".join(texts)


class FaultMock(MockServer):
    def __init__(self, kind: str = "anthropic", fault: str = "ok") -> None:
        super().__init__(fault)
        assert kind in ("anthropic", "openai")
        self.kind = kind
        self.text = ANSWER
        self.model: str | None = None  # the model id it reports; None = the one requested
        self.retry_after = 30
        self.first_token_delay = 3.0
        self.reject_prefill = False
        self.extra_headers: dict[str, str] = {}
        self.gap = 0.0  # seconds between streamed events (a slow, steady stream)

    @property
    def url(self) -> str:
        return self.origin if self.kind == "anthropic" else f"{self.origin}/v1"

    def routes(self) -> Iterable[web.RouteDef]:
        path = "/v1/messages" if self.kind == "anthropic" else "/v1/chat/completions"
        return [web.post(path, self._handle)]

    # --- answering -----------------------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        fault = self.next_scenario()
        recorded = await self.record(request, fault)
        body = recorded.json()
        model = self.model or body.get("model", "unknown")
        headers = self._headers()
        prefill = _prefill_of(body)
        if prefill is not None and self.reject_prefill:
            message = (
                "This model does not support assistant message prefill. The conversation must end with a user message."
            )
            return self._error(400, "invalid_request_error", message, headers)
        text = self.text
        if prefill is not None and self.text.startswith(prefill):
            text = self.text[len(prefill) :]
        early = await self._early_fault(request, fault, headers)
        if early is not None:
            return early
        if not body.get("stream"):
            return self._message(fault, model, text, headers)
        return await self._stream(request, fault, model, text, headers)

    def _headers(self) -> dict[str, str]:
        if self.kind == "anthropic":
            reset = "2030-01-01T00:00:00Z"
            headers = {
                "request-id": "req_fault_" + secrets.token_hex(8),
                "anthropic-ratelimit-requests-limit": "1000",
                "anthropic-ratelimit-requests-remaining": "999",
                "anthropic-ratelimit-requests-reset": reset,
                "anthropic-ratelimit-unified-status": "allowed",
                "anthropic-ratelimit-unified-5h-utilization": "0.12",
            }
        else:
            headers = {"x-request-id": secrets.token_hex(8), "x-ratelimit-limit-requests": "500"}
            headers["x-ratelimit-remaining-requests"] = "499"
        return {**headers, **self.extra_headers}

    def _error(self, status: int, error_type: str, message: str, headers: dict[str, str]) -> web.Response:
        if self.kind == "anthropic":
            payload: dict[str, Any] = {"type": "error", "error": {"type": error_type, "message": message}}
            headers = {**headers, "x-should-retry": "true" if status >= 429 else "false"}
        else:
            payload = {"error": {"message": message, "type": error_type, "param": None, "code": None}}
        return _json_response(status, payload, headers)

    async def _early_fault(
        self, request: web.Request, fault: str, headers: dict[str, str]
    ) -> web.StreamResponse | None:
        limited = {"retry-after": str(self.retry_after)}
        if fault == "rate_limit":
            kind = "rate_limit_error" if self.kind == "anthropic" else "requests"
            return self._error(429, kind, "Rate limit reached for requests", {**headers, **limited})
        odd = {"retry_after_inf": "inf", "retry_after_negative": "-5", "retry_after_absurd": "1000000000000"}
        if fault in odd:
            return self._error(429, "rate_limit_error", "Rate limited", {**headers, "retry-after": odd[fault]})
        if fault == "overloaded":
            status = 529 if self.kind == "anthropic" else 503
            return self._error(status, "overloaded_error", "Overloaded", headers)
        if fault in ("server_error", "bad_gateway"):
            status = 500 if fault == "server_error" else 502
            return self._error(status, "api_error", "Internal server error", headers)
        if fault == "auth":
            return self._error(401, "authentication_error", "invalid x-api-key", headers)
        if fault == "bad_request":
            return self._error(400, "invalid_request_error", "messages.0.content: Field required", headers)
        if fault in ("reset", "garbage"):
            transport = request.transport
            assert transport is not None
            if fault == "garbage":
                transport.write(b"SSH-2.0-OpenSSH_9.6 not an HTTP server\r\n\r\n")
                transport.close()
            else:
                transport.abort()
            return web.Response(status=499)
        if fault == "silent":
            await self._until_disconnected(request)
            return web.Response(status=499)
        if fault == "gzip_corrupt":
            body = b"\x1f\x8b\x08\x00 this is not gzip at all"
            return web.Response(
                status=200,
                body=body,
                headers={**headers, "Content-Type": "application/json", "Content-Encoding": "gzip"},
            )
        if fault == "json_array":
            return web.Response(status=200, body=b"[]", content_type="application/json", headers=headers)
        return None

    async def _until_disconnected(self, request: web.Request, limit: float = 30.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while loop.time() < deadline:
            transport = request.transport
            if transport is None or transport.is_closing():
                self.note_abort()
                return
            await asyncio.sleep(0.02)

    # --- non-streaming -------------------------------------------------------------------------------------
    def _usage(self, fault: str) -> dict[str, Any]:
        output: Any = len(self.text.split())
        if fault == "usage_string":
            output = str(output)
        elif fault == "usage_huge":
            output = 2**70
        return {"input_tokens": 25, "output_tokens": output}

    def _message(self, fault: str, model: str, text: str, headers: dict[str, str]) -> web.Response:
        usage = self._usage(fault)
        if self.kind == "anthropic":
            payload: dict[str, Any] = {
                "id": "msg_" + secrets.token_hex(12),
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": usage,
            }
        else:
            payload = {
                "id": "chatcmpl-" + secrets.token_hex(8),
                "object": "chat.completion",
                "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": usage["input_tokens"], "completion_tokens": usage["output_tokens"]},
            }
        return _json_response(200, payload, headers)

    # --- streaming -----------------------------------------------------------------------------------------
    async def _stream(
        self, request: web.Request, fault: str, model: str, text: str, headers: dict[str, str]
    ) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers={**headers, "Content-Type": "text/event-stream"})
        response.enable_chunked_encoding()
        events = self._events(fault, model, text)
        try:
            await response.prepare(request)
            for index, event in enumerate(events):
                if event == b"<delay>":
                    await asyncio.sleep(self.first_token_delay)
                    continue
                if event in (b"<cut>", b"<stall>"):
                    if event == b"<stall>":
                        await self._until_disconnected(request)
                    elif request.transport is not None:
                        request.transport.abort()
                    return response
                await response.write(event)
                if self.gap and index:
                    await asyncio.sleep(self.gap)
            if fault == "no_close":
                await self._until_disconnected(request)
                return response
            await response.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            self.note_abort()
        return response

    def _events(self, fault: str, model: str, text: str) -> list[bytes]:
        words = _words(text)
        mid = fault in ("cut", "stall", "overload_mid")
        send = words[:SOME_WORDS] if mid else words
        ending = {"cut": b"<cut>", "stall": b"<stall>", "overload_mid": self._overload_event()}
        if self.kind == "openai":
            return self._openai_events(fault, model, send, ending.get(fault))
        usage = self._usage(fault)
        start = {
            "type": "message_start",
            "message": {
                "id": "msg_" + secrets.token_hex(12),
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 25, "output_tokens": 1},
            },
        }
        out = [_sse(start)]
        if fault == "thinking_cut":
            block = {"type": "thinking", "thinking": "", "signature": ""}
            out += [_sse({"type": "content_block_start", "index": 0, "content_block": block})]
            delta = {"type": "thinking_delta", "thinking": "Let me look at the fixture "}
            return [*out, _sse({"type": "content_block_delta", "index": 0, "delta": delta}), b"<cut>"]
        out += [_sse({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})]
        out += [_sse({"type": "ping"})]
        if fault == "slow_first_token":
            out.append(b"<delay>")
        if fault == "malformed":
            out += [b"event: ping\ndata: {keep-alive\n\n", b'event: surprise\ndata: {"type": "surprise"}\n\n']
        for word in send:
            out.append(_sse({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": word}}))
        if fault in ending:
            return [*out, ending[fault]]
        out.append(_sse({"type": "content_block_stop", "index": 0}))
        if fault == "tool_cut":
            tool = {"type": "tool_use", "id": "toolu_" + secrets.token_hex(8), "name": "Bash", "input": {}}
            out.append(_sse({"type": "content_block_start", "index": 1, "content_block": tool}))
            partial = {"type": "input_json_delta", "partial_json": '{"command": "ls'}
            return [*out, _sse({"type": "content_block_delta", "index": 1, "delta": partial}), b"<cut>"]
        delta = {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None}, "usage": usage}
        return [*out, _sse(delta), _sse({"type": "message_stop"})]

    def _overload_event(self) -> bytes:
        if self.kind == "openai":
            return b'data: {"error": {"message": "Overloaded", "type": "overloaded_error", "code": "overloaded"}}\n\n'
        return _sse({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})

    def _openai_events(self, fault: str, model: str, words: list[str], ending: bytes | None) -> list[bytes]:
        base = {"id": "chatcmpl-" + secrets.token_hex(8), "object": "chat.completion.chunk", "model": model}

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            return b"data: " + json.dumps({**base, "choices": [choice]}).encode() + b"\n\n"

        out = [chunk({"role": "assistant", "content": ""})]
        if fault == "slow_first_token":
            out.append(b"<delay>")
        if fault == "malformed":
            out.append(b"data: keep-alive\n\n")
        out += [chunk({"content": word}) for word in words]
        if ending is not None:
            return [*out, ending]
        if fault == "tool_cut":
            call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "Bash", "arguments": '{"co'}}
            return [*out, chunk({"tool_calls": [call]}), b"<cut>"]
        usage = self._usage(fault)
        counts = {"prompt_tokens": usage["input_tokens"], "completion_tokens": usage["output_tokens"]}
        out.append(chunk({}, "stop"))
        out.append(b"data: " + json.dumps({**base, "choices": [], "usage": counts}).encode() + b"\n\n")
        return out if fault == "no_done" else [*out, b"data: [DONE]\n\n"]


def _json_response(status: int, payload: Any, headers: dict[str, str]) -> web.Response:
    """The standard encoder: it writes integers past 64 bits, as a misbehaving upstream does."""
    return web.Response(
        status=status, body=json.dumps(payload).encode(), content_type="application/json", headers=headers
    )


def _sse(event: dict[str, Any]) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()
