"""The two header lines: the status (demo, where the proxy listens, strategy, pause, today's requests and spend,
requests in flight, requests held for a recovery, the budget guard) and how to run Claude Code through it.

The status line is laid out from the most to the least verbose form and the first that fits is shown, so
spend and in-flight survive down to 60 columns; labels and the URL's scheme go first.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.widgets import Static

from ccm_tui.config import BudgetAction
from ccm_tui.format import LAUNCH_COMMAND, claude_command_line, countdown, usd
from ccm_tui.routing.budget import BudgetState, BudgetWindow


@dataclass(frozen=True)
class Status:
    base_url: str
    strategy: str
    paused: bool
    requests_today: int
    spend_today: float
    in_flight: int
    demo: bool
    auth_key_env: str | None = None  # the proxy key's variable, named in the command line (never its value)
    copy_key: str = "c"  # the key that copies the environment line
    budget: BudgetState | None = None  # shown only when a cap is configured
    held: tuple[tuple[str, float], ...] = ()  # (request id, until) waiting for a provider to recover
    now: float = 0.0  # the held countdown counts to it


REACHED_WORDS = {
    BudgetAction.REFUSE: "refusing",
    BudgetAction.CHEAPEST: "cheap providers only",
    BudgetAction.ALERT: "alert only",
}


def budget_text(budget: BudgetState) -> Text:
    """The guard's state: "budget $20/day: 85 %", "budget reached: refusing", "budget $20/day: lifted"."""
    if budget.active:
        style = "bold white on red" if budget.restricts else "bold yellow"
        return Text(f" budget reached: {REACHED_WORDS[budget.action]} ", style=style)
    cap, spent, per = _tightest(budget)
    figure = f"budget {cap_usd(cap)}/{per}"
    if budget.lifted_until is not None:
        return Text(f"{figure}: lifted", style="bold green")
    used = spent / cap if cap else 0.0
    style = "bold red" if used >= 0.9 else "bold yellow" if used >= 0.75 else "bold"
    return Text(f"{figure}: {used * 100:.0f} %", style=style)


def cap_usd(value: float) -> str:
    """A configured cap as written: "$20", "$0.50"."""
    return f"${value:g}" if value == int(value) else f"${value:.2f}"


def _tightest(budget: BudgetState) -> tuple[float, float, str]:
    """(cap, spent, "day"|"h") of the configured cap that is most used."""
    caps: list[tuple[float, float, str, BudgetWindow]] = []
    if budget.daily_usd is not None:
        caps.append((budget.daily_usd, budget.spent_today, "day", BudgetWindow.DAY))
    if budget.hourly_usd is not None:
        caps.append((budget.hourly_usd, budget.spent_hour, "h", BudgetWindow.HOUR))
    cap, spent, per, _ = max(caps, key=lambda c: (c[3] is budget.reached, c[1] / c[0] if c[0] else 1.0))
    return cap, spent, per


def held_text(held: tuple[tuple[str, float], ...], now: float, short: bool = False) -> Text:
    """Requests waiting for a recovery, counting down to the soonest: "1 held — retry in 12s"."""
    soonest = min(until for _, until in held)
    words = (
        f"{len(held)} held {countdown(soonest, now)}"
        if short
        else f"{len(held)} held — retry in {countdown(soonest, now)}"
    )
    return Text(words, style="bold yellow")


def status_text(status: Status, verbosity: int = 0) -> Text:
    """The status line; each step of `verbosity` (0 = everything) drops or shortens one part."""
    text = Text()
    gap = "  " if verbosity < 3 else " "
    if verbosity == 0:
        text.append("ccm-tui ", style="bold")
    if status.demo:
        text.append(" DEMO ", style="bold black on yellow")
        text.append(gap)
    if verbosity < 2:
        text.append("ANTHROPIC_BASE_URL=", style="dim")
    url = status.base_url if verbosity < 3 else status.base_url.removeprefix("http://")
    if verbosity < 4:
        text.append(url, style="bold cyan")
        text.append(gap)
    if verbosity < 3:
        text.append("strategy ", style="dim")
    text.append(status.strategy, style="bold")
    if status.paused:
        text.append(gap)
        text.append(" PAUSED ", style="bold white on red")
    text.append(gap)
    if verbosity < 4:
        text.append("today ", style="dim")
    text.append(f"{status.requests_today} req ", style="bold")
    text.append(usd(status.spend_today), style="bold magenta")
    text.append(gap)
    if verbosity < 3:
        text.append("in flight ", style="dim")
        text.append(str(status.in_flight), style="bold")
    else:
        text.append(f"{status.in_flight} in flight", style="bold")
    if status.held:
        text.append(gap)
        text.append_text(held_text(status.held, status.now, short=verbosity >= 3))
    if status.budget is not None and status.budget.configured:
        text.append(gap)
        text.append_text(budget_text(status.budget))
    return text


def command_text(status: Status, width: int) -> Text:
    """How to run Claude Code here: the launcher, the copy key, then the environment line when it fits."""
    text = Text()
    text.append("Claude Code: ", style="dim")
    text.append(LAUNCH_COMMAND, style="bold green")
    text.append("  ·  ", style="dim")
    text.append(status.copy_key, style="bold")
    text.append(" copies the env", style="dim")
    line = claude_command_line(status.base_url, status.auth_key_env)
    if text.cell_len + 6 + len(line) <= width:
        text.append(":  ", style="dim")
        text.append(line)
    return text


class StatusBar(Static):
    DEFAULT_CSS = """
    StatusBar { height: 2; background: $primary-background; color: $text; padding: 0 1; }
    StatusBar.one-line { height: 1; }
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
        width = self.content_region.width
        text = status_text(self.status)
        for verbosity in range(1, 5):
            if text.cell_len <= width:
                break
            text = status_text(self.status, verbosity)
        if not self.has_class("one-line"):
            text.append("\n")
            text.append_text(command_text(self.status, width))
        self.update(text)
