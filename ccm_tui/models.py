"""Model names: which tier (haiku / sonnet / opus) a requested model belongs to.

Pure functions only; the per-provider mapping lives in config.ProviderSettings.
"""

from __future__ import annotations

import re

TIERS = ("haiku", "sonnet", "opus")

_TIER_PATTERN = re.compile(r"(?<![a-z])(haiku|sonnet|opus)(?![a-z])")


def tier_for_model(model: str) -> str | None:
    """Map a requested model name to its tier by family name.

    `claude-haiku-4-5`, `claude-3-5-haiku-20241022`, `haiku`, `anthropic/claude-sonnet-4.5`,
    `us.anthropic.claude-opus-4-1-20250805-v1:0` all match; `claude-fable-5-2` or `gpt-4o` do not.
    """
    match = _TIER_PATTERN.search(model.lower())
    return match.group(1) if match else None
