"""Keeping a conversation alive when it moves between providers, and shaping bodies for cloud Claude targets.

Claude Code keeps the whole history client-side, so after a failover the next provider sees content another
provider produced: tool ids in foreign formats (`call_abc.123`, very long Gemini-encoded ids) and thinking
blocks whose signatures only their issuer can verify. `sanitize_history_for_anthropic_target` rewrites that
history so an Anthropic-protocol target (Anthropic, Bedrock, Vertex) accepts it. Thinking that the translated
kinds produced carries no Anthropic signature (OpenAI-family reasoning has none, Gemini's is marked `gemini:`),
so it is dropped on the way to such a target. Also here: the beta filter
and the body preparation Bedrock and Vertex share. Pure functions; no I/O. Gemini's translator handles
foreign content itself (translate/gemini.py).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ccm_tui.translate.features import refuse_mcp_servers, refuse_url_sources

# Signatures and opaque data that ccm-tui's Gemini translator stores in thinking / redacted_thinking blocks
# start with this marker; no Anthropic signature can (they are base64).
GEMINI_SIGNATURE_PREFIX = "gemini:"

_VALID_TOOL_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
_INVALID_TOOL_ID_CHARS = re.compile(r"[^a-zA-Z0-9_-]")
# Anthropic ids are ~30 characters; a cap keeps Gemini's long signature-carrying ids out of Anthropic targets.
MAX_TOOL_ID_LENGTH = 64
_BASE64 = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")
_THINKING_TYPES = ("enabled", "adaptive")


def looks_like_anthropic_signature(signature: str) -> bool:
    """Anthropic, Bedrock and Vertex signatures are interchangeable base64 strings; anything else is foreign."""
    return len(signature) >= 16 and _BASE64.match(signature) is not None


def safe_tool_id(tool_id: str) -> str:
    """The id as a target that requires `^[a-zA-Z0-9_-]+$` (and a sane length) will accept it.

    Deterministic, so the same history gives the same ids on every request (prompt caches stay warm), and the
    tool_use and its tool_result always agree. Valid short ids are returned unchanged.
    """
    if tool_id and len(tool_id) <= MAX_TOOL_ID_LENGTH and _VALID_TOOL_ID.match(tool_id):
        return tool_id
    digest = hashlib.sha256(tool_id.encode()).hexdigest()[:16]
    readable = _INVALID_TOOL_ID_CHARS.sub("_", tool_id)[:32]
    return f"toolu_{readable}_{digest}" if readable else f"toolu_{digest}"


def sanitize_history_for_anthropic_target(
    body: Mapping[str, Any],
    *,
    keep_signature: Callable[[str], bool] = looks_like_anthropic_signature,
) -> Mapping[str, Any]:
    """A body whose history an Anthropic-protocol target accepts; `body` itself when nothing had to change.

    - tool_use.id and tool_result.tool_use_id pass through `safe_tool_id` (consistently, pairs stay paired);
    - thinking / redacted_thinking blocks whose signature / data fails `keep_signature` are dropped (an
      assistant turn left empty is dropped too);
    - when the history ends in a tool loop whose assistant turn does not start with a thinking block (dropped
      here, or never produced by the provider that served it) while thinking is on, `thinking` is removed
      from the body: the API rejects such a turn otherwise.
    The input is never mutated; unchanged messages are shared with the input.
    """
    messages = body.get("messages")
    if not isinstance(messages, list):
        return body
    new_messages: list[Any] = []
    changed = False
    for message in messages:
        fixed = _sanitize_message(message, keep_signature)
        changed = changed or fixed is not message
        if fixed is not None:
            new_messages.append(fixed)
    result = dict(body)
    if changed:
        result["messages"] = new_messages
    thinking = result.get("thinking")
    if (
        isinstance(thinking, dict)
        and thinking.get("type") in _THINKING_TYPES
        and _tool_turn_lacks_thinking(new_messages)
    ):
        del result["thinking"]
        changed = True
    return result if changed else body


def _sanitize_message(message: Any, keep_signature: Callable[[str], bool]) -> Any:
    """The message, a sanitized copy, or None when nothing of it may be sent."""
    if not isinstance(message, dict) or not isinstance(message.get("content"), list):
        return message
    blocks: list[Any] = []
    changed = False
    for block in message["content"]:
        fixed = _sanitize_block(block, keep_signature)
        changed = changed or fixed is not block
        if fixed is not None:
            blocks.append(fixed)
    if not changed:
        return message
    if not blocks and message.get("role") == "assistant":
        return None
    return {**message, "content": blocks}


def _sanitize_block(block: Any, keep_signature: Callable[[str], bool]) -> Any:
    if not isinstance(block, dict):
        return block
    kind = block.get("type")
    if kind == "tool_use":
        return _with_id(block, "id")
    if kind == "tool_result":
        return _with_id(block, "tool_use_id")
    if kind == "thinking":
        signature = block.get("signature")
        return block if isinstance(signature, str) and keep_signature(signature) else None
    if kind == "redacted_thinking":
        data = block.get("data")
        keep = isinstance(data, str) and not data.startswith(GEMINI_SIGNATURE_PREFIX)
        return block if keep else None
    return block


def _with_id(block: dict[str, Any], key: str) -> dict[str, Any]:
    current = block.get(key)
    current = current if isinstance(current, str) else ""
    safe = safe_tool_id(current)
    return block if safe == current else {**block, key: safe}


def _tool_turn_lacks_thinking(messages: list[Any]) -> bool:
    """True when the history ends in a tool loop whose assistant turn does not start with thinking."""
    if len(messages) < 2:
        return False
    last, previous = messages[-1], messages[-2]
    if not (isinstance(last, dict) and last.get("role") == "user" and _has_block(last, "tool_result")):
        return False
    if not (isinstance(previous, dict) and previous.get("role") == "assistant" and _has_block(previous, "tool_use")):
        return False
    first = previous["content"][0]
    return not (isinstance(first, dict) and first.get("type") in ("thinking", "redacted_thinking"))


def _has_block(message: dict[str, Any], kind: str) -> bool:
    content = message.get("content")
    return isinstance(content, list) and any(isinstance(b, dict) and b.get("type") == kind for b in content)


# --- cloud Claude bodies (Bedrock InvokeModel, Vertex rawPredict) ------------------------------------------

# anthropic-beta values each cloud takes when the provider's config does not list its own (`betas = [...]`).
# Unknown betas make these endpoints answer 400, so this is an allow-list, not a deny-list.
BEDROCK_DEFAULT_BETAS = frozenset(
    {
        "compact-2026-01-12",
        "computer-use-2025-01-24",
        "computer-use-2025-11-24",
        "context-1m-2025-08-07",
        "context-management-2025-06-27",
        "effort-2025-11-24",
        "fine-grained-tool-streaming-2025-05-14",
        "interleaved-thinking-2025-05-14",
        "thinking-display-updates-2026-08-18",
        "token-efficient-tools-2025-02-19",
        "tool-search-tool-2025-10-19",
    }
)
VERTEX_DEFAULT_BETAS = frozenset(
    {
        "compact-2026-01-12",
        "computer-use-2025-01-24",
        "computer-use-2025-11-24",
        "context-1m-2025-08-07",
        "context-management-2025-06-27",
        "interleaved-thinking-2025-05-14",
        "thinking-display-updates-2026-08-18",
        "tool-search-tool-2025-10-19",
        "web-search-2025-03-05",
    }
)
# First-party names these clouds know under another name.
_BETA_RENAMES = {"advanced-tool-use-2025-11-20": "tool-search-tool-2025-10-19"}

# Top-level keys the cloud Messages surfaces accept; others (metadata, service_tier, speed, container, top-level
# cache_control, ...) make InvokeModel answer 400 "extraneous key [...] is not permitted".
CLOUD_CLAUDE_KEYS = frozenset(
    {
        "anthropic_version",
        "anthropic_beta",
        "max_tokens",
        "messages",
        "system",
        "stop_sequences",
        "temperature",
        "top_p",
        "top_k",
        "tools",
        "tool_choice",
        "thinking",
        "output_config",
        "context_management",
    }
)


def filter_betas(betas: Iterable[str], allowed: Iterable[str]) -> list[str]:
    """The requested betas the target takes, renamed where the cloud uses another name, order kept, no repeats."""
    allowed_set = set(allowed)
    result: list[str] = []
    for beta in betas:
        name = _BETA_RENAMES.get(beta.strip(), beta.strip())
        if name in allowed_set and name not in result:
            result.append(name)
    return result


def cloud_claude_body(
    body: Mapping[str, Any], *, anthropic_version: str, keep: frozenset[str] = CLOUD_CLAUDE_KEYS
) -> dict[str, Any]:
    """The Anthropic body for a cloud Claude endpoint: sanitized history, only `keep` keys, the cloud's version,
    and mid-conversation `role: "system"` turns (a first-party feature the clouds reject) folded into `system`.

    Raises UnsupportedFeature for what the clouds cannot take and must not lose silently: the MCP connector
    (`mcp_servers`) and URL image / document sources (base64 only). URLs are refused rather than fetched here:
    fetching would make the proxy an HTTP client for addresses its callers choose (redirects to internal
    hosts, unbounded bodies) on the request path; the client can inline the bytes itself."""
    refuse_mcp_servers(body)
    refuse_url_sources(body, "Bedrock and Vertex accept base64 sources only; send the bytes as a base64 source")
    messages = body.get("messages")
    if isinstance(messages, list) and any(isinstance(m, dict) and m.get("role") == "system" for m in messages):
        body = {**body, **fold_system_turns(body.get("system"), messages)}
    sanitized = sanitize_history_for_anthropic_target(body)
    result = {key: value for key, value in sanitized.items() if key in keep}
    result["anthropic_version"] = anthropic_version
    return result


def fold_system_turns(system: Any, messages: list[Any]) -> dict[str, Any]:
    """`system` and `messages` with every `role: "system"` turn moved, in order, to the end of `system`."""
    blocks: list[Any] = [{"type": "text", "text": system}] if isinstance(system, str) and system else []
    if isinstance(system, list):
        blocks.extend(system)
    kept: list[Any] = []
    for message in messages:
        if not (isinstance(message, dict) and message.get("role") == "system"):
            kept.append(message)
            continue
        content = message.get("content")
        if isinstance(content, str) and content:
            blocks.append({"type": "text", "text": content})
        elif isinstance(content, list):
            blocks.extend(b for b in content if isinstance(b, dict) and b.get("type") == "text")
    return {"system": blocks, "messages": kept}
