"""The bench's fast mock upstream: raw asyncio HTTP/1.1 speaking Anthropic Messages and OpenAI Chat Completions.

Run as its own process: `python -m bench.mock_upstream [--port 0] [--cpus 1]` prints `{"port": N, "pid": P}`
on one line, then serves until SIGTERM/SIGINT. The response profile comes from the path (see bench.wire);
`GET /_stats` returns counters (requests, statuses, aborted streams) so a run can tell how often the failover
primary answered 429. Keep-alive, chunked streaming, one write per event; timings are scheduled against the
start of the response so they do not drift. Deliberately not aiohttp: the fewer layers, the cheaper each
request, and the bench measures this process's CPU to show it is not the bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections import Counter

import orjson

from bench import wire

_REASONS = {200: "OK", 404: "Not Found", 400: "Bad Request", 429: "Too Many Requests", 500: "Internal Server Error"}
_ANTHROPIC_HEADERS = (
    b"content-type: text/event-stream\r\ncache-control: no-cache\r\nrequest-id: req_bench01\r\n"
    b"anthropic-ratelimit-requests-limit: 4000\r\nanthropic-ratelimit-requests-remaining: 3999\r\n"
    b"anthropic-ratelimit-requests-reset: 2026-11-22T12:00:00Z\r\nanthropic-ratelimit-tokens-limit: 2000000\r\n"
    b"anthropic-ratelimit-tokens-remaining: 1990000\r\nanthropic-ratelimit-tokens-reset: 2026-11-22T12:00:00Z\r\n"
)
_OPENAI_HEADERS = (
    b"content-type: text/event-stream\r\ncache-control: no-cache\r\nx-request-id: req_bench01\r\n"
    b"x-ratelimit-limit-requests: 10000\r\nx-ratelimit-remaining-requests: 9999\r\nx-ratelimit-reset-requests: 6ms\r\n"
    b"x-ratelimit-limit-tokens: 2000000\r\nx-ratelimit-remaining-tokens: 1990000\r\nx-ratelimit-reset-tokens: 3ms\r\n"
)


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class MockUpstream:
    def __init__(self) -> None:
        self.stats: Counter[str] = Counter()
        # Encoded responses by (profile, model, flavour): encoding is not what the bench measures.
        self._writes: dict[tuple[wire.Profile, str, str], list[bytes]] = {}

    async def serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                method, target, _version = lines[0].decode("latin-1").split(" ", 2)
                headers: dict[bytes, bytes] = {}
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    if name:
                        headers[name.strip().lower()] = value.strip()
                body = await _read_body(reader, headers)
                keep_alive = headers.get(b"connection", b"").lower() != b"close"
                await self.respond(method, target, body, writer)
                if not keep_alive:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def respond(self, method: str, target: str, body: bytes, writer: asyncio.StreamWriter) -> None:
        self.stats["requests"] += 1
        if method == "GET" and target == "/_stats":
            return _send_simple(writer, 200, orjson.dumps(dict(self.stats)))
        route = wire.split_path(target)
        if method != "POST" or route is None:
            self.stats["status_404"] += 1
            return _send_simple(writer, 404, b'{"error":"no such bench route"}')
        profile, endpoint = route
        self.stats[f"status_{profile.status}"] += 1
        openai = endpoint == wire.OPENAI_ENDPOINT
        if profile.status != 200:
            extra = b"retry-after: %s\r\nx-should-retry: true\r\n" % profile.retry_after.encode()
            payload = wire.openai_error(profile.status) if openai else wire.anthropic_error(profile.status)
            return _send_simple(writer, profile.status, payload, extra)
        try:
            request = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _send_simple(writer, 400, b'{"error":"body is not JSON"}')
        model = str(request.get("model", "bench"))
        if not request.get("stream"):
            if profile.duration_s:
                await asyncio.sleep(profile.duration_s)
            payload = wire.openai_completion(profile, model) if openai else wire.anthropic_message(profile, model)
            return _send_simple(writer, 200, payload)
        include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
        flavour = ("openai+usage" if include_usage else "openai") if openai else "anthropic"
        writes = self._writes.get((profile, model, flavour))
        if writes is None:
            if openai:
                writes = wire.openai_stream_events(profile, model, include_usage)
            else:
                writes = wire.anthropic_stream_events(profile, model)
            if len(self._writes) < 256:
                self._writes[(profile, model, flavour)] = writes
        await self.stream(writer, profile, _OPENAI_HEADERS if openai else _ANTHROPIC_HEADERS, writes)

    async def stream(
        self, writer: asyncio.StreamWriter, profile: wire.Profile, head: bytes, writes: list[bytes]
    ) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        self.stats["streams"] += 1
        if profile.first_token_ms:
            await asyncio.sleep(profile.first_token_ms / 1000)
        transport = writer.transport
        status_line = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n" + head + b"\r\n"
        if not profile.gap_ms:
            transport.write(status_line + b"".join(_chunk(w) for w in writes) + b"0\r\n\r\n")
            return await _drain_if_needed(writer)
        transport.write(status_line + _chunk(writes[0]))
        first_at = start + profile.first_token_ms / 1000
        for index in range(1, len(writes)):
            delay = first_at + index * profile.gap_ms / 1000 - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if transport.is_closing():
                self.stats["aborted_streams"] += 1
                return
            transport.write(_chunk(writes[index]))
            await _drain_if_needed(writer)
        transport.write(b"0\r\n\r\n")


async def _drain_if_needed(writer: asyncio.StreamWriter) -> None:
    if writer.transport.get_write_buffer_size() > 256 * 1024:
        await writer.drain()


async def _read_body(reader: asyncio.StreamReader, headers: dict[bytes, bytes]) -> bytes:
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append((await reader.readexactly(size + 2))[:-2])
    length = int(headers.get(b"content-length", b"0") or 0)
    return await reader.readexactly(length) if length else b""


def _send_simple(writer: asyncio.StreamWriter, status: int, body: bytes, extra: bytes = b"") -> None:
    writer.transport.write(
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nrequest-id: req_bench01\r\n%s\r\n%s"
        % (status, _REASONS.get(status, "Error").encode(), len(body), extra, body)
    )


def install_fast_loop() -> None:
    """uvloop when it is installed (it is optional); the bench works with the stock loop too."""
    with contextlib.suppress(ImportError):
        import uvloop  # type: ignore[import-not-found]

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def _stop_on_stdin_eof(stop: asyncio.Event) -> None:
    """The orchestrator holds our stdin open; EOF means it is gone, so no mock outlives a crashed run."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while await reader.read(4096):
        pass
    stop.set()


async def _main(host: str, port: int, watch_stdin: bool) -> None:
    mock = MockUpstream()
    server = await asyncio.start_server(mock.serve_connection, host, port, backlog=2048, limit=1 << 20)
    bound = server.sockets[0].getsockname()[1]
    sys.stdout.write(orjson.dumps({"port": bound, "pid": os.getpid()}).decode() + "\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watcher = asyncio.create_task(_stop_on_stdin_eof(stop)) if watch_stdin else None
    async with server:
        await stop.wait()
    if watcher is not None:
        watcher.cancel()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cpus", default="", help="comma-separated CPU ids to pin this process to")
    parser.add_argument("--watch-stdin", action="store_true", help="exit when stdin closes (used by bench.run)")
    args = parser.parse_args(argv)
    if args.cpus:
        os.sched_setaffinity(0, {int(c) for c in args.cpus.split(",")})
    install_fast_loop()
    asyncio.run(_main(args.host, args.port, args.watch_stdin))


if __name__ == "__main__":
    main()
