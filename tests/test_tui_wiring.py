"""The dashboard's wiring of the history screen and banner, the steering states (quota threshold, stepped-off
providers, key pools, session pins, budget guard) and held requests: the real app on loopback, real requests
through the proxy to mock upstreams, keys pressed through Pilot."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anthropic
import pytest
from textual.pilot import Pilot

from ccm_tui.config import BudgetAction, BudgetSettings, ProviderSettings, Settings
from ccm_tui.core.events import HistoryFault, HistoryProblem, HistoryRecovered
from ccm_tui.proxy.server import bind_socket
from ccm_tui.telemetry.history import HistoryReader
from ccm_tui.tui.app import CcmApp
from ccm_tui.tui.screens.history import HistoryScreen, NoHistory, View
from ccm_tui.tui.screens.provider import ProviderDetail
from ccm_tui.tui.screens.sessions import SessionsScreen
from ccm_tui.tui.widgets.header import StatusBar
from ccm_tui.tui.widgets.history_banner import HistoryBanner
from ccm_tui.tui.widgets.providers import THRESHOLD_MARK, ProvidersPanel, threshold_cell
from tests.mocks.upstreams import AnthropicMock
from tests.test_tui import ASK, UPSTREAM_KEY, anthropic_provider, client, request_lines, screen_text, wait_for_line
from tests.tui_snapshot_app import wait_until

SIZE = (80, 24)


@asynccontextmanager
async def running(
    settings: Settings, *, demo: bool = False, size: tuple[int, int] = SIZE
) -> AsyncIterator[tuple[CcmApp, Pilot[Any]]]:
    app = CcmApp(
        settings, bind_socket("127.0.0.1", 0), demo=demo, synthetic_client=False, environ={"UPSTREAM_KEY": UPSTREAM_KEY}
    )
    async with app.run_test(size=size) as pilot:
        await asyncio.wait_for(app.ready.wait(), 10)
        yield app, pilot


@pytest.fixture
async def upstream() -> AsyncIterator[AnthropicMock]:
    async with AnthropicMock() as mock:
        yield mock


def rows_in(path: Path) -> int:
    reader = HistoryReader(path)
    try:
        return reader.count_since(0)
    finally:
        reader.close()


# --- history --------------------------------------------------------------------------------------------------


async def test_h_opens_the_history_of_the_requests_served(upstream: AnthropicMock, tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    settings = Settings(providers=(anthropic_provider("first", upstream.url),), history_path=path)
    async with running(settings, size=(120, 40)) as (app, pilot):
        async with client(app) as sdk:
            await sdk.messages.create(model="claude-sonnet-4-6", **ASK)
        await wait_until(pilot, lambda: rows_in(path) >= 1)
        await pilot.press("h")
        await wait_until(pilot, lambda: isinstance(app.screen, HistoryScreen) and app.screen.view is View.CHART)
        screen = app.screen
        assert isinstance(screen, HistoryScreen) and screen.queries is app.history_queries
        await pilot.press("p")
        await wait_until(pilot, lambda: "first" in screen_text(app) and screen.view is View.CHART)
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, HistoryScreen))
    assert app.history_queries is None  # closed with the app


async def test_history_in_the_demo_says_the_demo_keeps_none() -> None:
    async with running(Settings(), demo=True) as (app, pilot):
        assert app.history_queries is None
        await pilot.press("h")
        await wait_until(pilot, lambda: isinstance(app.screen, HistoryScreen))
        screen = app.screen
        assert isinstance(screen, HistoryScreen)
        assert screen.view is View.UNAVAILABLE and screen.absent is NoHistory.DEMO
        assert "Demo mode keeps no history" in screen_text(app)


async def test_history_off_says_so(upstream: AnthropicMock) -> None:
    settings = Settings(providers=(anthropic_provider("first", upstream.url),), history_enabled=False)
    async with running(settings) as (app, pilot):
        await pilot.press("h")
        await wait_until(pilot, lambda: isinstance(app.screen, HistoryScreen))
        assert isinstance(app.screen, HistoryScreen) and app.screen.absent is NoHistory.DISABLED
        assert "History is off" in screen_text(app)


async def test_the_banner_under_the_status_bar_follows_history_faults(upstream: AnthropicMock) -> None:
    settings = Settings(providers=(anthropic_provider("first", upstream.url),), history_enabled=False)
    async with running(settings) as (app, pilot):
        assert app.runtime is not None
        banner = app.query_one(HistoryBanner)
        assert not banner.display
        problem = HistoryProblem("/x/history.sqlite3", HistoryFault.READ_ONLY, "the disk is read-only", 3, 0)
        app.runtime.bus.publish(problem)
        await wait_until(pilot, lambda: banner.display)
        assert "History not written" in screen_text(app)
        status = app.query_one(StatusBar).region
        assert banner.region.y == status.y + status.height  # right under the status lines, above the panels
        assert app.query_one(ProvidersPanel).region.y >= banner.region.y + banner.region.height
        app.runtime.bus.publish(HistoryRecovered(problem.path, "history is written again", 0))
        await wait_until(pilot, lambda: "history writes again" in str(banner.render()))


# --- steering: quota threshold, key pools, session pins, budget guard -------------------------------------------


KEYS = {"KEY_A": "sk-ant-api03-first-key-aaaaaaaaaaaa1111", "KEY_B": "sk-ant-api03-second-key-bbbbbbbbbbb2222"}


def pooled(name: str, url: str, **extra: Any) -> ProviderSettings:
    return ProviderSettings(name=name, kind="anthropic", base_url=url, api_key_env="KEY_A", **extra)


@asynccontextmanager
async def steering_app(
    providers: tuple[ProviderSettings, ...],
    size: tuple[int, int] = (120, 40),
    clock: Callable[[], float] = time.time,
    **settings: Any,
) -> AsyncIterator[tuple[CcmApp, Pilot[Any]]]:
    app = CcmApp(
        Settings(providers=providers, history_enabled=False, **settings),
        bind_socket("127.0.0.1", 0),
        environ=KEYS,
        clock=clock,
    )
    async with app.run_test(size=size) as pilot:
        await asyncio.wait_for(app.ready.wait(), 10)
        yield app, pilot


async def ask(app: CcmApp, **headers: str) -> None:
    async with client(app) as sdk:
        await sdk.messages.create(model="claude-sonnet-4-6", extra_headers=headers or None, **ASK)


async def test_a_stepped_off_provider_is_noted_in_the_stream_and_its_bars_mark_the_threshold() -> None:
    async with AnthropicMock() as limited, AnthropicMock() as other:
        limited.requests_limit = 5
        async with steering_app((pooled("limited", limited.url), pooled("other", other.url))) as (app, pilot):
            for _ in range(5):
                await ask(app)
            assert len(limited.requests) == 4 and len(other.requests) == 1
            await wait_for_line(pilot, app, "stepped off limited: 80 % of requests/min used")
            app.refresh_panels()
            await pilot.pause()
            panel = app.query_one(ProvidersPanel)
            row = [str(cell) for cell in panel.get_row("limited")]
            assert "ok · stepped off: 80" in " ".join(row)  # cut to the column; the stream line is whole
            [bar] = [cell for cell in row if "1/5" in cell]  # 1 of 5 left; the 4-cell bar marks 20 % left
            assert bar.index(THRESHOLD_MARK) == threshold_cell(0.8, 4) == 1
            await pilot.press("tab", "enter")
            await wait_until(pilot, lambda: isinstance(app.screen, ProviderDetail))
            shown = screen_text(app)
            assert "steps off at 80 % of a window used; now 80 % of requests/min" in shown
            assert "ok · stepped off: 80 % of requests/min used" in shown


async def test_the_provider_detail_lists_each_key_masked_with_its_state_and_countdown() -> None:
    async with AnthropicMock() as pool, AnthropicMock() as other:
        pool.script("rate_limit")
        pool.retry_after = 30
        providers = (pooled("pool", pool.url, more_key_envs=("KEY_B",)), pooled("other", other.url))
        async with steering_app(providers) as (app, pilot):
            await ask(app)
            assert len(pool.requests) == 2 and not other.requests  # key 2 served: no provider change
            await pilot.press("tab", "enter")
            await wait_until(pilot, lambda: isinstance(app.screen, ProviderDetail))
            shown = screen_text(app)
            assert "keys (round-robin)" in shown
            first = next(line for line in shown.splitlines() if "KEY_A …1111" in line)
            second = next(line for line in shown.splitlines() if "KEY_B …2222" in line)
            assert "environment" in first and re.search(r"cooling (30|29)s", first) and "429" in first
            assert "│ok " in second and re.search(r"│1\s", second)  # served the request
            assert "→" in second and "→" not in first  # the key the next request takes
            assert not any(secret in shown for secret in KEYS.values())


async def test_the_sessions_view_shows_where_each_session_is_pinned() -> None:
    first_session, second_session = "5f1c2e9a-8d3b-4c71-9a0e-2b6f4d1c7e30", "a93d0b17-2c4e-4f8a-b5d6-7e1f3a9c0b42"
    async with (
        AnthropicMock() as one,
        AnthropicMock() as two,
        steering_app((pooled("one", one.url), pooled("two", two.url))) as (app, pilot),
    ):
        await ask(app, **{"x-claude-code-session-id": first_session})
        await pilot.press("1")  # provider one off: the second session is placed on two
        await ask(app, **{"x-claude-code-session-id": second_session})
        await pilot.press("1")
        await wait_until(pilot, lambda: len(request_lines(app)) == 2)
        await pilot.press("v")
        await wait_until(pilot, lambda: isinstance(app.screen, SessionsScreen))
        rows = screen_text(app).splitlines()
        assert "pinned to" in next(line for line in rows if "session / agent" in line)
        first = next(line for line in rows if first_session[:8] in line)
        second = next(line for line in rows if second_session[:8] in line)
        assert "one/claude-sonnet-4-6" in first and "two/" not in first
        assert "two/claude-sonnet-4-6" in second


async def test_the_header_shows_the_budget_guard_and_b_lifts_it() -> None:
    price = {"price_input_mtok": 1000.0, "price_output_mtok": 1000.0}
    budget = BudgetSettings(daily_usd=0.01, action=BudgetAction.REFUSE)
    async with (
        AnthropicMock() as dear,
        steering_app((pooled("dear", dear.url, **price),), size=(80, 24), budget=budget) as (app, pilot),
    ):
        status = app.query_one(StatusBar)
        assert "budget $0.01/day: 0 %" in str(status.render())
        await ask(app)
        with pytest.raises(anthropic.RateLimitError):
            await ask(app)
        await wait_for_line(pilot, app, "daily budget of $0.01 reached", "refusing new requests")
        app.refresh_panels()
        assert "budget reached: refusing" in str(status.render())
        await pilot.press("b")
        await wait_for_line(pilot, app, "budget guard lifted for the rest of the day")
        assert "budget $0.01/day: lifted" in str(status.render())
        await ask(app)  # routed again
        assert len(dear.requests) == 2


async def test_b_without_a_budget_says_none_is_configured(upstream: AnthropicMock) -> None:
    settings = Settings(providers=(anthropic_provider("first", upstream.url),), history_enabled=False)
    async with running(settings) as (app, pilot):
        assert "budget" not in str(app.query_one(StatusBar).render())
        await pilot.press("b")
        await wait_until(pilot, lambda: any("No budget is configured" in n.message for n in app._notifications))


# --- held requests --------------------------------------------------------------------------------------------


async def test_a_held_request_counts_down_in_the_header_and_goes_on_retry_now() -> None:
    offset = [0.0]
    async with AnthropicMock() as only:
        only.scenario, only.retry_after = "rate_limit", 10  # within hold_seconds: held, not failed
        providers = (pooled("only", only.url),)
        async with steering_app(providers, clock=lambda: time.time() + offset[0]) as (app, pilot):
            pending = asyncio.create_task(ask(app))
            status = app.query_one(StatusBar)
            await wait_until(pilot, lambda: (app.refresh_panels(), "held" in str(status.render()))[1])
            assert re.search(r"1 held — retry in (10|9)s", str(status.render()))
            await wait_for_line(pilot, app, "held — retry in", "req_")
            offset[0] = 5.0  # five seconds on: the countdown follows the clock
            app.refresh_panels()
            assert re.search(r"1 held — retry in (5|4)s", str(status.render()))
            only.scenario = "text"
            await pilot.press("tab", "enter", "r")  # retry now from the provider detail: the held request goes
            await asyncio.wait_for(pending, 10)
            await pilot.press("escape")
            app.refresh_panels()
            assert "held" not in str(status.render())
