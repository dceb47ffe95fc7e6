"""The shared service lifecycle (service.py): what `ccm-tui serve` and the TUI both rely on when they stop.

Real parts only: the proxy serves on an ephemeral loopback port, the upstream is the Anthropic mock, the
client is httpx over real HTTP. Waiting is on events (the bus, the first streamed bytes), never on sleeps.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from ccm_tui.config import ProviderSettings, ServerSettings, Settings
from ccm_tui.core.events import Event, RequestFinished
from ccm_tui.proxy.server import CLOSE_SECONDS, bind_socket
from ccm_tui.runtime import StartupError
from ccm_tui.service import Service, bind
from ccm_tui.telemetry.history import HistoryReader
from tests.mocks.upstreams import AnthropicMock

STREAM = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 50,
    "stream": True,
    "messages": [{"role": "user", "content": "hi"}],
}


def settings_for(url: str, history: Path | None = None) -> Settings:
    provider = ProviderSettings(name="up", kind="anthropic", base_url=url, api_key_env="UP_KEY")
    return Settings(
        server=ServerSettings(port=0),
        providers=(provider,),
        history_enabled=history is not None,
        history_path=history,
    )


def port_of(service: Service) -> int:
    return int(service.base_url.rsplit(":", 1)[1])


async def test_a_stream_still_running_at_the_drain_deadline_is_cut_recorded_and_the_port_freed(tmp_path) -> None:
    history = tmp_path / "history.sqlite3"
    async with AnthropicMock() as upstream:
        upstream.chunk_delay = 2.0  # the first event arrives, then a pause far past the drain deadline
        settings = settings_for(upstream.url, history)
        service = Service(settings, bind(settings), environ={"UP_KEY": "k"}, drain_seconds=0.2)
        runtime = await service.start()
        finished: list[RequestFinished] = []

        def on_event(event: Event) -> None:
            if isinstance(event, RequestFinished):
                finished.append(event)

        runtime.bus.subscribe(on_event)
        received = b""
        async with (
            httpx.AsyncClient(timeout=30) as http,
            http.stream("POST", f"{service.base_url}/v1/messages", json=STREAM) as response,
        ):
            chunks = response.aiter_raw()
            received += await anext(chunks)  # the stream is in flight
            stopping = asyncio.create_task(service.stop())
            with pytest.raises(httpx.HTTPError):  # cut at the deadline, not finished
                async for chunk in chunks:
                    received += chunk
            # Well before hypercorn's own graceful timeout (drain + CLOSE_SECONDS) would have ended it.
            await asyncio.wait_for(stopping, CLOSE_SECONDS)
        # The proxy closed its upstream connection (the mock's next write fails): no handler left running.
        await asyncio.wait_for(upstream.aborted.wait(), 10)
    assert response.status_code == 200 and b"message_start" in received and b"message_stop" not in received
    assert [(e.status, e.error_type) for e in finished] == [(499, "client_closed")]
    reader = HistoryReader(history)  # the cut request was flushed to history before stop() returned
    try:
        assert [e.request_id for e in reader.recent(10)] == [finished[0].request_id]
    finally:
        reader.close()
    bind_socket("127.0.0.1", port_of(service)).close()  # the port is free again


async def test_a_start_that_fails_still_frees_the_port_and_stop_is_idempotent() -> None:
    settings = settings_for("http://127.0.0.1:9")
    sock = bind(settings)
    settings = Settings(server=ServerSettings(port=0, auth_key_env="CCM_TEST_PROXY_KEY"), providers=settings.providers)
    service = Service(settings, sock, environ={})  # the proxy key's variable is not set: Runtime refuses
    with pytest.raises(StartupError, match="CCM_TEST_PROXY_KEY"):
        await service.start()
    await asyncio.gather(service.stop(), service.stop())  # a quit key and an unmount at once
    await service.stop()
    bind_socket("127.0.0.1", port_of(service)).close()
