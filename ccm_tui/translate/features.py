"""Anthropic request features that a translated or cloud target may lack, and the one way to refuse them.

Server tools (web_search_20250305, code_execution_20250825, bash_20250124 ...), the MCP connector
(`mcp_servers`), URL image / document sources and JSON-schema output formats. Translators map what their target
has a native equivalent for and raise `UnsupportedFeature` for the rest; the adapter turns that into a 400
naming the feature and the provider (`upstream_error`). Nothing is dropped silently: a request that quietly
loses its web search tool or output schema gets a plausible but wrong 200.

The refusal carries `error_code="unsupported_feature"`: routing/limits.py classifies it as a SKIP, so the next
candidate that can run the feature serves the request, and the client hears this 400 only when none can.
Pure; no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from ccm_tui.core.contract import UpstreamError

UNSUPPORTED_FEATURE = "unsupported_feature"

# Server and Anthropic-defined tools carry a dated type: web_search_20250305, text_editor_20250728 ...
_DATED_TYPE = re.compile(r"^(?P<family>[a-z_]+?)_(?:\d{8})$")
# Families with a name of their own here; any other dated type is refused under its family name.
WEB_SEARCH = "web_search"
WEB_FETCH = "web_fetch"
CODE_EXECUTION = "code_execution"
TOOL_SEARCH = "tool_search"


class UnsupportedFeature(Exception):
    """A request feature the target cannot honour; `upstream_error` is what the client is answered with."""

    def __init__(self, feature: str, why: str) -> None:
        super().__init__(f"{feature}: {why}")
        self.feature = feature
        self.why = why

    def upstream_error(self, provider: str) -> UpstreamError:
        return UpstreamError(
            400,
            f"{self.feature} is not supported by provider {provider!r}: {self.why}",
            error_type="invalid_request_error",
            error_code=UNSUPPORTED_FEATURE,
        )


# What a translator raises on a request shape it did not foresee (validation lets it through, the translator
# trips): that request cannot go to this target, but another may take it — never a cool-down for everyone.
TRANSLATION_BUGS = (TypeError, ValueError, KeyError, AttributeError, IndexError)


def untranslatable(provider: str, exc: BaseException) -> UpstreamError:
    """The refusal for a request a translator failed on: a skip to the next candidate, like an unsupported
    feature, and a 400 for the client only when no candidate can take it."""
    return UnsupportedFeature("this request", f"it could not be translated ({type(exc).__name__})").upstream_error(
        provider
    )


def server_tool_family(tool: Mapping[str, Any]) -> str | None:
    """The server / Anthropic-defined tool family of a tool definition (`web_search`, `bash`, `tool_search` ...),
    None for a client tool the caller declares with its own schema."""
    kind = tool.get("type")
    if kind in (None, "custom"):
        return None
    match = _DATED_TYPE.match(str(kind))
    if match is None:
        # An undated type with its own schema is a client tool by another name; anything else (mcp_toolset ...)
        # runs on Anthropic's side.
        return None if "input_schema" in tool else str(kind)
    family = match.group("family")
    return TOOL_SEARCH if family.startswith("tool_search_tool") else family


def refuse_server_tool(family: str, tool: Mapping[str, Any], why: str) -> UnsupportedFeature:
    return UnsupportedFeature(f"the {family} tool ({tool.get('type')})", why)


def refuse_mcp_servers(body: Mapping[str, Any]) -> None:
    if body.get("mcp_servers"):
        raise UnsupportedFeature(
            "mcp_servers (the MCP connector)",
            "it cannot connect to remote MCP servers; configure them as local MCP servers in the client instead",
        )


def refuse_url_sources(body: Mapping[str, Any], why: str) -> None:
    """Raise for the first image or document with a `url` source (also inside tool results)."""
    for block in _media_blocks(body.get("messages")):
        source = block.get("source")
        if isinstance(source, dict) and source.get("type") == "url":
            raise UnsupportedFeature(f"{block.get('type')} blocks with a URL source", why)


def _media_blocks(messages: Any) -> Iterator[dict[str, Any]]:
    for message in messages if isinstance(messages, list) else ():
        content = message.get("content") if isinstance(message, dict) else None
        for block in content if isinstance(content, list) else ():
            if not isinstance(block, dict):
                continue
            if block.get("type") in ("image", "document"):
                yield block
            elif block.get("type") == "tool_result" and isinstance(block.get("content"), list):
                yield from (
                    b for b in block["content"] if isinstance(b, dict) and b.get("type") in ("image", "document")
                )


def output_schema(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """The JSON schema of a structured-output request (`output_config.format`, or the beta `output_format`)."""
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else None
    if fmt is None:
        fmt = body.get("output_format")
    if not isinstance(fmt, dict):
        return None
    if fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
        raise UnsupportedFeature(f"output format {fmt.get('type')!r}", "only json_schema output formats are translated")
    return fmt["schema"]
