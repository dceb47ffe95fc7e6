"""The providers panel: one row per provider in priority order, updated in place about once a second."""

from __future__ import annotations

import time

from rich.text import Text
from textual.widgets import DataTable

from ccm_tui.format import countdown, ms, tokens
from ccm_tui.routing.engine import Engine
from ccm_tui.routing.limits import QuotaWindow

# (label, key, width): fixed widths, because cells change every second and must not be cut or jump.
COLUMNS = (
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
HEALTH_STYLES = {
    "ok": "green",
    "probing": "yellow",
    "partial": "yellow",
    "cooling": "bold yellow",
    "disabled": "bold red",
    "off": "dim",
    "no-key": "red",
}


def quota_bar(window: QuotaWindow | None, now: float, width: int = 8) -> Text:
    if window is None or window.limit is None or window.remaining is None:
        return Text("-", style="dim")
    fraction = window.fraction_left or 0.0
    filled = round(fraction * width)
    style = "green" if fraction > 0.5 else "yellow" if fraction > 0.15 else "red"
    text = Text("█" * filled, style=style)
    text.append("░" * (width - filled), style="dim")
    text.append(f" {tokens(window.remaining)}/{tokens(window.limit)}")
    if window.reset_at and window.reset_at > now:
        text.append(f" ↻{countdown(window.reset_at, now)}", style="dim")
    return text


def provider_cells(engine: Engine, index: int, name: str, now: float) -> tuple[Text, ...]:
    health = engine.health[name]
    state, until, reason = engine.provider_state(name)
    label = {"no-key": "no key"}.get(state, state)
    if state in ("cooling", "partial", "disabled") and until:
        label += f" {countdown(until, now)}"
    health_text = Text(label, style=HEALTH_STYLES.get(state, ""))
    if reason and state not in ("ok", "off"):
        health_text.append(f" {reason}", style="dim")
    p50 = health.latency_p50(now)
    error_rate = health.error_rate(now)
    quota = health.quota
    if quota is not None:
        requests, token_bar = quota_bar(quota.requests, now), quota_bar(quota.tokens, now)
    else:  # no rate-limit headers from this upstream: show what we counted ourselves
        count, used = health.local_counts(now, 60.0)
        requests = Text(f"local {count}/min", style="dim")
        token_bar = Text(f"local {tokens(used)}/min", style="dim")
    return (
        Text(str(index), style="bold"),
        Text(name, style="bold" if health.enabled else "dim"),
        Text("●", style="green") if health.enabled else Text("○", style="dim"),
        health_text,
        Text(ms(p50)),
        Text(f"{error_rate:.0%}", style="red" if error_rate > 0.2 else ""),
        Text(str(health.requests)),
        requests,
        token_bar,
    )


class ProvidersPanel(DataTable[Text]):
    DEFAULT_CSS = """
    ProvidersPanel { height: auto; max-height: 12; }
    """

    def __init__(self, engine: Engine, **kwargs: object) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)  # type: ignore[arg-type]
        self.engine = engine
        self.border_title = "Providers"

    def on_mount(self) -> None:
        for label, key, width in COLUMNS:
            self.add_column(label, key=key, width=width)
        now = time.time()
        for index, name in enumerate(self.engine.providers, start=1):
            self.add_row(*provider_cells(self.engine, index, name, now), key=name)

    def refresh_rows(self) -> None:
        now = time.time()
        for index, name in enumerate(self.engine.providers, start=1):
            for (_, column, _), cell in zip(COLUMNS, provider_cells(self.engine, index, name, now), strict=True):
                self.update_cell(name, column, cell)

    @property
    def selected_provider(self) -> str | None:
        names = list(self.engine.providers)
        return names[self.cursor_row] if names and 0 <= self.cursor_row < len(names) else None
