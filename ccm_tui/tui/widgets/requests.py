"""The live request stream: an append-only line view (Textual's line API), cheap at any request rate.

Each finished request becomes one pre-rendered line; `render_line` only crops and highlights, so the cost
per frame depends on the screen height, not on how many requests arrived. Notices wrap under their time
stamp; request lines take the compact form in narrow panes (widgets/lines.py). The first row is a sticky
column header.

Following: the newest lines stay in view until the user moves away — a key, the mouse wheel, the scrollbar
or a click pauses it ("paused — end to follow" under the panel); `end` (or scrolling back to the bottom with
the wheel) follows again. Enter, or a double click, opens the selected request's detail. A session filter
shows only that session's requests.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.theme import Theme

from ccm_tui.core.events import RequestFinished
from ccm_tui.tui.widgets.lines import COMPACT_BELOW, COMPACT_HEADER, FULL_HEADER, STAMP_CELLS

MAX_LINES = 5000
PAUSED = "paused — end to follow"
_HIGHLIGHT = Style(reverse=True)
_HEADER = Style(bold=True, dim=True, underline=True)


@dataclass(frozen=True)
class LogLine:
    serial: int
    text: Text  # a request's full form; a notice's whole text (stamp and message)
    request: RequestFinished | None = None
    compact: Text | None = None  # a request's narrow-pane form
    stamp: Text | None = None  # notices: the stamp the message wraps under
    message: Text | None = None


@dataclass(frozen=True)
class Entry:
    """What the app hands the stream: a line before it has a serial."""

    text: Text
    request: RequestFinished | None = None
    compact: Text | None = None
    stamp: Text | None = None
    message: Text | None = None


Filter = Callable[[LogLine], bool]


class RequestLog(ScrollView, can_focus=True):
    DEFAULT_CSS = """
    RequestLog { height: 1fr; overflow-x: hidden; }
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
        self.rows: list[tuple[LogLine, int]] = []  # what is laid out: (line, which of its wrapped rows)
        self._parts: dict[int, list[Text]] = {}  # serial -> its rows at `_laid_width`
        self._laid_width = 0
        self.cursor: int | None = None  # index into rows; None = nothing selected
        self.following = True
        self._filter: Filter | None = None
        self.filter_label = ""
        self._cache: dict[tuple[int, int, int, bool], Strip] = {}
        self.border_title = "Requests"

    def on_mount(self) -> None:
        # Cached strips carry the old theme's background: a theme switch must redraw every line.
        self.app.theme_changed_signal.subscribe(self, self._theme_changed)
        # A scroll_end issued in the same frame as a virtual-size change can land on the old bottom; nothing
        # would move the view again until the next line, so following re-checks the bottom a few times a second.
        self.set_interval(0.2, self._keep_following)

    def _keep_following(self) -> None:
        if self.following and round(self.scroll_offset.y) < self.max_scroll_y:
            self.scroll_end(animate=False, immediate=True)

    def _theme_changed(self, _theme: Theme) -> None:
        self._cache.clear()
        self.refresh()

    @property
    def _width(self) -> int:
        """Cells a row may use: the scrollbar's column is not ours."""
        return self.scrollable_content_region.width

    # --- content ---------------------------------------------------------------------------------------------
    def append(self, entries: list[Entry]) -> None:
        """Add a batch of lines (one refresh for the batch)."""
        if not entries:
            return
        for entry in entries:
            self._serial += 1
            line = LogLine(self._serial, entry.text, entry.request, entry.compact, entry.stamp, entry.message)
            self.lines.append(line)
            if self._filter is None or self._filter(line):
                self.rows.extend((line, part) for part in range(len(self._layout(line))))
        self._drop_old_rows()
        self._resize_virtual()
        if self.following:
            # After the next layout: the first batch that overflows must also get its scrollbar first,
            # or the scroll is refused and the view stays at the top.
            self.scroll_end(animate=False)
        self.refresh()

    def _drop_old_rows(self) -> None:
        first = self.lines[0].serial
        dropped = 0
        while dropped < len(self.rows) and self.rows[dropped][0].serial < first:
            dropped += 1
        if dropped:
            for line, _ in self.rows[:dropped]:
                self._parts.pop(line.serial, None)
            del self.rows[:dropped]
            if self.cursor is not None:
                self.cursor = max(0, self.cursor - dropped)
        if len(self._cache) > 4 * MAX_LINES:
            self._cache.clear()

    def _layout(self, line: LogLine) -> list[Text]:
        """The rows of one line at the current width: requests one (cropped), notices wrapped."""
        width = max(1, self._width)
        if width != self._laid_width:
            self._parts.clear()
            self._laid_width = width
        parts = self._parts.get(line.serial)
        if parts is None:
            if line.stamp is not None and line.message is not None and width > STAMP_CELLS + 10:
                wrapped = line.message.wrap(self.app.console, width - STAMP_CELLS)
                indent = Text(" " * STAMP_CELLS)
                parts = [Text.assemble(line.stamp if n == 0 else indent, row) for n, row in enumerate(wrapped)]
            elif line.compact is not None and width < COMPACT_BELOW:
                parts = [line.compact]
            else:
                parts = [line.text]
            self._parts[line.serial] = parts
        return parts

    def _relayout(self) -> None:
        selected = self.rows[self.cursor][0].serial if self.cursor is not None and self.rows else None
        self.rows = []
        for line in self.lines:
            if self._filter is None or self._filter(line):
                self.rows.extend((line, part) for part in range(len(self._layout(line))))
        if selected is not None:
            self.cursor = next((n for n, (line, _) in enumerate(self.rows) if line.serial == selected), None)
        self._cache.clear()
        self._resize_virtual()

    def _resize_virtual(self) -> None:
        self.virtual_size = Size(self._width, len(self.rows) + 1)  # + the sticky header

    def set_filter(self, keep: Filter | None, label: str = "") -> None:
        """Show only the lines `keep` accepts (None: all), following the newest again."""
        self._filter = keep
        self.filter_label = label if keep is not None else ""
        self.cursor = None
        self._relayout()
        self.follow()

    @property
    def selected_request(self) -> RequestFinished | None:
        index = self.cursor if self.cursor is not None else len(self.rows) - 1
        for line, _ in self.rows[index::-1] if self.rows else []:
            if line.request is not None:
                return line.request
        return None

    # --- rendering -------------------------------------------------------------------------------------------
    def render_line(self, y: int) -> Strip:
        width = self._width
        if width != self._laid_width:  # drawn at a new width before on_resize ran: lay out for it first
            self._relayout()
        if y == 0:
            header = COMPACT_HEADER if width < COMPACT_BELOW else FULL_HEADER
            heading = Strip([Segment(header, self.rich_style + _HEADER)])
            return heading.adjust_cell_length(width, self.rich_style).crop(0, width)
        index = round(self.scroll_offset.y) + y - 1
        if index >= len(self.rows):
            return Strip.blank(width, self.rich_style)
        line, part = self.rows[index]
        selected = self.cursor is not None and self.rows[self.cursor][0].serial == line.serial
        key = (line.serial, part, width, selected)
        strip = self._cache.get(key)
        if strip is None:
            text = self._layout(line)[part]
            # The widget's own style underneath, or unstyled cells show the terminal's default background.
            segments = list(Segment.apply_style(text.render(self.app.console, end=""), style=self.rich_style))
            if selected:
                segments = list(Segment.apply_style(segments, post_style=_HIGHLIGHT))
            strip = Strip(segments).adjust_cell_length(width, self.rich_style)
            self._cache[key] = strip
        return strip.crop(0, width)

    def on_resize(self) -> None:
        if self._width != self._laid_width:
            self._relayout()
        else:
            self._resize_virtual()
        if self.following:
            self.scroll_end(animate=False)

    # --- following -------------------------------------------------------------------------------------------
    def _set_following(self, following: bool) -> None:
        if following != self.following:
            self.following = following
            self._update_subtitle()

    def _update_subtitle(self) -> None:
        parts = [self.filter_label] if self.filter_label else []
        if not self.following:
            parts.append(PAUSED)
        self.border_subtitle = "  ·  ".join(parts)

    def _at_bottom(self) -> bool:
        return round(self.scroll_offset.y) >= self.max_scroll_y

    def _on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        super()._on_mouse_scroll_up(event)
        if not (event.ctrl or event.shift) and self.rows:
            self._set_following(False)

    def _on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        super()._on_mouse_scroll_down(event)
        if self.cursor is None and self._at_bottom():  # wheeled back to the newest line: follow again
            self._set_following(True)

    def _on_scroll_to(self, message: Any) -> None:  # the scrollbar was dragged
        super()._on_scroll_to(message)
        if message.y is not None and message.y < self.max_scroll_y:
            self._set_following(False)

    def _on_scroll_up(self, event: Any) -> None:  # a click on the scrollbar track above the thumb
        super()._on_scroll_up(event)
        self._set_following(False)

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or offset.y == 0:
            return
        index = round(self.scroll_offset.y) + offset.y - 1
        if 0 <= index < len(self.rows):
            self.cursor = index
            self._set_following(False)
            self.refresh()
            if event.chain >= 2:
                self.open_selected()

    # --- keys ------------------------------------------------------------------------------------------------
    def action_cursor(self, delta: int) -> None:
        if not self.rows:
            return
        current = self.cursor if self.cursor is not None else len(self.rows) - 1
        self.cursor = max(0, min(len(self.rows) - 1, current + delta))
        self._set_following(False)
        self.scroll_to_region_of(self.cursor)
        self.refresh()

    def action_cursor_home(self) -> None:
        self.action_cursor(-len(self.rows))

    def action_follow(self) -> None:
        self.follow()

    def follow(self) -> None:
        self.cursor = None
        self._set_following(True)
        self._update_subtitle()
        self.scroll_end(animate=False)
        self.refresh()

    def scroll_to_region_of(self, index: int) -> None:
        top = round(self.scroll_offset.y)
        visible = max(1, self.size.height - 1)  # rows under the header
        if index < top:
            self.scroll_to(y=index, animate=False, immediate=True)
        elif index >= top + visible:
            self.scroll_to(y=index - visible + 1, animate=False, immediate=True)

    def open_selected(self) -> None:
        request = self.selected_request
        if request is not None:
            self.post_message(self.Selected(request))
