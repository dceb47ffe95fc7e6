"""What the Anthropic and OpenAI-family mocks share: scenario names and choice, the knobs, the reply plan.

`ScenarioMock` extends `MockServer` with the knobs tests and demo mode tune (reply text, usage numbers,
retry-after, slow first byte, a rolling rate-limit window, probabilistic scenarios driven by a seeded RNG)
and decides *what* to answer (`plan_reply`) in a wire-neutral `ReplyPlan`. *How* it goes on the wire lives
in anthropic_mock.py and openai_mock.py.

Scenarios (same names for both mocks): text, tools, parallel_tools, tool_loop, thinking, long, auto (tool call
when the request offers tools and carries no tool result yet, else text: the demo's behaviour), rate_limit,
spend_limit, billing, auth, overloaded, server_error, bad_request, context_length, too_large,
slow_first_byte, mid_stream_cut, mid_stream_error, malformed_chunk.
"""

from __future__ import annotations

import asyncio
import random
import re
import string
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from ccm_tui.demo.mockserver import MockServer

SCENARIOS = (
    "text",
    "tools",
    "parallel_tools",
    "tool_loop",
    "thinking",
    "long",
    "auto",
    "rate_limit",
    "spend_limit",
    "billing",
    "auth",
    "overloaded",
    "server_error",
    "bad_request",
    "context_length",
    "too_large",
    "slow_first_byte",
    "mid_stream_cut",
    "mid_stream_error",
    "malformed_chunk",
)
# Scenarios answered with an HTTP error before any body byte.
ERROR_SCENARIOS = frozenset(
    {
        "rate_limit",
        "spend_limit",
        "billing",
        "auth",
        "overloaded",
        "server_error",
        "bad_request",
        "context_length",
        "too_large",
    }
)

# Short coding answers, so the demo's request stream looks like a real session.
DEMO_REPLIES = (
    "The failing test compares a naive datetime with an aware one. Build `expected` with `tzinfo=timezone.utc` "
    "and the assertion holds.",
    'Use `Path("src").rglob("*.py")` instead of `os.walk`: it yields paths directly and skips the manual join.',
    "The race comes from reading `self._cache` before the lock is taken. Move the lookup inside "
    "`async with self._lock:` and the duplicate fetches stop.",
    "Run `git rebase -i HEAD~3`, mark the last two commits as `fixup`, and the branch is one clean commit again.",
    "The 404 comes from the trailing slash: the route is registered as `/api/items/`. Register `/api/items` "
    "or enable `strict_slashes=False`.",
    "Add an index on `orders(customer_id, created_at)`; the planner then skips the sequential scan and the "
    "page renders in a few milliseconds.",
    "`functools.cache` keeps every argument alive. On a long-lived object prefer a bounded `lru_cache(maxsize=256)` "
    "on a module-level function.",
    "Memory grows because each request appends to the module-level `handlers` list. Register the handler once "
    "at import time instead.",
    "The import cycle is `models -> services -> models`. Move `UserRole` into `models/enums.py` and both modules "
    "can import it without the cycle.",
    "`json.dumps` chokes on the `Decimal`. Pass `default=str`, or convert to `float` where precision does not matter.",
)
THINKING_TEXT = (
    "The traceback ends in `parse_config`, so the KeyError is raised there. The key is read before the defaults "
    "are merged; merging first should fix it without touching the callers."
)
LONG_PARAGRAPH = (
    "Start by reproducing the failure with the smallest input you can find, then bisect the change history "
    "until the first bad commit is known. Read that diff with the failing input in mind: most regressions are "
    "an off-by-one in a loop bound, a changed default, or an exception that used to be raised and is now "
    "swallowed. Write the test first, watch it fail, fix the code, and keep the test."
)
WEATHER_TOOL = ("get_weather", {"type": "object", "properties": {"location": {"type": "string"}}})
_SAMPLE_STRINGS = {
    "command": "ls -la",
    "description": "List files",
    "file_path": "src/app.py",
    "path": "src",
    "pattern": "TODO",
    "location": "Paris",
    "query": "asyncio timeout",
    "url": "https://example.com",
    "prompt": "Summarise the page",
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_ALPHABET = string.ascii_letters + string.digits
_ids = random.Random()


def new_id(prefix: str, length: int = 24) -> str:
    return prefix + "".join(_ids.choices(_ALPHABET, k=length))


def rfc3339(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def go_duration(seconds: float) -> str:
    """OpenAI/Groq reset style: `12ms`, `7.66s`, `2m59.56s`, `1h0m0s`."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{secs:.2f}".rstrip("0").rstrip(".") + "s"
    if hours >= 1:
        return f"{int(hours)}h{int(minutes)}m{text}"
    return f"{int(minutes)}m{text}" if minutes >= 1 else text


def seconds_text(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


def split_words(text: str, words_per_chunk: int = 3) -> list[str]:
    """Several text deltas from one reply, whitespace kept so the pieces join back to the text."""
    pieces = re.findall(r"\s*\S+|\s+$", text)
    chunks = ["".join(pieces[i : i + words_per_chunk]) for i in range(0, len(pieces), words_per_chunk)]
    return chunks or [text]


def split_fragments(text: str, size: int = 12) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def estimate_tokens(size_in_bytes: int) -> int:
    return max(1, size_in_bytes // 4)


def sample_tool_input(schema: dict[str, Any] | None, variant: int = 0) -> dict[str, Any]:
    """A plausible input for a JSON schema: the required properties (or the first one), typed."""
    properties = (schema or {}).get("properties") or {}
    names = list((schema or {}).get("required") or list(properties)[:1])
    sample: dict[str, Any] = {}
    for name in names:
        kind = (properties.get(name) or {}).get("type", "string")
        if kind == "string":
            value: Any = _SAMPLE_STRINGS.get(name, "example")
            if variant and name == "location":
                value = "Tokyo"
            elif variant:
                value = f"{value} {variant + 1}"
        else:
            value = {"integer": 1, "number": 1, "boolean": False, "array": [], "object": {}}.get(kind, "example")
        sample[name] = value
    return sample


# --- the reply plan ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TextPart:
    text: str


@dataclass(frozen=True)
class ThinkingPart:
    thinking: str
    signature: str


@dataclass(frozen=True)
class ToolPart:
    name: str
    input: dict[str, Any]


Part = TextPart | ThinkingPart | ToolPart


@dataclass(frozen=True)
class ReplyPlan:
    """What the model "says", before any wire format: parts in order and why it stopped (end, tool, length)."""

    parts: tuple[Part, ...]
    stop: str = "end"
    output_tokens: int = 1


@dataclass
class UsageWindow:
    """Requests and tokens served in the last `seconds`: remaining quota and reset times for the headers."""

    seconds: float = 60.0
    entries: deque[tuple[float, int, int]] = field(default_factory=deque)

    def add(self, input_tokens: int, output_tokens: int) -> None:
        self.entries.append((time.time(), input_tokens, output_tokens))

    def _prune(self) -> None:
        horizon = time.time() - self.seconds
        while self.entries and self.entries[0][0] < horizon:
            self.entries.popleft()

    def used(self) -> tuple[int, int, int]:
        """(requests, input tokens, output tokens) inside the window."""
        self._prune()
        return len(self.entries), sum(e[1] for e in self.entries), sum(e[2] for e in self.entries)

    def reset_after(self) -> float:
        """Seconds until the window is fully replenished."""
        self._prune()
        return max(0.0, self.entries[-1][0] + self.seconds - time.time()) if self.entries else 0.0


def _disconnected(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


class ScenarioMock(MockServer):
    """MockServer + the knobs every faithful mock shares. Tune the attributes after construction."""

    def __init__(
        self, scenario: str = "text", *, seed: int | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        super().__init__(scenario, host=host, port=port)
        self.rng = random.Random(seed)
        self.text: str | None = None  # the reply text; None = one of DEMO_REPLIES
        self.thinking_text = THINKING_TEXT
        self.input_tokens: int | None = None  # uncached input; None = estimated from the body size
        self.output_tokens: int | None = None  # None = estimated from the reply
        self.cache_read_input_tokens = 0
        self.cache_creation_input_tokens = 0
        self.retry_after: float = 1.0
        self.retry_after_ms_header = False  # also send `retry-after-ms` on 429
        self.slow_seconds = 5.0
        self.tool_name = "Bash"
        self.tool_input: dict[str, Any] = {"command": "echo ccm-mock-ran-this", "description": "Print a marker"}
        self.expected_key: str | None = None  # None = any non-empty key is accepted
        self.words_per_chunk = 3
        # Probabilistic behaviour (demo mode): a rate limit every n-th request with n drawn from this range,
        # and independent chances of other scenarios; both only when no script is queued.
        self.rate_limit_every: tuple[int, int] | None = None
        self.chances: dict[str, float] = {}
        self.first_byte_delay_range: tuple[float, float] | None = None
        # Quota reported in the rate-limit headers, replenished over a rolling minute.
        self.requests_limit = 1000
        self.tokens_limit = 400_000
        self.input_tokens_limit = 400_000
        self.output_tokens_limit = 80_000
        self.window = UsageWindow()
        self._since_rate_limit = 0
        self._rate_limit_at: int | None = None

    # --- scenario choice ----------------------------------------------------------------------------------
    def next_scenario(self) -> str:
        if self._script:
            return super().next_scenario()
        if self.rate_limit_every is not None:
            self._since_rate_limit += 1
            if self._rate_limit_at is None:
                self._rate_limit_at = self.rng.randint(*self.rate_limit_every)
            if self._since_rate_limit >= self._rate_limit_at:
                self._since_rate_limit, self._rate_limit_at = 0, None
                return "rate_limit"
        for name, chance in self.chances.items():
            if self.rng.random() < chance:
                return name
        return self.scenario

    # --- timing --------------------------------------------------------------------------------------------
    async def wait_unless_disconnected(self, request: web.Request, seconds: float) -> bool:
        """Wait before answering; False (and an abort noted) as soon as the client goes away."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while True:
            if _disconnected(request):
                self.note_abort()
                return False
            left = deadline - loop.time()
            if left <= 0:
                return True
            await asyncio.sleep(min(left, 0.02))

    @staticmethod
    def guarded(handler: Handler) -> Handler:
        """A route handler for which a client that leaves (even while its body is read) is not a server error:
        aiohttp logs exceptions escaping a handler at ERROR level, which demo mode would show in the TUI."""

        async def guarded_handler(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except ConnectionError:
                return web.Response(status=499)

        return guarded_handler

    def first_byte_wait(self) -> float:
        if self.first_byte_delay_range is not None:
            return self.rng.uniform(*self.first_byte_delay_range)
        return self.first_byte_delay

    # --- usage ---------------------------------------------------------------------------------------------
    def input_tokens_for(self, body: bytes) -> int:
        return self.input_tokens if self.input_tokens is not None else estimate_tokens(len(body))

    def reply_text(self) -> str:
        return self.text if self.text is not None else self.rng.choice(DEMO_REPLIES)

    # --- what to answer ------------------------------------------------------------------------------------
    def plan_reply(
        self,
        scenario: str,
        *,
        tools: list[tuple[str, dict[str, Any]]],
        tool_results: list[str] | None,
        max_tokens: int,
    ) -> ReplyPlan:
        """The reply for a content scenario; `tool_results` = texts of the last user turn's tool results."""
        parts: tuple[Part, ...]
        stop = "end"
        if scenario == "tools" or (scenario == "auto" and tools and tool_results is None):
            name, schema = (self.rng.choice(tools) if scenario == "auto" else tools[0]) if tools else WEATHER_TOOL
            parts = (TextPart(f"I'll use {name} for that."), ToolPart(name, sample_tool_input(schema)))
            stop = "tool"
        elif scenario == "parallel_tools":
            first, second = (tools[0], tools[1]) if len(tools) > 1 else (tools or [WEATHER_TOOL]) * 2
            parts = (
                TextPart("Running both at once."),
                ToolPart(first[0], sample_tool_input(first[1])),
                ToolPart(second[0], sample_tool_input(second[1], variant=1)),
            )
            stop = "tool"
        elif scenario == "tool_loop" and tools and tool_results is None:
            parts = (TextPart("Let me run that."), ToolPart(self.tool_name, dict(self.tool_input)))
            stop = "tool"
        elif scenario == "tool_loop" and tool_results is not None:
            parts = (TextPart("The tool ran and printed: " + "\n".join(tool_results).strip()),)
        elif scenario == "thinking":
            parts = (ThinkingPart(self.thinking_text, new_id("EqQBCkgIARABGAIiQ", 48)), TextPart(self.reply_text()))
        elif scenario == "long":
            words = " ".join([LONG_PARAGRAPH] * 8).split(" ")
            budget = max(1, min(max_tokens, len(words) - 1))
            parts = (TextPart(" ".join(words[:budget])),)
            output = self.output_tokens if self.output_tokens is not None else max_tokens
            return ReplyPlan(parts, "length", output)
        else:
            parts = (TextPart(self.reply_text()),)
        return ReplyPlan(parts, stop, self._output_tokens_for(parts))

    def _output_tokens_for(self, parts: tuple[Part, ...]) -> int:
        if self.output_tokens is not None:
            return self.output_tokens
        size = 0
        for part in parts:
            if isinstance(part, TextPart):
                size += len(part.text)
            elif isinstance(part, ThinkingPart):
                size += len(part.thinking)
            else:
                size += len(part.name) + len(str(part.input))
        return estimate_tokens(size)
