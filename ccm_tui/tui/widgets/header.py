"""The status line at the top: where to point Claude Code, strategy, today's requests and spend."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from ccm_tui.format import usd


class StatusBar(Static):
    DEFAULT_CSS = """
    StatusBar { height: 1; background: $primary-background; color: $text; padding: 0 1; }
    """

    def show(
        self,
        base_url: str,
        strategy: str,
        paused: bool,
        requests_today: int,
        spend_today: float,
        in_flight: int,
        demo: bool,
    ) -> None:
        text = Text()
        text.append("ccm-tui ", style="bold")
        if demo:
            text.append(" DEMO ", style="bold black on yellow")
            text.append(" ")
        text.append("ANTHROPIC_BASE_URL=", style="dim")
        text.append(base_url, style="bold cyan")
        text.append("  strategy ", style="dim")
        text.append(strategy, style="bold")
        if paused:
            text.append("  PAUSED ", style="bold white on red")
        text.append("  today ", style="dim")
        text.append(f"{requests_today} req {usd(spend_today)}", style="bold")
        text.append("  in flight ", style="dim")
        text.append(str(in_flight))
        self.update(text)
