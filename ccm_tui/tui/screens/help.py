"""Help: every key and what it does, from the same command table as the bindings and the palette."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.binding import Binding

from ccm_tui.format import LAUNCH_COMMAND, claude_command_line
from ccm_tui.tui.commands import COMMANDS, key_label
from ccm_tui.tui.screens.info import InfoModal


def help_renderable(base_url: str, auth_key_env: str | None = None) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold cyan", justify="right")
    table.add_column()
    for command in COMMANDS:
        # Text.assemble, not `+`: a sum keeps the first part's style for the whole line.
        table.add_row(key_label(command), Text.assemble((command.title, "bold"), "  ", command.help))
    table.add_row("↑ ↓ pgup pgdn home", "Move through the request stream (the providers panel when it has focus).")
    table.add_row("ctrl+p", "Command palette: every command above, searchable.")
    table.add_row("", "")
    table.add_row(
        "Claude Code", Text.assemble((LAUNCH_COMMAND, "bold green"), "  in another pane (finds this instance)")
    )
    table.add_row("or", claude_command_line(base_url, auth_key_env))
    return table


class HelpScreen(InfoModal):
    DEFAULT_CSS = """
    HelpScreen > VerticalScroll { max-width: 120; }
    """
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close", id="close-help")]

    def __init__(self, base_url: str, auth_key_env: str | None = None) -> None:
        super().__init__("ccm-tui keys", help_renderable(base_url, auth_key_env))
        self.base_url = base_url
