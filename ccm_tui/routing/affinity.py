"""Session affinity: a Claude Code session stays on the provider variant that served its last request.

Keeping a session on one upstream keeps that upstream's prompt cache warm. The pin is per (session id,
requested model): one session asks for several models (Haiku for side requests, Sonnet for the main loop),
and a cache is per model. Memory is bounded: at most `max_sessions` pins, least recently used dropped
first, and a pin idle for `ttl` seconds is forgotten. Whether a pin is honoured is plan.py's decision.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from ccm_tui.core.contract import Route


@dataclass(frozen=True)
class Pin:
    session_id: str
    model: str  # the requested model (or tier alias) the pin is for
    provider: str
    variant: str  # Variant.key
    at: float  # when it last served this session
    requests: int  # how many of the session's requests it served in a row

    @property
    def route_key(self) -> str:
        return f"{self.provider}/{self.variant}"


class AffinityBook:
    def __init__(self, max_sessions: int, ttl: float) -> None:
        self.max_sessions = max_sessions
        self.ttl = ttl
        self._pins: OrderedDict[tuple[str, str], Pin] = OrderedDict()

    def get(self, session_id: str | None, model: str, now: float) -> Pin | None:
        if session_id is None:
            return None
        key = (session_id, model)
        pin = self._pins.get(key)
        if pin is not None and pin.at + self.ttl <= now:
            del self._pins[key]
            return None
        return pin

    def record(self, session_id: str | None, model: str, route: Route, now: float) -> None:
        if session_id is None:
            return
        key = (session_id, model)
        previous = self._pins.pop(key, None)
        same = previous is not None and previous.route_key == route.key
        requests = previous.requests + 1 if same and previous is not None else 1
        self._pins[key] = Pin(session_id, model, route.provider, route.variant.key, now, requests)
        while len(self._pins) > self.max_sessions:
            self._pins.popitem(last=False)

    def forget(self, session_id: str | None = None) -> None:
        """Drop one session's pins, or every pin."""
        if session_id is None:
            self._pins.clear()
            return
        for key in [k for k in self._pins if k[0] == session_id]:
            del self._pins[key]

    def pins(self, now: float) -> tuple[Pin, ...]:
        """The live pins, most recently used first."""
        return tuple(p for p in reversed(self._pins.values()) if p.at + self.ttl > now)
