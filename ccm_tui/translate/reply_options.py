"""What a translated reply must honour that the upstream is not told, read once from the Anthropic request.

The OpenAI-family and Gemini response translators take a ReplyOptions: the local input estimate for
`message_start` (the exact numbers follow in `message_delta`), whether thinking was asked for (reasoning the
upstream sends anyway is shown only then, as Anthropic does), the stop sequences to enforce on the text
(translate/stop_sequences.py), and whether only the first tool call may be returned
(`tool_choice.disable_parallel_tool_use`, for upstreams that cannot be told or do not listen).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ccm_tui.tokens import quick_input_estimate
from ccm_tui.translate.stop_sequences import stop_sequences_of


@dataclass(frozen=True)
class ReplyOptions:
    input_estimate: int = 0
    thinking: bool = False
    stop_sequences: tuple[str, ...] = ()
    single_tool_call: bool = False


def reply_options(body: dict[str, Any]) -> ReplyOptions:
    thinking = body.get("thinking")
    choice = body.get("tool_choice")
    return ReplyOptions(
        input_estimate=quick_input_estimate(body),
        thinking=isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive"),
        stop_sequences=stop_sequences_of(body),
        single_tool_call=isinstance(choice, dict) and bool(choice.get("disable_parallel_tool_use")),
    )
