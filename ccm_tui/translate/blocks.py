"""Content blocks that no translated target has a form for, turned into plain text the same way everywhere."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def search_result_text(block: Mapping[str, Any]) -> str:
    """A search_result block as text: title, source and the text of its text blocks (nothing else is text)."""
    head = [str(block.get(key)) for key in ("title", "source") if block.get(key)]
    texts = [
        item["text"]
        for item in block.get("content") or ()
        if isinstance(item, dict) and item.get("type") == "text" and isinstance(item.get("text"), str)
    ]
    return "\n".join(text for text in [*head, *texts] if text)
