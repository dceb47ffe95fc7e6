"""The sessions view: one row per Claude Code session (most recent first), its subagents under it, and where
session affinity pins each session (provider/variant); enter filters the request stream by the session of the
selected row."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from ccm_tui.format import tokens, usd
from ccm_tui.routing.affinity import Pin
from ccm_tui.tui.sessions import Session, SessionBook, Tally, short_id

COLUMNS = ("session / agent", "reqs", "spend", "in", "out", "failovers", "last", "pinned to", "providers")
# providers grow; "pinned to" is the session's row only (subagents share their session's pins)


def ago(at: float, now: float) -> str:
    left = max(0.0, now - at)
    if left < 60:
        return f"{left:.0f}s ago"
    if left < 3600:
        return f"{left // 60:.0f}m ago"
    return time.strftime("%H:%M", time.localtime(at))


def pinned_text(pins: Sequence[Pin]) -> Text:
    """Where the session's next request goes while healthy: one provider/variant per model it asked for."""
    if not pins:
        return Text("-", style="dim")
    return Text(", ".join(dict.fromkeys(pin.route_key for pin in pins)), style="green", overflow="ellipsis")


def tally_cells(tally: Tally, now: float, pinned: Text | None = None) -> list[Text]:
    spend = usd(tally.cost_usd) + ("+?" if tally.unpriced else "")
    providers = ", ".join(tally.providers) or "-"
    failovers = Text(str(tally.failovers), style="yellow" if tally.failovers else "dim")
    return [
        Text(str(tally.requests), justify="right"),
        Text(spend, style="magenta", justify="right"),
        Text(tokens(tally.input_tokens), justify="right"),
        Text(tokens(tally.output_tokens), justify="right"),
        failovers,
        Text(ago(tally.last_at, now), style="dim"),
        pinned if pinned is not None else Text(""),
        Text(providers, style="cyan", overflow="ellipsis"),
    ]


class SessionsScreen(ModalScreen[str | None]):
    """Dismisses with the session id to filter by (NO_SESSION for requests without one), or None."""

    DEFAULT_CSS = """
    SessionsScreen { align: center middle; }
    SessionsScreen > Vertical {
        width: 95%; max-width: 140; height: auto; max-height: 90%;
        border: round $accent; background: $surface; padding: 0 1;
    }
    SessionsScreen DataTable { height: auto; max-height: 30; }
    SessionsScreen #sessions-hint { color: $text-muted; height: auto; margin-top: 1; }
    """
    BINDINGS = [
        Binding("escape,q,v", "dismiss_none", "Close", id="close-sessions"),
    ]

    def __init__(
        self, book: SessionBook, clock: Callable[[], float], demo: bool = False, pins: Sequence[Pin] = ()
    ) -> None:
        super().__init__()
        self.book = book
        self.pins = pins  # the engine's session pins when the view opened (routing/affinity.py)
        self.clock = clock
        self.demo = demo
        self._session_of_row: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "Sessions" + (" · demo (simulated client)" if self.demo else "") + "  (esc to close)"
            yield DataTable(cursor_type="row", zebra_stripes=False, id="sessions-table")
            yield Static(
                "enter: show only this session's requests in the stream (esc there shows all again)",
                id="sessions-hint",
            )

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for column in COLUMNS:
            table.add_column(column, key=column)
        self.fill()
        table.focus()

    def fill(self) -> None:
        table = self.query_one(DataTable)
        table.clear()
        self._session_of_row.clear()
        now = self.clock()
        sessions = self.book.sessions()
        for session in sessions:
            self._add_session(table, session, now)
        if not sessions:
            table.add_row(Text("no requests yet", style="dim"), *[""] * (len(COLUMNS) - 1))

    def _add_session(self, table: DataTable[Text | str], session: Session, now: float) -> None:
        key = f"s:{session.session_id}"
        label = Text(short_id(session.session_id), style="bold")
        pins = [pin for pin in self.pins if pin.session_id == session.session_id]
        table.add_row(label, *tally_cells(session.tally, now, pinned_text(pins)), key=key)
        self._session_of_row[key] = session.session_id
        for agent in session.agents.values():
            key = f"a:{session.session_id}:{agent.agent_id}"
            name = Text("  └ ", style="dim")
            name.append(agent.agent_type or "agent")
            name.append(f" {agent.agent_id[:12]}", style="dim")
            table.add_row(name, *tally_cells(agent.tally, now), key=key)
            self._session_of_row[key] = session.session_id

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        session = self._session_of_row.get(str(event.row_key.value))
        if session is not None:
            self.dismiss(session)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)
