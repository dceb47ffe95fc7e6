"""Faithful mock upstreams, used by every test and by demo mode: one import for all of them.

AnthropicMock (anthropic_mock.py) and OpenAIMock for openai, openrouter, groq, cerebras, github and gemini
(openai_mock.py, vendor differences in openai_vendors.py) are real aiohttp servers on loopback built on
MockServer (mockserver.py); the scenarios and knobs they share live in scenarios.py.
"""

from __future__ import annotations

from ccm_tui.demo.anthropic_mock import AnthropicMock
from ccm_tui.demo.mockserver import MockServer, RecordedRequest
from ccm_tui.demo.openai_mock import OpenAIMock
from ccm_tui.demo.openai_vendors import PREFIXES, VENDORS
from ccm_tui.demo.scenarios import DEMO_REPLIES, ERROR_SCENARIOS, SCENARIOS, ScenarioMock

__all__ = [
    "DEMO_REPLIES",
    "ERROR_SCENARIOS",
    "PREFIXES",
    "SCENARIOS",
    "VENDORS",
    "AnthropicMock",
    "MockServer",
    "OpenAIMock",
    "RecordedRequest",
    "ScenarioMock",
]
