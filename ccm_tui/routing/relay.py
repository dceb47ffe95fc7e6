"""Relaying a stream to the client once its first content arrived, and rescuing it when the upstream fails.

A stream attempt is a `Leg`: its feed (routing/feed.py), the events read before the first content (held
back, so the attempt could still fail over) and the model that answers. `relay` sends the held events, then
every event as it comes, `event: ping` while the upstream is silent, and ends at message_stop (an upstream
that keeps the connection open after it is not waited for). When the upstream cuts, stalls or sends an
overload error after content was sent, the answer continues on the next candidate that accepts a prefill
(routing/rescue.py); where it cannot, the client gets one clean `event: error`, never a truncated success.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ccm_tui.core.contract import ProxyRequest, Route, StreamMeter, UpstreamError
from ccm_tui.core.states import ErrorOrigin, TransportFailure
from ccm_tui.routing.attempts import AttemptLog, InFlightSlot
from ccm_tui.routing.feed import Feed, Tick
from ccm_tui.routing.limits import is_overload
from ccm_tui.routing.rescue import Continuation, prefill_request
from ccm_tui.routing.stream import MESSAGE_STOP, PING, ClientStream, Event, EventSplitter, is_content
from ccm_tui.translate.sse import error_event

if TYPE_CHECKING:
    from collections.abc import Mapping


@dataclass
class Leg:
    """One upstream stream that reached its first content (or a complete, empty answer)."""

    route: Route
    feed: Feed
    splitter: EventSplitter
    held: list[Event]
    served_model: str
    started: float  # perf counter when the request was sent
    first_token: float  # seconds from sending to the first content
    headers: Mapping[str, str] = field(default_factory=dict)
    continuation: Continuation | None = None

    @property
    def meter(self) -> StreamMeter:
        return self.feed.reply.meter


class RelayHost(Protocol):
    """What the relay needs from the engine: opening a rescue attempt, and recording how legs ended."""

    async def open_leg(self, run: AttemptLog, route: Route, request: ProxyRequest, rescue: bool) -> Leg | None: ...

    def rescue_routes(self, run: AttemptLog) -> Sequence[Route]: ...

    def leg_failed(self, run: AttemptLog, leg: Leg, error: UpstreamError) -> None: ...

    def leg_ended(self, run: AttemptLog, leg: Leg, ttfb: float | None, *, error: tuple[str, str] | None) -> None: ...

    def stream_finished(
        self, run: AttemptLog, legs: Sequence[Leg], status: int, ttfb: float | None, error: tuple[str, str] | None
    ) -> None: ...


def stream_error(event: Event) -> UpstreamError:
    found = event.data.get("error")
    error: dict[str, Any] = found if isinstance(found, dict) else {}
    kind, message = error.get("type"), error.get("message")
    return UpstreamError(
        None,
        message if isinstance(message, str) else "upstream sent an error event",
        origin=ErrorOrigin.STREAM,
        error_type=kind if isinstance(kind, str) else "api_error",
    )


async def read_opening(feed: Feed, splitter: EventSplitter) -> list[Event]:
    """Events up to and including the first content, read before anything is committed to the client; an
    error event or an end before any content raises (the attempt can still fail over)."""
    held: list[Event] = []
    while True:
        item = await feed.next()
        if item is None:
            if any(e.type == "message_stop" for e in held):
                return held  # a complete answer without content (max_tokens reached at once, say)
            raise UpstreamError.bad_reply("the upstream stream ended before any content")
        if isinstance(item, Tick):
            continue
        events = splitter.feed(item)
        for event in events:
            if event.type == "error":
                raise stream_error(event)
        held += events
        if any(is_content(e) or e.type == "message_stop" for e in events):
            return held


def rescuable(error: UpstreamError) -> bool:
    """A cut, a stall, a broken stream or an overload: the upstream failed, not the answer. An upstream's own
    error of another kind ("failed to generate") ends the stream as the upstream said."""
    return error.origin is not ErrorOrigin.STREAM or is_overload(error)


def client_error(route: Route, upstream: UpstreamError) -> tuple[str, str]:
    # By status and vendor error type only (limits.is_overload): message text must not read as an overload.
    error_type = "overloaded_error" if is_overload(upstream) else "api_error"
    return error_type, f"upstream {route.provider} failed mid-stream: {upstream.message}"


async def relay(
    host: RelayHost, run: AttemptLog, first: Leg, slot: InFlightSlot, stall_seconds: float
) -> AsyncIterator[bytes]:
    client = ClientStream()
    legs = [first]
    leg = first
    ttfb: float | None = None
    error: tuple[str, str] | None = None
    status = 200
    recorded = False  # the current leg's end is in the attempt log already
    try:
        ttfb = time.perf_counter() - run.t0
        yield _admit(client, leg, leg.held)
        while not client.stopped:
            failure: UpstreamError | None = None
            try:
                item = await leg.feed.next()
            except Exception as exc:
                failure = _as_error(exc)
                item = None
            if failure is None and item is None:
                if client.complete:
                    yield MESSAGE_STOP  # ended after message_delta with a stop_reason: a whole answer
                    break
                failure = UpstreamError.no_response(TransportFailure.READ, "the upstream stream ended early")
            elif item is Tick.PING:
                yield PING
                continue
            elif item is Tick.STALL:
                message = f"the upstream stalled (no bytes for {stall_seconds:g} s)"
                failure = UpstreamError.no_response(TransportFailure.READ, message)
            elif isinstance(item, bytes):
                out: list[bytes] = []
                for event in leg.splitter.feed(item):
                    if event.type == "error":
                        upstream = stream_error(event)
                        if is_overload(upstream):
                            failure = upstream
                            break
                        error = (upstream.error_type or "api_error", upstream.message)
                    mapped = leg.continuation.map(event) if leg.continuation else [event]
                    for piece in mapped:
                        client.observe(piece)
                        out.append(piece.raw)
                    if error is not None or client.stopped:
                        break
                if out:
                    yield b"".join(out)
                if error is not None:
                    break  # the upstream's own error event ended the stream: passed through as it was
                if failure is None:
                    continue
            assert failure is not None
            host.leg_failed(run, leg, failure)
            recorded = True
            await leg.feed.aclose()
            rescued = await _rescue(host, run, client) if client.continuable and rescuable(failure) else None
            if rescued is None:
                error = client_error(leg.route, failure)
                yield error_event(*error)
                break
            legs.append(rescued)
            leg, recorded = rescued, False
            yield _admit(client, leg, leg.held)
    except (asyncio.CancelledError, GeneratorExit):
        status = 499  # the client went away; the upstream is closed in `finally`
        error = ("client_closed", "client disconnected")
        raise
    finally:
        slot.release()
        if client.stopped and status == 200:
            leg.feed.close_after_end()
        else:
            await leg.feed.aclose()
        if not recorded:
            host.leg_ended(run, leg, ttfb, error=None if status == 499 else error)
        host.stream_finished(run, legs, status, ttfb, error)


def _admit(client: ClientStream, leg: Leg, events: list[Event]) -> bytes:
    out: list[bytes] = []
    for event in events:
        for piece in leg.continuation.map(event) if leg.continuation else [event]:
            client.observe(piece)
            out.append(piece.raw)
    return b"".join(out)


async def _rescue(host: RelayHost, run: AttemptLog, client: ClientStream) -> Leg | None:
    request = prefill_request(run.request, client.streamed_text)
    for route in host.rescue_routes(run):
        leg = await host.open_leg(run, route, request, True)
        if leg is not None:
            leg.continuation = Continuation(client)
            return leg
    return None


def _as_error(exc: BaseException) -> UpstreamError:
    if isinstance(exc, UpstreamError):
        return exc
    return UpstreamError.bad_reply(f"the adapter failed on this stream ({type(exc).__name__})")
