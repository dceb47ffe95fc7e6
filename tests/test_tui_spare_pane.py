"""The dashboard in a spare pane (issue 12), driven by Pilot: narrow layouts, following and selecting in the
stream, theme switches, the sessions view, provider detail with retry now, copying the environment line,
ctrl+c, requests the proxy refuses itself, causes with host:port, alerts, pause/resume, demo marks.

Real HTTP throughout: the official anthropic SDK (or httpx for malformed requests) in front of the app on an
ephemeral loopback port, mock upstreams behind it. Waits are on conditions, never fixed sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anthropic
import httpx
import pytest
from textual import events
from textual.message import Message
from textual.notifications import Notify
from textual.pilot import Pilot

from ccm_tui.config import AlertSettings, ProviderSettings, Settings
from ccm_tui.core.states import ProviderState
from ccm_tui.proxy.server import bind_socket
from ccm_tui.tui.app import CcmApp
from ccm_tui.tui.screens.detail import RequestDetail
from ccm_tui.tui.screens.provider import ProviderDetail
from ccm_tui.tui.screens.sessions import SessionsScreen
from ccm_tui.tui.widgets.providers import ProvidersPanel
from ccm_tui.tui.widgets.requests import PAUSED, RequestLog
from ccm_tui.tui.widgets.spend import SpendPanel
from tests.conftest import free_port
from tests.mocks.upstreams import AnthropicMock
from tests.test_tui import (
    ASK,
    UPSTREAM_KEY,
    anthropic_provider,
    ask,
    finished,
    request_lines,
    screen_text,
    stream_text,
    wait_for_line,
)
from tests.tui_snapshot_app import wait_until

NARROW = (80, 24)
WIDE = (160, 48)


class BellCountingApp(CcmApp):
    """Counts the terminal bells it rings (the headless test driver has no terminal to hear them)."""

    bells = 0

    def bell(self) -> None:
        self.bells += 1
        super().bell()


@asynccontextmanager
async def dashboard(
    providers: Sequence[ProviderSettings],
    size: tuple[int, int] = WIDE,
    messages: list[Message] | None = None,
    **settings: Any,
) -> AsyncIterator[tuple[BellCountingApp, Pilot[Any]]]:
    config = Settings(providers=tuple(providers), history_enabled=False, **settings)
    app = BellCountingApp(config, bind_socket("127.0.0.1", 0), environ={"UPSTREAM_KEY": UPSTREAM_KEY})
    hook = messages.append if messages is not None else None
    async with app.run_test(size=size, message_hook=hook) as pilot:
        await asyncio.wait_for(app.ready.wait(), 10)
        yield app, pilot


@pytest.fixture
async def first():
    async with AnthropicMock() as mock:
        yield mock


@pytest.fixture
async def second():
    async with AnthropicMock() as mock:
        yield mock


def toasts(messages: list[Message]) -> list[str]:
    return [m.notification.message for m in messages if isinstance(m, Notify)]


# --- narrow panes ------------------------------------------------------------------------------------------------


async def test_at_80_columns_the_serving_provider_and_status_lead_the_line_and_the_header_keeps_spend(
    first, second
) -> None:
    first.scenario, first.retry_after = "rate_limit", 30
    async with dashboard(
        [anthropic_provider("first", first.url), anthropic_provider("second", second.url)], NARROW
    ) as (
        app,
        pilot,
    ):
        await ask(app)
        await wait_until(pilot, lambda: request_lines(app))
        app.refresh_panels()
        await pilot.pause()
        screen = screen_text(app).splitlines()
        status = screen[0]
        assert "today 1 req" in status and "in flight 0" in status and "$" in status
        assert any(row.startswith("Claude Code: ccm-tui claude") for row in screen[:3])
        assert any("served by" in row for row in screen)  # the column header
        [line] = [row for row in screen if " 200 " in row]
        assert line.index("second") < line.index("sonnet-4-6") < line.index("after first 429")
        assert not app.query_one(SpendPanel).display  # secondary: behind g
        assert app.query_one("#dashboard").has_class("narrow", "short")


async def test_g_shows_and_hides_the_spend_panel(first) -> None:
    async with dashboard([anthropic_provider("first", first.url)], NARROW) as (app, pilot):
        spend = app.query_one(SpendPanel)
        assert not spend.display
        await pilot.press("g")
        assert spend.display
        await pilot.press("g")
        assert not spend.display
    async with dashboard([anthropic_provider("first", first.url)], WIDE) as (app, pilot):
        assert app.query_one(SpendPanel).display
        await pilot.press("g")
        assert not app.query_one(SpendPanel).display


async def test_resizing_across_a_breakpoint_switches_the_layout(first) -> None:
    async with dashboard([anthropic_provider("first", first.url)], WIDE) as (app, pilot):
        board = app.query_one("#dashboard")
        assert board.has_class("wide") and not board.has_class("short")
        await pilot.resize_terminal(120, 40)
        await wait_until(pilot, lambda: board.has_class("medium"))
        await pilot.resize_terminal(90, 20)
        await wait_until(pilot, lambda: board.has_class("narrow") and board.has_class("short"))
        assert not app.query_one(SpendPanel).display


async def test_long_notices_wrap_instead_of_being_cut(first) -> None:
    async with dashboard([anthropic_provider("first", first.url)], NARROW) as (app, pilot):
        await wait_for_line(pilot, app, "Listening on")
        # The end of the welcome notice is on screen, on a row of its own under the stamp.
        await wait_until(pilot, lambda: "copies the env line)." in screen_text(app))
        rows = screen_text(app).splitlines()
        first = next(n for n, row in enumerate(rows) if "Listening on" in row)
        assert "copies the env line)." in rows[first + 1] and "Listening on" not in rows[first + 1]


# --- following, selecting, theme ---------------------------------------------------------------------------------


async def test_wheel_up_pauses_following_and_end_resumes(first) -> None:
    async with dashboard([anthropic_provider("first", first.url)]) as (app, pilot):
        log = app.query_one(RequestLog)
        for number in range(80):
            app.runtime.bus.publish(finished(number))
        await wait_until(pilot, lambda: len(request_lines(app)) == 80)
        await wait_until(pilot, lambda: log.scroll_offset.y == log.max_scroll_y > 0)

        log.post_message(events.MouseScrollUp(log, 5, 5, 0, -1, 0, False, False, False))
        await wait_until(pilot, lambda: not log.following)
        held = log.scroll_offset.y
        assert held < log.max_scroll_y and log.border_subtitle == PAUSED
        assert PAUSED in screen_text(app)
        for number in range(80, 90):
            app.runtime.bus.publish(finished(number))
        await wait_until(pilot, lambda: len(request_lines(app)) == 90)
        await pilot.pause(0.3)  # several follow checks (every 0.2 s) pass: none may move the view
        assert log.scroll_offset.y == held

        await pilot.press("end")
        assert log.following and log.border_subtitle == ""
        await wait_until(pilot, lambda: log.scroll_offset.y == log.max_scroll_y)


async def test_clicking_a_line_selects_it_and_enter_opens_it(first) -> None:
    async with dashboard([anthropic_provider("first", first.url)]) as (app, pilot):
        log = app.query_one(RequestLog)
        for number in range(5):
            app.runtime.bus.publish(finished(number))
        await wait_until(pilot, lambda: len(request_lines(app)) == 5)
        # The border, the column header, then the stream's rows (the welcome notice first).
        await pilot.click(RequestLog, offset=(10, 1 + 1 + 3))
        assert log.cursor == 3 and not log.following
        clicked = log.rows[3][0].request
        assert clicked is not None and log.selected_request is clicked
        await pilot.press("enter")
        assert isinstance(app.screen, RequestDetail) and app.screen.event is clicked


async def test_switching_theme_repaints_lines_already_drawn(first) -> None:
    async with dashboard([anthropic_provider("first", first.url)]) as (app, pilot):
        log = app.query_one(RequestLog)
        app.runtime.bus.publish(finished(1))
        await wait_until(pilot, lambda: request_lines(app))
        app.theme = "textual-dark"
        await pilot.pause()
        before = next(iter(log.render_line(2))).style
        app.theme = "textual-light"
        await pilot.pause()
        after = next(iter(log.render_line(2))).style
        assert before is not None and after is not None
        assert after.bgcolor == log.rich_style.bgcolor != before.bgcolor


# --- sessions ----------------------------------------------------------------------------------------------------


async def test_v_lists_sessions_with_subagents_and_enter_filters_the_stream(first) -> None:
    async with dashboard([anthropic_provider("first", first.url)]) as (app, pilot):
        async with anthropic.AsyncAnthropic(base_url=app.base_url, api_key="dummy", max_retries=0) as sdk:
            main = {"x-claude-code-session-id": "aaaa1111-session", "x-claude-code-request-class": "main"}
            agent = {
                **main,
                "x-claude-code-request-class": "subagent",
                "x-claude-code-agent-id": "agent-77",
                "x-claude-code-agent-type": "Explore",
            }
            other = {"x-claude-code-session-id": "bbbb2222-session"}
            for headers in (main, main, agent, other):
                await sdk.messages.create(model="claude-sonnet-4-6", extra_headers=headers, **ASK)
        await wait_until(pilot, lambda: len(request_lines(app)) == 4)

        await pilot.press("v")
        assert isinstance(app.screen, SessionsScreen)
        await pilot.pause()
        rows = screen_text(app).splitlines()
        session_row = next(row for row in rows if "aaaa1111" in row)
        assert " 3 " in session_row and "first" in session_row  # three requests, served by first
        assert any("└ Explore agent" in row for row in rows)
        assert any("bbbb2222" in row for row in rows)
        assert app.sessions.sessions()[0].session_id == "bbbb2222-session"  # most recent first
        await pilot.press("down", "down", "enter")  # bbbb2222, its (no) agents, then aaaa1111's row
        await pilot.pause()
        assert not isinstance(app.screen, SessionsScreen)
        log = app.query_one(RequestLog)
        shown = [line.request for line, _ in log.rows]
        assert len(shown) == 3 and all(r is not None and r.hints.session_id == "aaaa1111-session" for r in shown)
        assert "session aaaa1111" in log.border_subtitle

        await pilot.press("escape")
        assert len([line for line, _ in log.rows if line.request is not None]) == 4


# --- providers ---------------------------------------------------------------------------------------------------


async def test_enter_on_a_provider_shows_its_detail_and_r_ends_its_cool_down(first, second) -> None:
    first.scenario, first.retry_after = "rate_limit", 30
    providers = [anthropic_provider("first", first.url), anthropic_provider("second", second.url)]
    async with dashboard(providers) as (app, pilot):
        await ask(app)
        await wait_until(pilot, lambda: request_lines(app))
        assert app.runtime.engine.provider_view("first").state is ProviderState.COOLING
        await pilot.press("tab")
        assert isinstance(app.focused, ProvidersPanel)
        await pilot.press("enter")
        assert isinstance(app.screen, ProviderDetail) and app.screen.provider == "first"
        await pilot.pause()
        text = screen_text(app)
        host = first.url.removeprefix("http://")
        assert "upstream" in text and host in text
        assert "from the environment ($UPSTREAM_KEY)" in text
        assert "cooling" in text and "429" in text  # the state and the recent error with its status
        assert UPSTREAM_KEY not in text

        await pilot.press("r")
        assert app.runtime.engine.provider_view("first").state is ProviderState.OK
        await pilot.press("escape")
        await wait_for_line(pilot, app, "first retried now")


async def test_a_dead_provider_is_named_with_its_cause_and_host_port(second) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    providers = [anthropic_provider("dead", dead), anthropic_provider("second", second.url)]
    async with dashboard(providers) as (app, pilot):
        await ask(app)
        where = dead.removeprefix("http://")
        line = await wait_for_line(pilot, app, "second")
        assert f"dead: connection refused or unreachable ({where})" in line
        await wait_for_line(pilot, app, "dead [claude-sonnet-4-6] cooling down", f"({where})")
        await pilot.press("enter")
        assert isinstance(app.screen, RequestDetail)
        await pilot.pause()
        assert f"({where})" in screen_text(app)
        await pilot.press("escape")
        await pilot.resize_terminal(*NARROW)  # the compact line names the cause in place
        await wait_until(pilot, lambda: "after dead: connection ref" in screen_text(app))


# --- keys --------------------------------------------------------------------------------------------------------


async def test_c_copies_the_environment_line_with_a_bearer_token(first) -> None:
    messages: list[Message] = []
    async with dashboard([anthropic_provider("first", first.url)], messages=messages) as (app, pilot):
        await pilot.press("c")
        expected = f"ANTHROPIC_BASE_URL={app.base_url} ANTHROPIC_AUTH_TOKEN=ccm-tui CLAUDE_CODE_GATEWAY_HINT_HEADERS=1"
        assert app.clipboard == expected
        await pilot.pause()
        assert any(expected in toast for toast in toasts(messages))
        assert "ANTHROPIC_API_KEY" not in screen_text(app)


async def test_ctrl_c_quits_like_q(first) -> None:
    async with dashboard([anthropic_provider("first", first.url)]) as (app, pilot):
        port = int(app.base_url.rsplit(":", 1)[1])
        await pilot.press("ctrl+c")
        await wait_until(pilot, lambda: not app.is_running)
    assert app.return_code == 0
    bind_socket("127.0.0.1", port).close()  # the proxy stopped and freed its port


async def test_pause_and_resume_are_both_shown(first) -> None:
    async with dashboard([anthropic_provider("first", first.url)]) as (app, pilot):
        await pilot.press("p")
        await wait_for_line(pilot, app, "proxy PAUSED")
        await pilot.press("p")
        await wait_for_line(pilot, app, "proxy resumed")
        await pilot.press("s")
        await wait_for_line(pilot, app, "• strategy ")
        assert sum("proxy resumed" in line for line in stream_text(app)) == 1


# --- what the proxy refuses itself --------------------------------------------------------------------------------


async def test_requests_the_proxy_refuses_itself_appear_in_the_stream(first) -> None:
    async with dashboard([anthropic_provider("first", first.url)]) as (app, pilot):
        async with httpx.AsyncClient(base_url=app.base_url) as http:
            malformed = await http.post(
                "/v1/messages", content=b"{not json", headers={"content-type": "application/json"}
            )
            wrong_type = await http.post("/v1/messages", content=b"{}", headers={"content-type": "text/plain"})
            missing = await http.get("/v2/nothing")
        assert (malformed.status_code, wrong_type.status_code, missing.status_code) == (400, 415, 404)
        await wait_for_line(pilot, app, "400", "refused by ccm-tui POST /v1/messages")
        await wait_for_line(pilot, app, "415", "refused by ccm-tui POST /v1/messages", "Content-Type")
        await wait_for_line(pilot, app, "404", "refused by ccm-tui GET /v2/nothing")
        assert request_lines(app) == []  # not counted as requests served


# --- alerts ------------------------------------------------------------------------------------------------------


async def test_an_alert_crossing_gets_one_toast_and_one_bell(first) -> None:
    messages: list[Message] = []
    priced = ProviderSettings(
        name="first",
        kind="anthropic",
        base_url=first.url,
        api_key_env="UPSTREAM_KEY",
        price_input_mtok=100_000.0,  # every request costs dollars: the first one crosses the alert
        price_output_mtok=100_000.0,
    )
    async with dashboard([priced], messages=messages, alerts=AlertSettings(hourly_usd=0.5)) as (app, pilot):
        await ask(app)
        await ask(app)  # still over the threshold: not a new crossing
        await wait_until(pilot, lambda: len(request_lines(app)) == 2)
        await wait_for_line(pilot, app, "hourly spend", "crossed the $0.5000 alert")
        await pilot.pause()
        alerts = [t for t in toasts(messages) if "crossed" in t]
        assert len(alerts) == 1 and app.bells == 1


# --- demo --------------------------------------------------------------------------------------------------------


async def test_demo_mode_is_marked_on_every_panel() -> None:
    settings = Settings(history_enabled=False)
    app = CcmApp(settings, bind_socket("127.0.0.1", 0), demo=True, synthetic_client=False)
    async with app.run_test(size=WIDE) as pilot:
        await asyncio.wait_for(app.ready.wait(), 10)
        await pilot.pause()
        assert " DEMO " in screen_text(app).splitlines()[0]
        for selector in ("#providers", "#requests", "#spend"):
            assert "demo" in str(app.query_one(selector).border_title)
        assert "not real money" in str(app.query_one("#spend").border_title)
        await pilot.press("v")
        assert "demo" in str(app.screen.query_one("Vertical").border_title)


async def test_serve_logs_the_requests_it_refuses_itself(tmp_path) -> None:
    import os
    import sys

    from tests.test_cli import BANNER, write_config

    path = write_config(
        tmp_path,
        "[history]\nenabled = false\n[[providers]]\nname='a'\nkind='anthropic'\nbase_url='http://127.0.0.1:9'\n",
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ccm_tui",
        "serve",
        "--config",
        str(path),
        "--port",
        "0",
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ},
    )
    assert process.stderr is not None
    try:
        base = None
        while base is None:
            line = (await asyncio.wait_for(process.stderr.readline(), timeout=20)).decode()
            assert line, "ccm-tui exited before listening"
            if match := BANNER.search(line):
                base = match.group(1)
        async with httpx.AsyncClient(base_url=base) as http:
            reply = await http.post("/v1/messages", json={"model": "claude-sonnet-4-6", "messages": []})
        assert reply.status_code == 400
        logged = ""
        while "rejected POST /v1/messages: 400" not in logged:
            logged = (await asyncio.wait_for(process.stderr.readline(), timeout=20)).decode()
            assert logged, "serve exited without logging the refusal"
        assert "WARNING" in logged
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), timeout=20)


async def test_keys_table_remaps_a_binding_inside_a_screen(first, second) -> None:
    # Screen bindings have ids too: `retry-now` moves from r to x in the provider detail; r does nothing there.
    first.scenario, first.retry_after = "rate_limit", 30
    providers = [anthropic_provider("first", first.url), anthropic_provider("second", second.url)]
    async with dashboard(providers, keys={"retry-now": ("x",)}) as (app, pilot):
        await ask(app)
        await wait_until(pilot, lambda: request_lines(app))
        await pilot.press("tab", "enter")
        assert isinstance(app.screen, ProviderDetail)
        await pilot.press("r")
        await pilot.pause()
        assert app.runtime.engine.provider_view("first").state is ProviderState.COOLING
        await pilot.press("x")
        assert app.runtime.engine.provider_view("first").state is ProviderState.OK


def test_a_screen_key_may_repeat_a_dashboard_key_but_not_one_on_its_own_screen() -> None:
    from ccm_tui.config import ConfigError
    from ccm_tui.tui.keymap import keymap

    # `x` is free on the history screen; `p` is already one of its own keys.
    assert keymap(Settings(keys={"history-reload": ("x",)})) == {"history-reload": "x"}
    with pytest.raises(ConfigError, match="already bound to history-by-provider"):
        keymap(Settings(keys={"history-reload": ("p",)}))
