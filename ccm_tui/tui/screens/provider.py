"""Provider detail (enter on a provider row): where it lives, its state and cause, where its key comes from,
each key of its pool (masked label, source, state, countdown), tier -> model mapping with each variant's state,
quota windows and the threshold it steps off at, recent errors, and `r` to retry it now.

Reads the engine's read-only view every second; `r` calls the engine's control API (retry_now), which ends
the provider's cool-downs and disable so the next request tries it first.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from ccm_tui.config import ProviderSettings
from ccm_tui.core.events import AttemptRecord
from ccm_tui.core.states import ProviderState
from ccm_tui.format import attempt_cause, countdown, tokens, upstream_endpoint
from ccm_tui.routing.limits import QuotaWindow
from ccm_tui.routing.views import KeyView, ProviderView, Steer
from ccm_tui.tui.widgets.providers import HEALTH_STYLES, health_text

KEY_SOURCES = {
    "env": "from the environment (${env})",
    "keyring": "from the OS keyring",
    "session": "entered this session (memory only)",
    "none": "none",
}


def key_source_text(settings: ProviderSettings, source: str) -> str:
    words = KEY_SOURCES.get(source, source).replace("${env}", f"${settings.api_key_env or '?'}")
    if source == "none" and settings.kind in ("bedrock", "vertex"):
        return "cloud credentials (no API key)"
    return words


def _window(window: QuotaWindow | None, now: float) -> str:
    if window is None or window.limit is None or window.remaining is None:
        return "-"
    resets = f", resets in {countdown(window.reset_at, now)}" if window.reset_at and window.reset_at > now else ""
    return f"{tokens(window.remaining)} of {tokens(window.limit)} left{resets}"


KEY_SOURCE_WORDS = {"env": "environment", "keyring": "OS keyring", "session": "this session"}


def steering_text(steer: Steer, now: float) -> str:
    """Where it steps off and how much of its most-used window is used (the state row says it stepped off)."""
    words = f"steps off at {steer.quota_threshold * 100:.0f} % of a window used"
    if steer.quota_used is not None and steer.quota_window:
        words += f"; now {steer.quota_used * 100:.0f} % of {steer.quota_window}"
        if steer.quota_resets_at and steer.quota_resets_at > now:
            words += f" (resets in {countdown(steer.quota_resets_at, now)})"
    return words


def local_limits_text(steer: Steer) -> str | None:
    limits = steer.local_limits
    if not limits:
        return None
    parts = []
    if limits.rpm:
        parts.append(f"{steer.local_requests_minute}/{limits.rpm} requests/min")
    if limits.tpm:
        parts.append(f"{tokens(steer.local_tokens_minute)}/{tokens(limits.tpm)} tokens/min")
    if limits.rpd:
        parts.append(f"{steer.local_requests_day}/{limits.rpd} requests/day")
    return ", ".join(parts) + " (counted here)"


def key_state(key: KeyView, now: float) -> Text:
    label = Text(key.state.value, style=HEALTH_STYLES.get(key.state, ""))
    if key.until and key.until > now:
        label.append(f" {countdown(key.until, now)}")
    return label


def keys_table(view: ProviderView, now: float) -> Table:
    table = Table(title=f"keys ({view.steer.key_rotation.value})", title_justify="left", expand=True, show_edge=False)
    for column in ("key (→ next)", "from", "state", "served", "last failure"):
        table.add_column(column, overflow="fold")
    for key in view.keys:
        table.add_row(
            Text.assemble(("→ " if key.next else "  ", "bold cyan"), key.label),
            KEY_SOURCE_WORDS.get(key.source, key.source),
            key_state(key, now),
            str(key.served),
            Text(key.reason, style="dim"),
        )
    return table


def provider_renderable(
    view: ProviderView,
    settings: ProviderSettings,
    key_source: str,
    errors: list[AttemptRecord],
    now: float,
    demo: bool = False,
) -> RenderableType:
    where = upstream_endpoint(settings) or "-"
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="dim", justify="right", no_wrap=True)
    facts.add_column()
    facts.add_row("kind", f"{settings.kind}" + ("  (simulated: demo mode)" if demo else ""))
    facts.add_row("upstream", where)
    facts.add_row("state", health_text(view, now, 400))
    facts.add_row("switched", "on" if view.enabled else "off (a number key switches it on)")
    facts.add_row("API key", key_source_text(settings, key_source))
    if view.quota is not None:
        facts.add_row("requests", _window(view.quota.requests, now))
        facts.add_row("tokens", _window(view.quota.tokens, now))
    else:
        facts.add_row(
            "quota",
            f"no rate-limit headers seen; here: {view.local_requests} req, "
            f"{tokens(view.local_tokens)} tokens in the last minute",
        )
    facts.add_row("steering", steering_text(view.steer, now))
    if (local := local_limits_text(view.steer)) is not None:
        facts.add_row("local limits", local)
    facts.add_row(
        "this session",
        f"{view.requests} requests, {view.errors} errors, "
        f"{tokens(view.usage_total.total_input_tokens)} in / {tokens(view.usage_total.output_tokens)} out",
    )

    variants = {v.key: v for v in view.variants}
    models = Table(title="models", title_justify="left", expand=True, show_edge=False)
    for column in ("asked for", "variant", "state", "last failure"):
        models.add_column(column, overflow="fold")
    for tier, choices in settings.models.items():
        for number, variant in enumerate(choices):
            seen = variants.get(variant.key)
            state = seen.state if seen else ProviderState.OK
            label = Text(state.value, style=HEALTH_STYLES.get(state, ""))
            if seen and seen.cooldown_until and seen.cooldown_until > now:
                label.append(f" {countdown(seen.cooldown_until, now)}")
            models.add_row(tier if number == 0 else "", variant.key, label, seen.reason if seen else "")
    if not settings.models:
        models.add_row("any claude-*", "the model asked for", "", "")

    recent = Table(title="recent errors", title_justify="left", expand=True, show_edge=False)
    for column in ("at", "variant", "status", "outcome", "cause"):
        recent.add_column(column, overflow="fold")
    for attempt in errors:
        recent.add_row(
            time.strftime("%H:%M:%S", time.localtime(attempt.started_at)),
            attempt.variant,
            str(attempt.status or "-"),
            attempt.outcome.value,
            attempt_cause(attempt, where),
        )
    if not errors:
        recent.add_row("", "", "", "", Text("none since ccm-tui started", style="dim"))
    hint = Text.assemble(("r", "bold"), " retry now (ends a cool-down or disable)   ", ("esc", "bold"), " close")
    page = Table.grid(expand=True)  # one renderable for the Static (it takes no rich Group)
    page.add_column()
    keys = (keys_table(view, now), Text("")) if view.keys else ()
    for part in (facts, Text(""), *keys, models, Text(""), recent, Text(""), hint):
        page.add_row(part)
    return page


class ProviderDetail(ModalScreen[None]):
    DEFAULT_CSS = """
    ProviderDetail { align: center middle; }
    ProviderDetail > VerticalScroll {
        width: 90%; max-width: 140; height: auto; max-height: 90%;
        border: round $accent; background: $surface; padding: 1 2;
    }
    """
    BINDINGS = [
        Binding("escape,q,enter", "dismiss", "Close", id="close-provider"),
        Binding("r", "retry_now", "Retry now", id="retry-now"),
    ]

    def __init__(self, name: str, render: Callable[[], RenderableType], retry: Callable[[], None]) -> None:
        super().__init__()
        self.provider = name
        self._body = render
        self._retry = retry

    def compose(self) -> ComposeResult:
        with VerticalScroll() as scroll:
            scroll.border_title = f"Provider {self.provider}  (esc to close)"
            yield Static(self._body(), id="provider-body")

    def on_mount(self) -> None:
        self.set_interval(1.0, self.redraw)

    def redraw(self) -> None:
        self.query_one("#provider-body", Static).update(self._body())

    def action_retry_now(self) -> None:
        self._retry()
        self.redraw()
