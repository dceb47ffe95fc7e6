"""HistoryBanner: a line that stays while the history cannot be written, then says it is written again.

Fed every bus event through `show_event` (it ignores what is not about history, except that it counts the
requests and alerts finishing during a fault: those are the rows that wait in memory). A HistoryProblem shows
until HistoryRecovered arrives; the recovery line clears itself after `clear_after` seconds. Hidden when there
is nothing to say.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.timer import Timer
from textual.widgets import Static

from ccm_tui.core.events import Event, HistoryProblem, HistoryRecovered, RequestFinished, SpendAlert

RECOVERED_SECONDS = 8.0


@dataclass
class _Outage:
    """What the banner knows of the fault being shown."""

    problem: HistoryProblem  # the latest report (a new fault kind reports again)
    dropped_before: int  # rows lost before this outage began
    arrived: int = 0  # rows finished since `problem` was reported: they wait too

    @property
    def waiting(self) -> int:
        return self.problem.pending + self.arrived


class HistoryBanner(Static):
    DEFAULT_CSS = """
    HistoryBanner { height: auto; padding: 0 1; display: none; }
    HistoryBanner.-problem { background: $error 30%; color: $text; }
    HistoryBanner.-recovered { background: $success 25%; color: $text; }
    """

    def __init__(self, *, clear_after: float = RECOVERED_SECONDS, id: str | None = None) -> None:
        super().__init__(id=id)
        self.clear_after = clear_after
        self.outage: _Outage | None = None
        self._clear_timer: Timer | None = None

    def show_event(self, event: Event) -> None:
        if isinstance(event, HistoryProblem):
            self._cancel_clear()
            dropped_before = self.outage.dropped_before if self.outage else event.dropped
            self.outage = _Outage(event, dropped_before)
            self._show_problem()
        elif isinstance(event, HistoryRecovered):
            self._recovered(event)
        elif isinstance(event, RequestFinished | SpendAlert) and self.outage is not None:
            self.outage.arrived += 1
            self._show_problem()

    def _show_problem(self) -> None:
        assert self.outage is not None
        problem = self.outage.problem
        self.update(
            Text.assemble(
                ("⚠ History not written", "bold"),
                f" ({problem.path}): {problem.message}. ",
                (f"{self.outage.waiting} rows waiting, {problem.dropped} dropped.", "bold"),
            )
        )
        self.set_classes("-problem")
        self.display = True

    def _recovered(self, event: HistoryRecovered) -> None:
        outage, self.outage = self.outage, None
        if outage is None:  # the fault began before the banner was fed: only the writer's own numbers are known
            line = event.message
        else:
            kept = max(outage.waiting - (event.dropped - outage.dropped_before), 0)
            line = f"history writes again ({kept} rows kept, {event.dropped} dropped)"
        self.update(Text.assemble(("✓ ", "bold"), line))
        self.set_classes("-recovered")
        self.display = True
        self._cancel_clear()
        self._clear_timer = self.set_timer(self.clear_after, self._clear)

    def _clear(self) -> None:
        self._clear_timer = None
        self.update("")
        self.set_classes("")
        self.display = False

    def _cancel_clear(self) -> None:
        if self._clear_timer is not None:
            self._clear_timer.stop()
            self._clear_timer = None
