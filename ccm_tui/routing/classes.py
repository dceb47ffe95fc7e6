"""Request classes: routing rules by Claude Code's request class and agent type (pure).

With CLAUDE_CODE_GATEWAY_HINT_HEADERS=1 Claude Code says what a request is for (`main`, `subagent`,
`workflow`, `compaction`, `auxiliary`) and which agent sent it (`Explore`, `Plan` ...). `[routing.classes]`
and `[routing.agent_types]` give such requests another strategy and/or only some providers; an agent-type rule
is the more specific and wins. Requests without the headers route as before.
"""

from __future__ import annotations

from collections.abc import Sequence

from ccm_tui.config import ClassRule, SteeringSettings
from ccm_tui.core.hints import ClientHints
from ccm_tui.routing.plan import Candidate


def rule_for(hints: ClientHints, steering: SteeringSettings) -> tuple[str, ClassRule] | None:
    """(what matched, e.g. "class auxiliary" or "agent Explore", the rule), or None."""
    if hints.agent_type is not None and hints.agent_type in steering.agent_types:
        return f"agent {hints.agent_type}", steering.agent_types[hints.agent_type]
    if hints.request_class is not None and hints.request_class.value in steering.classes:
        return f"class {hints.request_class.value}", steering.classes[hints.request_class.value]
    return None


def apply_rule(candidates: Sequence[Candidate], rule: ClassRule | None) -> list[Candidate]:
    """The candidates the rule allows. A rule naming no provider that serves this model is ignored, so a
    misfit rule never turns a servable request into a refusal."""
    if rule is None or rule.providers is None:
        return list(candidates)
    allowed = [c for c in candidates if c.route.provider in rule.providers]
    return allowed or list(candidates)


def strategy_for(rule: ClassRule | None, default: str) -> str:
    return rule.strategy if rule is not None and rule.strategy is not None else default
