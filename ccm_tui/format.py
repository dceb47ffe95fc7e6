"""Pure text formatting shared by the headless log and the TUI: request lines, durations, money."""

from __future__ import annotations

import time

from ccm_tui.core.events import AttemptRecord, RequestFinished


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
