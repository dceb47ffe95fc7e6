"""The status line at the top: where to point Claude Code, strategy, today's requests and spend."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.widgets import Static

from ccm_tui.format import usd


@dataclass(frozen=True)
class Status:
    base_url: str
    strategy: str
    paused: bool
    requests_today: int
    spend_today: float
    in_flight: int
    demo: bool


def status_text(status: Status, with_name: bool = True) -> Text:
    text = Text()
    if with_name:
        text.append("ccm-tui ", style="bold")
    if status.demo:
        text.append(" DEMO ", style="bold black on yellow")
        text.append(" ")
    text.append("ANTHROPIC_BASE_URL=", style="dim")
    text.append(status.base_url, style="bold cyan")
    text.append("  strategy ", style="dim")
    text.append(status.strategy, style="bold")
    if status.paused:
        text.append("  PAUSED ", style="bold white on red")
    text.append("  today ", style="dim")
    text.append(f"{status.requests_today} req {usd(status.spend_today)}", style="bold")
    text.append("  in flight ", style="dim")
    text.append(str(status.in_flight))
    return text


class StatusBar(Static):
    DEFAULT_CSS = """
    StatusBar { height: 1; background: $primary-background; color: $text; padding: 0 1; }
    """

    status: Status | None = None

    def show(self, status: Status) -> None:
        self.status = status
        self._draw()

    def on_resize(self) -> None:
        self._draw()

    def _draw(self) -> None:
        if self.status is None:
            return
        text = status_text(self.status)
        if text.cell_len > self.content_region.width:  # narrow terminal: the name is the first thing to go
            text = status_text(self.status, with_name=False)
        self.update(text)
