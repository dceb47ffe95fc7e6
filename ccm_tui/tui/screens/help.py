"""Help: every key and what it does, from the same command table as the bindings and the palette."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from ccm_tui.tui.commands import COMMANDS, key_label


def help_renderable(base_url: str) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold cyan", justify="right")
    table.add_column()
    for command in COMMANDS:
        # Text.assemble, not `+`: a sum keeps the first part's style for the whole line.
        table.add_row(key_label(command), Text.assemble((command.title, "bold"), "  ", command.help))
    table.add_row("↑ ↓ pgup pgdn home", "Move through the request stream (the providers panel when it has focus).")
    table.add_row("ctrl+p", "Command palette: every command above, searchable.")
    table.add_row("", "")
    table.add_row("Claude Code", f"ANTHROPIC_BASE_URL={base_url} ANTHROPIC_API_KEY=any claude")
    return table


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 90%; max-width: 120; height: auto; max-height: 90%;
        border: round $accent; background: $surface; padding: 1 2;
    }
    """
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close", id="close-help")]

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url

    def compose(self) -> ComposeResult:
        with VerticalScroll() as scroll:
            scroll.border_title = "ccm-tui keys  (esc to close)"
            yield Static(help_renderable(self.base_url))

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss(None)
