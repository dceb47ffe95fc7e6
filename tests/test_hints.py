from __future__ import annotations

import pytest

from ccm_tui.core.hints import NO_HINTS, ClientHints, RequestClass, hints_from_headers


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, NO_HINTS),
        ({"x-claude-code-session-id": " s-1 "}, ClientHints(session_id="s-1")),
        (
            {
                "x-claude-code-session-id": "s-1",
                "x-claude-code-agent-id": "a-2",
                "x-claude-code-parent-agent-id": "a-1",
                "x-claude-code-request-class": "Subagent",
                "x-claude-code-agent-type": "Explore",
            },
            ClientHints("s-1", "a-2", "a-1", RequestClass.SUBAGENT, "Explore"),
        ),
        ({"x-claude-code-request-class": "brand-new-class"}, NO_HINTS),
        ({"x-claude-code-session-id": ""}, NO_HINTS),
        ({"x-claude-code-session-id": "x" * 10_000}, ClientHints(session_id="x" * 128)),
    ],
)
def test_hints_from_headers(headers: dict[str, str], expected: ClientHints) -> None:
    assert hints_from_headers(headers) == expected
