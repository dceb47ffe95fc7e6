"""The runtime's history: demo mode never writes to the user's file, and a storage fault reaches the bus.

Real runs: simulated providers or the Anthropic mock on loopback, the official anthropic SDK over real HTTP.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import anthropic
import pytest

from ccm_tui.config import ProviderSettings, ServerSettings, Settings, default_data_dir
from ccm_tui.core.events import HistoryFault, HistoryProblem, HistoryRecovered
from ccm_tui.service import Service, bind
from ccm_tui.telemetry.history import HistoryReader, HistoryWriter
from tests.conftest import ProxyFactory
from tests.mocks.upstreams import AnthropicMock
from tests.test_history import finished


@pytest.fixture(autouse=True)
def demo_key_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    """start_demo_upstreams sets the demo key variable; undo that after the test."""
    monkeypatch.delenv("CCM_TUI_DEMO_KEY", raising=False)


def fingerprint(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


async def test_a_demo_run_leaves_the_users_history_untouched() -> None:
    user_history = default_data_dir() / "history.sqlite3"  # under the test's XDG_DATA_HOME
    writer = HistoryWriter(user_history)
    writer.subscriber(finished(1))
    writer.close()
    before = fingerprint(user_history.parent)

    settings = Settings(server=ServerSettings(port=0), history_enabled=True)  # the default path: the user's
    service = Service(settings, bind(settings), demo=True)
    runtime = await service.start()
    try:
        assert runtime.history is not None and runtime.history_path is not None
        demo_history = runtime.history_path
        assert demo_history.parent != user_history.parent
        client = anthropic.AsyncAnthropic(base_url=service.base_url, api_key="dummy", max_retries=0)
        for _ in range(3):
            await client.messages.create(
                model="claude-haiku-4-5", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
            )
        # The demo does keep a history (its TUI shows today's requests), just not in the user's file.
        recorded = await asyncio.to_thread(runtime.history.wait_until, lambda s: s.written >= 3, 10.0)
        assert recorded
    finally:
        await service.stop()

    assert fingerprint(user_history.parent) == before
    assert not demo_history.parent.exists()  # removed at exit
    reader = HistoryReader(user_history)
    try:
        assert [e.request_id for e in reader.recent(10)] == ["req-1"]
    finally:
        reader.close()


async def test_a_corrupt_history_file_is_reported_on_the_bus_and_replaced(
    start_proxy: ProxyFactory, tmp_path: Path
) -> None:
    (tmp_path / "history.sqlite3").write_bytes(b"\x00garbage" * 1000)  # the path start_proxy configures
    async with AnthropicMock() as upstream:
        provider = ProviderSettings(name="up", kind="anthropic", base_url=upstream.url, api_key_env="TEST_KEY")
        proxy = await start_proxy([provider], history=True)
        client = anthropic.AsyncAnthropic(base_url=proxy.url, api_key="dummy", max_retries=0)
        await client.messages.create(
            model="claude-haiku-4-5", max_tokens=20, messages=[{"role": "user", "content": "x"}]
        )
        async with proxy.changed:  # published from the writer thread, delivered on the loop
            await asyncio.wait_for(
                proxy.changed.wait_for(lambda: any(isinstance(e, HistoryRecovered) for e in proxy.events)), 10
            )
    (problem,) = [e for e in proxy.events if isinstance(e, HistoryProblem)]
    assert problem.fault is HistoryFault.CORRUPT and "moved it to" in problem.message
    assert len(list(tmp_path.glob("history.sqlite3.corrupt-*.bak"))) == 1
    assert proxy.runtime.history is not None and proxy.runtime.history.status().written == 1
