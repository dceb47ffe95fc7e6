"""Builds the deterministic dashboard that the SVG snapshots and the README screenshots show.

A demo-like session (swiftai, bigspender, slowpoke) at a pinned clock and a pinned displayed URL: the scene
replays a few minutes of finished requests straight onto the runtime's bus with fixed timestamps (no
upstream, no client), ending in a failover `swiftai 429 → bigspender` while swiftai cools down. Health is
applied the way the engine would, so the providers panel agrees with the stream. Nothing here reads the real
time; the caller pins the time zone (UTC) because the stream prints local clock times.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from textual.pilot import Pilot

from ccm_tui.config import AlertSettings, BudgetSettings, ProviderSettings, Settings
from ccm_tui.core.contract import Variant
from ccm_tui.core.events import (
    AttemptRecord,
    Event,
    ProviderChange,
    ProviderChanged,
    RequestFinished,
    SteppedOff,
    Usage,
)
from ccm_tui.core.hints import ClientHints, RequestClass
from ccm_tui.core.states import AttemptOutcome, ProviderState
from ccm_tui.proxy.server import bind_socket
from ccm_tui.routing.limits import QuotaSnapshot, QuotaWindow
from ccm_tui.tui.app import CcmApp
from ccm_tui.tui.widgets.requests import RequestLog

NOW = datetime(2025, 6, 12, 14, 32, 5, tzinfo=UTC).timestamp()
SESSION_START = NOW - 8 * 60
DISPLAY_URL = "http://127.0.0.1:48123"
KEY_ENV = "CCM_SNAPSHOT_KEY"
UPSTREAM_KEY = "sk-snapshot-upstream-key-never-on-screen"
SECOND_KEY_ENV = "CCM_SNAPSHOT_KEY_2"  # swiftai has a pool of two keys
SECOND_UPSTREAM_KEY = "sk-snapshot-second-key-never-on-screen-2b"
UNUSED_UPSTREAM = "http://127.0.0.1:9"  # never contacted: the scene publishes events instead
RATE_LIMIT_REASON = "429 rate_limit_error Number of requests has exceeded your per-minute rate limit"


@dataclass
class SceneClock:
    """A wall clock the scene moves by hand."""

    now: float = SESSION_START

    def __call__(self) -> float:
        return self.now


@dataclass
class ScenicApp:
    app: CcmApp
    clock: SceneClock = field(default_factory=SceneClock)


def _tiers(**tiers: str) -> dict[str, tuple[Variant, ...]]:
    return {tier: (Variant(model),) for tier, model in tiers.items()}


def scene_settings() -> Settings:
    common = {"base_url": UNUSED_UPSTREAM, "api_key_env": KEY_ENV}
    return Settings(
        providers=(
            ProviderSettings(
                name="swiftai",
                kind="anthropic",
                models=_tiers(haiku="claude-haiku-4-5", sonnet="claude-sonnet-4-6"),
                price_input_mtok=0.8,
                price_output_mtok=4.0,
                more_key_envs=(SECOND_KEY_ENV,),
                **common,
            ),
            ProviderSettings(
                name="bigspender",
                kind="openai",
                vendor="openai",
                models=_tiers(sonnet="bigspender-pro", opus="bigspender-ultra"),
                price_input_mtok=15.0,
                price_output_mtok=75.0,
                **common,
            ),
            ProviderSettings(
                name="slowpoke",
                kind="openai",
                vendor="openai",
                models=_tiers(haiku="slowpoke-mini", sonnet="slowpoke-pro", opus="slowpoke-max"),
                price_input_mtok=3.0,
                price_output_mtok=15.0,
                **common,
            ),
        ),
        alerts=AlertSettings(hourly_usd=5.0, daily_usd=40.0),
        budget=BudgetSettings(daily_usd=20.0),
        history_enabled=False,
    )


def build_app() -> ScenicApp:
    """A CcmApp on an ephemeral port that shows DISPLAY_URL, with the scene clock at the session start."""
    clock = SceneClock()
    app = CcmApp(
        scene_settings(),
        bind_socket("127.0.0.1", 0),
        environ={KEY_ENV: UPSTREAM_KEY, SECOND_KEY_ENV: SECOND_UPSTREAM_KEY},
        clock=clock,
        display_url=DISPLAY_URL,
    )
    return ScenicApp(app, clock)


# --- the scene ---------------------------------------------------------------------------------------------


def _ok(provider: str, model: str, at: float, took: float) -> AttemptRecord:
    return AttemptRecord(provider, model, model, 200, AttemptOutcome.OK, "", at, took)


def _rate_limited(provider: str, model: str, at: float, retry_after: float) -> AttemptRecord:
    return AttemptRecord(
        provider, model, model, 429, AttemptOutcome.COOLDOWN, RATE_LIMIT_REASON, at, 0.041, retry_after
    )


def _request(
    number: int,
    at: float,
    asked: str,
    served: tuple[str, str],
    ttfb: float,
    duration: float,
    usage: Usage,
    cost: float,
    *,
    stream: bool = True,
    failed: tuple[AttemptRecord, ...] = (),
    hints: ClientHints | None = None,
) -> RequestFinished:
    provider, model = served
    started = at + sum(a.duration for a in failed)
    return RequestFinished(
        request_id=f"req_scene{number:04d}",
        requested_model=asked,
        stream=stream,
        status=200,
        provider=provider,
        model=model,
        attempts=(*failed, _ok(provider, model, started, duration - (started - at))),
        usage=usage,
        cost_usd=cost,
        started_at=at,
        ttfb=ttfb,
        duration=duration,
        headers_of_note=(("request-id", f"req_upstream_{number:04d}"),),
        hints=hints or MAIN,
    )


SONNET, HAIKU, OPUS = "claude-sonnet-4-6", "claude-haiku-4-5", "claude-opus-4-6"
SESSION, OTHER_SESSION = "5f1c2e9a-8d3b-4c71-9a0e-2b6f4d1c7e30", "a93d0b17-2c4e-4f8a-b5d6-7e1f3a9c0b42"
MAIN = ClientHints(SESSION, request_class=RequestClass.MAIN)
EXPLORE = ClientHints(SESSION, "agent-3e7a91", None, RequestClass.SUBAGENT, "Explore")
OTHER = ClientHints(OTHER_SESSION, request_class=RequestClass.MAIN)
SWIFT_SONNET, SWIFT_HAIKU = ("swiftai", SONNET), ("swiftai", HAIKU)
BIG_PRO, BIG_ULTRA = ("bigspender", "bigspender-pro"), ("bigspender", "bigspender-ultra")
SLOW_MINI = ("slowpoke", "slowpoke-mini")


def scene_requests() -> list[RequestFinished]:
    """A quiet session, one early failover that recovered, then the current one (swiftai still cooling)."""
    t, u = SESSION_START, Usage
    early_429 = _rate_limited("swiftai", SONNET, t + 212, 3.0)
    now_429 = _rate_limited("swiftai", SONNET, NOW - 7, 30.0)
    return [
        _request(1, t + 12, SONNET, SWIFT_SONNET, 0.182, 3.9, u(1240, 412, 0, 17184), 0.0044),
        _request(2, t + 31, HAIKU, SWIFT_HAIKU, 0.094, 0.61, u(820, 64), 0.0009, stream=False, hints=EXPLORE),
        _request(3, t + 62, SONNET, SWIFT_SONNET, 0.201, 6.2, u(2210, 955, 3300, 17184), 0.0116),
        _request(4, t + 100, OPUS, BIG_ULTRA, 0.412, 9.8, u(21400, 1280), 0.4170),
        _request(5, t + 135, HAIKU, SWIFT_HAIKU, 0.088, 0.55, u(760, 48), 0.0008, stream=False, hints=EXPLORE),
        _request(6, t + 178, SONNET, SWIFT_SONNET, 0.176, 4.4, u(1980, 640, 0, 20484), 0.0058),
        _request(7, t + 212, SONNET, BIG_PRO, 0.388, 5.1, u(22464, 702), 0.3896, failed=(early_429,)),
        _request(8, t + 260, HAIKU, SWIFT_HAIKU, 0.091, 0.7, u(905, 77), 0.0010, stream=False),
        _request(9, t + 305, OPUS, BIG_ULTRA, 0.455, 12.6, u(24810, 1733), 0.5022, hints=OTHER),
        _request(10, t + 350, SONNET, SWIFT_SONNET, 0.169, 3.1, u(2405, 388, 0, 22464), 0.0052),
        _request(11, t + 410, SONNET, SWIFT_SONNET, 0.190, 5.7, u(1102, 811, 2890, 22464), 0.0083),
        _request(12, NOW - 7, SONNET, BIG_PRO, 0.402, 4.9, u(26456, 590), 0.4411, failed=(now_429,)),
        _request(13, NOW - 2, HAIKU, SLOW_MINI, 0.871, 1.4, u(930, 52), 0.0036, stream=False, hints=OTHER),
    ]


def failover_scene() -> list[tuple[float, Event]]:
    """(when, event) in the order the engine would publish them: cool-downs as they start, recoveries on the
    next success of that variant, each request when it finishes."""
    scene: list[tuple[float, Event]] = []
    cooling: set[tuple[str, str]] = set()
    for request in scene_requests():
        for attempt in request.attempts:
            variant = (attempt.provider, attempt.variant)
            if attempt.outcome is AttemptOutcome.COOLDOWN:
                until = attempt.started_at + (attempt.retry_after or 0)
                changed = ProviderChanged(
                    attempt.provider,
                    attempt.variant,
                    ProviderState.COOLING,
                    ProviderChange.COOLING,
                    until,
                    attempt.reason,
                )
                scene.append((attempt.started_at, changed))
                cooling.add(variant)
                if attempt.started_at == NOW - 7:  # the 429 said 0 of 50 left: routing steps off swiftai
                    used = "100 % of requests/min used"
                    stepped = SteppedOff("swiftai", True, used, 1.0, 0.8, NOW + 23, attempt.started_at)
                    scene.append((attempt.started_at, stepped))
            elif variant in cooling:
                cooling.discard(variant)
                recovered = ProviderChanged(
                    attempt.provider, attempt.variant, ProviderState.OK, ProviderChange.RECOVERED, None, "recovered"
                )
                scene.append((attempt.started_at + attempt.duration, recovered))
        scene.append((request.started_at + request.duration, request))
    return scene


QUOTAS = {
    "swiftai": QuotaSnapshot(QuotaWindow(50, 0, NOW + 23), QuotaWindow(40_000, 11_600, NOW + 23), NOW - 7),
    "bigspender": QuotaSnapshot(QuotaWindow(5_000, 4_987, NOW + 12), QuotaWindow(800_000, 731_200, NOW + 12), NOW),
}


async def wait_until(pilot: Pilot[Any], predicate: Callable[[], object], timeout: float = 5.0) -> None:
    """Let the app run until `predicate()` holds (bounded; no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout} s: {predicate}")
        await pilot.pause(0.02)


async def play_failover_scene(scenic: ScenicApp, pilot: Pilot[Any]) -> None:
    """Replay the scene onto the running app and wait until every line is drawn."""
    app = scenic.app
    await app.ready.wait()
    assert app.runtime is not None
    scene = failover_scene()
    for at, event in scene:
        scenic.clock.now = at
        if isinstance(event, RequestFinished):
            app.runtime.engine.replay(event)  # what the engine recorded per attempt: the panel matches the stream
        app.runtime.bus.publish(event)
    scenic.clock.now = NOW
    for name, quota in QUOTAS.items():
        app.runtime.engine.note_quota(name, quota)
    log = app.query_one(RequestLog)
    expected = 1 + len(scene)  # the welcome line, then one line per event
    await wait_until(pilot, lambda: len(log.lines) >= expected)
    app.refresh_panels()
    await pilot.pause()
