"""Scenarios (a)-(f): what is sent, which upstream serves it, what a correct answer is, and the proxy config.

The bench runs one proxy process per scenario (so peak RSS and CPU are that scenario's own), but each
scenario also has its own model name (`bench-a` ... `bench-e`) and each provider a models table with only that
name, so one config can serve several scenarios when run by hand. Failover (f) must be alone: ccm-tui defers
a variant that failed ("probing") behind every healthy one, so with a single model name the 429 primary would
be tried once and then never again. (f) therefore sends a new model name on every request (`bench-f-<n>`)
and its two providers pass names through, so every request meets a fresh primary variant and really takes
the 429-then-failover path. The profile path in each provider's `base_url` tells the
mock how to answer. `direct` requests go to the serving upstream itself with the same profile, in its own
wire format; `proxy` requests go to ccm-tui as Claude Code would send them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from bench import payloads
from bench.validate import AnthropicStreamChecker, BodyChecker, Expectation, JsonChecker, OpenAIStreamChecker
from bench.wire import (
    ANTHROPIC_ENDPOINT,
    OPENAI_ENDPOINT,
    TOOL_INPUT,
    TOOL_NAME,
    Profile,
    anthropic_event_count,
    expected_text,
)

BENCH_KEY_ENV = "BENCH_KEY"
FAILOVER_PRIMARY = Profile(status=429, retry_after="0")
OVERLOADED_PRIMARY = Profile(status=529)  # no retry-after: the engine's own back-off, per fresh variant


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    profile: Profile  # how the serving upstream answers
    upstream: str  # "anthropic" (pass-through) or "openai" (translated)
    payload: str  # "small" or "claude_code"
    stream: bool
    failover: bool = False  # a primary that answers `primary` comes first; own proxy; a new model name per request
    primary: Profile = FAILOVER_PRIMARY
    # Pass-through answers are checked event for event; peers may regroup or drop pings, so the peer
    # scenarios check grammar, text and tool call only, the same rules for every proxy.
    exact_events: bool = True

    @property
    def model(self) -> str:
        return f"bench-{self.key}"


SCENARIOS: dict[str, Scenario] = {
    s.key: s
    for s in (
        Scenario("a", "small non-streaming", Profile(deltas=10), "anthropic", "small", stream=False),
        Scenario("b", "stream 50 events, 5 ms apart", Profile(deltas=50, gap_ms=5), "anthropic", "small", stream=True),
        Scenario(
            "c",
            "stream at model pace (20 ms, ~1 s)",
            Profile(first_token_ms=100, deltas=46, gap_ms=20),
            "anthropic",
            "small",
            stream=True,
        ),
        Scenario(
            "d",
            "Claude Code request -> OpenAI-compatible",
            Profile(deltas=40, tool_use=True),
            "openai",
            "claude_code",
            stream=True,
        ),
        Scenario(
            "e",
            "Claude Code request -> Anthropic pass-through",
            Profile(deltas=40, tool_use=True),
            "anthropic",
            "claude_code",
            stream=True,
        ),
        Scenario(
            "f",
            "failover: primary 429, secondary serves",
            Profile(deltas=10),
            "anthropic",
            "small",
            stream=True,
            failover=True,
        ),
        Scenario(
            "g",
            "failover: primary 529, OpenAI-compatible secondary serves",
            Profile(deltas=10),
            "openai",
            "small",
            stream=True,
            failover=True,
            primary=OVERLOADED_PRIMARY,
        ),
        # The peer comparison (bench.peers): 50-event streams, translated and passed through, burst and paced.
        *(
            Scenario(
                f"{path}-{pace}",
                f"{title}, 50 events {'at once' if gap == 0 else f'{gap} ms apart'}",
                Profile(deltas=50, gap_ms=gap),
                upstream,
                "small",
                stream=True,
                exact_events=False,
            )
            for path, upstream, title in (
                ("tr", "openai", "OpenAI-compatible (translated)"),
                ("pt", "anthropic", "Anthropic pass-through"),
            )
            for pace, gap in (("burst", 0), ("5ms", 5))
        ),
    )
}


@dataclass(frozen=True)
class RequestSpec:
    """One HTTP request the load generator repeats, and how to check each answer."""

    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    flavour: str  # "anthropic" or "openai": the format of the answer
    stream: bool
    expect: Expectation
    model: str = ""
    unique_model: bool = False  # send `<model>-<n>` on request n

    def wire_request(self, host: str, port: int, number: int = 0) -> bytes:
        body = self.body
        if self.unique_model:
            old = orjson.dumps(self.model)
            body = body.replace(b'"model":' + old, b'"model":' + orjson.dumps(f"{self.model}-{number}"), 1)
        head = [f"POST {self.path} HTTP/1.1", f"host: {host}:{port}", f"content-length: {len(body)}"]
        head += [f"{name}: {value}" for name, value in self.headers]
        return ("\r\n".join(head) + "\r\n\r\n").encode() + body

    def checker(self) -> BodyChecker:
        if not self.stream:
            return JsonChecker(self.expect, self.flavour)
        if self.flavour == "anthropic":
            return AnthropicStreamChecker(self.expect)
        return OpenAIStreamChecker(self.expect)


def _anthropic_body(scenario: Scenario) -> dict[str, object]:
    body = dict(payloads.claude_code_request() if scenario.payload == "claude_code" else payloads.small_request(True))
    body["stream"] = scenario.stream
    body["model"] = scenario.model
    return body


def _anthropic_headers(claude_code: bool) -> tuple[tuple[str, str], ...]:
    headers = [("content-type", "application/json"), ("anthropic-version", "2023-06-01"), ("x-api-key", "bench")]
    if claude_code:
        headers += [
            ("anthropic-beta", payloads.CLAUDE_CODE_BETAS),
            ("user-agent", "claude-cli/2.1.330 (external, cli)"),
            ("x-app", "cli"),
        ]
    return tuple(headers)


def request_for(scenario: Scenario, target: str) -> RequestSpec:
    """`target` is "direct" (the serving upstream itself) or "proxy" (ccm-tui)."""
    profile = scenario.profile
    tool = (TOOL_NAME, TOOL_INPUT) if profile.tool_use else None
    claude_code = scenario.payload == "claude_code"
    anthropic_body = _anthropic_body(scenario)
    if target == "direct" and scenario.upstream == "openai":
        body = payloads.to_openai(anthropic_body, scenario.model)
        return RequestSpec(
            path=profile.base_path() + OPENAI_ENDPOINT,
            headers=(("content-type", "application/json"), ("authorization", "Bearer bench")),
            body=orjson.dumps(body),
            flavour="openai",
            stream=scenario.stream,
            expect=Expectation(expected_text(profile.deltas), tool, text_deltas=profile.deltas),
        )
    if target == "direct":
        path = profile.base_path() + ANTHROPIC_ENDPOINT
        exact = True
    elif target == "proxy":
        path = ANTHROPIC_ENDPOINT + ("?beta=true" if claude_code else "")
        # pass-through keeps every event; translation may regroup
        exact = scenario.upstream == "anthropic" and scenario.exact_events
    else:
        raise ValueError(f"unknown target {target!r}")
    expect = Expectation(
        expected_text(profile.deltas),
        tool,
        text_deltas=profile.deltas if exact else None,
        max_text_deltas=None if exact else profile.deltas,
        events=anthropic_event_count(profile) if exact else None,
    )
    return RequestSpec(
        path=path,
        headers=_anthropic_headers(claude_code),
        body=orjson.dumps(anthropic_body),
        flavour="anthropic",
        stream=scenario.stream,
        expect=expect,
        model=scenario.model,
        unique_model=scenario.failover and target == "proxy",
    )


def _provider(name: str, kind: str, base_url: str, model: str | None) -> str:
    """A provider; with `model` None an anthropic-kind provider passes every model name through."""
    text = (
        f'[[providers]]\nname = "{name}"\nkind = "{kind}"\nbase_url = "{base_url}"\napi_key_env = "{BENCH_KEY_ENV}"\n'
    )
    if model is not None:
        text += f'[providers.models]\n"{model}" = "{model}"\n'
    return text


def proxy_config(
    mock_origin: str, port: int, scenarios: str | Sequence[str] = "abcde", history_path: str | None = None
) -> str:
    """ccm-tui TOML serving `scenarios` (letters, or a list of keys) from the mock at `mock_origin`; a failover
    scenario (f, g) must be alone (its providers take every model name). History is off unless a path is
    given: the bench measures the proxy, not SQLite."""
    if any(SCENARIOS[key].failover for key in scenarios) and len(list(scenarios)) != 1:
        raise ValueError("a failover scenario needs a proxy of its own")
    history = "[history]\nenabled = false\n"
    if history_path:
        history = f'[history]\nenabled = true\npath = "{history_path}"\n'
    parts = [f'[server]\nhost = "127.0.0.1"\nport = {port}\n', '[routing]\nstrategy = "ordered"\n', history]
    for key in scenarios:
        scenario = SCENARIOS[key]
        base = mock_origin + scenario.profile.base_path()
        if scenario.failover:
            primary = mock_origin + scenario.primary.base_path()
            parts.append(_provider(f"{key}-primary", "anthropic", primary, None))
            if scenario.upstream == "openai":  # every model name maps to the scenario's
                secondary = _provider(f"{key}-secondary", "openai", base + "/v1", None)
                parts.append(secondary + f'[providers.models]\ndefault = "{scenario.model}"\n')
            else:
                parts.append(_provider(f"{key}-secondary", "anthropic", base, None))
        elif scenario.upstream == "openai":
            parts.append(_provider(f"{key}-oai", "openai", base + "/v1", scenario.model))
        else:
            parts.append(_provider(f"{key}-anthropic", "anthropic", base, scenario.model))
    return "\n".join(parts)
