"""Demo mode: three simulated providers on loopback and a synthetic client, so a newcomer sees life at once.

`start_demo_upstreams()` starts, in the running loop:
  * swiftai    - Anthropic-native, fast, cheap; rate-limited (429 + retry-after) every 6th-10th request;
  * slowpoke   - OpenAI-compatible, first byte after 0.6-1.5 s, steady chunks, mid-priced;
  * bigspender - OpenAI-compatible, reliable, expensive.
`DemoUpstreams.settings_providers()` describes them as ProviderSettings (price overrides so spend shows),
ordered so haiku and sonnet start on swiftai and fail over when it is rate-limited, and opus goes to
bigspender. `SyntheticClient` sends Claude-Code-like requests to the proxy every 0.5-3 s until stopped.
Wiring demo mode into the CLI and the TUI is not here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from ccm_tui.config import ProviderSettings
from ccm_tui.core.contract import Variant
from ccm_tui.demo.anthropic_mock import AnthropicMock
from ccm_tui.demo.openai_mock import OpenAIMock
from ccm_tui.translate.sse import SseParser

log = logging.getLogger(__name__)

DEMO_KEY_ENV = "CCM_TUI_DEMO_KEY"
DEMO_API_KEY = "ccm-demo-key"  # not a secret: the simulated providers accept any key


def _models(**tiers: str) -> dict[str, tuple[Variant, ...]]:
    return {tier: (Variant(model),) for tier, model in tiers.items()}


@dataclass
class DemoUpstreams:
    """The three simulated providers, running; `stop()` shuts them down."""

    swiftai: AnthropicMock
    slowpoke: OpenAIMock
    bigspender: OpenAIMock

    def settings_providers(self) -> tuple[ProviderSettings, ...]:
        common: dict[str, Any] = {"api_key_env": DEMO_KEY_ENV}
        return (
            ProviderSettings(
                name="swiftai",
                kind="anthropic",
                base_url=self.swiftai.url,
                models=_models(haiku="claude-haiku-4-5", sonnet="claude-sonnet-4-6"),
                price_input_mtok=0.8,
                price_output_mtok=4.0,
                **common,
            ),
            ProviderSettings(
                name="bigspender",
                kind="openai",
                vendor="openai",
                base_url=self.bigspender.url,
                models=_models(sonnet="bigspender-pro", opus="bigspender-ultra"),
                price_input_mtok=15.0,
                price_output_mtok=75.0,
                **common,
            ),
            ProviderSettings(
                name="slowpoke",
                kind="openai",
                vendor="openai",
                base_url=self.slowpoke.url,
                models=_models(haiku="slowpoke-mini", sonnet="slowpoke-pro", opus="slowpoke-max"),
                price_input_mtok=3.0,
                price_output_mtok=15.0,
                **common,
            ),
        )

    def api_keys(self) -> dict[str, str]:
        return {"swiftai": DEMO_API_KEY, "bigspender": DEMO_API_KEY, "slowpoke": DEMO_API_KEY}

    async def stop(self) -> None:
        for mock in (self.swiftai, self.slowpoke, self.bigspender):
            await mock.stop()


async def start_demo_upstreams(seed: int | None = None) -> DemoUpstreams:
    """Start the simulated providers on ephemeral loopback ports; `seed` makes their randomness repeatable."""

    def seeded(offset: int) -> int | None:
        return None if seed is None else seed + offset

    swiftai = AnthropicMock("auto", seed=seeded(0))
    swiftai.rate_limit_every = (6, 10)
    swiftai.retry_after = 3.0
    swiftai.first_byte_delay_range = (0.08, 0.25)
    swiftai.chunk_delay = 0.015
    swiftai.models = ("claude-haiku-4-5", "claude-sonnet-4-6")

    slowpoke = OpenAIMock("auto", vendor="openai", seed=seeded(1))
    slowpoke.first_byte_delay_range = (0.6, 1.5)
    slowpoke.chunk_delay = 0.06
    slowpoke.words_per_chunk = 2
    slowpoke.models = ("slowpoke-mini", "slowpoke-pro", "slowpoke-max")

    bigspender = OpenAIMock("auto", vendor="openai", seed=seeded(2))
    bigspender.first_byte_delay_range = (0.25, 0.6)
    bigspender.chunk_delay = 0.025
    bigspender.models = ("bigspender-pro", "bigspender-ultra")

    started: list[AnthropicMock | OpenAIMock] = []
    try:
        for mock in (swiftai, slowpoke, bigspender):
            await mock.start()
            started.append(mock)
    except BaseException:
        for mock in started:
            await mock.stop()
        raise
    # The providers read their key from this variable; a user's real environment is left alone if set.
    os.environ.setdefault(DEMO_KEY_ENV, DEMO_API_KEY)
    return DemoUpstreams(swiftai=swiftai, slowpoke=slowpoke, bigspender=bigspender)


# --- the synthetic client -----------------------------------------------------------------------------------

MODEL_MIX = (("claude-haiku-4-5", 0.4), ("claude-sonnet-4-6", 0.45), ("claude-opus-4-6", 0.15))
PROMPTS = (
    "Why does pytest say fixture 'db' not found in tests/test_orders.py?",
    "Rename get_user to fetch_user across the repository.",
    "What does the regex ^\\d{4}-\\d{2}$ match?",
    "Add type hints to utils/dates.py.",
    "CI fails on `ruff check` with E501. What is the cleanest fix?",
    "Write a unit test for parse_duration('2m30s').",
    "Why is this list comprehension slower than the loop it replaced?",
    "Explain the difference between asyncio.gather and TaskGroup here.",
)
SYSTEM = (
    "You are a coding assistant working in the user's repository. Keep answers short, show the exact command or "
    "code change, and prefer the standard library."
)
TOOLS: tuple[dict[str, Any], ...] = (
    {
        "name": "Bash",
        "description": "Run a shell command in the repository.",
        "input_schema": {
            "type": "object",
            "properties": {"command": {"type": "string"}, "description": {"type": "string"}},
            "required": ["command"],
        },
    },
    {
        "name": "Read",
        "description": "Read a file.",
        "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}}, "required": ["file_path"]},
    },
    {
        "name": "Grep",
        "description": "Search file contents.",
        "input_schema": {
            "type": "object",
            "properties": {"pattern": {"type": "string"}, "path": {"type": "string"}},
            "required": ["pattern"],
        },
    },
)
TOOL_OUTPUTS = {
    "Bash": "tests/test_dates.py::test_parse_duration PASSED\n1 passed in 0.12s",
    "Read": "def parse_duration(text: str) -> float:\n    minutes, _, seconds = text.partition('m')\n",
    "Grep": "src/app.py:42:    # TODO: handle time zones",
}


class SyntheticClient:
    """Sends realistic Anthropic requests to `base_url` (the proxy) until stopped; never raises out of its loop."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str = DEMO_API_KEY,
        interval: tuple[float, float] = (0.5, 3.0),
        seed: int | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.interval = interval
        self.rng = random.Random(seed)
        self.exchanges = 0  # HTTP requests that got an answer or failed
        self.failures = 0
        self._api_key = api_key
        self._timeout = timeout
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._progress = asyncio.Condition()

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._stopping.clear()
            self._task = asyncio.create_task(self._run(), name="ccm-demo-client")

    async def stop(self) -> None:
        self._stopping.set()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def wait_for_exchanges(self, count: int, timeout: float = 10.0) -> None:
        async with self._progress:
            await asyncio.wait_for(self._progress.wait_for(lambda: self.exchanges >= count), timeout)

    async def _run(self) -> None:
        headers = {
            "x-api-key": self._api_key,
            "anthropic-version": "2023-06-01",
            "content-type": "application/json",
            "user-agent": "ccm-tui-demo/0.1",
        }
        async with httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=self._timeout) as client:
            while not self._stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.rng.uniform(*self.interval))
                    break
                try:
                    await self._conversation(client)
                except Exception as exc:  # a demo client must outlive any failure
                    log.info("demo client: request failed (%s: %s)", type(exc).__name__, exc)

    async def _conversation(self, client: httpx.AsyncClient) -> None:
        """One user turn; when the reply calls tools, one more turn with their results."""
        model = self.rng.choices([m for m, _ in MODEL_MIX], weights=[w for _, w in MODEL_MIX])[0]
        body: dict[str, Any] = {
            "model": model,
            "max_tokens": 4096,
            "system": [{"type": "text", "text": SYSTEM}],
            "messages": [{"role": "user", "content": [{"type": "text", "text": self.rng.choice(PROMPTS)}]}],
            "stream": self.rng.random() < 0.7,
        }
        if self.rng.random() < 0.4:
            body["tools"] = list(TOOLS)
        content = await self._exchange(client, body)
        calls = [block for block in content or [] if block.get("type") == "tool_use"]
        if not calls:
            return
        results = [
            {"type": "tool_result", "tool_use_id": c["id"], "content": TOOL_OUTPUTS.get(c["name"], "done")}
            for c in calls
        ]
        body["messages"] = [
            *body["messages"],
            {"role": "assistant", "content": content},
            {"role": "user", "content": results},
        ]
        await self._exchange(client, body)

    async def _exchange(self, client: httpx.AsyncClient, body: dict[str, Any]) -> list[dict[str, Any]] | None:
        """Send one request; the assistant content blocks, or None when it failed."""
        try:
            async with client.stream("POST", "/v1/messages?beta=true", content=orjson.dumps(body)) as response:
                if response.status_code != 200:
                    await response.aread()
                    log.info("demo client: %s answered %d", body["model"], response.status_code)
                    self.failures += 1
                    return None
                if not body["stream"]:
                    return orjson.loads(await response.aread()).get("content") or []
                return await _read_stream(response)
        except (httpx.HTTPError, orjson.JSONDecodeError, ValueError) as exc:
            log.info("demo client: %s failed (%s)", body["model"], type(exc).__name__)
            self.failures += 1
            return None
        finally:
            self.exchanges += 1
            async with self._progress:
                self._progress.notify_all()


async def _read_stream(response: httpx.Response) -> list[dict[str, Any]] | None:
    """Rebuild the content blocks from an Anthropic SSE stream; None on an `error` event."""
    parser = SseParser()
    blocks: dict[int, dict[str, Any]] = {}
    partial: dict[int, str] = {}
    async for chunk in response.aiter_bytes():
        for event in parser.feed(chunk):
            data = orjson.loads(event.data)
            kind = data.get("type")
            if kind == "error":
                raise ValueError(f"stream error: {data.get('error', {}).get('type')}")
            if kind == "content_block_start":
                blocks[data["index"]] = dict(data["content_block"])
            elif kind == "content_block_delta":
                delta, block = data["delta"], blocks[data["index"]]
                if delta.get("type") == "text_delta":
                    block["text"] = block.get("text", "") + delta["text"]
                elif delta.get("type") == "thinking_delta":
                    block["thinking"] = block.get("thinking", "") + delta["thinking"]
                elif delta.get("type") == "signature_delta":
                    block["signature"] = delta["signature"]
                elif delta.get("type") == "input_json_delta":
                    partial[data["index"]] = partial.get(data["index"], "") + delta["partial_json"]
            elif kind == "content_block_stop" and data["index"] in partial:
                blocks[data["index"]]["input"] = orjson.loads(partial.pop(data["index"]) or "{}")
    return [blocks[i] for i in sorted(blocks)]
