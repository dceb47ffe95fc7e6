"""The live request stream: an append-only line view (Textual's line API), cheap at any request rate.

Each finished request becomes one pre-rendered line; `render_line` only crops and highlights, so the cost
per frame depends on the screen height, not on how many requests arrived. Narrow panels get a compact line
(time, status, duration, cost, route) so the route, the part that matters most, is not cut. The newest
lines are followed until the user moves the cursor; `end` follows again. Enter opens the selected
request's detail.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ccm_tui.core.events import RequestFinished
from ccm_tui.format import attempt_label, ms, tokens, usd

MAX_LINES = 5000
COMPACT_BELOW = 96  # content width under which request lines drop mode, ttfb and tokens
_HIGHLIGHT = Style(reverse=True)


@dataclass(frozen=True)
class LogLine:
    serial: int
    text: Text
    request: RequestFinished | None = None
    compact: Text | None = None  # the narrow-panel form of a request line


def short_model(model: str) -> str:
    return model.removeprefix("claude-")


def _status(event: RequestFinished, text: Text) -> None:
    if event.ok:
        text.append(f"{event.status:<4}", style="green")
    elif event.status == 499:
        text.append("gone", style="yellow")
    else:
        text.append(f"{event.status:<4}", style="bold red")


def request_text(event: RequestFinished, compact: bool = False) -> Text:
    """`time status mode ttfb duration tokens cost  asked -> [failed attempts ->] provider/model`.

    Fixed-width figures first so they line up; the route last, where a failover chain can grow. `compact`
    keeps time, status, duration, cost and the route (served model left out) for narrow panels.
    """
    clock = time.strftime("%H:%M:%S", time.localtime(event.started_at))
    text = Text(clock + " ", style="dim")
    _status(event, text)
    if compact:
        text.append(f" {ms(event.duration):>6}", style="dim")
        text.append(f" {usd(event.cost_usd):>7} ", style="magenta")
    else:
        text.append(" SSE  " if event.stream else " JSON ", style="dim")
        text.append(f"{ms(event.ttfb):>6}")
        text.append(f" {ms(event.duration):>6}", style="dim")
        usage = event.usage
        text.append(f" {tokens(usage.total_input_tokens):>6}↑{tokens(usage.output_tokens):>6}↓")
        text.append(f" {usd(event.cost_usd):>8}  ", style="magenta")
    text.append(short_model(event.requested_model), style="bold")
    for attempt in event.attempts:
        text.append(" → ", style="dim")
        if attempt.outcome == "ok" or attempt.outcome == "stream_error":
            text.append(attempt.provider, style="cyan")
            if not compact:
                text.append(f"/{attempt.model}", style="dim cyan")
        else:
            text.append(attempt_label(attempt), style="yellow")
    if not event.attempts:
        text.append(" → -", style="dim")
    if event.error_type and not event.ok and event.status != 499:
        text.append(f"  {event.error_type}: {event.error_message or ''}", style="red")
    return text


def notice_text(message: str, style: str, at: float) -> Text:
    """A state change or log line in the stream, stamped with when it happened (`at`, from the app clock)."""
    clock = time.strftime("%H:%M:%S", time.localtime(at))
    text = Text(clock + " ", style="dim")
    text.append("• " + message, style=style)
    return text


class RequestLog(ScrollView, can_focus=True):
    DEFAULT_CSS = """
    RequestLog { height: 1fr; }
    """
    BINDINGS = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "cursor(-20)", "Page up", show=False),
        Binding("pagedown", "cursor(20)", "Page down", show=False),
        Binding("home", "cursor_home", "First", show=False),
        # The scrollable's own `end` would only scroll and would shadow the app's follow: bind it here,
        # with the app binding's id so a keymap remaps both.
        Binding("end", "follow", "Follow", show=False, id="follow"),
    ]

    class Selected(Message):
        def __init__(self, request: RequestFinished) -> None:
            super().__init__()
            self.request = request

    def __init__(self, **kwargs: Any) -> None:  # Widget's own keywords (id, classes, ...), passed through
        super().__init__(**kwargs)
        self.lines: deque[LogLine] = deque(maxlen=MAX_LINES)
        self._serial = 0
        self.cursor: int | None = None  # index into lines; None = follow the newest
        self._cache: dict[tuple[int, int, bool], Strip] = {}
        self.border_title = "Requests"

    # --- content ---------------------------------------------------------------------------------------------
    def append(self, lines: list[tuple[Text, RequestFinished | None]]) -> None:
        """Add a batch of lines (one refresh for the batch)."""
        if not lines:
            return
        dropped = max(0, len(self.lines) + len(lines) - MAX_LINES)
        for text, request in lines:
            self._serial += 1
            compact = request_text(request, compact=True) if request is not None else None
            self.lines.append(LogLine(self._serial, text, request, compact))
        if self.cursor is not None:
            self.cursor = max(0, self.cursor - dropped)
        if len(self._cache) > 4 * MAX_LINES:
            self._cache.clear()
        self.virtual_size = Size(self.size.width, len(self.lines))
        if self.cursor is None:
            # After the next layout: the first batch that overflows must also get its scrollbar first,
            # or the scroll is refused and the view stays at the top.
            self.scroll_end(animate=False)
        self.refresh()

    @property
    def selected_request(self) -> RequestFinished | None:
        index = self.cursor if self.cursor is not None else len(self.lines) - 1
        for line in list(self.lines)[index::-1] if self.lines else []:
            if line.request is not None:
                return line.request
        return None

    # --- rendering -------------------------------------------------------------------------------------------
    def render_line(self, y: int) -> Strip:
        index = round(self.scroll_offset.y) + y
        width = self.size.width
        if index >= len(self.lines):
            return Strip.blank(width, self.rich_style)
        line = self.lines[index]
        selected = index == self.cursor
        key = (line.serial, width, selected)
        strip = self._cache.get(key)
        if strip is None:
            text = line.compact if line.compact is not None and width < COMPACT_BELOW else line.text
            # The widget's own style underneath, or unstyled cells show the terminal's default background.
            segments = list(Segment.apply_style(text.render(self.app.console, end=""), style=self.rich_style))
            if selected:
                segments = list(Segment.apply_style(segments, post_style=_HIGHLIGHT))
            strip = Strip(segments).adjust_cell_length(width, self.rich_style)
            self._cache[key] = strip
        return strip.crop(0, width)

    def on_resize(self) -> None:
        self._cache.clear()
        self.virtual_size = Size(self.size.width, len(self.lines))

    # --- keys ------------------------------------------------------------------------------------------------
    def action_cursor(self, delta: int) -> None:
        if not self.lines:
            return
        current = self.cursor if self.cursor is not None else len(self.lines) - 1
        self.cursor = max(0, min(len(self.lines) - 1, current + delta))
        self.scroll_to_region_of(self.cursor)
        self.refresh()

    def action_cursor_home(self) -> None:
        self.action_cursor(-len(self.lines))

    def action_follow(self) -> None:
        self.follow()

    def follow(self) -> None:
        self.cursor = None
        self.scroll_end(animate=False)
        self.refresh()

    def scroll_to_region_of(self, index: int) -> None:
        top = round(self.scroll_offset.y)
        height = self.size.height
        if index < top:
            self.scroll_to(y=index, animate=False, immediate=True)
        elif index >= top + height:
            self.scroll_to(y=index - height + 1, animate=False, immediate=True)

    def open_selected(self) -> None:
        request = self.selected_request
        if request is not None:
            self.post_message(self.Selected(request))
