"""Anthropic-shaped error bodies: `{"type":"error","error":{"type","message"},"request_id"}`."""

from __future__ import annotations

import orjson

from ccm_tui.core.errors import error_type_for


def error_body(status: int, message: str, request_id: str, error_type: str | None = None) -> bytes:
    return orjson.dumps(
        {
            "type": "error",
            "error": {"type": error_type or error_type_for(status), "message": message},
            "request_id": request_id,
        }
    )
