"""Claude Code sessions as this process saw them: per session (and per subagent under it) spend, tokens,
requests, failovers, providers used and the last activity, aggregated live from RequestFinished events.

Pure bookkeeping, no Textual: the sessions screen draws `SessionBook.sessions()`; the request stream filters
with `in_session`. Requests without a session header (other clients, curl) gather under NO_SESSION.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ccm_tui.core.events import RequestFinished

NO_SESSION = ""  # the bucket of requests that carried no x-claude-code-session-id


@dataclass
class Tally:
    """Running totals of one session or one subagent."""

    requests: int = 0
    failed: int = 0
    failovers: int = 0
    cost_usd: float = 0.0
    unpriced: int = 0  # requests whose cost is unknown (no price for the model)
    input_tokens: int = 0
    output_tokens: int = 0
    providers: dict[str, int] = field(default_factory=dict)  # name -> requests it served, first use first
    first_at: float = 0.0
    last_at: float = 0.0

    def add(self, event: RequestFinished) -> None:
        finished_at = event.started_at + event.duration
        if not self.requests:
            self.first_at = event.started_at
        self.requests += 1
        self.failed += 0 if event.ok else 1
        self.failovers += event.failovers
        if event.cost_usd is None:
            self.unpriced += 1
        else:
            self.cost_usd += event.cost_usd
        self.input_tokens += event.usage.total_input_tokens
        self.output_tokens += event.usage.output_tokens
        if event.provider:
            self.providers[event.provider] = self.providers.get(event.provider, 0) + 1
        self.last_at = max(self.last_at, finished_at)


@dataclass
class Agent:
    agent_id: str
    agent_type: str | None
    parent_agent_id: str | None
    tally: Tally = field(default_factory=Tally)


@dataclass
class Session:
    session_id: str  # NO_SESSION for requests without one
    tally: Tally = field(default_factory=Tally)  # every request of the session, its subagents' included
    agents: dict[str, Agent] = field(default_factory=dict)  # by agent id, first seen first
    request_classes: dict[str, int] = field(default_factory=dict)  # main, subagent, compaction, ...


class SessionBook:
    def __init__(self) -> None:
        self._sessions: dict[str, Session] = {}

    def add(self, event: RequestFinished) -> None:
        hints = event.hints
        key = hints.session_id or NO_SESSION
        session = self._sessions.get(key)
        if session is None:
            session = self._sessions[key] = Session(key)
        session.tally.add(event)
        if hints.request_class is not None:
            name = hints.request_class.value
            session.request_classes[name] = session.request_classes.get(name, 0) + 1
        if hints.agent_id:
            agent = session.agents.get(hints.agent_id)
            if agent is None:
                agent = session.agents[hints.agent_id] = Agent(hints.agent_id, hints.agent_type, hints.parent_agent_id)
            agent.tally.add(event)

    def sessions(self) -> list[Session]:
        """Most recently active first; the no-session bucket last."""
        named = sorted((s for s in self._sessions.values() if s.session_id), key=lambda s: -s.tally.last_at)
        rest = [s for s in self._sessions.values() if not s.session_id]
        return named + rest

    def __len__(self) -> int:
        return len(self._sessions)


def in_session(event: RequestFinished | None, session_id: str) -> bool:
    return event is not None and (event.hints.session_id or NO_SESSION) == session_id


def short_id(session_id: str) -> str:
    """The first block of a UUID-like id: enough to tell sessions apart on screen."""
    if not session_id:
        return "(no session)"
    return session_id.split("-", 1)[0][:12]
