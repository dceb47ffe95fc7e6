"""The providers panel: one row per provider in priority order, updated in place about once a second.

Reads only the engine's read-only views (routing/views.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.text import Text
from textual.widgets import DataTable

from ccm_tui.core.states import ProviderState
from ccm_tui.format import countdown, ms, tokens
from ccm_tui.routing.engine import Engine
from ccm_tui.routing.limits import QuotaWindow
from ccm_tui.routing.views import ProviderView

Columns = tuple[tuple[str, str, int], ...]
# (label, key, width): fixed widths, because cells change every second and must not be cut or jump.
WIDE_COLUMNS = (
    ("#", "n", 1),
    ("provider", "name", 14),
    ("on", "on", 2),
    ("health", "health", 30),
    ("p50", "p50", 6),
    ("err", "err", 4),
    ("reqs", "reqs", 5),
    ("requests left", "rq", 24),
    ("tokens left", "tq", 30),
)
# Under ~130 columns: no error rate or request count, shorter quota bars without reset countdowns.
NARROW_COLUMNS = (
    ("#", "n", 1),
    ("provider", "name", 12),
    ("on", "on", 2),
    ("health", "health", 22),
    ("p50", "p50", 6),
    ("requests left", "rq", 15),
    ("tokens left", "tq", 17),
)
# Under ~100 columns: one quota bar (requests), a health column wide enough for the state and its cause.
COMPACT_COLUMNS = (
    ("#", "n", 1),
    ("provider", "name", 12),
    ("on", "on", 2),
    ("health", "health", 26),
    ("p50", "p50", 6),
    ("reqs left", "rq", 14),
)
CELL_PADDING = 1


def _row_width(columns: tuple[tuple[str, str, int], ...]) -> int:
    return sum(width + 2 * CELL_PADDING for _, _, width in columns)


WIDE_FROM = _row_width(WIDE_COLUMNS)
NARROW_FROM = _row_width(NARROW_COLUMNS)


HEALTH_STYLES = {
    ProviderState.OK: "green",
    ProviderState.PROBING: "yellow",
    ProviderState.PARTIAL: "yellow",
    ProviderState.COOLING: "bold yellow",
    ProviderState.DISABLED: "bold red",
    ProviderState.OFF: "dim",
    ProviderState.NO_KEY: "red",
}
WAITING = (ProviderState.COOLING, ProviderState.PARTIAL, ProviderState.DISABLED)  # shown with a countdown


THRESHOLD_MARK = "│"


def quota_bar(
    window: QuotaWindow | None, now: float, width: int = 8, resets: bool = True, threshold: float | None = None
) -> Text:
    """What is left of a window as a bar; `threshold` (0..1 used, where routing steps off) marks its cell."""
    if window is None or window.limit is None or window.remaining is None:
        return Text("-", style="dim")
    fraction = window.fraction_left or 0.0
    filled = round(fraction * width)
    style = "green" if fraction > 0.5 else "yellow" if fraction > 0.15 else "red"
    mark = threshold_cell(threshold, width)
    text = Text()
    for cell in range(width):
        if cell == mark:
            text.append(THRESHOLD_MARK, style=f"bold {style}" if cell < filled else "bold")
        elif cell < filled:
            text.append("█", style=style)
        else:
            text.append("░", style="dim")
    text.append(f" {tokens(window.remaining)}/{tokens(window.limit)}")
    if resets and window.reset_at and window.reset_at > now:
        text.append(f" ↻{countdown(window.reset_at, now)}", style="dim")
    return text


def threshold_cell(threshold: float | None, width: int) -> int | None:
    """The bar cell where `threshold` of the window is used (the bar shows what is left, filled from the left);
    None when it falls off the bar (a threshold of 100 %)."""
    if threshold is None:
        return None
    cell = round((1.0 - threshold) * width)
    return cell if 0 < cell < width else None


def health_text(view: ProviderView, now: float, width: int) -> Text:
    """The state with its countdown, then the cause, cut with an ellipsis at `width` (never mid-countdown)."""
    state = view.state
    label = "no key" if state is ProviderState.NO_KEY else state.value
    if state in WAITING and view.until:
        label += f" {countdown(view.until, now)}"
    text = Text(label, style=HEALTH_STYLES.get(state, ""))
    if state is ProviderState.PARTIAL:  # some variants cooling: name them, the others still serve
        cooling = view.cooling_variants
        which = cooling[0] if len(cooling) == 1 else f"{len(cooling)} of {len(view.variants)} variants"
        text.append(f" · {which} cooling", style="yellow")
    if view.stepped_off and state not in (ProviderState.OFF, ProviderState.NO_KEY):
        text.append(f" · stepped off: {view.stepped_off}", style="yellow")
    if view.reason and state not in (ProviderState.OK, ProviderState.OFF, ProviderState.NO_KEY):
        text.append(" · ", style="dim")
        text.append(view.reason, style="dim")
    text.truncate(width, overflow="ellipsis")
    return text


def provider_cells(view: ProviderView, index: int, now: float, columns: Columns = WIDE_COLUMNS) -> dict[str, Text]:
    """Every cell of one provider's row, by column key, sized for `columns`."""
    widths = {key: width for _, key, width in columns}
    quota = view.quota
    if quota is not None:
        width, resets = (8, True) if columns is WIDE_COLUMNS else (4, False)
        threshold = view.steer.quota_threshold
        requests = quota_bar(quota.requests, now, width, resets, threshold)
        token_bar = quota_bar(quota.tokens, now, width, resets, threshold)
    else:  # no rate-limit headers from this upstream: show what we counted ourselves
        limits = view.steer.local_limits
        rpm = f"/{limits.rpm} rpm" if limits.rpm else "/min"
        tpm = f"/{tokens(limits.tpm)} tpm" if limits.tpm else "/min"
        style = "yellow" if view.stepped_off else "dim"
        requests = Text(f"local {view.local_requests}{rpm}", style=style)
        token_bar = Text(f"local {tokens(view.local_tokens)}{tpm}", style=style)
    for bar, key in ((requests, "rq"), (token_bar, "tq")):
        if key in widths:
            bar.truncate(widths[key], overflow="ellipsis")
    return {
        "n": Text(str(index), style="bold"),
        "name": Text(view.name, style="bold" if view.enabled else "dim", overflow="ellipsis"),
        "on": Text("●", style="green") if view.enabled else Text("○", style="dim"),
        "health": health_text(view, now, widths.get("health", 30)),
        "p50": Text(ms(view.latency_p50)),
        "err": Text(f"{view.error_rate:.0%}", style="red" if view.error_rate > 0.2 else ""),
        "reqs": Text(str(view.requests)),
        "rq": requests,
        "tq": token_bar,
    }


class ProvidersPanel(DataTable[Text]):
    DEFAULT_CSS = """
    ProvidersPanel { height: auto; max-height: 12; }
    """

    def __init__(self, engine: Engine, clock: Callable[[], float] = time.time, **kwargs: object) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, cell_padding=CELL_PADDING, **kwargs)  # type: ignore[arg-type]
        self.engine = engine
        self.clock = clock  # countdowns and rolling statistics are relative to it
        self.border_title = "Providers"
        self.columns_shown: Columns | None = None  # None before the first layout

    def on_mount(self) -> None:
        self._build(WIDE_COLUMNS)  # the first resize switches to a narrower set if needed

    def on_resize(self) -> None:
        width = self.scrollable_content_region.width
        columns = WIDE_COLUMNS if width >= WIDE_FROM else NARROW_COLUMNS if width >= NARROW_FROM else COMPACT_COLUMNS
        if columns is not self.columns_shown:
            self._build(columns)

    def _build(self, columns: Columns) -> None:
        """(Re)create the columns and rows for a column set, keeping the selected row."""
        row = self.cursor_row
        self.columns_shown = columns
        self.clear(columns=True)
        for label, key, width in columns:
            self.add_column(label, key=key, width=width)
        now = self.clock()
        for index, view in enumerate(self.engine.view().providers, start=1):
            cells = provider_cells(view, index, now, columns)
            self.add_row(*(cells[key] for _, key, _ in columns), key=view.name)
        self.move_cursor(row=row)

    @property
    def narrow(self) -> bool:
        return self.columns_shown is not WIDE_COLUMNS

    def refresh_rows(self) -> None:
        columns = self.columns_shown
        if columns is None:
            return
        now = self.clock()
        for index, view in enumerate(self.engine.view().providers, start=1):
            cells = provider_cells(view, index, now, columns)
            for _, key, _ in columns:
                self.update_cell(view.name, key, cells[key])

    @property
    def selected_provider(self) -> str | None:
        names = self.engine.provider_names
        return names[self.cursor_row] if names and 0 <= self.cursor_row < len(names) else None
