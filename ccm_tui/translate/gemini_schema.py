"""Anthropic tool definitions as Gemini function declarations and built-in tools, with JSON schemas cut down to
what Gemini takes.

Server tools map to Gemini's built-ins: web_search -> googleSearch (Search grounding), web_fetch -> urlContext,
code_execution -> codeExecution.

Gemini's function `parameters` accept an OpenAPI subset; unknown keywords ($schema, additionalProperties,
exclusiveMinimum, $ref, propertyNames, ...) make generateContent answer 400 "Unknown name". Pure functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ccm_tui.translate.features import (
    CODE_EXECUTION,
    TOOL_SEARCH,
    WEB_FETCH,
    WEB_SEARCH,
    refuse_server_tool,
    server_tool_family,
)

# The OpenAPI subset Gemini's `parameters` accepts (an allow-list: unknown keywords are a 400).
_SCHEMA_KEYS = frozenset(
    {"type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems", "properties", "required"}
    | {"minProperties", "maxProperties", "minLength", "maxLength", "pattern", "example", "anyOf", "items"}
    | {"minimum", "maximum", "propertyOrdering"}
)
_FORMATS = {"string": {"enum", "date-time"}, "integer": {"int32", "int64"}, "number": {"float", "double"}}


# Anthropic server tools with a Gemini built-in counterpart.
_BUILT_INS = {WEB_SEARCH: "googleSearch", WEB_FETCH: "urlContext", CODE_EXECUTION: "codeExecution"}


def gemini_tools(tools: Any) -> list[dict[str, Any]] | None:
    """Function declarations plus the built-in tools server tools map to. Raises UnsupportedFeature for a
    server tool without a counterpart; the tool search tool needs none (deferred tools are declared)."""
    declarations = []
    built_ins: list[dict[str, Any]] = []
    for tool in tools if isinstance(tools, list) else []:
        if not isinstance(tool, dict):
            continue
        family = server_tool_family(tool)
        if family in _BUILT_INS:
            built_ins.append({_BUILT_INS[family]: {}})
            continue
        if family == TOOL_SEARCH:
            continue
        if family is not None:
            raise refuse_server_tool(family, tool, "Gemini has no equivalent for this Anthropic tool")
        if not tool.get("name"):
            continue
        declaration: dict[str, Any] = {"name": tool["name"]}
        if tool.get("description"):
            declaration["description"] = tool["description"]
        parameters = clean_schema(tool.get("input_schema") or {})
        if parameters.get("properties"):  # Gemini rejects an OBJECT without properties
            declaration["parameters"] = parameters
        declarations.append(declaration)
    result = [{"functionDeclarations": declarations}] if declarations else []
    return result + built_ins or None


def clean_schema(schema: Any, definitions: Mapping[str, Any] | None = None, depth: int = 0) -> dict[str, Any]:
    """A JSON schema reduced to the subset Gemini's function `parameters` accept.

    Local `$ref`s are inlined (depth-limited), `const` becomes a one-value enum, `oneOf` becomes `anyOf`,
    `["string", "null"]` becomes `string` + nullable, formats and enums Gemini rejects are dropped.
    """
    if not isinstance(schema, dict) or depth > 12:
        return {}
    if definitions is None:
        definitions = {**(schema.get("definitions") or {}), **(schema.get("$defs") or {})}
    ref = schema.get("$ref")
    if isinstance(ref, str):
        target = definitions.get(ref.rsplit("/", 1)[-1]) if ref.startswith("#/") else None
        merged = {**(target or {}), **{k: v for k, v in schema.items() if k != "$ref"}}
        return clean_schema(merged, definitions, depth + 1)
    source = dict(schema)
    if "const" in source:
        source["enum"] = [source.pop("const")]
    if "oneOf" in source and "anyOf" not in source:
        source["anyOf"] = source.pop("oneOf")
    all_of = source.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], dict):
        source = {**all_of[0], **{k: v for k, v in source.items() if k != "allOf"}}
    result: dict[str, Any] = {}
    kind = source.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        if len(kinds) < len(kind):
            result["nullable"] = True
        kind = kinds[0] if kinds else None
    if isinstance(kind, str):
        result["type"] = kind
    for key, value in source.items():
        if key not in _SCHEMA_KEYS or key == "type":
            continue
        if key == "properties" and isinstance(value, dict):
            result[key] = {name: clean_schema(sub, definitions, depth + 1) for name, sub in value.items()}
        elif key == "items":
            result[key] = clean_schema(value, definitions, depth + 1)
        elif key == "anyOf" and isinstance(value, list):
            result[key] = [clean_schema(sub, definitions, depth + 1) for sub in value]
        elif (key == "format" and value not in _FORMATS.get(str(kind), ())) or (
            key == "enum" and (kind not in (None, "string") or not isinstance(value, list))
        ):
            continue
        elif key == "enum":
            result[key] = [str(item) for item in value]
            result.setdefault("type", "string")
        else:
            result[key] = value
    if isinstance(result.get("required"), list):
        known = result.get("properties") or {}
        result["required"] = [name for name in result["required"] if name in known]
        if not result["required"]:
            del result["required"]
    return result
