"""Small bar charts drawn with block characters, with a scale (the peak bar's value) and a time axis.

Pure: a series in, rows of rich Text out, sized to the cells available. A series longer than the width is
summed into buckets of several points, and the caption says how many.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rich.text import Text

BLOCKS = " ▁▂▃▄▅▆▇█"


@dataclass(frozen=True)
class Chart:
    caption: Text  # what one bar is, and the scale: the peak bar's value
    rows: list[Text]  # top row first
    axis: Text


def bucketed(values: Sequence[float], width: int) -> tuple[list[float], int]:
    """`values` summed into at most `width` buckets of `per` points each (the last bucket may be short)."""
    per = max(1, math.ceil(len(values) / max(1, width)))
    return [sum(values[i : i + per]) for i in range(0, len(values), per)], per


def bars(values: Sequence[float], height: int, style: str = "magenta") -> list[Text]:
    """Rows of a bar chart, top first; the tallest bar fills the height, any spend at all shows at least ▁."""
    peak = max(values, default=0.0)
    levels = [0 if peak <= 0 or v <= 0 else max(1, round(v / peak * height * 8)) for v in values]
    rows = []
    for row in range(height - 1, -1, -1):
        cells = "".join(BLOCKS[min(8, max(0, level - row * 8))] for level in levels)
        rows.append(Text(cells, style=style))
    return rows


def axis(labels: Sequence[tuple[float, str]], width: int) -> Text:
    """Labels placed at fractions (0 = left edge, 1 = right edge) of `width`, never overlapping."""
    cells = [" "] * width
    taken = -1
    for fraction, label in labels:
        if fraction <= 0:
            start = 0
        elif fraction >= 1:
            start = width - len(label)
        else:
            start = round(fraction * (width - 1)) - len(label) // 2
        start = max(0, min(width - len(label), start))
        if start <= taken or start + len(label) > width:
            continue  # no room: leave it out rather than garble its neighbour
        cells[start : start + len(label)] = label
        taken = start + len(label)
    return Text("".join(cells), style="dim")


def spend_chart(
    values: Sequence[float],
    width: int,
    height: int,
    unit: Callable[[int], str],
    labels: Sequence[tuple[float, str]],
    money: Callable[[float], str],
) -> Chart:
    """A chart of `values` in at most `width` columns; `unit(per)` names one bar ("min", "2 min", "hour")."""
    series, per = bucketed(values, width)
    peak = max(series, default=0.0)
    caption = Text(f"per {unit(per)}", style="dim")
    caption.append(" · peak ", style="dim")
    caption.append(money(peak), style="magenta")
    return Chart(caption, bars(series, height), axis(labels, len(series)))
