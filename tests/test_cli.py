"""`ccm-tui serve` as a user runs it: a real subprocess, real signals, real exit codes."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import httpx
import pytest

from ccm_tui.proxy.server import bind_socket
from tests.mocks.upstreams import AnthropicMock

BANNER = re.compile(r"proxy on (http://127\.0\.0\.1:\d+)")


async def run_cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ccm_tui",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    return process.returncode or 0, (out + err).decode()


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[server]\nport = 'eighty'\n", "server.port: must be a whole number"),
        ("[routing]\nstrategy = 'fastest'\n", "routing.strategy: must be one of ordered, cost"),
        ("[[providers]]\nname = 'x'\nkind = 'smoke'\n", "providers[0].kind: must be one of anthropic"),
        ("[[providers]]\nname = 'x'\nkind = 'openai'\n", "providers[0].base_url: missing"),
        (
            "[[providers]]\nname='a'\nkind='anthropic'\n[[providers]]\nname='a'\nkind='anthropic'\n",
            "duplicate provider name",
        ),
        ("[server\n", "not valid TOML"),
        ("[colour]\n", "colour: unknown key"),
        ("[keys]\nstrategy = 'x'\n", "keys.strategy: unknown binding id"),
        ("[keys]\nquit = 'escpe'\n", "keys.quit: unknown key name 'escpe'"),
    ],
)
async def test_invalid_config_is_one_line_naming_file_and_key(tmp_path, text, expected) -> None:
    path = write_config(tmp_path, text)
    code, output = await run_cli("serve", "--config", str(path))
    assert code == 2
    assert str(path) in output and expected in output
    assert "Traceback" not in output


async def test_busy_port_exits_2_with_one_line(tmp_path) -> None:
    holder = bind_socket("127.0.0.1", 0)
    port = holder.getsockname()[1]
    path = write_config(tmp_path, "[[providers]]\nname='a'\nkind='anthropic'\nbase_url='http://127.0.0.1:9'\n")
    try:
        code, output = await run_cli("serve", "--config", str(path), "--port", str(port))
    finally:
        holder.close()
    assert code == 2
    assert output.strip() == f"ccm-tui: Port {port} on 127.0.0.1 is already in use; choose another with --port."


async def test_non_loopback_bind_without_proxy_key_is_refused(tmp_path) -> None:
    path = write_config(tmp_path, "[[providers]]\nname='a'\nkind='anthropic'\nbase_url='http://127.0.0.1:9'\n")
    code, output = await run_cli("serve", "--config", str(path), "--host", "0.0.0.0")
    assert code == 2 and "auth_key_env" in output


async def test_no_providers_explains_how_to_add_one(tmp_path) -> None:
    code, output = await run_cli("serve", env={"CCM_TUI_CONFIG": "", "HOME": str(tmp_path)})
    assert code == 2 and "ANTHROPIC_API_KEY" in output and "--demo" in output


async def test_sigterm_drains_in_flight_stream_and_exits_0(tmp_path) -> None:
    async with AnthropicMock() as upstream:
        upstream.chunk_delay = 0.05
        upstream.text = "one two three four five six seven eight nine ten eleven twelve"
        path = write_config(
            tmp_path,
            f"[history]\nenabled = false\n[[providers]]\nname='a'\nkind='anthropic'\nbase_url='{upstream.url}'\n"
            "api_key_env='UP_KEY'\n",
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "ccm_tui",
            "serve",
            "--config",
            str(path),
            "--port",
            "0",
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "UP_KEY": "k"},
        )
        assert process.stderr is not None
        base = None
        while base is None:
            line = (await asyncio.wait_for(process.stderr.readline(), timeout=20)).decode()
            assert line, "ccm-tui exited before listening"
            if match := BANNER.search(line):
                base = match.group(1)
        body = {
            "model": "claude-sonnet-4-6",
            "max_tokens": 50,
            "stream": True,
            "messages": [{"role": "user", "content": "count"}],
        }
        received = b""
        async with httpx.AsyncClient(timeout=20) as http, http.stream("POST", f"{base}/v1/messages", json=body) as r:
            async for chunk in r.aiter_bytes():
                if not received:
                    process.send_signal(signal.SIGTERM)  # mid-stream
                received += chunk
        code = await asyncio.wait_for(process.wait(), timeout=20)
        rest = (await process.stderr.read()).decode()
    assert b"event: message_stop" in received  # the in-flight stream finished
    assert code == 0 and "Traceback" not in rest


async def test_serve_demo_answers_on_the_fast_event_loop(tmp_path) -> None:
    # The CLI runs on uvloop where it is installed; the demo's simulated upstreams must bind there too.
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ccm_tui", "serve", "--demo", "--port", "0", stderr=asyncio.subprocess.PIPE
    )
    assert process.stderr is not None
    base = None
    try:
        while base is None:
            line = (await asyncio.wait_for(process.stderr.readline(), timeout=20)).decode()
            assert line, "ccm-tui --demo exited before listening"
            if match := BANNER.search(line):
                base = match.group(1)
        async with httpx.AsyncClient(timeout=20) as http:
            health = await http.get(f"{base}/health")
    finally:
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), timeout=20)
        rest = (await process.stderr.read()).decode()
    assert health.status_code == 200 and health.json()["providers"]
    assert code == 0 and "Traceback" not in rest
