"""The mock's wire formats and the load generator's checkers: correct streams pass in any split, broken ones fail."""

from __future__ import annotations

import orjson
import pytest

from bench import wire
from bench.validate import AnthropicStreamChecker, Expectation, JsonChecker, OpenAIStreamChecker


@pytest.mark.parametrize(
    "profile",
    [
        wire.Profile(),
        wire.Profile(first_token_ms=100, deltas=46, gap_ms=20),
        wire.Profile(deltas=40, tool_use=True),
        wire.Profile(status=429, retry_after="0"),
        wire.Profile(gap_ms=0.5, deltas=3),
    ],
)
def test_profile_round_trips_through_the_path(profile: wire.Profile) -> None:
    assert wire.split_path(profile.base_path() + wire.ANTHROPIC_ENDPOINT + "?beta=true") == (
        profile,
        wire.ANTHROPIC_ENDPOINT,
    )
    assert wire.split_path(profile.base_path() + wire.OPENAI_ENDPOINT) == (profile, wire.OPENAI_ENDPOINT)


@pytest.mark.parametrize("path", ["/v1/messages", "/b/ft0_n5/v1/other", "/b/bogus!/v1/messages", "/_stats"])
def test_foreign_paths_are_not_routes(path: str) -> None:
    assert wire.split_path(path) is None


def _anthropic_expect(profile: wire.Profile) -> Expectation:
    tool = (wire.TOOL_NAME, wire.TOOL_INPUT) if profile.tool_use else None
    return Expectation(
        wire.expected_text(profile.deltas), tool, profile.deltas, events=wire.anthropic_event_count(profile)
    )


def _feed_in_pieces(checker: AnthropicStreamChecker | OpenAIStreamChecker, data: bytes, size: int) -> str | None:
    for start in range(0, len(data), size):
        checker.feed(data[start : start + size])
    return checker.finish()


@pytest.mark.parametrize("tool_use", [False, True])
@pytest.mark.parametrize("piece", [1, 7, 100_000])
def test_anthropic_stream_passes_in_any_split(tool_use: bool, piece: int) -> None:
    profile = wire.Profile(deltas=12, tool_use=tool_use)
    data = b"".join(wire.anthropic_stream_events(profile, "m"))
    assert _feed_in_pieces(AnthropicStreamChecker(_anthropic_expect(profile)), data, piece) is None


def test_anthropic_stream_with_crlf_line_ends_passes() -> None:
    profile = wire.Profile(deltas=5)
    data = b"".join(wire.anthropic_stream_events(profile, "m")).replace(b"\n", b"\r\n")
    assert _feed_in_pieces(AnthropicStreamChecker(_anthropic_expect(profile)), data, 3) is None


def _broken(data: bytes, how: str) -> bytes:
    if how == "no message_stop":
        return data[: data.rindex(b"event: message_stop")]
    if how == "event name differs":
        return data.replace(b"event: content_block_stop", b"event: content_block_end", 1)
    if how == "error event":
        return data.replace(
            b'event: ping\ndata: {"type":"ping"}',
            b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"x"}}',
        )
    if how == "text changed":
        return data.replace(b"word3 ", b"word9 ", 1)
    if how == "delta dropped":
        start = data.index(b"event: content_block_delta", data.index(b"word2") - 200)
        end = data.index(b"\n\n", start) + 2
        return data[:start] + data[end:]
    if how == "cut mid-event":
        return data[:-10]
    raise AssertionError(how)


@pytest.mark.parametrize(
    "how",
    ["no message_stop", "event name differs", "error event", "text changed", "delta dropped", "cut mid-event"],
)
def test_anthropic_stream_faults_are_caught(how: str) -> None:
    profile = wire.Profile(deltas=6)
    data = _broken(b"".join(wire.anthropic_stream_events(profile, "m")), how)
    assert _feed_in_pieces(AnthropicStreamChecker(_anthropic_expect(profile)), data, 50) is not None


def test_translated_stream_may_regroup_text_but_not_exceed_the_delta_count() -> None:
    # A translator that sends the text of 4 upstream chunks as one delta.
    one_delta = b"".join(wire.anthropic_stream_events(wire.Profile(deltas=1), "m"))
    data = one_delta.replace(b'"text":"word0 lorem ipsum "', b'"text":' + orjson.dumps(wire.expected_text(4)))
    loose = Expectation(wire.expected_text(4), max_text_deltas=4)
    assert _feed_in_pieces(AnthropicStreamChecker(loose), data, 64) is None
    strict = Expectation(wire.expected_text(4), text_deltas=4)
    assert _feed_in_pieces(AnthropicStreamChecker(strict), data, 64) is not None


@pytest.mark.parametrize("include_usage", [False, True])
@pytest.mark.parametrize("tool_use", [False, True])
def test_openai_stream_passes(include_usage: bool, tool_use: bool) -> None:
    profile = wire.Profile(deltas=9, tool_use=tool_use)
    data = b"".join(wire.openai_stream_events(profile, "m", include_usage))
    tool = (wire.TOOL_NAME, wire.TOOL_INPUT) if tool_use else None
    checker = OpenAIStreamChecker(Expectation(wire.expected_text(9), tool, text_deltas=9))
    assert _feed_in_pieces(checker, data, 13) is None


def test_openai_stream_without_done_fails() -> None:
    profile = wire.Profile(deltas=3)
    data = b"".join(wire.openai_stream_events(profile, "m", True)).replace(b"data: [DONE]\n\n", b"")
    assert _feed_in_pieces(OpenAIStreamChecker(Expectation(wire.expected_text(3))), data, 1000) is not None


@pytest.mark.parametrize("flavour", ["anthropic", "openai"])
def test_json_bodies_are_checked(flavour: str) -> None:
    profile = wire.Profile(deltas=5, tool_use=True)
    body = wire.anthropic_message(profile, "m") if flavour == "anthropic" else wire.openai_completion(profile, "m")
    good = JsonChecker(Expectation(wire.expected_text(5), (wire.TOOL_NAME, wire.TOOL_INPUT)), flavour)
    good.feed(body)
    assert good.finish() is None
    wrong = JsonChecker(Expectation(wire.expected_text(6), (wire.TOOL_NAME, wire.TOOL_INPUT)), flavour)
    wrong.feed(body)
    assert wrong.finish() is not None
