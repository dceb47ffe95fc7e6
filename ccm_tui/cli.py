"""Command line: `ccm-tui` (TUI + proxy in one loop), `ccm-tui serve` (the same proxy, headless) and
`ccm-tui claude` (Claude Code wired to a running instance).

Exit codes: 0 after a clean shutdown, 2 for a problem the user must fix (bad config, busy port, unsafe bind,
no instance to launch against); `ccm-tui claude` returns Claude Code's own exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ccm_tui import __version__

# Everything heavier than argparse is imported where it is used: `ccm-tui --version` and `--help` load
# neither the proxy (Quart, hypercorn, httpx) nor the TUI (bench/: --version ~0.1 s instead of ~0.6 s).
if TYPE_CHECKING:
    from ccm_tui.config import Settings
    from ccm_tui.core.events import Event

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
    # Listed for --help only: main() hands `claude ...` to run_claude before argparse sees Claude Code's options.
    sub.add_parser(
        "claude",
        add_help=False,
        help="run Claude Code against the running ccm-tui: ccm-tui claude [--url URL] [CLAUDE_ARGS...]",
    )
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
    arguments = sys.argv[1:] if argv is None else argv
    if arguments[:1] == ["claude"]:
        return run_claude(arguments[1:])
    args = build_parser().parse_args(arguments)
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
    from ccm_tui.format import claude_command_line
    from ccm_tui.service import Service, instance_path

    service = Service(settings, sock, demo=demo, state_file=instance_path())
    try:
        runtime = await service.start()
        runtime.bus.subscribe(log_event)
        service.stop_on_signals((signal.SIGINT, signal.SIGTERM, signal.SIGHUP))
        names = ", ".join(runtime.engine.providers) or "none"
        print(f"ccm-tui {__version__} proxy on {service.base_url}  (providers: {names})", file=sys.stderr)
        print("  run Claude Code through it: ccm-tui claude", file=sys.stderr)
        command = claude_command_line(service.base_url, settings.server.auth_key_env)
        print(f"  or point it here yourself: {command}", file=sys.stderr, flush=True)
        if demo:
            service.start_synthetic_client()
        await service.wait()
    finally:
        await service.stop()
    if service.failure is not None:  # already logged by the service
        return 1
    print("ccm-tui: stopped", file=sys.stderr)
    return 0


def log_event(event: Event) -> None:
    """`serve`'s log: every finished request, and every request the proxy refused itself."""
    from ccm_tui.core.events import RequestFinished, RequestRejected
    from ccm_tui.format import rejected_line, request_line

    if isinstance(event, RequestFinished):
        log.info("%s", request_line(event))
    elif isinstance(event, RequestRejected):
        log.warning("%s", rejected_line(event))


# --- ccm-tui claude ------------------------------------------------------------------------------------------

START_HINT = "start one in another pane with `ccm-tui` (or `ccm-tui serve`), or pass --url URL"


class LaunchError(Exception):
    """Why Claude Code cannot be launched, phrased for the user (exit code 2)."""


def split_launcher_args(argv: list[str]) -> tuple[str | None, list[str]]:
    """(--url value, Claude Code's arguments): only a leading --url (or --url=URL) is ccm-tui's; a leading `--`
    ends ccm-tui's options; everything else goes to Claude Code unchanged."""
    if argv[:1] == ["--url"]:
        if len(argv) < 2:
            raise LaunchError("--url needs a value, e.g. --url http://127.0.0.1:8082")
        url, rest = argv[1], argv[2:]
    elif argv[:1] and argv[0].startswith("--url="):
        url, rest = argv[0].removeprefix("--url="), argv[1:]
    else:
        url, rest = None, argv
    return url, rest[1:] if rest[:1] == ["--"] else rest


def claude_executable(environ: Mapping[str, str]) -> str:
    """$CCM_TUI_CLAUDE, else `claude` on PATH."""
    chosen = environ.get("CCM_TUI_CLAUDE")
    if chosen:
        if shutil.which(chosen) is None:
            raise LaunchError(f"$CCM_TUI_CLAUDE is {chosen!r}, which is not an executable file")
        return chosen
    found = shutil.which("claude", path=environ.get("PATH"))
    if found is None:
        raise LaunchError(
            "Claude Code's `claude` is not on PATH: install it (npm install -g @anthropic-ai/claude-code) "
            "or set CCM_TUI_CLAUDE to its path"
        )
    return found


def launch_target(url: str | None, environ: Mapping[str, str]) -> tuple[str, str | None]:
    """(the proxy's base URL, the variable holding its proxy key, if it needs one)."""
    from ccm_tui.config import ConfigError, load_settings
    from ccm_tui.service import instance_path, read_instance

    if url is None:
        instance = read_instance(instance_path())
        if instance is None:
            raise LaunchError(f"no running ccm-tui found; {START_HINT}")
        return instance.url.rstrip("/"), instance.auth_key_env
    try:
        key_env = load_settings(None).server.auth_key_env
    except ConfigError:
        key_env = None  # the proxy answers 401 if it wanted a key; the config error is the TUI's to report
    return url.rstrip("/"), key_env


def check_reachable(url: str) -> None:
    try:
        # No proxies from the environment: the probe must reach the URL itself, as Claude Code will.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"{url}/", timeout=3):
            pass
    except urllib.error.HTTPError:
        pass  # something answers: the proxy (a key it wants shows up as 401 in Claude Code)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise LaunchError(f"nothing answers at {url} ({reason}); {START_HINT}") from None


def claude_environment(url: str, key_env: str | None, environ: Mapping[str, str]) -> dict[str, str]:
    """Claude Code's environment: the caller's, pointed at the proxy with a bearer token (no key prompt)."""
    from ccm_tui.format import NO_PROXY_KEY_TOKEN

    env = dict(environ)
    # An interactive Claude Code with ANTHROPIC_API_KEY set asks "Use this API key?" (default No); the
    # bearer token does not ask (PROTOCOLS.md §9).
    env.pop("ANTHROPIC_API_KEY", None)
    if key_env:
        token = environ.get(key_env)
        if not token:
            raise LaunchError(f"this ccm-tui wants a proxy key from ${key_env}, which is not set here")
    else:
        token = NO_PROXY_KEY_TOKEN
    env["ANTHROPIC_BASE_URL"] = url
    env["ANTHROPIC_AUTH_TOKEN"] = token
    env["CLAUDE_CODE_GATEWAY_HINT_HEADERS"] = "1"  # session and request-class headers for the sessions view
    return env


def run_claude(argv: list[str], environ: Mapping[str, str] | None = None) -> int:
    """`ccm-tui claude [--url URL] [CLAUDE_ARGS...]`: Claude Code's exit code, or 2 when it cannot start."""
    environ = os.environ if environ is None else environ
    try:
        url, claude_args = split_launcher_args(argv)
        executable = claude_executable(environ)
        url, key_env = launch_target(url, environ)
        check_reachable(url)
        env = claude_environment(url, key_env, environ)
    except LaunchError as exc:
        print(f"ccm-tui claude: {exc}", file=sys.stderr)
        return 2
    try:
        child = subprocess.Popen([executable, *claude_args], env=env)
    except OSError as exc:
        print(f"ccm-tui claude: could not start {executable}: {exc}", file=sys.stderr)
        return 2
    # Claude Code owns the terminal now: ctrl+c is its to handle, not a reason for this wrapper to die first
    # (ignored only after the start, so the child does not inherit the ignoring).
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        code = child.wait()
    finally:
        signal.signal(signal.SIGINT, previous)
    return 128 - code if code < 0 else code  # killed by a signal: the shell's convention


if __name__ == "__main__":
    sys.exit(main())
