"""The text of the request stream's lines: finished requests, requests the proxy refused, notices, the column
header. Pure functions of the event (and, for causes, where each provider lives); the stream only lays them out.

Two forms of a request line: the full one (>= COMPACT_BELOW cells: every figure, then the route) and the
compact one for narrow panes, where the status and the provider that answered come first so that a cut
line still says who served it; earlier failed attempts follow the model as "after swiftai 429".
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from rich.text import Text

from ccm_tui.core.events import AttemptRecord, RequestFinished, RequestRejected
from ccm_tui.core.states import AttemptOutcome
from ccm_tui.format import attempt_cause, attempt_label, ms, tokens, usd

COMPACT_BELOW = 96  # content width under which request lines take the compact form
PROVIDER_CELLS = 12  # the compact line's serving-provider column
STAMP_CELLS = 9  # "HH:MM:SS "

FULL_HEADER = "time     st   mode   ttfb   took    in↑   out↓      cost  model → provider/model"
COMPACT_HEADER = f"time     st   {'served by':<{PROVIDER_CELLS}}  took    cost model"

Endpoints = Mapping[str, str]  # provider name -> host:port, for naming where a broken provider lives


def short_model(model: str) -> str:
    return model.removeprefix("claude-")


def took(seconds: float) -> str:
    """A duration in at most five cells: 850ms, 4.9s, 12.6s, 95s."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    return f"{seconds:.1f}s" if seconds < 60 else f"{seconds:.0f}s"


def stamp(at: float) -> Text:
    return Text(time.strftime("%H:%M:%S", time.localtime(at)) + " ", style="dim")


def _status(event: RequestFinished, text: Text) -> None:
    if event.ok:
        text.append(f"{event.status:<4}", style="green")
    elif event.status == 499:
        text.append("gone", style="yellow")
    else:
        text.append(f"{event.status:<4}", style="bold red")


def broken(attempt: AttemptRecord) -> bool:
    """A failure that says the provider is dead or misconfigured (no HTTP reply, or disabled: auth, billing),
    as opposed to a rate limit or overload, which the chain's status already explains."""
    if attempt.outcome in (AttemptOutcome.OK, AttemptOutcome.STREAM_ERROR):
        return False
    return attempt.status is None or attempt.outcome is AttemptOutcome.DISABLE


def _cut(name: str, cells: int) -> str:
    return name if len(name) <= cells else name[: cells - 1] + "…"


def request_text(event: RequestFinished, compact: bool = False, endpoints: Endpoints | None = None) -> Text:
    """One finished request; see the module docstring for the two forms."""
    text = stamp(event.started_at)
    _status(event, text)
    served = [a for a in event.attempts if a.outcome in (AttemptOutcome.OK, AttemptOutcome.STREAM_ERROR)]
    failed = [a for a in event.attempts if a not in served]
    if compact:
        who = served[-1].provider if served else "-"
        text.append(f" {_cut(who, PROVIDER_CELLS):<{PROVIDER_CELLS}}", style="bold cyan" if served else "dim")
        text.append(f" {took(event.duration):>5}", style="dim")
        text.append(f" {usd(event.cost_usd):>7} ", style="magenta")
        text.append(short_model(event.requested_model), style="bold")
        for number, attempt in enumerate(failed):
            text.append(" after " if number == 0 else ", ", style="dim")
            if broken(attempt):  # the cause itself, in place: a narrow line has no room for it at the end
                where = (endpoints or {}).get(attempt.provider)
                text.append(f"{attempt.provider}: {attempt_cause(attempt, where)}", style="red")
            else:
                text.append(attempt_label(attempt), style="yellow")
    else:
        text.append(" SSE  " if event.stream else " JSON ", style="dim")
        text.append(f"{ms(event.ttfb):>6}")
        text.append(f" {ms(event.duration):>6}", style="dim")
        usage = event.usage
        text.append(f" {tokens(usage.total_input_tokens):>6}↑{tokens(usage.output_tokens):>6}↓")
        text.append(f" {usd(event.cost_usd):>8}  ", style="magenta")
        text.append(short_model(event.requested_model), style="bold")
        for attempt in event.attempts:
            text.append(" → ", style="dim")
            if attempt in served:
                text.append(attempt.provider, style="cyan")
                text.append(f"/{attempt.model}", style="dim cyan")
            else:
                text.append(attempt_label(attempt), style="yellow")
        if not event.attempts:
            text.append(" → -", style="dim")
    if event.error_type and not event.ok and event.status != 499:
        text.append(f"  {event.error_type}: {event.error_message or ''}", style="red")
    for attempt in failed if not compact else ():
        if broken(attempt):
            where = (endpoints or {}).get(attempt.provider)
            text.append(f"  · {attempt.provider}: {attempt_cause(attempt, where)}", style="red")
    return text


def rejected_text(event: RequestRejected) -> Text:
    """A request the proxy answered itself: status where a request's status is, then what and why."""
    text = stamp(event.at)
    text.append(f"{event.status:<4}", style="bold red")
    text.append(" refused by ccm-tui ", style="yellow")
    text.append(f"{event.method} {event.path}", style="bold")
    text.append(f": {event.message}", style="red")
    return text


def notice_message(message: str, style: str) -> Text:
    """The body of a notice (its stamp is added when the stream lays it out, so long ones wrap under it)."""
    return Text("• " + message, style=style)


def notice_text(message: str, style: str, at: float) -> Text:
    """A notice on one line (what the stream shows when the pane is wide enough not to wrap it)."""
    return Text.assemble(stamp(at), notice_message(message, style))
