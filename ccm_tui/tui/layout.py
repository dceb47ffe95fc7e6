"""Breakpoints of the dashboard: which layout a terminal size gets. Pure; the app turns it into CSS classes.

    wide    >= 140 columns: providers with every column, the stream beside a roomy spend panel
    medium  100-139:        providers without error rate and counts, spend panel at its minimum
    narrow  < 100:          compact providers, the stream takes the width (status and serving provider
                            first on every line); the spend panel is behind a key (g)
    short   < 30 rows:      the providers panel shows at most four rows (it scrolls); under 16 rows the
                            header drops its second line

The status line (demo, URL, strategy, pause, today's spend, in flight) is on screen in every layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

WIDE_FROM = 140
MEDIUM_FROM = 100
SHORT_BELOW = 30
TINY_BELOW = 16


class Width(StrEnum):
    WIDE = "wide"
    MEDIUM = "medium"
    NARROW = "narrow"


@dataclass(frozen=True)
class Layout:
    width: Width
    short: bool
    tiny: bool

    @property
    def spend_by_default(self) -> bool:
        return self.width is not Width.NARROW


def layout_for(columns: int, rows: int) -> Layout:
    if columns >= WIDE_FROM:
        width = Width.WIDE
    elif columns >= MEDIUM_FROM:
        width = Width.MEDIUM
    else:
        width = Width.NARROW
    return Layout(width, rows < SHORT_BELOW, rows < TINY_BELOW)
