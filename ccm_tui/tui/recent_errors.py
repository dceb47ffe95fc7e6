"""The last failed attempts per provider, as the TUI saw them finish: what the provider detail lists."""

from __future__ import annotations

from collections import deque

from ccm_tui.core.events import AttemptRecord, RequestFinished
from ccm_tui.core.states import AttemptOutcome

KEPT_PER_PROVIDER = 8


class RecentErrors:
    def __init__(self, kept: int = KEPT_PER_PROVIDER) -> None:
        self.kept = kept
        self._by_provider: dict[str, deque[AttemptRecord]] = {}

    def add(self, event: RequestFinished) -> None:
        for attempt in event.attempts:
            if attempt.outcome is not AttemptOutcome.OK:
                kept = self._by_provider.setdefault(attempt.provider, deque(maxlen=self.kept))
                kept.append(attempt)

    def of(self, provider: str) -> list[AttemptRecord]:
        """Newest first."""
        return list(reversed(self._by_provider.get(provider, ())))
