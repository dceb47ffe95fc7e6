"""The dashboard's wiring of the history screen and banner, the steering states (quota threshold, stepped-off
providers, key pools, session pins, budget guard) and held requests: the real app on loopback, real requests
through the proxy to mock upstreams, keys pressed through Pilot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from ccm_tui.config import Settings
from ccm_tui.core.events import HistoryFault, HistoryProblem, HistoryRecovered
from ccm_tui.proxy.server import bind_socket
from ccm_tui.telemetry.history import HistoryReader
from ccm_tui.tui.app import CcmApp
from ccm_tui.tui.screens.history import HistoryScreen, NoHistory, View
from ccm_tui.tui.widgets.header import StatusBar
from ccm_tui.tui.widgets.history_banner import HistoryBanner
from ccm_tui.tui.widgets.providers import ProvidersPanel
from tests.mocks.upstreams import AnthropicMock
from tests.test_tui import ASK, UPSTREAM_KEY, anthropic_provider, client, screen_text
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
