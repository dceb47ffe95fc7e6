"""Engine outcomes: which refusal fits (routing/outcome.py), how proxy/render.py writes it as HTTP, and over
loopback, how a mid-stream error is classified and how `retry_now` ends a cool-down."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import orjson
import pytest

from ccm_tui.core.contract import Route, UpstreamError, Variant
from ccm_tui.core.events import AttemptRecord, ProviderChange, ProviderChanged
from ccm_tui.core.states import AttemptOutcome, FailureKind, ProviderState
from ccm_tui.demo.openai_mock import sse
from ccm_tui.proxy.render import render_refusal, served_headers
from ccm_tui.routing.limits import Failure
from ccm_tui.routing.outcome import RefusalKind, Refused, Served, blocked, exhausted
from ccm_tui.routing.plan import Candidate
from ccm_tui.routing.strategies import CandidateStats
from tests.mocks.anthropic_script import parse_sse
from tests.mocks.upstreams import AnthropicMock, OpenAIMock
from tests.test_proxy_routing import ASK, anthropic_provider, client, openai_provider

NOW = 5_000.0


@pytest.mark.parametrize(
    ("refused", "status", "error_type", "retry_after"),
    [
        (Refused(RefusalKind.PAUSED, "paused"), 529, "overloaded_error", None),
        (Refused(RefusalKind.UNKNOWN_MODEL, "no provider"), 404, "not_found_error", None),
        (Refused(RefusalKind.COOLING, "cooling", retry_after=7), 429, "rate_limit_error", "7"),
        (Refused(RefusalKind.UNAVAILABLE, "all off"), 503, "overloaded_error", None),
        (Refused(RefusalKind.OVERLOADED, "all failed"), 529, "overloaded_error", None),
        (Refused(RefusalKind.FAILED, "all failed"), 503, "overloaded_error", None),
        (Refused(RefusalKind.CLIENT_ERROR, "too long", upstream_status=413), 413, "request_too_large", None),
        (Refused(RefusalKind.CLIENT_ERROR, "bad", upstream_status=None), 400, "invalid_request_error", None),
        (Refused(RefusalKind.CLIENT_ERROR, "odd", upstream_status=502), 400, "invalid_request_error", None),
    ],
)
def test_refusals_render_as_anthropic_errors(refused: Refused, status: int, error_type: str, retry_after) -> None:
    rendered = render_refusal(refused, "req_x")
    assert rendered.status == refused.status == status
    assert rendered.headers.get("retry-after") == retry_after
    assert rendered.headers["content-type"] == "application/json"
    body = orjson.loads(rendered.body)
    assert body == {"type": "error", "error": {"type": error_type, "message": refused.message}, "request_id": "req_x"}


async def _no_chunks():  # an empty async iterator for a streamed Served
    return
    yield b""


def test_served_headers_for_json_and_sse() -> None:
    route = Route("p", Variant("m"))
    assert served_headers(Served(route, 0, body=b"{}")) == {
        "content-type": "application/json",
        "x-ccm-provider": "p",
        "x-ccm-failovers": "0",
    }
    streamed = served_headers(Served(route, 1, stream=_no_chunks()))
    assert streamed["content-type"] == "text/event-stream" and streamed["cache-control"] == "no-cache"


def _candidate(name: str, state: ProviderState, available_at: float | None = None, reason: str = "") -> Candidate:
    return Candidate(
        Route(name, Variant("m")), CandidateStats(1, None, None, 0.0, None), state, available_at, None, reason
    )


def _record(provider: str, outcome: AttemptOutcome, reason: str) -> AttemptRecord:
    return AttemptRecord(provider, "m", "m", 429, outcome, reason, NOW, 0.1)


@pytest.mark.parametrize(
    ("candidates", "soonest", "kind", "retry_after"),
    [
        ([_candidate("a", ProviderState.COOLING, NOW + 12.2)], NOW + 12.2, RefusalKind.COOLING, 13),
        ([_candidate("a", ProviderState.COOLING, NOW + 0.1)], NOW + 0.1, RefusalKind.COOLING, 1),  # at least 1 s
        ([_candidate("a", ProviderState.OFF, reason="switched off")], None, RefusalKind.UNAVAILABLE, None),
    ],
)
def test_blocked_requests_wait_for_the_soonest_recovery_or_are_unavailable(candidates, soonest, kind, retry_after):
    refused = blocked("claude-sonnet-4-6", candidates, soonest, NOW)
    assert (refused.kind, refused.retry_after) == (kind, retry_after)


@pytest.mark.parametrize(
    ("records", "failure", "status", "soonest", "kind"),
    [
        ([_record("a", AttemptOutcome.COOLDOWN, "429")], FailureKind.COOLDOWN, 429, NOW + 30, RefusalKind.COOLING),
        ([_record("a", AttemptOutcome.COOLDOWN, "timeout")], FailureKind.COOLDOWN, None, None, RefusalKind.OVERLOADED),
        ([_record("a", AttemptOutcome.DISABLE, "401")], FailureKind.DISABLE, 401, None, RefusalKind.FAILED),
        (
            [_record("a", AttemptOutcome.CLIENT_ERROR, "400")],
            FailureKind.CLIENT_ERROR,
            400,
            None,
            RefusalKind.CLIENT_ERROR,
        ),
        ([_record("a", AttemptOutcome.SKIP, "413")], FailureKind.SKIP, 413, None, RefusalKind.CLIENT_ERROR),
        (
            [_record("a", AttemptOutcome.COOLDOWN, "429"), _record("b", AttemptOutcome.SKIP, "413")],
            FailureKind.SKIP,
            413,
            NOW + 30,
            RefusalKind.FAILED,  # not every provider skipped it: the request is not the problem
        ),
    ],
)
def test_exhausted_requests_pick_the_refusal_from_the_last_failure(records, failure, status, soonest, kind) -> None:
    error = UpstreamError(status, "upstream said no")
    refused = exhausted(records, Failure(failure, None, "why"), error, soonest, NOW)
    assert refused.kind is kind
    if kind is RefusalKind.CLIENT_ERROR:
        assert refused.status == status and refused.message == "upstream said no"
    else:
        assert all(f"{r.provider}: {r.reason}" in refused.message for r in records)


# --- over loopback ------------------------------------------------------------------------------------------


class FailedGenerationMock(OpenAIMock):
    """An OpenAI-compatible upstream whose stream ends in a server error (type api_error) whose message
    contains "rate" — in "generate" — which must not read as a rate limit."""

    def _stream_error(self, base: dict[str, Any]) -> bytes:
        error = {"message": "The model failed to generate a response.", "type": "api_error"}
        return sse({"error": {**error, "param": None, "code": None}})


async def test_a_mid_stream_failed_to_generate_error_is_api_error_and_does_not_cool_down(start_proxy) -> None:
    async with FailedGenerationMock() as upstream, AnthropicMock() as fallback:
        upstream.scenario = "mid_stream_error"
        upstream.chunk_delay = 0.02  # the error comes after the first content reached the client, not with it
        proxy = await start_proxy([openai_provider("compat", upstream.url), anthropic_provider("fb", fallback.url)])
        body = {"model": "claude-sonnet-4-6", "stream": True, **ASK}
        async with httpx.AsyncClient() as http:
            response = await http.post(f"{proxy.url}/v1/messages", json=body, headers={"x-api-key": "k"})
        events = parse_sse(response.content)
        assert response.status_code == 200 and events[-1]["type"] == "error"
        assert events[-1]["error"]["type"] == "api_error"
        assert "failed to generate" in events[-1]["error"]["message"]
        [finished] = await proxy.wait_finished()
        assert finished.error_type == "api_error" and finished.attempts[-1].outcome is AttemptOutcome.STREAM_ERROR
        assert not [e for e in proxy.events if isinstance(e, ProviderChanged)]
        assert proxy.engine.provider_view("compat").state is ProviderState.OK  # not cooling

        upstream.scenario = "text"
        await client(proxy.url).messages.create(model="claude-sonnet-4-6", **ASK)
        assert len(upstream.requests) == 2 and fallback.requests == []  # still first in line


async def test_retry_now_ends_a_cool_down_and_the_next_request_probes_the_provider(start_proxy) -> None:
    async with AnthropicMock() as primary, OpenAIMock() as secondary:
        primary.scenario, primary.retry_after = "rate_limit", 300
        proxy = await start_proxy([anthropic_provider("first", primary.url), openai_provider("second", secondary.url)])
        sdk = client(proxy.url)
        await sdk.messages.create(model="claude-sonnet-4-6", **ASK)
        assert proxy.engine.provider_view("first").state is ProviderState.COOLING

        primary.scenario = "text"
        proxy.engine.retry_now("first")
        assert proxy.engine.provider_view("first").state is ProviderState.OK
        [*_, changed] = [e for e in proxy.events if isinstance(e, ProviderChanged)]
        assert changed.change is ProviderChange.RETRY_NOW and changed.provider == "first"

        await sdk.messages.create(model="claude-sonnet-4-6", **ASK)
        assert len(primary.requests) == 2 and len(secondary.requests) == 1
        [*_, recovered] = [e for e in proxy.events if isinstance(e, ProviderChanged)]
        assert recovered.change is ProviderChange.RECOVERED


async def test_a_cooling_refusal_reaches_the_sdk_as_429_with_an_integer_retry_after(start_proxy) -> None:
    async with AnthropicMock() as primary:
        primary.scenario, primary.retry_after = "rate_limit", 42
        proxy = await start_proxy([anthropic_provider("only", primary.url)])
        with pytest.raises(anthropic.RateLimitError):
            await client(proxy.url).messages.create(model="claude-sonnet-4-6", **ASK)
        with pytest.raises(anthropic.RateLimitError) as second:
            await client(proxy.url).messages.create(model="claude-sonnet-4-6", **ASK)
        assert 40 <= int(second.value.response.headers["retry-after"]) <= 42
        assert len(primary.requests) == 1
