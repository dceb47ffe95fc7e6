"""SVG snapshots: the dashboard during a failover at the five pane sizes a user runs it in (80x24 and 90x50
narrow, 100x30 and 120x40 medium, 160x48 wide), the request detail, the provider detail, the sessions view,
the key modal and the help screen.

The app comes from tests/tui_snapshot_app.py: a pinned clock, a pinned displayed URL and a scene published
straight onto the bus, so every run draws the same cells. Update after an intended change with
`.venv/bin/pytest tests/test_tui_snapshots.py --snapshot-update`, then look at the result.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from textual.events import Paste
from textual.pilot import Pilot
from textual.widgets import Input

from ccm_tui.tui.screens.detail import RequestDetail
from ccm_tui.tui.screens.help import HelpScreen
from ccm_tui.tui.screens.keys import KeyEntry
from ccm_tui.tui.screens.provider import ProviderDetail
from ccm_tui.tui.screens.sessions import SessionsScreen
from tests.tui_snapshot_app import ScenicApp, build_app, play_failover_scene, wait_until

WIDE = (160, 48)
SIZES = {"80x24": (80, 24), "90x50": (90, 50), "100x30": (100, 30), "120x40": (120, 40), "160x48": WIDE}


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The stream prints local clock times: pin the zone so the pinned clock draws the same digits."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def scene_then(scenic: ScenicApp, *keys: str, until: type | None = None) -> Callable[[Pilot[Any]], Awaitable[None]]:
    """A run_before: replay the scene, press `keys`, wait for the screen of type `until`."""

    async def run_before(pilot: Pilot[Any]) -> None:
        await play_failover_scene(scenic, pilot)
        await pilot.press(*keys)
        if until is not None:
            await wait_until(pilot, lambda: isinstance(scenic.app.screen, until))
        await pilot.pause()

    return run_before


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_dashboard_during_a_failover(snap_compare: Any, size: tuple[int, int]) -> None:
    scenic = build_app()
    assert snap_compare(scenic.app, terminal_size=size, run_before=scene_then(scenic))


def test_narrow_dashboard_with_the_spend_panel_shown(snap_compare: Any) -> None:
    scenic = build_app()
    assert snap_compare(scenic.app, terminal_size=SIZES["80x24"], run_before=scene_then(scenic, "g"))


def test_request_detail_of_the_failover(snap_compare: Any) -> None:
    scenic = build_app()
    open_detail = scene_then(scenic, "up", "enter", until=RequestDetail)  # the failover is one line up
    assert snap_compare(scenic.app, terminal_size=WIDE, run_before=open_detail)


def test_provider_detail_of_the_cooling_provider(snap_compare: Any) -> None:
    scenic = build_app()
    open_provider = scene_then(scenic, "tab", "enter", until=ProviderDetail)  # swiftai is the first row
    assert snap_compare(scenic.app, terminal_size=WIDE, run_before=open_provider)


@pytest.mark.parametrize("size", [SIZES["80x24"], WIDE], ids=["80x24", "160x48"])
def test_sessions_view(snap_compare: Any, size: tuple[int, int]) -> None:
    scenic = build_app()
    assert snap_compare(scenic.app, terminal_size=size, run_before=scene_then(scenic, "v", until=SessionsScreen))


def test_key_modal(snap_compare: Any) -> None:
    scenic = build_app()
    show_modal = scene_then(scenic, "k", until=KeyEntry)

    async def run_before(pilot: Pilot[Any]) -> None:
        await show_modal(pilot)
        field = scenic.app.screen.query_one(Input)
        field.cursor_blink = False  # a blinking cursor would make the snapshot depend on timing
        field.post_message(Paste("sk-ant-api03-pasted-and-masked"))
        await wait_until(pilot, lambda: field.value)

    assert snap_compare(scenic.app, terminal_size=WIDE, run_before=run_before)


def test_help_screen(snap_compare: Any) -> None:
    scenic = build_app()
    open_help = scene_then(scenic, "question_mark", until=HelpScreen)
    assert snap_compare(scenic.app, terminal_size=WIDE, run_before=open_help)
