"""Holding requests instead of failing them while every candidate cools down ([routing] hold_seconds).

`Holds` keeps the requests waiting (for the views and the TUI's countdown), publishes RequestHeld as a
wait starts and ends, and wakes the waiters as soon as a provider may be usable again (a recovery, the user's
retry-now / key / switch-on) or the soonest cool-down ends, whichever is first.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from ccm_tui.core.events import EventBus, RequestHeld


class Holds:
    def __init__(self, bus: EventBus, clock: Callable[[], float]) -> None:
        self._bus = bus
        self._clock = clock
        self._held: dict[str, float] = {}
        self._wake: asyncio.Event | None = None

    def snapshot(self) -> tuple[tuple[str, float], ...]:
        return tuple(self._held.items())

    def wake(self) -> None:
        """Something changed that may let a held request through: every waiter tries again."""
        if self._wake is not None:
            self._wake.set()
            self._wake = None

    def start(self, request_id: str, until: float, reason: str) -> None:
        self._held[request_id] = until
        self._bus.publish(RequestHeld(request_id, until, reason))

    def end(self, request_id: str) -> None:
        if self._held.pop(request_id, None) is not None:
            self._bus.publish(RequestHeld(request_id, None))

    async def wait(self, until: float, at_most: float | None = None) -> None:
        """Until `until` (engine clock), a wake, or `at_most` seconds, whichever comes first."""
        if self._wake is None:
            self._wake = asyncio.Event()
        seconds = max(0.0, until - self._clock())
        if at_most is not None:
            seconds = min(seconds, at_most)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
