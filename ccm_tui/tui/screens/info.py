"""InfoModal: the read-only modal the detail and help screens share — a titled, scrollable renderable."""

from __future__ import annotations

from rich.console import RenderableType
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


class InfoModal(ModalScreen[None]):
    DEFAULT_CSS = """
    InfoModal { align: center middle; }
    InfoModal > VerticalScroll {
        width: 90%; max-width: 140; height: auto; max-height: 90%;
        border: round $accent; background: $surface; padding: 1 2;
    }
    """

    def __init__(self, title: str, body: RenderableType) -> None:
        super().__init__()
        self.title_text = title
        self.body = body

    def compose(self) -> ComposeResult:
        with VerticalScroll() as scroll:
            scroll.border_title = f"{self.title_text}  (esc to close)"
            yield Static(self.body)
