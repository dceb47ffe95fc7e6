"""A distinctive key through every failure path, grepped in every sink: no sink ever shows it.

Upstreams are the faithful mocks on loopback with `echo_key` on: their 401/403, 5xx and mid-stream error
messages quote the key they received, as some real APIs do. One provider per (kind, failure) pair, each with
its own model name, so every path is taken exactly once and no cool-down hides another. The keys are not
key-shaped (no `sk-` prefix, short), so only the exact-value net of the scrubber can catch them.

Sinks: client bodies (JSON errors and SSE streams), /health, /metrics, stdout/stderr of `ccm-tui serve`,
the history database (with its WAL), the TUI's log file, and the TUI screen (the stream and each request's
detail view, read with Pilot).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ccm_tui.config import ProviderSettings, Settings
from ccm_tui.core.contract import Variant
from ccm_tui.proxy.server import bind_socket
from ccm_tui.tui.app import CcmApp
from ccm_tui.tui.logs import configure_file_logging, log_path
from ccm_tui.tui.screens.detail import RequestDetail
from tests.mocks.upstreams import AnthropicMock, GeminiMock, OpenAIMock
from tests.test_tui import request_lines, screen_text
from tests.tui_snapshot_app import wait_until

KEYS = {"anthropic": "Quokka.anthropic.31415926", "openai": "Quokka.openai.27182818", "gemini": "Quokka.gemini.1618034"}
KEY_ENV = {kind: f"SINK_KEY_{kind.upper()}" for kind in KEYS}
UPSTREAM_MODEL = {"anthropic": "claude-haiku-4-5", "openai": "mock-large", "gemini": "gemini-2.5-flash"}
# The mock scenario each failure path uses, per kind (Gemini has no 500 scenario: its overload is a 503).
FAILURES = {
    "auth": {"anthropic": "auth", "openai": "auth", "gemini": "auth"},
    "server": {"anthropic": "server_error", "openai": "server_error", "gemini": "overloaded"},
    "stream": {"anthropic": "mid_stream_error", "openai": "mid_stream_error", "gemini": "mid_stream_error"},
}
Upstream = AnthropicMock | OpenAIMock | GeminiMock
BANNER = re.compile(r"proxy on (http://127\.0\.0\.1:\d+)")


@dataclass
class FailurePath:
    kind: str
    failure: str
    mock: Upstream

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.failure}"

    @property
    def model(self) -> str:
        return f"model-{self.name}"  # only this provider serves it

    def provider(self) -> ProviderSettings:
        extra: dict[str, Any] = {"vendor": "openai"} if self.kind == "openai" else {}
        return ProviderSettings(
            name=self.name,
            kind=self.kind,
            base_url=self.mock.url,
            api_key_env=KEY_ENV[self.kind],
            models={self.model: (Variant(UPSTREAM_MODEL[self.kind]),)},
            **extra,
        )

    def toml(self) -> str:
        vendor = 'vendor = "openai"\n' if self.kind == "openai" else ""
        return (
            f'[[providers]]\nname = "{self.name}"\nkind = "{self.kind}"\n{vendor}base_url = "{self.mock.url}"\n'
            f'api_key_env = "{KEY_ENV[self.kind]}"\n'
            f'[providers.models]\n"{self.model}" = "{UPSTREAM_MODEL[self.kind]}"\n'
        )


def make_mock(kind: str, scenario: str) -> Upstream:
    mock: Upstream
    if kind == "anthropic":
        mock = AnthropicMock(scenario)
    elif kind == "openai":
        mock = OpenAIMock(scenario, vendor="openai")
    else:
        mock = GeminiMock(scenario)
        mock.api_key = KEYS["gemini"]  # type: ignore[misc]
    mock.echo_key = True
    return mock


@pytest.fixture
async def paths() -> AsyncIterator[list[FailurePath]]:
    made = [
        FailurePath(kind, failure, make_mock(kind, FAILURES[failure][kind])) for failure in FAILURES for kind in KEYS
    ]
    async with contextlib.AsyncExitStack() as stack:
        for path in made:
            await stack.enter_async_context(path.mock)
        yield made


def body(path: FailurePath) -> dict[str, Any]:
    return {
        "model": path.model,
        "max_tokens": 50,
        "stream": path.failure == "stream",
        "messages": [{"role": "user", "content": "hello"}],
    }


async def send_every_failure(base_url: str, paths: list[FailurePath]) -> list[str]:
    """Each path once; returns what the client received (error JSON, or the SSE stream with its error event)."""
    received = []
    async with httpx.AsyncClient(base_url=base_url, timeout=30, headers={"x-api-key": "dummy"}) as client:
        for path in paths:
            response = await client.post("/v1/messages", json=body(path))
            received.append(response.text)
            if path.failure == "stream":
                assert response.status_code == 200 and "event: error" in response.text, response.text
            else:
                assert response.status_code >= 400, response.text
    return received


def assert_upstreams_echoed(paths: list[FailurePath]) -> None:
    """The mocks did receive the keys (so the test would see a leak if the proxy let one through)."""
    for path in paths:
        assert path.mock.requests, path.name


def leaks(text: str) -> list[str]:
    return [kind for kind, key in KEYS.items() if key in text]


def database_bytes(history: Path) -> str:
    files = [p for p in history.parent.iterdir() if p.name.startswith(history.name)]
    assert files
    return b"".join(p.read_bytes() for p in files).decode("latin-1")


async def test_no_key_reaches_any_sink_of_ccm_tui_serve(paths: list[FailurePath], tmp_path: Path) -> None:
    history = tmp_path / "history.sqlite3"
    config = tmp_path / "config.toml"
    config.write_text(f'[history]\npath = "{history}"\n\n' + "\n".join(p.toml() for p in paths))
    env = {**os.environ, **{KEY_ENV[kind]: key for kind, key in KEYS.items()}}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ccm_tui", "serve", "--config", str(config), "--port", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    assert process.stderr is not None and process.stdout is not None
    early = b""
    try:
        while (match := BANNER.search(early.decode())) is None:
            line = await asyncio.wait_for(process.stderr.readline(), 30)
            assert line, early.decode()
            early += line
        base_url = match.group(1)
        client_bodies = await send_every_failure(base_url, paths)
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            health = (await client.get("/health")).text
            metrics = (await client.get("/metrics")).text
        process.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0
    assert_upstreams_echoed(paths)
    stderr = (early + err).decode()
    assert "[redacted]" in "".join(client_bodies)  # the echoes arrived, scrubbed
    sinks = {
        **{f"client body ({p.name})": text for p, text in zip(paths, client_bodies, strict=True)},
        "/health": health,
        "/metrics": metrics,
        "stdout": out.decode(),
        "stderr": stderr,
        "history database": database_bytes(history),
    }
    assert {sink: leaks(text) for sink, text in sinks.items() if leaks(text)} == {}
    assert "failed" in stderr or "error" in stderr.lower()  # the failures were logged (scrubbed), not silent


async def test_no_key_reaches_the_tui_screen_or_its_log_file(paths: list[FailurePath], tmp_path: Path) -> None:
    log_file = configure_file_logging()
    handlers = logging.getLogger().handlers[-1:]
    settings = Settings(providers=tuple(p.provider() for p in paths), history_path=tmp_path / "tui.sqlite3")
    environ = {KEY_ENV[kind]: key for kind, key in KEYS.items()}
    app = CcmApp(settings, bind_socket("127.0.0.1", 0), environ=environ)
    screens: dict[str, str] = {}
    try:
        async with app.run_test(size=(160, 48)) as pilot:
            await asyncio.wait_for(app.ready.wait(), 10)
            assert app.runtime is not None
            async with httpx.AsyncClient(base_url=app.base_url, timeout=30, headers={"x-api-key": "d"}) as client:
                for shown, path in enumerate(paths, start=1):
                    await client.post("/v1/messages", json=body(path))
                    await wait_until(pilot, lambda shown=shown: len(request_lines(app)) == shown)
                    await pilot.press("enter")  # the newest request's detail: error text and every attempt
                    await wait_until(pilot, lambda: isinstance(app.screen, RequestDetail))
                    await pilot.pause()
                    screens[f"detail ({path.name})"] = screen_text(app)
                    await pilot.press("escape")
            await pilot.pause()
            screens["dashboard"] = screen_text(app)
    finally:
        for handler in handlers:
            logging.getLogger().removeHandler(handler)
            handler.close()
    assert log_file == log_path()
    assert_upstreams_echoed(paths)
    assert any("[redacted]" in text for text in screens.values())  # the echoed text is on screen, scrubbed
    screens["log file"] = log_file.read_text()
    screens["history database"] = database_bytes(tmp_path / "tui.sqlite3")
    assert {sink: leaks(text) for sink, text in screens.items() if leaks(text)} == {}
