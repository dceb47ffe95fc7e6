"""Pure parts of failover: the first-token deadline, the event splitter, the rescue's prefill and mapping."""

from __future__ import annotations

import orjson
import pytest

from ccm_tui.config import ProviderSettings
from ccm_tui.core.contract import ProxyRequest
from ccm_tui.routing.deadlines import FirstTokenBounds, first_token_deadline
from ccm_tui.routing.limits import bounded_wait
from ccm_tui.routing.rescue import Continuation, accepts_prefill, prefill_request
from ccm_tui.routing.stream import ClientStream, Event, EventSplitter

BOUNDS = FirstTokenBounds(floor=5.0, ceiling=60.0, factor=4.0)


@pytest.mark.parametrize(
    ("samples", "missed", "deadline"),
    [
        ((), False, 60.0),  # nothing learnt yet: the ceiling
        ((1.0,) * 10, False, 5.0),  # usually 1 s: 4 s, raised to the floor
        ((2.0,) * 9 + (30.0,), False, 8.0),  # one outlier does not stretch the 90th percentile much
        ((30.0,) * 10, False, 60.0),  # a slow thinking model: 120 s, capped at the ceiling (it answers in 30)
        ((1.0,) * 10, True, 60.0),  # it just missed a deadline: the next try gets the ceiling
    ],
)
def test_first_token_deadline_adapts_within_floor_and_ceiling(samples, missed, deadline) -> None:
    assert first_token_deadline(samples, BOUNDS, missed_last=missed) == deadline


@pytest.mark.parametrize(
    ("given", "expected"), [(None, None), (12.0, 12.0), (float("inf"), 300.0), (-5.0, None), (1e12, 300.0)]
)
def test_an_upstreams_wait_is_capped_or_dropped(given, expected) -> None:
    assert bounded_wait(given, 300.0) == expected


def test_splitter_handles_any_split_crlf_comments_and_counts_malformed_events() -> None:
    splitter = EventSplitter()
    data = (
        b': keep-alive\r\n\r\nevent: ping\r\ndata: {"type":"ping"}\r\n\r\n'
        b"event: ping\ndata: {oops\n\n"
        b'event: novel\ndata: {"type":"novel"}\n\n'
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    )
    events = [e for i in range(len(data)) for e in splitter.feed(data[i : i + 1])]
    assert [e.type for e in events] == ["ping", "message_stop"] and splitter.malformed == 2


def _request(messages: list[dict], **extra: object) -> ProxyRequest:
    body = {"model": "m", "max_tokens": 10, "messages": messages, **extra}
    return ProxyRequest("r", body, orjson.dumps(body), "m", None, True)


def test_prefill_request_continues_the_text_without_thinking_and_trailing_whitespace() -> None:
    asked = _request([{"role": "user", "content": "hi"}], thinking={"type": "enabled", "budget_tokens": 2000})
    again = prefill_request(asked, "The answer is ")
    assert again.body["messages"][-1] == {"role": "assistant", "content": "The answer is"}
    assert "thinking" not in again.body and orjson.loads(again.raw_body) == again.body
    own = _request([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "{"}])
    assert prefill_request(own, '"a": 1').body["messages"][-1]["content"] == [
        {"type": "text", "text": "{"},
        {"type": "text", "text": '"a": 1'},
    ]


def test_prefill_support_comes_from_settings_then_the_vendor_registry() -> None:
    assert accepts_prefill(ProviderSettings(name="a", kind="anthropic"))
    assert not accepts_prefill(ProviderSettings(name="o", kind="openai", base_url="http://127.0.0.1:1/v1"))
    assert accepts_prefill(ProviderSettings(name="o", kind="openai", base_url="http://127.0.0.1:1/v1", prefill=True))
    assert not accepts_prefill(ProviderSettings(name="a", kind="anthropic", prefill=False))


def _observe(client: ClientStream, *events: dict) -> None:
    for data in events:
        client.observe(Event.of(data))


def test_continuation_after_a_closed_text_block_numbers_its_blocks_after_the_clients() -> None:
    client = ClientStream()
    text = {"type": "text", "text": ""}
    _observe(
        client,
        {"type": "message_start", "message": {}},
        {"type": "content_block_start", "index": 0, "content_block": text},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Done."}},
        {"type": "content_block_stop", "index": 0},
    )
    assert client.continuable
    mapper = Continuation(client)
    upstream = [
        {"type": "message_start", "message": {}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "t", "name": "x"}},
        {"type": "content_block_stop", "index": 0},
    ]
    mapped = [e for data in upstream for e in mapper.map(Event.of(data))]
    assert [(e.type, e.data.get("index")) for e in mapped] == [("content_block_start", 1), ("content_block_stop", 1)]


def test_continuation_into_an_open_text_block_merges_and_a_tool_block_closes_it_first() -> None:
    client = ClientStream()
    _observe(
        client,
        {"type": "message_start", "message": {}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Use "}},
    )
    merged = Continuation(client)
    text_start = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    assert merged.map(Event.of(text_start)) == []
    delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " rglob."}}
    [out] = merged.map(Event.of(delta))
    assert out.data["delta"]["text"] == "rglob."  # the prefill lost "Use "'s space; not sent twice
    switched = Continuation(client)
    tool = {"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "t", "name": "x"}}
    assert [(e.type, e.data["index"]) for e in switched.map(Event.of(tool))] == [
        ("content_block_stop", 0),
        ("content_block_start", 1),
    ]


def test_inside_a_tool_call_or_thinking_nothing_can_be_continued() -> None:
    for kind in ({"type": "tool_use", "id": "t", "name": "x"}, {"type": "thinking", "thinking": ""}):
        client = ClientStream()
        _observe(
            client,
            {"type": "message_start", "message": {}},
            {"type": "content_block_start", "index": 0, "content_block": kind},
        )
        assert not client.continuable


def test_failover_settings_parse_from_toml() -> None:
    import tomllib

    from ccm_tui.config import ConfigError, parse_settings

    text = """
[routing]
hold_seconds = 0
ttft_floor = 2
ttft_ceiling = 30
stall_seconds = 45
ping_interval = 5
backoff_max = 10

[[providers]]
name = "local"
kind = "openai"
base_url = "http://127.0.0.1:8000/v1"
prefill = true
ttft_floor = 20
ttft_ceiling = 120
[providers.models]
default = "qwen"
"""
    settings = parse_settings(tomllib.loads(text), "config.toml")
    routing, [provider] = settings.routing, settings.providers
    assert (routing.hold_seconds, routing.ttft_floor, routing.ttft_ceiling) == (0, 2, 30)
    assert (routing.stall_seconds, routing.ping_interval, routing.backoff_max) == (45, 5, 10)
    assert (provider.prefill, provider.ttft_floor, provider.ttft_ceiling) == (True, 20, 120)
    assert FirstTokenBounds.of(routing, provider) == FirstTokenBounds(20, 120, routing.ttft_factor)
    with pytest.raises(ConfigError, match="prefill: must be true or false"):
        parse_settings(tomllib.loads(text.replace("prefill = true", 'prefill = "yes"')), "config.toml")


@pytest.mark.parametrize(
    ("model", "accepts"),
    [
        ("claude-sonnet-4-5-20250929", True),
        ("claude-opus-4-6", False),  # Anthropic removed prefill in the 4.6 generation
        ("us.anthropic.claude-opus-4-6-v1:0", False),
        ("claude-sonnet-4-6", False),
        ("claude-haiku-4-5", True),
    ],
)
def test_prefill_is_known_per_model(model: str, accepts: bool) -> None:
    anthropic = ProviderSettings(name="a", kind="anthropic")
    assert accepts_prefill(anthropic, model) is accepts
    assert accepts_prefill(ProviderSettings(name="a", kind="anthropic", prefill=True), model)  # the user decides
