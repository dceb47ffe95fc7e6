"""Shared fixtures: a real ccm-tui proxy on an ephemeral loopback port, and isolation from the host.

Every test runs with an isolated HOME-like environment: no user config, no keyring, no history file
outside tmp_path.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import keyring
import pytest
from keyring.backend import KeyringBackend

from ccm_tui.config import ProviderSettings, RoutingSettings, Settings
from ccm_tui.core.events import Event
from ccm_tui.proxy.server import bind_socket, serve
from ccm_tui.routing.engine import Engine
from ccm_tui.runtime import Runtime


class MemoryKeyring(KeyringBackend):
    """An in-memory keyring so tests never touch (or need) an OS keyring."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.store: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.store.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.store[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.store.pop((service, username), None)


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> MemoryKeyring:
    """No host config, keys or history leak into a test; the keyring is in memory."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    for name in (
        "CCM_TUI_CONFIG",
        "ANTHROPIC_API_KEY",
        "OPENAI_API_KEY",
        "OPENROUTER_API_KEY",
        "GROQ_API_KEY",
        "CEREBRAS_API_KEY",
        "GITHUB_TOKEN",
        "GEMINI_API_KEY",
        "ANTHROPIC_BASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    backend = MemoryKeyring()
    previous = keyring.get_keyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


@dataclass
class RunningProxy:
    url: str
    runtime: Runtime
    events: list[Event]
    changed: asyncio.Condition

    async def wait_finished(self, count: int = 1, timeout: float = 5.0) -> list:
        """Wait (on bus events, no polling) until `count` requests have finished."""
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(lambda: len(self.finished()) >= count), timeout)
        return self.finished()

    @property
    def engine(self) -> Engine:
        return self.runtime.engine

    def finished(self) -> list:
        from ccm_tui.core.events import RequestFinished

        return [e for e in self.events if isinstance(e, RequestFinished)]


ProxyFactory = Callable[..., Awaitable[RunningProxy]]


@pytest.fixture
async def start_proxy(tmp_path: Path) -> AsyncIterator[ProxyFactory]:
    """`await start_proxy(providers, **settings)` runs a proxy until the test ends."""
    running: list[tuple[asyncio.Event, asyncio.Task[None], Runtime]] = []

    async def start(
        providers: Sequence[ProviderSettings],
        *,
        routing: RoutingSettings | None = None,
        environ: dict[str, str] | None = None,
        history: bool = False,
        **changes: object,
    ) -> RunningProxy:
        settings = Settings(
            providers=tuple(providers),
            routing=routing or RoutingSettings(),
            history_enabled=history,
            history_path=tmp_path / "history.sqlite3",
        )
        if changes:
            settings = replace(settings, **changes)
        sock = bind_socket("127.0.0.1", 0)
        port = sock.getsockname()[1]
        runtime = Runtime(settings, environ=environ if environ is not None else {"TEST_KEY": "test-upstream-key"})
        events: list[Event] = []
        changed = asyncio.Condition()

        def record(event: Event) -> None:
            events.append(event)
            asyncio.get_running_loop().create_task(_notify(changed))

        runtime.bus.subscribe(record)
        await runtime.start()
        shutdown = asyncio.Event()
        task = asyncio.create_task(serve(runtime.app, sock, shutdown, drain_seconds=5.0))
        running.append((shutdown, task, runtime))
        return RunningProxy(f"http://127.0.0.1:{port}", runtime, events, changed)

    yield start
    for shutdown, task, runtime in running:
        shutdown.set()
        await task
        await runtime.aclose()


async def _notify(condition: asyncio.Condition) -> None:
    async with condition:
        condition.notify_all()


def free_port() -> int:
    """A port nobody listens on (for connection-refused scenarios)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
