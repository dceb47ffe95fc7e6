"""Anthropic tool definitions as Gemini function declarations, with JSON schemas cut down to what Gemini takes.

Gemini's function `parameters` accept an OpenAPI subset; unknown keywords ($schema, additionalProperties,
exclusiveMinimum, $ref, propertyNames, ...) make generateContent answer 400 "Unknown name". Pure functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# The OpenAPI subset Gemini's `parameters` accepts (an allow-list: unknown keywords are a 400).
_SCHEMA_KEYS = frozenset(
    {"type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems", "properties", "required"}
    | {"minProperties", "maxProperties", "minLength", "maxLength", "pattern", "example", "anyOf", "items"}
    | {"minimum", "maximum", "propertyOrdering"}
)
_FORMATS = {"string": {"enum", "date-time"}, "integer": {"int32", "int64"}, "number": {"float", "double"}}


def gemini_tools(tools: Any) -> list[dict[str, Any]] | None:
    declarations = []
    for tool in tools if isinstance(tools, list) else []:
        # Server tools (web_search_20250305, bash_20250124, ...) have no Gemini function equivalent.
        if not isinstance(tool, dict) or not tool.get("name") or tool.get("type") not in (None, "custom"):
            continue
        declaration: dict[str, Any] = {"name": tool["name"]}
        if tool.get("description"):
            declaration["description"] = tool["description"]
        parameters = clean_schema(tool.get("input_schema") or {})
        if parameters.get("properties"):  # Gemini rejects an OBJECT without properties
            declaration["parameters"] = parameters
        declarations.append(declaration)
    return [{"functionDeclarations": declarations}] if declarations else None


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
