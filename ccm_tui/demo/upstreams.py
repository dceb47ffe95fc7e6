"""Faithful mock upstreams, used by every test and by demo mode: one import for all of them.

AnthropicMock (anthropic_mock.py); OpenAIMock for openai, openrouter, groq, cerebras, github and gemini
(openai_mock.py, vendor differences in openai_vendors.py); BedrockMock, VertexMock and GeminiMock
(cloud_mocks.py). All are real aiohttp servers on loopback built on MockServer (mockserver.py); the
scenarios and knobs the Anthropic and OpenAI mocks share live in scenarios.py.
"""

from __future__ import annotations

from ccm_tui.demo.anthropic_mock import AnthropicMock
from ccm_tui.demo.cloud_mocks import BedrockMock, GeminiMock, VertexMock
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
    "BedrockMock",
    "GeminiMock",
    "MockServer",
    "OpenAIMock",
    "RecordedRequest",
    "ScenarioMock",
    "VertexMock",
]
