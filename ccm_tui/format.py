"""Pure text formatting shared by the headless log and the TUI: request lines, durations, money, where an
upstream lives and the line that points Claude Code at the proxy."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

from ccm_tui.config import ProviderSettings, vendor_of
from ccm_tui.core.events import AttemptRecord, RequestFinished, RequestRejected
from ccm_tui.core.vendors import vendor_or_custom

# What Claude Code sends as its bearer token when the proxy asks for no key: any value is accepted, but one must
# be set, or a fresh Claude Code asks the user to log in (PROTOCOLS.md §9).
NO_PROXY_KEY_TOKEN = "ccm-tui"
LAUNCH_COMMAND = "ccm-tui claude"


def ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.0f}ms" if seconds < 10 else f"{seconds:.1f}s"


def usd(amount: float | None) -> str:
    if amount is None:
        return "$?"
    if amount == 0:
        return "$0"
    return f"${amount:.4f}" if amount < 1 else f"${amount:.2f}"


def tokens(count: int) -> str:
    return f"{count / 1000:.1f}k" if count >= 10_000 else str(count)


def countdown(until: float | None, now: float | None = None) -> str:
    if until is None:
        return ""
    left = max(0.0, until - (now if now is not None else time.time()))
    if left >= 3600:
        return f"{left / 3600:.1f}h"
    if left >= 60:
        return f"{int(left // 60)}m{int(left % 60):02d}s"
    return f"{left:.0f}s"


def attempt_label(attempt: AttemptRecord) -> str:
    if attempt.outcome == "ok":
        return f"{attempt.provider} ok"
    status = str(attempt.status) if attempt.status else (attempt.reason.split(" ", 1)[0] or attempt.outcome)
    return f"{attempt.provider} {status}"


def failover_chain(event: RequestFinished) -> str:
    """`openai 429 -> openrouter ok` when the request needed more than one attempt, else ''."""
    if len(event.attempts) < 2 and event.ok:
        return ""
    return " -> ".join(attempt_label(a) for a in event.attempts)


def request_line(event: RequestFinished) -> str:
    """One line per finished request, for the headless log (the TUI styles the same fields)."""
    served = f"{event.provider}/{event.model}" if event.provider else "-"
    status = str(event.status) if event.error_type is None else f"{event.status} {event.error_type}"
    usage = event.usage
    parts = [
        f"{event.requested_model} -> {served}",
        "stream" if event.stream else "json",
        status,
        f"ttfb {ms(event.ttfb)}",
        ms(event.duration),
        f"in {tokens(usage.total_input_tokens)} out {tokens(usage.output_tokens)}",
        usd(event.cost_usd),
    ]
    chain = failover_chain(event)
    if chain:
        parts.append(f"[{chain}]")
    if event.error_message and not event.ok:
        parts.append(f"- {event.error_message}")
    return "  ".join(parts)


def endpoint(url: str | None) -> str | None:
    """`host:port` of a URL (the scheme's default port spelled out), or None when there is no host."""
    if not url:
        return None
    parts = urlsplit(url)
    if not parts.hostname:
        return None
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:  # a port that is not a number: show the URL's netloc as written
        return parts.netloc
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{port}"


def upstream_endpoint(provider: ProviderSettings) -> str | None:
    """Where a provider's requests go (`api.groq.com:443`): its base_url, else its vendor's default root."""
    if provider.base_url:
        return endpoint(provider.base_url)
    try:
        return endpoint(vendor_or_custom(vendor_of(provider)).base_url_for(provider.region))
    except ValueError:  # a regional vendor without a region: the config check reports that, not the screen
        return None


def attempt_cause(attempt: AttemptRecord, where: str | None) -> str:
    """Why an attempt failed and where: `connection refused or unreachable (api.groq.com:443)`, `401 … from …`."""
    reason = attempt.reason or attempt.outcome.value
    if where is None:
        return reason
    return f"{reason} ({where})" if attempt.status is None else f"{reason} from {where}"


def rejected_line(event: RequestRejected) -> str:
    """One line for a request the proxy answered itself, for the headless log."""
    return f"rejected {event.method} {event.path}: {event.status} {event.message}"


def claude_environment(base_url: str, auth_key_env: str | None) -> str:
    """The variables that point Claude Code at this proxy, for a shell. The proxy key is named, never printed."""
    token = f'"${auth_key_env}"' if auth_key_env else NO_PROXY_KEY_TOKEN
    return f"ANTHROPIC_BASE_URL={base_url} ANTHROPIC_AUTH_TOKEN={token} CLAUDE_CODE_GATEWAY_HINT_HEADERS=1"


def claude_command_line(base_url: str, auth_key_env: str | None) -> str:
    return f"{claude_environment(base_url, auth_key_env)} claude"
