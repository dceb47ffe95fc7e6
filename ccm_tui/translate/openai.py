"""Anthropic <-> OpenAI Chat Completions translation: the public face of the three modules that do it.

translate/openai_request.py   Anthropic request -> OpenAI request, and OpenAIQuirks (per-vendor differences)
translate/openai_response.py  OpenAI completion / stream chunks -> Anthropic Message / SSE events
translate/openai_errors.py    vendor error bodies -> UpstreamError
All pure: the adapter in providers/openai.py does the HTTP.
"""

from __future__ import annotations

from ccm_tui.translate.openai_errors import error_from_openai
from ccm_tui.translate.openai_request import OpenAIQuirks, request_to_openai
from ccm_tui.translate.openai_response import (
    OpenAIStreamTranslator,
    message_from_openai,
    parse_arguments,
    stop_reason_from_openai,
    stream_error,
    usage_from_openai,
)

__all__ = [
    "OpenAIQuirks",
    "OpenAIStreamTranslator",
    "error_from_openai",
    "message_from_openai",
    "parse_arguments",
    "request_to_openai",
    "stop_reason_from_openai",
    "stream_error",
    "usage_from_openai",
]
