"""A stacked bar chart of one value per day, drawn with block characters: a y scale, a bar per day, date labels.

`chart_lines` is the pure drawing (tested by table, used by the history screen); `DailyChart` is the widget
that draws it at whatever size it gets, so the same data fills an 80x24 pane or a wide one.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rich.style import Style
from rich.text import Text
from textual.widget import Widget

EIGHTHS = " ▁▂▃▄▅▆▇█"
MAX_STEP = 6  # columns per day at most: wider bars stop being easier to read
EMPTY_STYLE = Style(color="grey35")


@dataclass(frozen=True)
class DayBar:
    """One day's bar: a value per series, bottom of the stack first."""

    day: dt.date
    values: tuple[float, ...]


@dataclass(frozen=True)
class ChartData:
    bars: tuple[DayBar, ...]  # consecutive days, oldest first
    colors: tuple[str, ...]  # one per series, in stack order
    label: Callable[[float], str]  # a scale value as text: "$2.50", "40"


def nice_ceiling(value: float) -> float:
    """The smallest round scale top at or above `value`: 1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a power of ten
    (each halves to a round number too)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0):
        if value <= step * power * (1 + 1e-9):
            return step * power
    return 10.0 * power


def chart_lines(data: ChartData, width: int, height: int) -> list[Text]:
    """`height` lines of at most `width` cells: bar rows, an axis row (the zero) and a date row. Days that do
    not fit the width are the oldest ones left out."""
    rows = height - 2
    padding: list[Text] = []
    if rows >= 5 and rows % 2:  # an even number of bar rows puts the half-scale tick exactly on a row edge
        rows -= 1
        padding.append(Text())
    top = nice_ceiling(max((sum(bar.values) for bar in data.bars), default=0.0))
    scale = {rows - 1: data.label(top), -1: data.label(0.0)}  # row -> the value at its top edge; -1: the axis
    if rows >= 4:
        scale[rows // 2 - 1] = data.label(top / 2)
    gutter = max(len(text) for text in scale.values()) + 1
    room = width - gutter - 1
    if rows < 1 or room < 1:
        return [Text("(too small for the chart)", style=EMPTY_STYLE)][: max(height, 0)]
    step = min(MAX_STEP, room // max(len(data.bars), 1))
    bars = data.bars if step >= 1 else data.bars[-room:]
    step = max(step, 1)
    bar_width = step - 1 if step >= 2 else 1
    lines: list[Text] = []
    for row in range(rows - 1, -1, -1):
        line = Text(scale.get(row, "").rjust(gutter - 1) + " ", style=EMPTY_STYLE, no_wrap=True)
        line.append("┤" if row in scale else "│", style=EMPTY_STYLE)
        for bar in bars:
            glyph, style = _cell(bar.values, data.colors, row, rows, top)
            line.append(glyph * bar_width, style=style)
            line.append(" " * (step - bar_width))
        lines.append(line)
    labels = _date_labels([bar.day for bar in bars], step, room)
    axis = Text(scale[-1].rjust(gutter - 1) + " └", style=EMPTY_STYLE, no_wrap=True)
    used = len(bars) * step
    axis.append("".join("┴" if column in labels else "─" for column in range(used)), style=EMPTY_STYLE)
    cells = [" "] * room
    for start, label in labels.values():
        cells[start : start + len(label)] = label
    dates = Text(" " * (gutter + 1) + "".join(cells).rstrip(), style=EMPTY_STYLE, no_wrap=True)
    return [*padding, *lines, axis, dates]


def _cell(values: Sequence[float], colors: Sequence[str], row: int, rows: int, top: float) -> tuple[str, Style]:
    """The glyph and style of one bar cell: the series at the cell's bottom fills its share in eighths; the
    series above it (if the stack goes on inside this cell) shows as the background."""
    bounds: list[int] = []  # cumulative height of each series, in eighths of a cell
    total = 0.0
    for value in values:
        total += value
        bounds.append(round(total / top * rows * 8))
    low, high = row * 8, row * 8 + 8
    if not bounds or bounds[-1] <= low:
        return " ", Style()
    bottom = next(i for i, bound in enumerate(bounds) if bound > low)
    filled = min(bounds[bottom], high) - low
    if filled >= 8:
        return EIGHTHS[8], Style(color=colors[bottom])
    above = next((i for i in range(bottom + 1, len(bounds)) if bounds[i] > bounds[bottom]), None)
    background = colors[above] if above is not None else None
    return EIGHTHS[filled], Style(color=colors[bottom], bgcolor=background)


def _date_labels(days: Sequence[dt.date], step: int, room: int) -> dict[int, tuple[int, str]]:
    """Tick column -> (label start, label) for the last day (today) and every 7th day before it, placed right
    to left under their bars; a label that would touch its right neighbour is left out."""
    labels: dict[int, tuple[int, str]] = {}
    limit = room  # the next label must end before this column
    for index in range(len(days) - 1, -1, -7):
        text = f"{days[index]:%b} {days[index].day}"
        tick = index * step
        start = min(tick, limit - len(text))
        if start < 0:
            break
        labels[tick] = (start, text)
        limit = start - 1
    return labels


class DailyChart(Widget):
    """Draws a `ChartData` at the widget's size; `show(None)` blanks it."""

    DEFAULT_CSS = """
    DailyChart { height: 1fr; min-height: 6; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.data: ChartData | None = None

    def show(self, data: ChartData | None) -> None:
        self.data = data
        self.refresh()

    def render(self) -> Text:
        if self.data is None:
            return Text()
        return Text("\n").join(chart_lines(self.data, self.size.width, self.size.height))
