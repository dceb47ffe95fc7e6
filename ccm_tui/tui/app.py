"""CcmApp: the Textual dashboard and the proxy in one process and one event loop.

The proxy's lifecycle is service.py's, shared with `ccm-tui serve`: the socket is bound before the screen
switches (a busy port fails cleanly); on mount the app starts the service (keys, prices, history: all off
the loop, then hypercorn as a task of the running App). Bus events are buffered (stamped with the app
clock) and drawn every 100 ms; panels refresh in place once a second. Quitting (q, ctrl+q, SIGTERM,
SIGHUP) stops accepting, drains in-flight streams, closes clients and flushes history; any other exit (an
error, a test harness) does the same on unmount, and so does the terminal going away (tui/terminal.py).

The layout follows the terminal size (tui/layout.py): CSS classes on the dashboard switch the breakpoints.

Everything on screen that depends on the time reads `clock` (default time.time), so tests and screenshots
can pin it.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from textual import events
from textual.app import App, ComposeResult, SystemCommand
from textual.containers import Horizontal, Vertical
from textual.driver import Driver
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from ccm_tui.config import Settings
from ccm_tui.core.events import (
    BudgetChanged,
    Event,
    ProviderChange,
    ProviderChanged,
    RequestFinished,
    RequestHeld,
    RequestRejected,
    RequestStarted,
    RoutingChanged,
    SpendAlert,
    SteppedOff,
)
from ccm_tui.core.scrub import ScrubbingFilter, remember_secret
from ccm_tui.format import LAUNCH_COMMAND, claude_environment, countdown, upstream_endpoint, usd
from ccm_tui.proxy.server import BindError
from ccm_tui.runtime import Runtime, StartupError
from ccm_tui.service import Service, bind, instance_path
from ccm_tui.telemetry.history_reader import HistoryQueries, HistoryReader
from ccm_tui.tui.commands import COMMANDS, bindings
from ccm_tui.tui.keymap import keymap
from ccm_tui.tui.layout import Layout, Width, layout_for
from ccm_tui.tui.logs import TuiLogHandler, configure_file_logging
from ccm_tui.tui.recent_errors import RecentErrors
from ccm_tui.tui.screens.detail import RequestDetail
from ccm_tui.tui.screens.help import HelpScreen
from ccm_tui.tui.screens.history import HistoryScreen, NoHistory
from ccm_tui.tui.screens.keys import KeyEntry, KeyResult
from ccm_tui.tui.screens.provider import ProviderDetail, provider_renderable
from ccm_tui.tui.screens.sessions import SessionsScreen
from ccm_tui.tui.sessions import SessionBook, in_session, short_id
from ccm_tui.tui.widgets.header import Status, StatusBar
from ccm_tui.tui.widgets.history_banner import HistoryBanner
from ccm_tui.tui.widgets.lines import notice_message, notice_text, rejected_text, request_text, stamp
from ccm_tui.tui.widgets.providers import ProvidersPanel
from ccm_tui.tui.widgets.requests import Entry, RequestLog
from ccm_tui.tui.widgets.spend import SpendPanel

log = logging.getLogger(__name__)

Notice = tuple[str, str]  # (level, message) for a stream line that is not a bus event

DRAW_SECONDS = 0.1
MAX_HELD_WHILE_MODAL = 5000
PANEL_SECONDS = 1.0


class CcmApp(App[int]):
    CSS_PATH = Path(__file__).parent / "ccm.tcss"  # absolute: subclasses (tests) live elsewhere
    TITLE = "ccm-tui"
    BINDINGS = [*bindings()]  # a fresh list of the wider type App declares (lists are invariant)

    def __init__(
        self,
        settings: Settings,
        sock: socket.socket,
        *,
        demo: bool = False,
        demo_reason: str = "",
        synthetic_client: bool = True,
        environ: dict[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        display_url: str | None = None,
        state_file: Path | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.service = Service(settings, sock, demo=demo, environ=environ, clock=clock, state_file=state_file)
        self.base_url = self.service.base_url
        # What the screen tells users to point Claude Code at; only screenshots pin it to a fixed port.
        self.display_url = display_url or self.base_url
        self.clock = clock
        self.demo = demo
        self.demo_reason = demo_reason
        self.synthetic_client = synthetic_client
        self.runtime: Runtime | None = None
        self.ready = asyncio.Event()
        self.requests_today = 0
        self._pending: list[tuple[float, Event | Notice]] = []  # (when, what), drawn by _draw_pending
        self._log_handler: TuiLogHandler | None = None
        self.sessions = SessionBook()
        self.recent_errors = RecentErrors()
        self.endpoints: dict[str, str] = {}  # provider -> host:port, to name where a failure happened
        self.layout: Layout | None = None
        self.spend_shown: bool | None = None  # the user's choice (g); None = the layout's default
        self._was_paused = False
        self.history_queries: HistoryQueries | None = None  # None: no history (off, or the demo's own store)

    def get_driver_class(self) -> type[Driver]:
        driver = super().get_driver_class()
        from textual.drivers.linux_driver import LinuxDriver

        if issubclass(driver, LinuxDriver):  # not Windows, not a web or headless run
            from ccm_tui.tui.terminal import HangupSafeDriver

            return HangupSafeDriver
        return driver

    # --- lifecycle -------------------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        yield HistoryBanner(id="history-banner")
        yield Static(f"Starting ccm-tui on {self.display_url} …", id="starting")
        yield Footer()

    async def on_mount(self) -> None:
        self.set_keymap(keymap(self.settings))  # [keys]; cli.py has already reported any problem in it
        # SIGINT stays Textual's (ctrl+c is a key here and quits like q); q, ctrl+q and ctrl+c quit as these do.
        self.service.stop_on_signals(
            (signal.SIGTERM, signal.SIGHUP), lambda: self.run_worker(self.action_quit(), exclusive=True)
        )
        self._log_handler = TuiLogHandler(asyncio.get_running_loop(), self._notice)
        self._log_handler.addFilter(ScrubbingFilter())
        logging.getLogger().addHandler(self._log_handler)
        runtime = await self.service.start()
        self.runtime = runtime
        if runtime.history is not None and runtime.history_path is not None and not self.demo:
            self.history_queries = HistoryQueries(HistoryReader(runtime.history_path))
        self.requests_today = runtime.requests_before_start
        self.endpoints = {p.name: where for p in runtime.settings.providers if (where := upstream_endpoint(p))}
        runtime.bus.subscribe(self._on_event)
        await self.query_one("#starting").remove()
        await self.mount(self._dashboard(runtime), before=self.query_one(Footer))
        self.apply_layout(self.size.width, self.size.height)
        if runtime.recent_before_start:  # where the last session left off (from history)
            self.query_one(RequestLog).append([self._request_entry(e) for e in runtime.recent_before_start])
            self._notice("ok", f"{len(runtime.recent_before_start)} earlier requests loaded from history")
        if self.demo and self.synthetic_client:
            self.service.start_synthetic_client()
        self._notice("ok", self._welcome())
        self.set_interval(DRAW_SECONDS, self._draw_pending)
        self.set_interval(PANEL_SECONDS, self.refresh_panels)
        self.refresh_panels()
        self.query_one(RequestLog).focus()
        self._register_modal_styles()
        self.ready.set()

    def _register_modal_styles(self) -> None:
        """Parse the modal screens' CSS now. Textual adds a class's DEFAULT_CSS when its first instance is
        registered and then restyles every widget: done lazily, the first `?`, `k` or `enter` under load
        stalls for ~300 ms (measured by bench/)."""
        from textual.containers import VerticalScroll
        from textual.widgets import Button, Input, Label

        samples = (HelpScreen(self.display_url), VerticalScroll(), Input(), Button(), Label())
        unconstructed: tuple[type[Screen[Any]], ...] = (
            RequestDetail,
            KeyEntry,
            ProviderDetail,
            SessionsScreen,
            HistoryScreen,
        )
        for node in (*samples, *(cls.__new__(cls) for cls in unconstructed)):
            for read_from, css, tie_breaker, scope in node._get_default_css():
                self.stylesheet.add_source(
                    css, read_from=read_from, is_default_css=True, tie_breaker=tie_breaker, scope=scope
                )
        self.stylesheet.reparse()
        self.stylesheet.update(self)

    def _dashboard(self, runtime: Runtime) -> Vertical:
        providers = ProvidersPanel(runtime.engine, self.clock, id="providers")
        requests = RequestLog(id="requests")
        spend = SpendPanel(runtime.spend, runtime.engine, self.clock, id="spend")
        if self.demo:  # simulated providers and money: say so on every panel, not only in the header
            providers.border_title = "Providers · demo (simulated)"
            requests.border_title = "Requests · demo"
            spend.border_title = "Spend · demo, not real money"
        return Vertical(providers, Horizontal(requests, spend, id="main"), id="dashboard")

    def _welcome(self) -> str:
        copy = self._key_for("copy-env")
        run = f"Run Claude Code through it with `{LAUNCH_COMMAND}` in another pane ({copy} copies the env line)"
        if self.demo:
            why = f" ({self.demo_reason})" if self.demo_reason else ""
            return f"Demo mode{why}: three simulated providers and a synthetic client. {run}."
        return f"Listening on {self.display_url}. {run}."

    # --- layout ----------------------------------------------------------------------------------------------
    def on_resize(self, event: events.Resize) -> None:
        self.apply_layout(event.size.width, event.size.height)

    def apply_layout(self, columns: int, rows: int) -> None:
        """Switch the dashboard's breakpoint classes (tui/layout.py) for a terminal of this size."""
        layout = layout_for(columns, rows)
        self.layout = layout
        for bar in self.query(StatusBar):
            bar.set_class(layout.tiny, "one-line")
        dashboard = self.query("#dashboard")
        if not dashboard:
            return
        board = dashboard.first()
        for width in Width:
            board.set_class(layout.width is width, width.value)
        board.set_class(layout.short, "short")
        shown = layout.spend_by_default if self.spend_shown is None else self.spend_shown
        board.set_class(not shown, "spend-hidden")

    async def action_quit(self) -> None:
        if self.service.stopping.is_set():
            return
        self.service.request_stop()
        runtime = self.runtime
        in_flight = runtime.engine.view().in_flight if runtime is not None else 0
        if in_flight:
            self.notify(f"Draining {in_flight} in-flight request(s)…", timeout=30)
        await self._stop_service()
        self.exit(0)

    async def on_unmount(self) -> None:
        # Exits that bypass action_quit (an exception, App.exit from a test or a screenshot run) must still
        # free the port, close the upstream clients and flush history.
        await self._stop_service()

    async def _stop_service(self) -> None:
        await self.service.stop()  # idempotent: action_quit and on_unmount may overlap
        queries, self.history_queries = self.history_queries, None
        if queries is not None:
            await queries.close()
        if self._log_handler is not None:
            logging.getLogger().removeHandler(self._log_handler)
            self._log_handler = None

    # --- events -> screen ------------------------------------------------------------------------------------
    def _on_event(self, event: Event) -> None:
        self._pending.append((self.clock(), event))

    def _notice(self, level: str, message: str) -> None:
        """A line for the stream outside the bus: "ok", "warning" or "error"."""
        self._pending.append((self.clock(), (level, message)))

    def _draw_pending(self) -> None:
        # Not `_flush`: Textual's App._flush(stderr) is what print(..., flush=True) calls while the app runs.
        if not self._pending or not self.is_running:  # shutting down: the dashboard may be gone already
            return
        if len(self.screen_stack) > 1 and len(self._pending) < MAX_HELD_WHILE_MODAL:
            # A modal is open: redrawing the dimmed dashboard under it costs most of a frame per batch and
            # makes keys in the modal lag under load. Hold the lines and draw them when it closes.
            return
        pending, self._pending[:] = list(self._pending), []
        lines: list[Entry] = []
        banner = self.query_one(HistoryBanner)
        for at, item in pending:
            if not isinstance(item, tuple):
                banner.show_event(item)
            if isinstance(item, RequestFinished):
                self.requests_today += 1
                self.sessions.add(item)
                self.recent_errors.add(item)
                lines.append(self._request_entry(item))
            elif isinstance(item, RequestRejected):
                lines.append(Entry(rejected_text(item)))
            elif isinstance(item, tuple):
                style = {"ok": "green", "warning": "yellow", "error": "bold red"}.get(item[0], "yellow")
                lines.append(notice_entry(item[1], style, at))
            elif not isinstance(item, RequestStarted):
                if isinstance(item, SpendAlert):
                    self._alert(item)
                notice = describe(item, at, self._was_paused, self.endpoints)
                if isinstance(item, RoutingChanged):
                    self._was_paused = item.paused
                if notice:
                    lines.append(notice_entry(*notice, at))
        self.query_one(RequestLog).append(lines)

    def _request_entry(self, event: RequestFinished) -> Entry:
        full = request_text(event, endpoints=self.endpoints)
        return Entry(full, event, request_text(event, compact=True, endpoints=self.endpoints))

    def _alert(self, alert: SpendAlert) -> None:
        """A crossing gets attention: a toast and the terminal bell (SpendTracker publishes once per crossing)."""
        window = {"hour": "hourly", "day": "daily"}.get(alert.window, alert.window)
        message = f"{window.capitalize()} spend {usd(alert.spent_usd)} crossed the {usd(alert.threshold_usd)} alert."
        self.notify(message, title="Spend alert", severity="error", timeout=15)
        self.bell()

    def refresh_panels(self) -> None:
        """Redraw the status bar, providers and spend now (a timer also does it once a second)."""
        runtime = self.runtime
        if runtime is None or not self.is_running:
            return
        view = runtime.engine.view()
        self.query_one(StatusBar).show(
            Status(
                self.display_url,
                view.strategy,
                view.paused,
                self.requests_today,
                runtime.spend.spent_today(),
                view.in_flight,
                self.demo,
                self.settings.server.auth_key_env,
                self._key_for("copy-env"),
                view.budget,
                view.held,
                self.clock(),
            )
        )
        self.query_one(ProvidersPanel).refresh_rows()
        self.query_one(SpendPanel).refresh_data()

    # --- actions ---------------------------------------------------------------------------------------------
    def _engine(self):
        return self.runtime.engine if self.runtime is not None else None

    def action_toggle_provider(self, number: int) -> None:
        engine = self._engine()
        names = engine.provider_names if engine else ()
        if not 1 <= number <= len(names):
            self.notify(f"There is no provider {number}.", severity="warning")
            return
        engine.toggle(names[number - 1])
        self.refresh_panels()

    def action_cycle_strategy(self) -> None:
        engine = self._engine()
        if engine:
            engine.cycle_strategy()
            self.refresh_panels()

    def action_toggle_pause(self) -> None:
        engine = self._engine()
        if engine:
            engine.toggle_paused()
            self.refresh_panels()

    def action_set_key(self) -> None:
        runtime = self.runtime
        if runtime is None:
            return
        name = self.query_one(ProvidersPanel).selected_provider
        if name is None:
            return
        provider = runtime.engine.providers[name]
        source = runtime.key_sources.get(name, "none")
        self.push_screen(KeyEntry(provider.settings, source), self._key_entered)

    def _key_entered(self, result: KeyResult | None) -> None:
        if result is None or self.runtime is None:
            return
        remember_secret(result.key)
        self.runtime.engine.set_api_key(result.provider, result.key)
        self.runtime.key_sources[result.provider] = "keyring" if result.stored else "session"
        where = "stored in the OS keyring" if result.stored else "kept for this session only"
        self._notice("ok", f"API key for {result.provider} {where}; in use now.")
        self.refresh_panels()

    def action_request_detail(self) -> None:
        if isinstance(self.focused, ProvidersPanel):
            return
        self.query_one(RequestLog).open_selected()

    def on_request_log_selected(self, message: RequestLog.Selected) -> None:
        self.push_screen(RequestDetail(message.request, self.endpoints))

    def on_data_table_row_selected(self, message: DataTable.RowSelected) -> None:
        if isinstance(message.data_table, ProvidersPanel) and message.row_key.value is not None:
            self.open_provider(str(message.row_key.value))

    def open_provider(self, name: str) -> None:
        runtime = self.runtime
        if runtime is None:
            return
        settings = next(p for p in runtime.settings.providers if p.name == name)

        def render() -> Any:
            view = runtime.engine.provider_view(name)
            source = runtime.key_sources.get(name, "none")
            return provider_renderable(view, settings, source, self.recent_errors.of(name), self.clock(), self.demo)

        def retry() -> None:
            runtime.engine.retry_now(name)
            self.notify(f"{name}: cool-down ended; the next request tries it first.", timeout=4)
            self.refresh_panels()

        self.push_screen(ProviderDetail(name, render, retry))

    def action_sessions(self) -> None:
        engine = self._engine()
        pins = engine.view().pins if engine is not None else ()
        self.push_screen(SessionsScreen(self.sessions, self.clock, self.demo, pins), self._session_chosen)

    def action_history(self) -> None:
        absent = NoHistory.DEMO if self.demo else NoHistory.DISABLED
        self.push_screen(HistoryScreen(self.history_queries, absent=absent, clock=self.clock))

    def _session_chosen(self, session_id: str | None) -> None:
        if session_id is None:
            return
        log = self.query_one(RequestLog)
        label = f"session {short_id(session_id)} · esc: all"
        log.set_filter(lambda line: in_session(line.request, session_id), label)
        log.focus()

    def action_clear_filter(self) -> None:
        log = self.query_one(RequestLog)
        if log.filter_label:
            log.set_filter(None)

    def action_lift_budget(self) -> None:
        engine = self._engine()
        if engine is None:
            return
        budget = engine.view().budget
        if budget is None or not budget.configured:
            self.notify("No budget is configured ([budget] daily_usd or hourly_usd).", severity="warning")
            return
        lifted = engine.lift_budget()
        until = time.strftime("%H:%M", time.localtime(lifted.lifted_until)) if lifted.lifted_until else "midnight"
        self.notify(f"Budget guard lifted until {until} local: requests are routed as usual.", timeout=6)
        self.refresh_panels()

    def action_copy_env(self) -> None:
        line = claude_environment(self.display_url, self.settings.server.auth_key_env)
        self.copy_to_clipboard(line)
        self.notify(f"Copied: {line}", title="Clipboard (OSC 52)", timeout=6)

    def action_toggle_spend(self) -> None:
        layout = self.layout or layout_for(self.size.width, self.size.height)
        current = layout.spend_by_default if self.spend_shown is None else self.spend_shown
        self.spend_shown = not current
        self.apply_layout(self.size.width, self.size.height)

    def _key_for(self, binding_id: str) -> str:
        """The key a binding has now (a `[keys]` remap included)."""
        keys = self.settings.keys.get(binding_id)
        if keys:
            return keys[0]
        return next((c.keys.split(",")[0] for c in COMMANDS if c.id == binding_id), "")

    def terminal_gone(self) -> None:
        """The terminal went away (pane or SSH session closed): drain, flush and exit as q would."""
        log.info("the terminal went away: stopping")
        self.run_worker(self.action_quit(), exclusive=True)

    def action_follow(self) -> None:
        self.query_one(RequestLog).follow()

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.display_url, self.settings.server.auth_key_env))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for command in COMMANDS:
            if command.id in ("toggle-provider", "quit", "focus-next"):
                continue
            yield SystemCommand(command.title, command.help, getattr(self, f"action_{command.action}"))
        engine = self._engine()
        for number, name in enumerate(engine.provider_names if engine else (), start=1):
            yield SystemCommand(
                f"Toggle {name}",
                f"Switch provider {number} ({name}) on or off",
                lambda n=number: self.action_toggle_provider(n),
            )


CHANGE_WORDS = {
    ProviderChange.ON: "switched on",
    ProviderChange.RECOVERED: "recovered",
    ProviderChange.KEY_SET: "API key set",
    ProviderChange.RETRY_NOW: "retried now: its cool-down ended",
}


BUDGET_ACTIONS = {
    "refuse": "refusing new requests (b lifts it for today)",
    "cheapest": "only cheap providers until it resets (b lifts it for today)",
    "alert": "alert only, requests go on",
}


def notice_entry(message: str, style: str, at: float) -> Entry:
    """A notice for the stream: wrapped under its stamp when the pane is narrower than the message."""
    return Entry(notice_text(message, style, at), stamp=stamp(at), message=notice_message(message, style))


def describe(
    event: Event, now: float, was_paused: bool = False, endpoints: dict[str, str] | None = None
) -> tuple[str, str] | None:
    """A notice line for state changes worth seeing in the stream (message, style); countdowns from `now`,
    `was_paused` tells a resume from a strategy change, `endpoints` names where a failing provider lives."""
    if isinstance(event, ProviderChanged):
        target = event.provider + (f" [{event.variant}]" if event.variant and "/" not in event.variant else "")
        change = event.change
        where = (endpoints or {}).get(event.provider)
        cause = f"{event.reason} ({where})" if where else event.reason
        if change is ProviderChange.COOLING:
            return f"{target} cooling down {countdown(event.until, now)}: {cause}", "yellow"
        if change is ProviderChange.DISABLED:
            return f"{target} disabled {countdown(event.until, now)}: {cause}", "bold red"
        if change is ProviderChange.OFF:
            return f"{event.provider} switched off", "dim"
        return f"{target} {CHANGE_WORDS[change]}", "green"
    if isinstance(event, RoutingChanged):
        if event.paused and not was_paused:
            return "proxy PAUSED: new requests get 529 overloaded until you resume (p)", "bold red"
        if was_paused and not event.paused:
            return "proxy resumed: serving requests again", "green"
        return f"strategy {event.strategy}", "cyan"
    if isinstance(event, SteppedOff):
        return event.text, "yellow" if event.stepped_off else "green"
    if isinstance(event, BudgetChanged):
        if event.lifted:
            return "budget guard lifted for the rest of the day (b)", "green"
        if event.active:
            return f"{event.message}: {BUDGET_ACTIONS.get(event.action, event.action)}", "bold red"
        return "budget: under every cap again", "green"
    if isinstance(event, RequestHeld):
        if event.until is None:
            return None  # the request goes on: its line follows when it finishes
        why = f": {event.reason}" if event.reason else ""
        return f"{event.request_id} held — retry in {countdown(event.until, now)}{why}", "yellow"
    if isinstance(event, SpendAlert):
        label = {"hour": "hourly", "day": "daily"}.get(event.window, event.window)
        return f"{label} spend {usd(event.spent_usd)} crossed the {usd(event.threshold_usd)} alert", "bold red"
    return None


def run_tui(settings: Settings, demo: bool = False) -> int:
    configure_file_logging()
    demo_reason = ""
    if not settings.providers and not demo:
        demo, demo_reason = True, "no providers configured: set a key or write a config to use real ones"
    try:
        sock = bind(settings)
    except (BindError, StartupError) as exc:
        print(f"ccm-tui: {exc}", file=sys.stderr)
        return 2
    app = CcmApp(settings, sock, demo=demo, demo_reason=demo_reason, state_file=instance_path())
    started = time.monotonic()
    code = app.run()
    if app.return_code not in (None, 0):
        return app.return_code
    log.info("ccm-tui ran for %.0f s", time.monotonic() - started)
    return code or 0
