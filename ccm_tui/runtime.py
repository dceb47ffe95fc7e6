"""Assembles a running ccm-tui: providers, engine, telemetry and the Quart app, for the TUI and headless alike.

`Runtime.start()` does the slow parts off the event loop (keyring lookups, price warm-up, history open and
seed); `aclose()` closes upstream clients and flushes history. Nothing here binds sockets (proxy/server.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from quart import Quart

from ccm_tui import secrets
from ccm_tui.config import Settings, default_data_dir
from ccm_tui.core.events import Event, EventBus, RequestFinished
from ccm_tui.core.scrub import remember_secret
from ccm_tui.providers.build import build_provider
from ccm_tui.proxy.app import create_app
from ccm_tui.proxy.guard import GuardPolicy
from ccm_tui.routing.engine import Engine
from ccm_tui.telemetry.costs import PriceBook
from ccm_tui.telemetry.history import HistoryReader, HistoryWriter
from ccm_tui.telemetry.metrics import Metrics
from ccm_tui.telemetry.spend import SpendTracker, local_day_bounds

log = logging.getLogger(__name__)


RECENT_ON_START = 50


class StartupError(Exception):
    """A problem that prevents starting, phrased for the user (exit code 2)."""


def check_proxy_key(settings: Settings, environ: Mapping[str, str] | None = None) -> str | None:
    """The key clients must send, when `[server] auth_key_env` asks for one; its variable must be set."""
    environ = os.environ if environ is None else environ
    name = settings.server.auth_key_env
    if not name:
        return None
    if not environ.get(name):
        raise StartupError(f"[server] auth_key_env names {name}, but that variable is not set.")
    remember_secret(environ[name])
    return environ[name]


class Runtime:
    def __init__(
        self,
        settings: Settings,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        demo: bool = False,
    ) -> None:
        self.settings = settings
        self.demo = demo  # demo spend is not the user's: its history is a throwaway file, removed at close
        self._demo_history: tempfile.TemporaryDirectory[str] | None = None
        self.environ = os.environ if environ is None else environ
        self.bus = EventBus()
        self.prices = PriceBook(settings.providers)
        for provider in settings.providers:
            for value in provider.headers.values():  # a configured header may be a gateway's own key
                remember_secret(value)
        providers = {p.name: build_provider(p, settings.routing) for p in settings.providers}
        self.spend = SpendTracker(settings.alerts, self.bus.publish, clock=clock)
        self.engine = Engine(settings, providers, self.bus, self.prices, clock=clock, spend=self.spend)
        self.metrics = Metrics()
        self.bus.subscribe(self.metrics.subscriber)
        self.bus.subscribe(self.spend.subscriber)
        self.key_sources: dict[str, str] = {}
        self.history: HistoryWriter | None = None
        self.history_path: Path | None = None
        self.requests_before_start = 0  # today's requests found in history at start
        self.recent_before_start: list[RequestFinished] = []  # the last requests of earlier runs, oldest first
        proxy_key = check_proxy_key(settings, self.environ)
        self.app: Quart = create_app(
            self.engine,
            proxy_key=proxy_key,
            metrics_render=self.metrics.render,
            max_body_bytes=int(settings.server.max_body_mb * 1024 * 1024),
            guard=GuardPolicy.create(
                settings.server.host, settings.server.allowed_hosts, settings.server.allowed_origins
            ),
        )

    async def start(self) -> None:
        await self.resolve_keys()
        await asyncio.to_thread(self.prices.warm, self.prices.configured_pairs())
        if self.settings.history_enabled:
            await self._open_history()

    async def resolve_keys(self) -> None:
        async def one(name: str) -> None:
            keys = await secrets.resolve_keys(self.engine.providers[name].settings, self.environ)
            self.key_sources[name] = keys[0].source if keys else "none"
            if keys:
                self.engine.set_api_keys(name, [(k.label, k.source, k.secret) for k in keys])

        await asyncio.gather(*(one(name) for name in self.engine.providers))

    async def _open_history(self) -> None:
        if self.demo:
            self._demo_history = await asyncio.to_thread(tempfile.TemporaryDirectory, prefix="ccm-tui-demo-")
            path = Path(self._demo_history.name) / "history.sqlite3"
        else:
            path = self.settings.history_path or default_data_dir() / "history.sqlite3"
        self.history_path = path
        day_start, _ = local_day_bounds(time.time())

        def seed() -> tuple[list[tuple[float, float]], int, list[RequestFinished]]:
            reader = HistoryReader(path)
            try:
                buckets = reader.spend_buckets(time.time() - 48 * 3600, 60.0)
                return buckets, reader.count_since(day_start), reader.recent(RECENT_ON_START)
            finally:
                reader.close()

        # Read (and create) the database before the writer thread opens it: two first opens would race on WAL.
        try:
            buckets, count, recent = await asyncio.to_thread(seed)
        except Exception as exc:  # history is a convenience: a broken file must not stop the proxy
            log.warning("could not read request history at %s: %s", path, exc)
        else:
            self.spend.seed(buckets)
            self.requests_before_start = count
            self.recent_before_start = recent
        loop = asyncio.get_running_loop()

        def publish_on_loop(event: Event) -> None:  # the writer reports faults from its own thread
            loop.call_soon_threadsafe(self.bus.publish, event)

        writer = HistoryWriter(path, notify=publish_on_loop)
        writer.start()
        self.history = writer
        self.bus.subscribe(writer.subscriber)

    async def aclose(self) -> None:
        await self.engine.aclose()
        if self.history is not None:
            await asyncio.to_thread(self.history.close)
        if self._demo_history is not None:
            await asyncio.to_thread(self._demo_history.cleanup)
