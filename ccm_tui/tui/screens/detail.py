"""Request detail: every attempt (provider, status, outcome, timing), usage, cost and upstream ids.

Shows only what the history records: no message content, never a key.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from rich.table import Table
from rich.text import Text
from textual.binding import Binding

from ccm_tui.core.events import RequestFinished
from ccm_tui.core.states import AttemptOutcome
from ccm_tui.format import attempt_cause, ms, usd
from ccm_tui.tui.screens.info import InfoModal


def detail_renderable(event: RequestFinished, endpoints: Mapping[str, str] | None = None) -> Table:
    """`endpoints` (provider -> host:port) names where each failed attempt went."""
    outer = Table.grid(padding=(0, 2))
    outer.add_column(style="dim", justify="right")
    outer.add_column()
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(event.started_at))
    status = Text(str(event.status), style="green" if event.ok else "bold red")
    if event.error_type:
        status.append(f"  {event.error_type}: {event.error_message or ''}", style="red")
    served = f"{event.provider} / {event.model}" if event.provider else "nobody"
    usage = event.usage
    rows = [
        ("request", event.request_id),
        ("started", started),
        ("model asked", event.requested_model),
        ("served by", served),
        ("mode", "stream" if event.stream else "json"),
        ("status", status),
        ("time to first byte", ms(event.ttfb)),
        ("duration", ms(event.duration)),
        (
            "input tokens",
            f"{usage.input_tokens} (+ cache write {usage.cache_creation_input_tokens}, "
            f"cache read {usage.cache_read_input_tokens})",
        ),
        ("output tokens", str(usage.output_tokens)),
        ("cost", usd(event.cost_usd)),
    ]
    hints = event.hints
    if hints.session_id:
        rows.append(("session", hints.session_id))
    if hints.agent_id:
        agent = f"{hints.agent_type or 'agent'} {hints.agent_id}"
        rows.append(("agent", agent + (f" (under {hints.parent_agent_id})" if hints.parent_agent_id else "")))
    if hints.request_class:
        rows.append(("request class", hints.request_class.value))
    if event.key_label:
        rows.append(("key", event.key_label))
    for label, value in rows:
        outer.add_row(label, value)
    attempts = Table(title="attempts", title_justify="left", expand=True, show_edge=False)
    # Short columns only, so a narrow modal squeezes nothing to "re tr"; each cause follows, wrapped, below.
    for column in ("#", "provider", "model", "status", "outcome", "took", "retry"):
        attempts.add_column(column, overflow="ellipsis", no_wrap=True)
    causes = Table.grid(padding=(0, 1))
    causes.add_column(justify="right", style="dim")
    causes.add_column(overflow="fold")
    for number, attempt in enumerate(event.attempts, start=1):
        attempts.add_row(
            str(number),
            attempt.provider,
            attempt.variant,
            str(attempt.status or "-"),
            Text(attempt.outcome, style="green" if attempt.outcome == "ok" else "yellow"),
            ms(attempt.duration),
            f"{attempt.retry_after:.0f}s" if attempt.retry_after is not None else "",
        )
        if attempt.outcome is not AttemptOutcome.OK:
            cause = attempt_cause(attempt, (endpoints or {}).get(attempt.provider))
            causes.add_row(f"{number} {attempt.provider}:", Text(cause, style="yellow"))
    page = Table.grid(expand=True)  # the attempts get the modal's whole width, not the value column's
    page.add_column()
    page.add_row(outer)
    page.add_row("")
    page.add_row(attempts)
    if causes.row_count:
        page.add_row("")
        page.add_row(causes)
    if event.headers_of_note:
        headers = Table.grid(padding=(0, 2))
        headers.add_column(style="dim", justify="right")
        headers.add_column()
        for name, value in event.headers_of_note:
            headers.add_row(name, value)
        page.add_row("")
        page.add_row(Text("upstream headers", style="dim"))
        page.add_row(headers)
    return page


class RequestDetail(InfoModal):
    BINDINGS = [Binding("escape,q,enter", "dismiss", "Close", id="close-detail")]

    def __init__(self, event: RequestFinished, endpoints: Mapping[str, str] | None = None) -> None:
        super().__init__("Request detail", detail_renderable(event, endpoints))
        self.event = event
