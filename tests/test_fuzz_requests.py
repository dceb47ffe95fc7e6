"""Seeded fuzzing over real loopback HTTP: malformed requests never get a 5xx, a traceback or a dead proxy.

A deterministic generator (random.Random with a fixed seed) mutates valid Messages requests that use every
known block type: values replaced by wrong-typed ones, keys dropped or added, block types swapped, bodies
truncated, headers changed. Requests go to one proxy whose models route to an OpenAI-kind, a Gemini-kind and
an Anthropic-kind mock upstream, so each translator sees the mutations that pass validation.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import random
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from ccm_tui.config import ProviderSettings, Variant
from ccm_tui.translate.sse import SseParser
from tests.mocks.upstreams import AnthropicMock, GeminiMock, OpenAIMock

SEED = 20260101
CASES = 3000
WORKERS = 8
MODELS = ("fuzz-openai", "fuzz-gemini", "fuzz-anthropic")

B64 = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}
CONVERSATION: list[dict[str, Any]] = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "look", "cache_control": {"type": "ephemeral"}},
            {"type": "image", "source": B64},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "doc"}, "title": "t"},
            {"type": "document", "source": {"type": "content", "content": [{"type": "text", "text": "c"}]}},
            {"type": "search_result", "source": "s", "title": "t", "content": [{"type": "text", "text": "r"}]},
        ],
    },
    {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "hm", "signature": "c2ln"},
            {"type": "redacted_thinking", "data": "opaque"},
            {"type": "text", "text": "calling"},
            {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "q"}},
            {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
            {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"path": "a.py"}},
            {"type": "tool_use", "id": "toolu_2", "name": "Read", "input": {"path": "b.py"}},
        ],
    },
    {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "x = 1"},
            {
                "type": "tool_result",
                "tool_use_id": "toolu_2",
                "is_error": True,
                "content": [{"type": "text", "text": "no"}, {"type": "image", "source": B64}],
            },
            {"type": "container_upload", "file_id": "file_1"},
            {"type": "text", "text": "go on"},
        ],
    },
]
TOOLS = [
    {
        "name": "Read",
        "description": "read a file",
        "input_schema": {
            "type": "object",
            "properties": {"path": {"type": "string"}, "lines": {"type": ["integer", "null"]}},
            "required": ["path"],
        },
    },
    {"type": "web_search_20250305", "name": "web_search", "max_uses": 1},
]


def base_request(rng: random.Random) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": rng.choice(MODELS),
        "max_tokens": rng.choice([1, 64, 1024]),
        "messages": copy.deepcopy(CONVERSATION if rng.random() < 0.8 else CONVERSATION[:1]),
        "stream": rng.random() < 0.5,
    }
    optional = {
        "system": [{"type": "text", "text": "be brief"}] if rng.random() < 0.5 else "be brief",
        "tools": copy.deepcopy(TOOLS),
        "tool_choice": {"type": rng.choice(["auto", "any", "none"])},
        "metadata": {"user_id": "user-1"},
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "stop_sequences": ["END"],
        "temperature": 0.5,
        "top_p": 0.9,
        "top_k": 5,
        "output_config": {"effort": "low"},
    }
    for name, value in optional.items():
        if rng.random() < 0.5:
            body[name] = value
    return body


def odd_value(rng: random.Random) -> Any:
    return rng.choice(
        [
            None,
            True,
            False,
            0,
            -1,
            1.5,
            2**63,
            "",
            "x",
            "é" * 40,
            "m" * 300,
            [],
            [1],
            ["a"],
            [None],
            [{}],
            {},
            {"type": 5},
            {"type": "text"},
            {"type": "text", "text": 7},
            {"type": "image", "source": True},
            {"type": "tool_result", "content": 1.5},
            {"type": "never-seen", "x": [1]},
            [[[[[[]]]]]],
        ]
    )


def containers(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """Every (path, object-or-array) in the body."""
    if isinstance(value, dict | list):
        yield path, value
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, child in items:
            yield from containers(child, (*path, key))


BLOCK_TYPES = (
    "text",
    "image",
    "document",
    "search_result",
    "tool_use",
    "tool_result",
    "thinking",
    "redacted_thinking",
    "server_tool_use",
    "web_search_tool_result",
    "container_upload",
    "mystery",
)


def mutate(rng: random.Random, body: dict[str, Any]) -> None:
    for _ in range(rng.randint(1, 3)):
        _, target = rng.choice(list(containers(body)))
        action = rng.random()
        if isinstance(target, list):
            if target and action < 0.5:
                target[rng.randrange(len(target))] = odd_value(rng)
            elif target and action < 0.7:
                del target[rng.randrange(len(target))]
            else:
                target.insert(rng.randint(0, len(target)), odd_value(rng))
            continue
        keys = list(target)
        if keys and action < 0.5:
            target[rng.choice(keys)] = odd_value(rng)
        elif keys and action < 0.7:
            del target[rng.choice(keys)]
        elif "type" in target and action < 0.85:
            target["type"] = rng.choice(BLOCK_TYPES)
        else:
            target[rng.choice(["unknown_field", "id", "text", "content", "source", "input", "name"])] = odd_value(rng)


def fuzz_case(rng: random.Random) -> tuple[dict[str, str], bytes]:
    """Headers and raw body of one request."""
    body = base_request(rng)
    if rng.random() < 0.9:
        mutate(rng, body)
    raw = orjson.dumps(body)
    roll = rng.random()
    if roll < 0.03:
        raw = raw[: rng.randrange(len(raw))]
    elif roll < 0.05:
        raw = rng.choice([b"[]", b"null", b"1", b'"x"', b"{}", b"\xff\xfe", b"{" * 2000])
    headers = {"content-type": "application/json", "x-api-key": "fuzz", "anthropic-version": "2023-06-01"}
    roll = rng.random()
    if roll < 0.03:
        headers["content-type"] = rng.choice(["text/plain", "application/x-www-form-urlencoded", ""])
    elif roll < 0.05:
        headers["origin"] = "https://fuzz.example"
    elif roll < 0.07:
        headers["host"] = rng.choice(["evil.example", "localhost:1", "a" * 70, "[::1]"])
    elif roll < 0.09:
        headers["anthropic-beta"] = ",".join(rng.choice(["x", "", "y" * 100]) for _ in range(5))
    return headers, raw


def test_the_generator_is_deterministic_and_varied() -> None:
    first = [fuzz_case(random.Random(SEED)) for _ in range(2)]
    again = [fuzz_case(random.Random(SEED)) for _ in range(2)]
    assert first == again
    rng = random.Random(SEED)
    bodies = {fuzz_case(rng)[1] for _ in range(200)}
    assert len(bodies) > 190


def assert_anthropic_error(response: httpx.Response, case: int) -> None:
    payload = response.json()
    assert payload["type"] == "error", (case, response.text[:300])
    assert isinstance(payload["error"]["type"], str) and isinstance(payload["error"]["message"], str)
    assert len(response.content) < 4096, (case, len(response.content))


async def read_stream(response: httpx.Response, case: int) -> None:
    parser = SseParser()
    events = []
    async for chunk in response.aiter_bytes():
        events += parser.feed(chunk)
    events += parser.flush()
    assert events, case
    for event in events:
        data = orjson.loads(event.data)
        assert event.event == data["type"], (case, event)
        if data["type"] == "error":
            assert "internal error" not in data["error"]["message"], (case, data)


@pytest.fixture
async def fuzz_proxy(start_proxy):
    async with OpenAIMock() as openai_mock, GeminiMock() as gemini_mock, AnthropicMock() as anthropic_mock:
        providers = [
            ProviderSettings(
                name="openai",
                kind="openai",
                base_url=openai_mock.url,
                api_key_env="TEST_KEY",
                models={"fuzz-openai": (Variant("mock-large"),)},
            ),
            ProviderSettings(
                name="gemini",
                kind="gemini",
                base_url=gemini_mock.url,
                api_key_env="FUZZ_GEMINI_KEY",
                models={"fuzz-gemini": (Variant("gemini-2.5-flash"),)},
            ),
            ProviderSettings(
                name="anthropic",
                kind="anthropic",
                base_url=anthropic_mock.url,
                api_key_env="TEST_KEY",
                models={"fuzz-anthropic": (Variant("claude-sonnet-4-5"),)},
            ),
        ]
        yield await start_proxy(providers, environ={"TEST_KEY": "k", "FUZZ_GEMINI_KEY": GeminiMock.api_key})


async def test_fuzzed_requests_never_get_a_5xx(fuzz_proxy, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    rng = random.Random(SEED)
    cases = [fuzz_case(rng) for _ in range(CASES)]
    statuses: dict[int, int] = {}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(CASES):
        queue.put_nowait(index)

    async def worker(http: httpx.AsyncClient) -> None:
        while not queue.empty():
            index = queue.get_nowait()
            headers, raw = cases[index]
            for path in ("/v1/messages",) if index % 10 else ("/v1/messages", "/v1/messages/count_tokens"):
                async with http.stream("POST", f"{fuzz_proxy.url}{path}", content=raw, headers=headers) as response:
                    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                    assert response.status_code < 500, (index, headers, raw[:500], await response.aread())
                    if response.headers.get("content-type", "").startswith("text/event-stream"):
                        await read_stream(response, index)
                        continue
                    await response.aread()
                    if response.status_code >= 400:
                        assert_anthropic_error(response, index)

    async with httpx.AsyncClient(timeout=30) as http:
        await asyncio.gather(*(worker(http) for _ in range(WORKERS)))
        # still alive, and every upstream still served through it
        assert (await http.get(f"{fuzz_proxy.url}/")).status_code == 200
        for model in MODELS:
            good = {"model": model, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
            response = await http.post(f"{fuzz_proxy.url}/v1/messages", json=good)
            assert response.status_code == 200, (model, response.text)

    assert statuses.get(200, 0) > CASES // 10, statuses  # the mutations do not all die at the edge
    assert sum(count for status, count in statuses.items() if status >= 400) > CASES // 4, statuses
    tracebacks = [record for record in caplog.records if _proxy_traceback(record)]
    assert not tracebacks, [record.getMessage() for record in tracebacks[:3]]


def _proxy_traceback(record: logging.LogRecord) -> bool:
    """A traceback the proxy logged (its own loggers, the server's, or an asyncio task of ccm_tui code);
    not the garbage-collection noise of clients that earlier tests in the same process left open."""
    if not (record.exc_info or "Traceback" in record.getMessage()):
        return False
    if record.name.split(".")[0] in ("ccm_tui", "hypercorn", "quart"):
        return True
    text = record.getMessage() + (logging.Formatter().formatException(record.exc_info) if record.exc_info else "")
    return record.name == "asyncio" and "ccm_tui" in text


CRASHERS = [
    ({"metadata": "x"}, "metadata: expected an object"),
    (
        {"messages": [{"role": "assistant", "content": [{"type": "tool_use", "id": 5, "name": "a", "input": {}}]}]},
        "messages.0.content.0.id: expected a string",
    ),
    (
        {"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": 1.5}]}]},
        "messages.0.content.0.content: expected a string or an array",
    ),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": 1}]}]}, "messages.0.content.0.text"),
    ({"messages": [{"role": "user", "content": [{"type": "image", "source": True}]}]}, "messages.0.content.0.source"),
]


@pytest.mark.parametrize("model", ["fuzz-openai", "fuzz-gemini"])
@pytest.mark.parametrize(("change", "message"), CRASHERS)
async def test_wrong_types_that_crashed_translators_are_400s(fuzz_proxy, model, change, message) -> None:
    body = {"model": model, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}], **change}
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{fuzz_proxy.url}/v1/messages", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["message"].startswith(message)
