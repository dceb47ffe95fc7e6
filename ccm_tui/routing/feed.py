"""An upstream stream read ahead by its own task, so the relay can act while the upstream is silent.

`Feed.next()` returns the next chunk, `Tick.PING` after `ping_interval` without bytes (the relay may send the
client an `event: ping`), `Tick.STALL` once no byte came for `stall_seconds`, or None at the end; an upstream
failure is raised from it as the adapter raised it. Waiting on the queue is safe to cancel (a deadline around
`next()` does not lose the stream), and one timer per stream — not per chunk — watches the silence.
"""

from __future__ import annotations

import asyncio
import contextlib
from enum import Enum

from ccm_tui.core.contract import StreamReply

QUEUE_DEPTH = 16  # chunks read ahead of the client: bounded, so a slow client slows the upstream read
DRAIN_SECONDS = 2.0  # after a complete answer, how long the upstream may take to end its body (keep-alive)
_draining: set[asyncio.Task[None]] = set()  # background drains, referenced until they end


class Tick(Enum):
    PING = "ping"
    STALL = "stall"


class _End:
    pass


_END = _End()


class Feed:
    def __init__(self, reply: StreamReply, *, ping_interval: float, stall_seconds: float) -> None:
        self.reply = reply
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[bytes | Tick | BaseException | _End] = asyncio.Queue(QUEUE_DEPTH)
        self._ping_interval = ping_interval
        self._stall_seconds = stall_seconds
        self._last_byte = self._last_signal = self._loop.time()
        self._stalled = False
        self._reader = self._loop.create_task(self._read())
        self._period = max(0.005, min(ping_interval, stall_seconds) / 4)
        self._timer: asyncio.TimerHandle | None = self._loop.call_later(self._period, self._tick)

    async def _read(self) -> None:
        try:
            async for chunk in self.reply:
                self._last_byte = self._loop.time()
                await self._queue.put(chunk)
            await self._queue.put(_END)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the adapter's UpstreamError (or its bug): handed to the relay in order
            await self._queue.put(exc)

    def _tick(self) -> None:
        now = self._loop.time()
        quiet = now - max(self._last_byte, self._last_signal)
        if not self._stalled and now - self._last_byte >= self._stall_seconds:
            self._stalled = True
            self._offer(Tick.STALL)
        elif quiet >= self._ping_interval:
            self._last_signal = now
            self._offer(Tick.PING)
        self._timer = self._loop.call_later(self._period, self._tick)

    def _offer(self, tick: Tick) -> None:
        # A full queue means bytes are waiting: the upstream is not silent, the signal is moot.
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(tick)

    async def next(self) -> bytes | Tick | None:
        item = await self._queue.get()
        if isinstance(item, _End):
            self._queue.put_nowait(item)  # later calls see the end again
            return None
        if isinstance(item, BaseException):
            raise item
        return item

    def close_after_end(self) -> None:
        """The answer is complete: let the upstream end its body in the background (so its connection can be
        reused), closing it after DRAIN_SECONDS at most; the client is not kept waiting for that."""
        task = self._loop.create_task(self.aclose() if self._reader.done() else self._drain())
        _draining.add(task)
        task.add_done_callback(_draining.discard)

    async def _drain(self) -> None:
        with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
            await asyncio.wait_for(asyncio.shield(self._reader), DRAIN_SECONDS)
        await self.aclose()

    async def aclose(self) -> None:
        """Stop reading and close the upstream at once (idempotent)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._reader.done():
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        await self.reply.aclose()
