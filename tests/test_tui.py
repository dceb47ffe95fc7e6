"""The Textual dashboard driven by Pilot: every key binding, and real HTTP requests showing up on screen.

Each test runs CcmApp with `run_test()` on an ephemeral loopback port, with real mock upstreams behind it
and the official anthropic SDK in front; the keyring is the in-memory backend from conftest. Waiting is
always on a condition (bounded polling through `pilot.pause()`), never a fixed sleep.
"""

from __future__ import annotations

import asyncio
import html
import re
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anthropic
import keyring
import pytest
from keyring.backends.fail import Keyring as NoKeyring
from textual.app import App
from textual.command import CommandList, CommandPalette
from textual.events import Paste
from textual.message import Message
from textual.notifications import Notify
from textual.pilot import Pilot
from textual.widgets import Static

from ccm_tui.config import ProviderSettings, Settings
from ccm_tui.core.contract import Variant
from ccm_tui.core.events import ProviderChange, ProviderChanged, RequestFinished, Usage
from ccm_tui.core.states import ProviderState
from ccm_tui.proxy.server import bind_socket
from ccm_tui.routing.strategies import STRATEGIES
from ccm_tui.secrets import SERVICE
from ccm_tui.tui.app import CcmApp, describe
from ccm_tui.tui.commands import COMMANDS, key_label
from ccm_tui.tui.screens.detail import RequestDetail
from ccm_tui.tui.screens.help import HelpScreen
from ccm_tui.tui.screens.keys import KeyEntry
from ccm_tui.tui.widgets.providers import ProvidersPanel
from ccm_tui.tui.widgets.requests import RequestLog
from tests.conftest import MemoryKeyring
from tests.mocks.upstreams import AnthropicMock, OpenAIMock
from tests.tui_snapshot_app import wait_until

UPSTREAM_KEY = "sk-upstream-secret-0123456789"
ASK = {"max_tokens": 100, "messages": [{"role": "user", "content": "Why is my test flaky?"}]}
SIZE = (160, 48)


def anthropic_provider(name: str, url: str, key_env: str | None = "UPSTREAM_KEY") -> ProviderSettings:
    return ProviderSettings(name=name, kind="anthropic", base_url=url, api_key_env=key_env)


def openai_provider(name: str, url: str) -> ProviderSettings:
    models = {"default": (Variant("mock-large"),)}
    return ProviderSettings(name=name, kind="openai", vendor="openai", base_url=url, models=models)


@asynccontextmanager
async def dashboard(
    providers: Sequence[ProviderSettings],
    messages: list[Message] | None = None,
    keys: dict[str, tuple[str, ...]] | None = None,
) -> AsyncIterator[tuple[CcmApp, Pilot[Any]]]:
    """The app on an ephemeral port, its dashboard up; the run ends when the block does (or on q)."""
    settings = Settings(providers=tuple(providers), history_enabled=False, keys=keys or {})
    app = CcmApp(settings, bind_socket("127.0.0.1", 0), environ={"UPSTREAM_KEY": UPSTREAM_KEY})
    hook = messages.append if messages is not None else None
    async with app.run_test(size=SIZE, message_hook=hook) as pilot:
        await asyncio.wait_for(app.ready.wait(), 10)
        yield app, pilot


def client(app: CcmApp) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=app.base_url, api_key="dummy", max_retries=0)


async def ask(app: CcmApp, model: str = "claude-sonnet-4-6") -> anthropic.types.Message:
    async with client(app) as sdk:
        return await sdk.messages.create(model=model, **ASK)


def stream_text(app: CcmApp) -> list[str]:
    return [line.text.plain for line in app.query_one(RequestLog).lines]


def request_lines(app: CcmApp) -> list[str]:
    return [line.text.plain for line in app.query_one(RequestLog).lines if line.request is not None]


async def wait_for_line(pilot: Pilot[Any], app: CcmApp, *parts: str) -> str:
    """The first stream line containing every part, once the 100 ms flush has drawn it."""

    def found() -> str | None:
        return next((line for line in stream_text(app) if all(p in line for p in parts)), None)

    await wait_until(pilot, found)
    return found() or ""


async def paste_then_type(app: CcmApp, pilot: Pilot[Any], key: str, typed: int = 6) -> None:
    """Paste the key into the focused input, all but its last characters, then type those: the typed ones
    hold digits and command letters, which must reach the input, not the app's bindings."""
    app.focused.post_message(Paste(key[:-typed]))
    await pilot.press(*key[-typed:])


def screen_text(app: App[Any]) -> str:
    """What the terminal shows, line by line, read from the same SVG export the snapshots use."""
    rows: dict[float, list[str]] = {}
    for y, content in re.findall(r'<text[^>]* y="([\d.]+)"[^>]*>(.*?)</text>', app.export_screenshot()):
        rows.setdefault(float(y), []).append(html.unescape(content).replace("\xa0", " "))
    return "\n".join("".join(parts) for _, parts in sorted(rows.items()))


@pytest.fixture
async def first():
    async with AnthropicMock() as mock:
        yield mock


@pytest.fixture
async def second():
    async with AnthropicMock() as mock:
        yield mock


# --- real HTTP on screen -------------------------------------------------------------------------------------


async def test_request_through_the_proxy_shows_provider_status_and_failover_chain(first, second) -> None:
    first.scenario, first.retry_after = "rate_limit", 30
    async with dashboard([anthropic_provider("first", first.url), anthropic_provider("second", second.url)]) as (
        app,
        pilot,
    ):
        message = await ask(app)
        assert message.content[0].text
        await wait_until(pilot, lambda: request_lines(app))
        [line] = request_lines(app)
        assert line.split()[1] == "200"
        assert "first 429 → second/claude-sonnet-4-6" in line
        assert len(first.requests) == 1 and len(second.requests) == 1
        await wait_for_line(pilot, app, "first [claude-sonnet-4-6] cooling down 30s")
        app.refresh_panels()
        await pilot.pause()
        top = screen_text(app)
        assert "today 1 req" in top
        assert "cooling 30s" in top  # the providers panel shows the cool-down, counted from the app clock


# --- keys ----------------------------------------------------------------------------------------------------


async def test_number_keys_toggle_providers_and_reroute_at_once(first, second) -> None:
    messages: list[Message] = []
    providers = [anthropic_provider("first", first.url), anthropic_provider("second", second.url)]
    async with dashboard(providers, messages) as (app, pilot):
        engine = app.runtime.engine
        await pilot.press("1")
        assert engine.provider_view("first").enabled is False
        await ask(app)
        assert (len(first.requests), len(second.requests)) == (0, 1)
        await wait_for_line(pilot, app, "• first switched off")

        await pilot.press("1", "2")
        assert engine.provider_view("first").enabled is True and engine.provider_view("second").enabled is False
        await ask(app)
        assert (len(first.requests), len(second.requests)) == (1, 1)
        await wait_for_line(pilot, app, "• first switched on")
        await wait_for_line(pilot, app, "• second switched off")

        await pilot.press(*"3456789")
        await pilot.pause()
        warnings = [m.notification.message for m in messages if isinstance(m, Notify)]
        assert warnings == [f"There is no provider {n}." for n in range(3, 10)]
        assert engine.provider_view("first").enabled is True and engine.provider_view("second").enabled is False


async def test_s_cycles_the_strategy_and_the_status_bar_shows_it(first) -> None:
    async with dashboard([anthropic_provider("first", first.url)]) as (app, pilot):
        engine = app.runtime.engine
        start = STRATEGIES.index(engine.strategy)
        for step in range(1, len(STRATEGIES) + 1):
            await pilot.press("s")
            expected = STRATEGIES[(start + step) % len(STRATEGIES)]
            assert engine.strategy == expected
            await pilot.pause()
            assert f"strategy {expected}" in screen_text(app).splitlines()[0]
            await wait_for_line(pilot, app, f"• strategy {expected}")


async def test_p_pauses_the_proxy_so_requests_get_529_until_resumed(first) -> None:
    async with dashboard([anthropic_provider("first", first.url)]) as (app, pilot):
        await pilot.press("p")
        assert app.runtime.engine.paused
        await pilot.pause()
        assert "PAUSED" in screen_text(app).splitlines()[0]
        with pytest.raises(anthropic.APIStatusError) as refused:
            await ask(app)
        assert refused.value.status_code == 529
        assert "paused" in refused.value.body["error"]["message"]
        assert refused.value.body["error"]["type"] == "overloaded_error"
        assert first.requests == []

        await pilot.press("p")
        assert not app.runtime.engine.paused
        await ask(app)
        assert len(first.requests) == 1
        await pilot.pause()
        assert "PAUSED" not in screen_text(app).splitlines()[0]


async def test_k_saves_a_key_to_the_keyring_and_the_provider_uses_it_at_once(
    first, isolated_environment: MemoryKeyring
) -> None:
    typed = "sk-ant-pasted-part-1qs2pk"
    async with dashboard([anthropic_provider("first", first.url, key_env=None)]) as (app, pilot):
        assert app.runtime.key_sources["first"] == "none"
        await pilot.press("k")
        assert isinstance(app.screen, KeyEntry) and app.screen.provider.name == "first"
        await paste_then_type(app, pilot, typed)
        assert app.runtime.engine.strategy == "ordered" and app.runtime.engine.provider_view("first").enabled
        assert typed not in screen_text(app)  # the input is masked
        await pilot.click("#key-save")
        await wait_until(pilot, lambda: not isinstance(app.screen, KeyEntry))

        assert isolated_environment.store == {(SERVICE, "first"): typed}
        assert app.runtime.key_sources["first"] == "keyring"
        await ask(app)
        assert first.requests[-1].headers["x-api-key"] == typed
        await wait_for_line(pilot, app, "API key for first stored in the OS keyring; in use now.")
        assert typed not in screen_text(app)


async def test_without_a_keyring_the_key_modal_explains_and_session_only_applies_the_key(
    first, isolated_environment: MemoryKeyring
) -> None:
    keyring.set_keyring(NoKeyring())  # priority 0: nothing could be stored (conftest restores the backend)
    typed = "sk-session-only-key-q42"
    async with OpenAIMock() as other:
        providers = [anthropic_provider("first", first.url), openai_provider("second", other.url)]
        async with dashboard(providers) as (app, pilot):
            await pilot.press("tab", "down")  # the providers panel, second row
            assert app.query_one(ProvidersPanel).selected_provider == "second"
            await pilot.press("k")
            assert isinstance(app.screen, KeyEntry) and app.screen.provider.name == "second"
            await paste_then_type(app, pilot, typed)
            await pilot.press("enter")  # enter tries to save
            status = app.screen.query_one("#key-status", Static)
            await wait_until(pilot, lambda: "keyrings.alt" in str(status.content))
            explanation = screen_text(app)
            assert "No keyring backend" in explanation and "SECOND_API_KEY" in explanation
            assert isinstance(app.screen, KeyEntry)

            await pilot.click("#key-session")
            await wait_until(pilot, lambda: not isinstance(app.screen, KeyEntry))
            assert app.runtime.key_sources["second"] == "session"
            assert isolated_environment.store == {}
            await pilot.press("1")  # first off, so the request goes to second
            await ask(app)
            assert other.requests[-1].headers["authorization"] == f"Bearer {typed}"
            await wait_for_line(pilot, app, "API key for second kept for this session only")


async def test_enter_opens_the_selected_requests_detail_with_attempts_and_no_key(first, second) -> None:
    first.scenario, first.retry_after = "rate_limit", 30
    async with dashboard([anthropic_provider("first", first.url), anthropic_provider("second", second.url)]) as (
        app,
        pilot,
    ):
        await ask(app, "claude-sonnet-4-6")  # first 429 -> second
        await ask(app, "claude-haiku-4-5")  # first is cooling: second directly
        await wait_until(pilot, lambda: len(request_lines(app)) == 2)
        log = app.query_one(RequestLog)
        assert app.focused is log

        await pilot.press("enter")  # nothing selected: the newest request
        assert isinstance(app.screen, RequestDetail)
        assert app.screen.event.requested_model == "claude-haiku-4-5"
        await pilot.press("escape")

        await pilot.press("up", "enter")
        detail = app.screen
        assert isinstance(detail, RequestDetail) and detail.event.requested_model == "claude-sonnet-4-6"
        await pilot.pause()
        text = screen_text(app)
        assert detail.event.request_id in text
        rows = text.splitlines()
        assert any(all(cell in row for cell in ("│first", "│429", "│cooldown", "│30s")) for row in rows)
        assert any(all(cell in row for cell in ("│second", "│200", "│ok")) for row in rows)
        assert UPSTREAM_KEY not in text
        await pilot.press("escape")
        assert not isinstance(app.screen, RequestDetail)
        assert UPSTREAM_KEY not in screen_text(app)


async def test_question_mark_opens_help_listing_every_command(first) -> None:
    async with dashboard([anthropic_provider("first", first.url)]) as (app, pilot):
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.pause()
        text = screen_text(app)
        for command in COMMANDS:
            assert any(key_label(command) in row and command.title in row for row in text.splitlines()), command.id
        assert f"ANTHROPIC_BASE_URL={app.base_url}" in text
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


def finished(number: int) -> RequestFinished:
    return RequestFinished(
        request_id=f"req_{number}",
        requested_model="claude-haiku-4-5",
        stream=False,
        status=200,
        provider="first",
        model="claude-haiku-4-5",
        attempts=(),
        usage=Usage(input_tokens=10, output_tokens=5),
        cost_usd=0.0,
        started_at=1_700_000_000 + number,
        ttfb=0.1,
        duration=0.2,
    )


async def test_end_follows_the_newest_request_again_after_moving_the_cursor(first) -> None:
    async with dashboard([anthropic_provider("first", first.url)]) as (app, pilot):
        log = app.query_one(RequestLog)
        publish: Callable[[RequestFinished], None] = app.runtime.bus.publish
        for number in range(80):  # more lines than the panel shows
            publish(finished(number))
        await wait_until(pilot, lambda: len(request_lines(app)) == 80)
        await wait_until(pilot, lambda: log.scroll_offset.y == log.max_scroll_y > 0)

        await pilot.press("home")
        assert log.cursor == 0 and log.scroll_offset.y == 0
        for number in range(80, 90):
            publish(finished(number))
        await wait_until(pilot, lambda: len(request_lines(app)) == 90)
        assert log.scroll_offset.y == 0  # the user is reading: new lines do not move the view

        await pilot.press("end")
        assert log.cursor is None
        await wait_until(pilot, lambda: log.scroll_offset.y == log.max_scroll_y > 0)
        await pilot.press("enter")
        assert isinstance(app.screen, RequestDetail) and app.screen.event.request_id == "req_89"


async def test_tab_moves_focus_between_the_requests_and_the_providers(first) -> None:
    async with dashboard([anthropic_provider("first", first.url)]) as (app, pilot):
        assert isinstance(app.focused, RequestLog)
        await pilot.press("tab")
        assert isinstance(app.focused, ProvidersPanel)
        await pilot.press("tab")
        assert isinstance(app.focused, RequestLog)


async def test_print_with_flush_while_the_dashboard_runs_is_captured_not_an_error(first) -> None:
    # Textual captures print() while the app runs and calls App._flush(stderr=...) on flush=True: the app
    # must not shadow that method (it once did, and this raised TypeError).
    async with dashboard([anthropic_provider("first", first.url)]) as (app, pilot):
        print("from a library", flush=True)
        print("to stderr", file=sys.stderr, flush=True)
        await ask(app)
        await wait_until(pilot, lambda: request_lines(app))  # the stream is still drawn after the prints
        assert app.is_running


async def test_keys_table_remaps_a_binding_and_its_old_key_does_nothing(first) -> None:
    keys = {"cycle-strategy": ("x",), "pause": ("f6", "ctrl+t")}
    async with dashboard([anthropic_provider("first", first.url)], keys=keys) as (app, pilot):
        engine = app.runtime.engine
        start = engine.strategy
        await pilot.press("s", "p")  # the defaults no longer do anything
        await pilot.pause()
        assert engine.strategy == start and not engine.paused
        await pilot.press("x")
        assert engine.strategy == STRATEGIES[(STRATEGIES.index(start) + 1) % len(STRATEGIES)]
        await pilot.press("f6")
        assert engine.paused
        await pilot.press("ctrl+t")
        assert not engine.paused
        await pilot.pause()
        footer = screen_text(app).splitlines()[-1]
        assert "x Strategy" in footer and "s Strategy" not in footer


@pytest.mark.parametrize("key", ["q", "ctrl+q", "ctrl+c"])
async def test_quit_drains_the_request_in_flight_exits_0_and_frees_the_port(first, key: str) -> None:
    first.scenario, first.slow_seconds = "slow_first_byte", 0.3
    async with dashboard([anthropic_provider("first", first.url)]) as (app, pilot):
        port = int(app.base_url.rsplit(":", 1)[1])
        in_flight = asyncio.create_task(ask(app))
        await wait_until(pilot, lambda: app.runtime.engine.in_flight == 1)
        await pilot.press(key)
        reply = await asyncio.wait_for(in_flight, 10)
    assert reply.content[0].text  # the in-flight request finished before the proxy stopped
    assert app.return_code == 0
    bind_socket("127.0.0.1", port).close()  # the port is free again


async def test_command_palette_lists_the_ccm_commands_and_runs_them(first, second) -> None:
    providers = [anthropic_provider("first", first.url), anthropic_provider("second", second.url)]
    async with dashboard(providers) as (app, pilot):
        await pilot.press("ctrl+p")
        assert isinstance(app.screen, CommandPalette)
        expected = {c.title for c in COMMANDS if c.id not in ("toggle-provider", "quit", "focus-next")}
        expected |= {"Toggle first", "Toggle second"}

        def listed() -> set[str]:
            options = app.screen.query_one(CommandList).options
            return {str(option.hit.text) for option in options}

        await wait_until(pilot, lambda: expected <= listed())
        await pilot.press(*"second")
        await wait_until(pilot, lambda: "Toggle second" in listed() and len(listed()) < len(expected))
        await pilot.press("enter")
        await wait_until(pilot, lambda: not app.runtime.engine.provider_view("second").enabled)
        assert app.runtime.engine.provider_view("first").enabled


async def test_history_brings_back_todays_requests_after_a_restart(first, tmp_path) -> None:
    settings = Settings(
        providers=(anthropic_provider("first", first.url),),
        history_enabled=True,
        history_path=tmp_path / "history.sqlite3",
    )
    environ = {"UPSTREAM_KEY": UPSTREAM_KEY}
    app = CcmApp(settings, bind_socket("127.0.0.1", 0), environ=environ)
    async with app.run_test(size=SIZE) as pilot:
        await asyncio.wait_for(app.ready.wait(), 10)
        await ask(app)
        await wait_for_line(pilot, app, "200", "first")
        await pilot.press("q")
    again = CcmApp(settings, bind_socket("127.0.0.1", 0), environ=environ)
    async with again.run_test(size=SIZE) as pilot:
        await asyncio.wait_for(again.ready.wait(), 10)
        await wait_for_line(pilot, again, "1 earlier requests loaded from history")
        assert any("first" in line for line in request_lines(again))  # the earlier request, with its route
        assert again.requests_today == 1
        assert UPSTREAM_KEY not in screen_text(again)


@pytest.mark.parametrize(
    ("state", "change", "reason", "expected"),
    [
        (
            ProviderState.COOLING,
            ProviderChange.COOLING,
            "429 rate_limit_error",
            ("p [m] cooling down 30s: 429", "yellow"),
        ),
        (ProviderState.DISABLED, ProviderChange.DISABLED, "401 bad key", ("p [m] disabled", "bold red")),
        (ProviderState.OFF, ProviderChange.OFF, "", ("p switched off", "dim")),
        (ProviderState.OK, ProviderChange.ON, "", ("p [m] switched on", "green")),
        (ProviderState.OK, ProviderChange.RECOVERED, "", ("p [m] recovered", "green")),
        (ProviderState.OK, ProviderChange.KEY_SET, "whatever the text says", ("p [m] API key set", "green")),
        (ProviderState.OK, ProviderChange.RETRY_NOW, "", ("p [m] retried now", "green")),
    ],
)
def test_state_change_lines_follow_the_change_not_the_reason_text(state, change, reason, expected) -> None:
    line = describe(ProviderChanged("p", "m", state, change, 1030.0, reason), now=1000.0)
    assert line is not None
    text, style = line
    assert text.startswith(expected[0]) and style == expected[1]
