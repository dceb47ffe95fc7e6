"""Command line: `ccm-tui` (TUI + proxy in one loop) and `ccm-tui serve` (the same proxy, headless).

Exit codes: 0 after a clean shutdown, 2 for a problem the user must fix (bad config, busy port, unsafe bind).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import sys
from typing import TYPE_CHECKING

from ccm_tui import __version__

# Everything heavier than argparse is imported where it is used: `ccm-tui --version` and `--help` load
# neither the proxy (Quart, hypercorn, httpx) nor the TUI (bench/: --version ~0.1 s instead of ~0.6 s).
if TYPE_CHECKING:
    from ccm_tui.config import Settings

log = logging.getLogger("ccm_tui")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", metavar="PATH", help="config file (default: $CCM_TUI_CONFIG, then the user config dir)"
    )
    common.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    common.add_argument("--port", type=int, help="port to listen on (default 8082; 0 picks a free one)")
    common.add_argument("--demo", action="store_true", help="run against built-in simulated providers")
    parser = argparse.ArgumentParser(
        prog="ccm-tui",
        parents=[common],
        description="An Anthropic-compatible proxy with failover across providers, and a live terminal UI.",
    )
    parser.add_argument("--version", action="version", version=f"ccm-tui {__version__}")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", parents=[common], help="run the proxy headless (no TUI)")
    from ccm_tui import stats  # argparse-only at import: keeps --version fast

    stats.add_parser(sub)
    return parser


def load(args: argparse.Namespace) -> Settings:
    from ccm_tui.config import ConfigError, load_settings
    from ccm_tui.proxy.server import is_loopback

    settings = load_settings(args.config)
    settings = settings.with_server(host=args.host, port=args.port)
    if settings.server.port < 0 or settings.server.port > 65535:
        raise ConfigError(f"--port: must be between 0 and 65535, got {settings.server.port}")
    if not is_loopback(settings.server.host) and not settings.server.auth_key_env:
        raise ConfigError(
            f"refusing to listen on {settings.server.host} without a proxy key: set [server] auth_key_env to the "
            "name of an environment variable holding the key clients must send, or listen on 127.0.0.1."
        )
    if settings.keys:  # checked for `serve` too: one config file, one verdict
        from ccm_tui.tui.keymap import keymap

        keymap(settings)
    return settings


def use_fast_event_loop() -> bool:
    """Run on uvloop where it is installed (Linux, macOS): ~10% less CPU per relayed stream (bench/)."""
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "stats":  # reads history only: no proxy settings to check
        from ccm_tui import stats

        return stats.main(args)
    from ccm_tui.config import ConfigError

    use_fast_event_loop()
    try:
        settings = load(args)
    except ConfigError as exc:
        print(f"ccm-tui: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        return run_headless(settings, demo=args.demo)
    from ccm_tui.tui.app import run_tui

    return run_tui(settings, demo=args.demo)


def run_headless(settings: Settings, demo: bool = False) -> int:
    from ccm_tui.core.scrub import ScrubbingFilter
    from ccm_tui.proxy.server import BindError
    from ccm_tui.runtime import StartupError
    from ccm_tui.service import bind

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for handler in logging.getLogger().handlers:
        handler.addFilter(ScrubbingFilter())
    for noisy in ("hypercorn.error", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if not settings.providers and not demo:
        print(
            "ccm-tui: no providers configured. Set ANTHROPIC_API_KEY (or OPENROUTER_API_KEY, OPENAI_API_KEY, "
            "GROQ_API_KEY, CEREBRAS_API_KEY, GITHUB_TOKEN, GEMINI_API_KEY), write a config file "
            "(see README), or try `ccm-tui serve --demo`.",
            file=sys.stderr,
        )
        return 2
    try:
        sock = bind(settings)
    except (BindError, StartupError) as exc:
        print(f"ccm-tui: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_headless(settings, sock, demo))
    except StartupError as exc:
        print(f"ccm-tui: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before the signal handlers are in place
        return 0


async def _headless(settings: Settings, sock: socket.socket, demo: bool) -> int:
    from ccm_tui.core.events import RequestFinished
    from ccm_tui.format import request_line
    from ccm_tui.service import Service

    service = Service(settings, sock, demo=demo)
    try:
        runtime = await service.start()
        runtime.bus.subscribe(lambda e: log.info("%s", request_line(e)) if isinstance(e, RequestFinished) else None)
        service.stop_on_signals((signal.SIGINT, signal.SIGTERM, signal.SIGHUP))
        names = ", ".join(runtime.engine.providers) or "none"
        print(f"ccm-tui {__version__} proxy on {service.base_url}  (providers: {names})", file=sys.stderr)
        print(f"  point Claude Code at it: ANTHROPIC_BASE_URL={service.base_url} claude", file=sys.stderr, flush=True)
        if demo:
            service.start_synthetic_client()
        await service.wait()
    finally:
        await service.stop()
    if service.failure is not None:  # already logged by the service
        return 1
    print("ccm-tui: stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
