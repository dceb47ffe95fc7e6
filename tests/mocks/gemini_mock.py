"""Mock Gemini API: generateContent and streamGenerateContent?alt=sse under v1 and v1beta, plus countTokens.

Checks the API key, the function-calling history (response counts, thought signatures it issued or Google's
placeholder) and rejects schema keywords Gemini does not know, thinking budgets and output caps beyond the
model's range, and a response schema combined with function calling on 2.x models. Honours stopSequences,
responseSchema (the reply is a JSON instance) and the built-in tools (googleSearch, urlContext, codeExecution).
Scenarios: see cloud_mocks.py; also too_large_html (Google's front end's 413 page).
"""

from __future__ import annotations

import base64
import hmac
import json
import secrets
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from ccm_tui.demo.mockserver import MockServer
from tests.mocks import anthropic_script as script
from tests.mocks.vertex_mock import TOO_LARGE_HTML, google_error_body

PLACEHOLDER_SIGNATURE = "skip_thought_signature_validator"
# thinkingBudget ranges from Google's thinking guide; maxOutputTokens must stay below 65537.
_THINKING_MAX = {"gemini-2.5-pro": 32768, "gemini-2.5-flash": 24576, "gemini-2.5-flash-lite": 24576}
_OUTPUT_LIMIT = 65536
_GEMINI_SCHEMA_KEYS = frozenset(
    {"type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems", "properties", "required"}
    | {"minProperties", "maxProperties", "minLength", "maxLength", "pattern", "example", "anyOf", "items", "default"}
    | {"minimum", "maximum", "propertyOrdering"}
)
_PART_DATA = (
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
    "executableCode",
    "codeExecutionResult",
)


def _quota_details(quota_id: str, retry_delay: str) -> list[dict[str, Any]]:
    return [
        {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [
                {
                    "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                    "quotaId": quota_id,
                    "quotaDimensions": {"location": "global", "model": "gemini-2.5-pro"},
                    "quotaValue": "5",
                }
            ],
        },
        {
            "@type": "type.googleapis.com/google.rpc.Help",
            "links": [{"description": "Learn more", "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}],
        },
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay},
    ]


class GeminiMock(MockServer):
    """`{url}/models/{model}:generateContent|streamGenerateContent|countTokens` (url ends in /v1beta; /v1 works too)."""

    api_key = "AIzaMockGeminiKey000000000000000000000"

    def __init__(self, scenario: str = "text", *, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(scenario, host=host, port=port)
        self.tool_name = "Bash"
        self.tool_input: dict[str, Any] = dict(script.DEFAULT_TOOL_INPUT)
        self.issued_signatures: set[str] = set()

    @property
    def url(self) -> str:
        return self.origin + "/v1beta"

    def routes(self) -> Iterable[web.RouteDef]:
        return [web.post("/{version}/models/{model_action}", self._handle)]

    def _error(self, code: int, status: str, message: str, details: list[dict[str, Any]] | None = None) -> web.Response:
        return self.json_response(code, google_error_body(code, status, message, details))

    def _signature(self) -> str:
        value = base64.b64encode(secrets.token_bytes(36)).decode()
        self.issued_signatures.add(value)
        return value

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        scenario = self.next_scenario()
        recorded = await self.record(request, scenario)
        model, _, action = request.match_info["model_action"].rpartition(":")
        if request.match_info["version"] not in ("v1", "v1beta") or action not in (
            "generateContent",
            "streamGenerateContent",
            "countTokens",
        ):
            return self._error(
                404, "NOT_FOUND", f"models/{model} is not found for API version {request.match_info['version']}"
            )
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if not key:
            return self._error(
                403,
                "PERMISSION_DENIED",
                "Method doesn't allow unregistered callers (callers without established identity). "
                "Please use API Key or other form of API consumer identity to call this API.",
            )
        if not hmac.compare_digest(key, self.api_key):
            info = {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
            }
            return self._error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", [info])
        if scenario == "too_large_html":
            return web.Response(status=413, text=TOO_LARGE_HTML, content_type="text/html")
        failure = self._scenario_failure(scenario)
        if failure is not None:
            return failure
        try:
            body = json.loads(recorded.body)
        except ValueError:
            return self._error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        if action == "countTokens":
            inner = body.get("generateContentRequest") or body
            problem = self.body_problem(inner)
            return (
                self._error(400, "INVALID_ARGUMENT", problem)
                if problem
                else self.json_response(200, {"totalTokens": script.estimate_tokens(inner)})
            )
        problem = self.body_problem(body) or _config_problem(body, model)
        if problem is not None:
            return self._error(400, "INVALID_ARGUMENT", problem)
        chunks = _shaped(self._chunks(scenario, body, model), body)
        if action == "generateContent":
            parts = [p for c in chunks for p in c["candidates"][0]["content"]["parts"]]
            merged = {
                **chunks[-1],
                "candidates": [{**chunks[-1]["candidates"][0], "content": {"role": "model", "parts": parts}}],
            }
            return self.json_response(200, merged)
        if scenario == "mid_stream_error":
            chunks = [
                chunks[0],
                google_error_body(503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
            ]
        if request.query.get("alt") != "sse":
            return self.json_response(200, chunks)  # without alt=sse the stream is one JSON array
        data = [f"data: {json.dumps(chunk)}\r\n\r\n".encode() for chunk in chunks]
        cut_after = 1 if scenario == "mid_stream_cut" else None
        return await self.stream(request, data, cut_after=cut_after)

    def _scenario_failure(self, scenario: str) -> web.Response | None:
        if scenario == "rate_limit":
            message = (
                "You exceeded your current quota, please check your plan and billing details. Please retry in 37.2s."
            )
            return self._error(
                429,
                "RESOURCE_EXHAUSTED",
                message,
                _quota_details("GenerateRequestsPerMinutePerProjectPerModel-FreeTier", "37s"),
            )
        if scenario == "quota_day":
            message = "You exceeded your current quota, please check your plan and billing details."
            return self._error(
                429,
                "RESOURCE_EXHAUSTED",
                message,
                _quota_details("GenerateRequestsPerDayPerProjectPerModel-FreeTier", "5400s"),
            )
        if scenario == "auth":
            return self._error(
                403, "PERMISSION_DENIED", "Your API key was reported as leaked. Please use another API key."
            )
        if scenario == "overloaded":
            return self._error(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")
        return None

    # --- request validation --------------------------------------------------------------------------------
    def body_problem(self, body: Any) -> str | None:
        contents = body.get("contents") if isinstance(body, dict) else None
        if not isinstance(contents, list) or not contents:
            return "* GenerateContentRequest.contents: contents is not specified"
        previous_calls = 0
        for index, content in enumerate(contents):
            parts = content.get("parts") if isinstance(content, dict) else None
            if content.get("role") not in ("user", "model") or not isinstance(parts, list) or not parts:
                return f"* GenerateContentRequest.contents[{index}].parts: contents.parts must not be empty."
            for part in parts:
                if sum(1 for key in _PART_DATA if key in part) != 1:
                    return f"* GenerateContentRequest.contents[{index}].parts: exactly one data field must be set"
            calls = [p for p in parts if "functionCall" in p]
            responses = [p for p in parts if "functionResponse" in p]
            if responses and len(responses) != previous_calls:
                return (
                    "Please ensure that the number of function response parts is equal to the number of function "
                    "call parts of the function call turn."
                )
            if calls:
                signature = calls[0].get("thoughtSignature")
                if signature is None:
                    return (
                        "Function call is missing a thought_signature in functionCall parts. "
                        "This is required for tools "
                        f"to work correctly, and missing thought_signature may lead to degraded model performance. "
                        f"Additional data, function call `default_api:{calls[0]['functionCall'].get('name')}` , "
                        f"position {index + 1}."
                    )
                if signature != PLACEHOLDER_SIGNATURE and signature not in self.issued_signatures:
                    return "Corrupted thought signature."
            previous_calls = len(calls) if content["role"] == "model" else 0
        for tool_index, tool in enumerate(body.get("tools") or []):
            for decl_index, declaration in enumerate(tool.get("functionDeclarations") or []):
                where = f"tools[{tool_index}].function_declarations[{decl_index}].parameters"
                problem = _schema_problem(declaration.get("parameters"), where)
                if problem is not None:
                    return problem
        return None

    # --- replies -------------------------------------------------------------------------------------------
    def _chunks(self, scenario: str, body: dict[str, Any], model: str) -> list[dict[str, Any]]:
        part_groups = self._part_groups(scenario, body)
        prompt = script.estimate_tokens(body)
        chunks = []
        for index, parts in enumerate(part_groups):
            chunk: dict[str, Any] = {
                "candidates": [{"content": {"role": "model", "parts": parts}, "index": 0}],
                "usageMetadata": {"promptTokenCount": prompt, "totalTokenCount": prompt},
                "modelVersion": model,
                "responseId": "mockresp" + secrets.token_hex(6),
            }
            if index == len(part_groups) - 1:
                chunk["candidates"][0]["finishReason"] = "STOP"
                thoughts = 7 if scenario == "thinking" else 0
                chunk["usageMetadata"] = {
                    "promptTokenCount": prompt,
                    "candidatesTokenCount": 11,
                    "thoughtsTokenCount": thoughts,
                    "totalTokenCount": prompt + 11 + thoughts,
                }
            chunks.append(chunk)
        return chunks

    def _part_groups(self, scenario: str, body: dict[str, Any]) -> list[list[dict[str, Any]]]:
        if scenario == "tools":
            call = {
                "functionCall": {"name": "get_weather", "args": {"location": "Paris"}},
                "thoughtSignature": self._signature(),
            }
            return [[{"text": "I'll check the weather."}], [call]]
        if scenario == "parallel_tools":
            first = {
                "functionCall": {"name": "get_weather", "args": {"location": "Paris"}},
                "thoughtSignature": self._signature(),
            }
            return [[first, {"functionCall": {"name": "get_time", "args": {"timezone": "Europe/Paris"}}}]]
        if scenario == "thinking":
            return [
                [{"text": "The user wants a number. 6 times 7.", "thought": True}],
                [{"text": "The answer"}],
                [{"text": " is 42.", "thoughtSignature": self._signature()}],
            ]
        if scenario == "tool_loop":
            last = body["contents"][-1]
            results = (
                [p["functionResponse"] for p in last["parts"] if "functionResponse" in p]
                if last["role"] == "user"
                else []
            )
            if results:
                response = results[0].get("response") or {}
                return [[{"text": f"The tool returned: {response.get('content', response.get('error', response))}"}]]
            call = {
                "functionCall": {"name": self.tool_name, "args": dict(self.tool_input)},
                "thoughtSignature": self._signature(),
            }
            return [[call]]
        return [[{"text": "Hello from"}], [{"text": " the Gemini mock."}], [{"text": " How can I help?"}]]


def _config_problem(body: dict[str, Any], model: str) -> str | None:
    config = body.get("generationConfig") or {}
    budget = (config.get("thinkingConfig") or {}).get("thinkingBudget")
    name = model.removeprefix("models/")
    limit = next((v for k, v in sorted(_THINKING_MAX.items(), key=lambda kv: -len(kv[0])) if name.startswith(k)), None)
    if isinstance(budget, int) and limit is not None and not -1 <= budget <= limit:
        return f"The thinking budget {budget} is invalid. Please choose a value between 0 and {limit}."
    tokens = config.get("maxOutputTokens")
    if isinstance(tokens, int) and not 1 <= tokens <= _OUTPUT_LIMIT:
        return (
            f"Unable to submit request because it has a maxOutputTokens value of {tokens} but the supported range is "
            f"from 1 (inclusive) to {_OUTPUT_LIMIT + 1} (exclusive). Update the value and try again."
        )
    if len(config.get("stopSequences") or ()) > 5:
        return "* GenerationConfig.stop_sequences: at most 5 stop sequences are allowed"
    functions = any(t.get("functionDeclarations") for t in body.get("tools") or ())
    if config.get("responseSchema") and functions and name.startswith("gemini-2"):
        return "Function calling with a response mime type: 'application/json' is unsupported"
    return None


def _shaped(chunks: list[dict[str, Any]], body: dict[str, Any]) -> list[dict[str, Any]]:
    """The reply after responseSchema (a JSON instance), built-in tools and stopSequences (text cut, STOP)."""
    config = body.get("generationConfig") or {}
    tools = {key for tool in body.get("tools") or () for key in tool}
    first = chunks[0]["candidates"][0]["content"]["parts"]
    if config.get("responseSchema"):
        for chunk in chunks:
            parts = chunk["candidates"][0]["content"]["parts"]
            parts[:] = [p for p in parts if "text" not in p or p.get("thought")]
        first.append({"text": json.dumps(_instance(config["responseSchema"]))})
    if "googleSearch" in tools:
        first.insert(0, {"text": "According to a web search, "})
        chunks[-1]["candidates"][0]["groundingMetadata"] = {"webSearchQueries": ["mock query"]}
    if "codeExecution" in tools:
        first.append({"executableCode": {"language": "PYTHON", "code": "print(6 * 7)"}})
        first.append({"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": "42\n"}})
    stops = [s for s in config.get("stopSequences") or () if s]
    for index, chunk in enumerate(chunks):
        for part in chunk["candidates"][0]["content"]["parts"]:
            text = part.get("text")
            hits = [text.find(s) for s in stops if isinstance(text, str) and s in text]
            if hits:
                part["text"] = text[: min(hits)]
                last = chunks[-1]
                chunk["candidates"][0]["finishReason"] = "STOP"
                chunk["usageMetadata"] = last["usageMetadata"]
                return chunks[: index + 1]
    return chunks


def _instance(schema: dict[str, Any]) -> Any:
    kind = str(schema.get("type", "object")).lower()
    if kind == "object":
        return {name: _instance(sub) for name, sub in (schema.get("properties") or {}).items()}
    if kind == "array":
        return [_instance(schema.get("items") or {})]
    return {"string": "example", "integer": 1, "number": 1.5, "boolean": True}.get(kind, "example")


def _schema_problem(schema: Any, where: str) -> str | None:
    if schema is None:
        return None
    if not isinstance(schema, dict):
        return f"Invalid JSON payload received. Invalid value at '{where}'"
    for key, value in schema.items():
        if key not in _GEMINI_SCHEMA_KEYS:
            return f"Invalid JSON payload received. Unknown name \"{key}\" at '{where}': Cannot find field."
        if key == "properties":
            for name, sub in value.items():
                problem = _schema_problem(sub, f"{where}.properties[{name}].value")
                if problem is not None:
                    return problem
        elif key == "items":
            problem = _schema_problem(value, f"{where}.items")
            if problem is not None:
                return problem
    if schema.get("type") == "object" and not schema.get("properties") and where.endswith("parameters"):
        return f"* GenerateContentRequest.{where}.properties: should be non-empty for OBJECT type"
    return None
