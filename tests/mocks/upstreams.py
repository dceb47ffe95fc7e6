"""Faithful mock upstreams for the tests: one import for all of them.

AnthropicMock and OpenAIMock (for openai, openrouter, groq, cerebras, github and gemini) live in the package,
ccm_tui/demo/, because demo mode runs them: anthropic_mock.py, openai_mock.py, vendor differences in
openai_vendors.py, the shared scenarios and knobs in scenarios.py, the MockServer base in mockserver.py.
BedrockMock, VertexMock and GeminiMock are test-only and live here (cloud_mocks.py). All are real aiohttp
servers on loopback.
"""

from __future__ import annotations

from ccm_tui.demo.anthropic_mock import AnthropicMock
from ccm_tui.demo.mockserver import MockServer, RecordedRequest
from ccm_tui.demo.openai_mock import OpenAIMock
from ccm_tui.demo.openai_vendors import PREFIXES, VENDORS
from ccm_tui.demo.scenarios import DEMO_REPLIES, ERROR_SCENARIOS, SCENARIOS, ScenarioMock
from tests.mocks.cloud_mocks import BedrockMock, GeminiMock, VertexMock

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
