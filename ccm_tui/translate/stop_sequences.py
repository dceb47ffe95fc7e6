"""Stop sequences enforced on the translated text, so the client learns which one matched.

OpenAI-compatible upstreams and Gemini strip a matched stop sequence and report a plain "stop" without saying
which one (or whether any) matched, and OpenAI takes at most four. So the translated kinds do not send stop
sequences upstream at all: `StopScanner` watches the text as it streams, cuts it at the first match (the text
before it is sent, the sequence itself is not, as Anthropic does), and the translator ends the message with
`stop_reason: "stop_sequence"` and the matched `stop_sequence`. The upstream is closed at that point.
Non-streaming requests with stop sequences are read from the upstream as a stream for the same reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def stop_sequences_of(body: dict[str, Any]) -> tuple[str, ...]:
    stops = body.get("stop_sequences")
    return tuple(s for s in stops if isinstance(s, str) and s) if isinstance(stops, list) else ()


class StopScanner:
    """Feed text pieces; get back what may be emitted now. After a match, `matched` names the sequence.

    Text that could be the start of a sequence is held back until the next piece decides it (at most the
    longest sequence's length minus one characters); `flush` releases it at the end of the text.
    """

    __slots__ = ("_hold", "_pending", "_sequences", "matched")

    def __init__(self, sequences: Iterable[str]) -> None:
        self._sequences = tuple(s for s in sequences if s)
        self._hold = max((len(s) for s in self._sequences), default=1) - 1
        self._pending = ""
        self.matched: str | None = None

    @property
    def active(self) -> bool:
        return bool(self._sequences)

    def feed(self, text: str) -> str:
        if self.matched is not None:
            return ""
        if not self._sequences:
            return text
        buffer = self._pending + text
        # The earliest match wins; at the same position, the longer sequence.
        found: tuple[int, int, str] | None = None
        for sequence in self._sequences:
            at = buffer.find(sequence)
            if at != -1 and (found is None or (at, -len(sequence)) < (found[0], found[1])):
                found = (at, -len(sequence), sequence)
        if found is not None:
            self.matched = found[2]
            self._pending = ""
            return buffer[: found[0]]
        keep = self._partial_suffix(buffer)
        self._pending = buffer[len(buffer) - keep :] if keep else ""
        return buffer[: len(buffer) - keep]

    def flush(self) -> str:
        pending, self._pending = self._pending, ""
        return pending

    def _partial_suffix(self, buffer: str) -> int:
        """Length of the longest end of `buffer` that a sequence starts with (0 if none)."""
        for size in range(min(self._hold, len(buffer)), 0, -1):
            tail = buffer[-size:]
            if any(sequence.startswith(tail) for sequence in self._sequences):
                return size
        return 0
