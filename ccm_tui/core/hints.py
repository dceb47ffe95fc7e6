"""What a client tells the gateway about a request beyond the Messages API: Claude Code's session and hint headers.

PROTOCOLS.md §9: `x-claude-code-session-id` arrives on every request of a session, agent ids on subagents, and
with CLAUDE_CODE_GATEWAY_HINT_HEADERS=1 the request class and agent type. Routing (session affinity, class
rules), history and the sessions view read them from here; nothing is forwarded upstream because of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

MAX_HINT_LENGTH = 128  # ids are UUID-sized; anything longer is not Claude Code's and is cut


class RequestClass(StrEnum):
    MAIN = "main"
    SUBAGENT = "subagent"
    WORKFLOW = "workflow"
    COMPACTION = "compaction"
    AUXILIARY = "auxiliary"


@dataclass(frozen=True)
class ClientHints:
    session_id: str | None = None
    agent_id: str | None = None
    parent_agent_id: str | None = None
    request_class: RequestClass | None = None
    agent_type: str | None = None  # Explore, Plan, general-purpose, custom, teammate, fork


NO_HINTS = ClientHints()


class HeaderLookup(Protocol):
    """Any case-insensitive header collection (werkzeug's Headers, httpx's, a lower-cased dict)."""

    def get(self, key: str, /) -> str | None: ...


def _header(headers: HeaderLookup, name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        return None
    value = value.strip()[:MAX_HINT_LENGTH]
    return value or None


def hints_from_headers(headers: HeaderLookup) -> ClientHints:
    """The hints in a request's headers (lookups must be case-insensitive, as HTTP headers are)."""
    raw_class = _header(headers, "x-claude-code-request-class")
    try:
        request_class = RequestClass(raw_class.lower()) if raw_class else None
    except ValueError:
        request_class = None  # a class this version does not know routes like a request without one
    hints = ClientHints(
        session_id=_header(headers, "x-claude-code-session-id"),
        agent_id=_header(headers, "x-claude-code-agent-id"),
        parent_agent_id=_header(headers, "x-claude-code-parent-agent-id"),
        request_class=request_class,
        agent_type=_header(headers, "x-claude-code-agent-type"),
    )
    return NO_HINTS if hints == NO_HINTS else hints
