"""Pure validation of inbound Messages requests: bytes -> parsed body, or a 400 naming the field.

The whole Messages API request shape is one table of specs (REQUEST below): every known field and content
block type is checked for its JSON type, so translators only ever see well-typed input. Unknown fields and
unknown block types pass through untouched (pass-through providers must keep them; the upstream judges).
A problem reads `messages.1.content.0.id: expected a string, got number`. Client input echoed in a
message is clipped (`shown`), so a 5 MB field never becomes a 5 MB error body or log line.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

MAX_MODEL_CHARS = 256
# Below orjson's serialisation limit (254 levels) and far below Python's recursion limit, which the
# translators' recursive helpers (tool schemas, tool inputs) must stay under.
MAX_DEPTH = 128
_SHOWN_CHARS = 64


@dataclass(frozen=True)
class Invalid:
    status: int
    message: str


def shown(value: object, limit: int = _SHOWN_CHARS) -> str:
    """`repr(value)` clipped to `limit` characters: safe to put client input in a message or a log line."""
    if isinstance(value, str) and len(value) > limit:
        return repr(value[:limit]) + f"... ({len(value)} characters)"
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {dict: "object", list: "array", str: "string", type(None): "null"}.get(type(value), type(value).__name__)


# --- specs ------------------------------------------------------------------------------------------------


class Problem:
    """What is wrong and where; containers add their key as the problem travels up (no cost when valid)."""

    __slots__ = ("message", "reversed_path")

    def __init__(self, message: str, *where: str | int) -> None:
        self.message = message
        self.reversed_path: list[str | int] = list(reversed(where))

    def under(self, key: str | int) -> Problem:
        self.reversed_path.append(key)
        return self

    def __str__(self) -> str:
        path = ".".join(str(key) for key in reversed(self.reversed_path))
        return f"{path}: {self.message}" if path else self.message


class Spec(Protocol):
    def check(self, value: Any) -> Problem | None:
        """The first problem with `value`, or None."""
        ...


def _expected(what: str, value: Any) -> Problem:
    return Problem(f"expected {what}, got {json_type(value)}")


@dataclass(frozen=True)
class Scalar:
    """A JSON scalar of one of `types` (exact types: `True` is not a number here), optionally also `test`-ed."""

    what: str
    types: tuple[type, ...]
    test: Callable[[Any], bool] | None = None

    def check(self, value: Any) -> Problem | None:
        if type(value) in self.types and (self.test is None or self.test(value)):
            return None
        return _expected(self.what, value)


@dataclass(frozen=True)
class Nullable:
    inner: Spec

    def check(self, value: Any) -> Problem | None:
        return None if value is None else self.inner.check(value)


@dataclass(frozen=True)
class ArrayOf:
    item: Spec
    non_empty: str | None = None  # what an item is called, when at least one is required

    def check(self, value: Any) -> Problem | None:
        if type(value) is not list:
            return _expected("an array", value)
        if self.non_empty and not value:
            return Problem(f"at least one {self.non_empty} is required")
        check = self.item.check
        for index, item in enumerate(value):
            if problem := check(item):
                return problem.under(index)
        return None


@dataclass(frozen=True)
class MapOf:
    """An object with arbitrary keys whose values all match `value` (JSON-Schema `properties`, `$defs`)."""

    value: Spec

    def check(self, value: Any) -> Problem | None:
        if type(value) is not dict:
            return _expected("an object", value)
        check = self.value.check
        for key, item in value.items():
            if problem := check(item):
                return problem.under(shown(key) if len(key) > _SHOWN_CHARS else key)
        return None


@dataclass(frozen=True)
class Shape:
    """An object: `required` fields must be present, known fields must match, unknown fields pass."""

    fields: Mapping[str, Spec] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    rule: Callable[[dict[str, Any]], Problem | None] | None = None  # a check across fields

    def check(self, value: Any) -> Problem | None:
        if type(value) is not dict:
            return _expected("an object", value)
        for name in self.required:
            if name not in value:
                return Problem("Field required", name)
        for name, spec in self.fields.items():
            if name in value and (problem := spec.check(value[name])):
                return problem.under(name)
        return self.rule(value) if self.rule else None


@dataclass(frozen=True)
class Tagged:
    """An object whose string `type` picks its spec; unknown types pass unless `closed`."""

    table: Mapping[str, Spec]
    suffixes: tuple[tuple[str, Spec], ...] = ()  # ("_tool_result", spec): every web_search_tool_result ...
    closed: bool = False
    what: str = "an object"

    def check(self, value: Any) -> Problem | None:
        if type(value) is not dict:
            return _expected(self.what, value)
        if "type" not in value:
            return Problem("Field required", "type")
        kind = value["type"]
        if type(kind) is not str:
            return _expected("a string", kind).under("type")
        spec = self.table.get(kind) or next((s for suffix, s in self.suffixes if kind.endswith(suffix)), None)
        if spec is not None:
            return spec.check(value)
        if self.closed:
            return Problem(f"expected one of {', '.join(map(repr, self.table))}, got {shown(kind)}", "type")
        return None


@dataclass(frozen=True)
class Either:
    """One of several specs, chosen by the value's Python type (a string, or an array of blocks ...)."""

    by_type: Mapping[type, Spec]
    what: str

    def check(self, value: Any) -> Problem | None:
        spec = self.by_type.get(type(value))
        return spec.check(value) if spec is not None else _expected(self.what, value)


@dataclass(frozen=True)
class OneOf:
    values: tuple[str, ...]

    def check(self, value: Any) -> Problem | None:
        if type(value) is str and value in self.values:
            return None
        return Problem(f"expected one of {', '.join(map(repr, self.values))}, got {shown(value)}")


class Later:
    """A spec defined further down (content blocks contain content blocks)."""

    def __init__(self, resolve: Callable[[], Spec]) -> None:
        self._resolve = resolve

    def check(self, value: Any) -> Problem | None:
        return self._resolve().check(value)


STRING = Scalar("a string", (str,))
NON_EMPTY_STRING = Scalar("a non-empty string", (str,), lambda v: bool(v.strip()))
INTEGER = Scalar("an integer", (int,))
NON_NEGATIVE_INTEGER = Scalar("a non-negative integer", (int,), lambda v: v >= 0)
NUMBER = Scalar("a number", (int, float))
BOOLEAN = Scalar("a boolean", (bool,))
JSON_VALUE = Scalar("a JSON value", (str, int, float, bool, type(None), dict, list))
OBJECT = Shape()
ANY_TYPED = Tagged({})  # an object with a string `type`, otherwise free

# --- the Messages API ---------------------------------------------------------------------------------------

CACHE_CONTROL = Nullable(Shape({"type": STRING, "ttl": STRING}, required=("type",)))
BLOCK: Spec = Later(lambda: CONTENT_BLOCK)
CONTENT = Either({str: STRING, list: ArrayOf(BLOCK)}, "a string or an array of content blocks")


def _block(fields: Mapping[str, Spec], required: tuple[str, ...] = ()) -> Shape:
    return Shape({**fields, "cache_control": CACHE_CONTROL}, required)


SOURCE = Tagged(
    {
        "base64": Shape({"media_type": STRING, "data": STRING}, required=("data",)),
        "url": Shape({"url": STRING}, required=("url",)),
        "file": Shape({"file_id": STRING}, required=("file_id",)),
        "text": Shape({"media_type": STRING, "data": STRING}, required=("data",)),
        "content": Shape({"content": CONTENT}, required=("content",)),
    },
    what="a source object",
)

TOOL_RESULT_CONTENT = Nullable(CONTENT)

CONTENT_BLOCK: Tagged = Tagged(
    {
        "text": _block({"text": STRING, "citations": Nullable(ArrayOf(ANY_TYPED))}, ("text",)),
        "image": _block({"source": SOURCE}, ("source",)),
        "document": _block(
            {"source": SOURCE, "title": Nullable(STRING), "context": Nullable(STRING), "citations": Nullable(OBJECT)},
            ("source",),
        ),
        "search_result": _block(
            {"source": STRING, "title": STRING, "content": ArrayOf(BLOCK), "citations": Nullable(OBJECT)},
            ("source", "title", "content"),
        ),
        "tool_use": _block({"id": STRING, "name": STRING, "input": OBJECT}, ("id", "name", "input")),
        "server_tool_use": _block({"id": STRING, "name": STRING, "input": OBJECT}, ("id", "name", "input")),
        "mcp_tool_use": _block(
            {"id": STRING, "name": STRING, "server_name": STRING, "input": OBJECT}, ("id", "name", "input")
        ),
        "tool_result": _block(
            {"tool_use_id": STRING, "content": TOOL_RESULT_CONTENT, "is_error": Nullable(BOOLEAN)}, ("tool_use_id",)
        ),
        "thinking": Shape({"thinking": STRING, "signature": STRING}, ("thinking",)),
        "redacted_thinking": Shape({"data": STRING}, ("data",)),
        "container_upload": _block({"file_id": STRING}, ("file_id",)),
        "tool_reference": _block({"tool_name": STRING}, ("tool_name",)),
    },
    # web_search_tool_result, web_fetch_tool_result, code_execution_tool_result, mcp_tool_result ...
    suffixes=(("_tool_result", _block({"tool_use_id": STRING, "is_error": Nullable(BOOLEAN)}, ("tool_use_id",))),),
    what="a content block object",
)

MESSAGE = Shape({"role": OneOf(("user", "assistant", "system")), "content": CONTENT}, required=("role", "content"))

SYSTEM = Nullable(
    Either(
        {str: STRING, list: ArrayOf(Tagged({"text": CONTENT_BLOCK.table["text"]}, what="a text block"))},
        "a string or an array of text blocks",
    )
)

# Only the JSON-Schema keywords whose types the translators rely on; the upstream judges the rest.
SCHEMA: Spec = Later(lambda: SCHEMA_OR_BOOLEAN)
SCHEMA_OBJECT: Shape = Shape(
    {
        "type": Either({str: STRING, list: ArrayOf(STRING)}, "a string or an array of strings"),
        "properties": MapOf(SCHEMA),
        "required": ArrayOf(STRING),
        "items": Either({dict: SCHEMA, bool: BOOLEAN, list: ArrayOf(SCHEMA)}, "a schema"),
        "anyOf": ArrayOf(SCHEMA),
        "oneOf": ArrayOf(SCHEMA),
        "allOf": ArrayOf(SCHEMA),
        "$defs": MapOf(Later(lambda: SCHEMA_OBJECT)),
        "definitions": MapOf(Later(lambda: SCHEMA_OBJECT)),
        "$ref": STRING,
        "enum": ArrayOf(JSON_VALUE),
        "description": STRING,
        "format": STRING,
    }
)
SCHEMA_OR_BOOLEAN: Either = Either({dict: SCHEMA_OBJECT, bool: BOOLEAN}, "a schema object or a boolean")


def _tool_needs_name(tool: dict[str, Any]) -> Problem | None:
    # A custom tool (no type, or "custom") is a function; so is anything with an input schema. Server tools
    # such as mcp_toolset have no name of their own.
    if (tool.get("type") in (None, "custom") or "input_schema" in tool) and "name" not in tool:
        return Problem("Field required", "name")
    return None


TOOL = Shape(
    {
        "type": Nullable(STRING),
        "name": NON_EMPTY_STRING,
        "description": STRING,
        "input_schema": SCHEMA_OBJECT,
        "cache_control": CACHE_CONTROL,
    },
    rule=_tool_needs_name,
)

_PARALLEL = {"disable_parallel_tool_use": BOOLEAN}
TOOL_CHOICE = Nullable(
    Tagged(
        {
            "auto": Shape(_PARALLEL),
            "any": Shape(_PARALLEL),
            "tool": Shape({"name": STRING, **_PARALLEL}, ("name",)),
            "none": Shape(),
        },
        closed=True,
    )
)

THINKING = Nullable(
    Tagged({"enabled": Shape({"budget_tokens": NON_NEGATIVE_INTEGER}), "disabled": Shape(), "adaptive": Shape()})
)


# Stop sequences are matched locally for translated kinds (translate/stop_sequences.py): bounded so a client
# cannot make that matching expensive. Real ones are a few characters.
MAX_STOP_SEQUENCES = 64
MAX_STOP_SEQUENCE_CHARS = 1024


def _within_bounds(body: dict[str, Any]) -> Problem | None:
    model = body["model"]
    if len(model) > MAX_MODEL_CHARS:
        return Problem(f"expected at most {MAX_MODEL_CHARS} characters, got {len(model)}", "model")
    stops = body.get("stop_sequences") or ()
    if len(stops) > MAX_STOP_SEQUENCES:
        return Problem(f"expected at most {MAX_STOP_SEQUENCES} stop sequences, got {len(stops)}", "stop_sequences")
    for index, stop in enumerate(stops):
        if len(stop) > MAX_STOP_SEQUENCE_CHARS:
            return Problem(
                f"expected at most {MAX_STOP_SEQUENCE_CHARS} characters, got {len(stop)}", "stop_sequences", index
            )
    return None


# Structured outputs: a json_schema format's schema reaches the translators, so it is checked like a tool schema.
OUTPUT_FORMAT = Tagged({"json_schema": Shape({"schema": Later(lambda: SCHEMA_OBJECT)}, ("schema",))})

_FIELDS: dict[str, Spec] = {
    "model": NON_EMPTY_STRING,
    "max_tokens": NON_NEGATIVE_INTEGER,
    "messages": ArrayOf(MESSAGE, non_empty="message"),
    "system": SYSTEM,
    "stream": BOOLEAN,
    "stop_sequences": Nullable(ArrayOf(STRING)),
    "temperature": Nullable(NUMBER),
    "top_p": Nullable(NUMBER),
    "top_k": Nullable(INTEGER),
    "tools": Nullable(ArrayOf(TOOL)),
    "tool_choice": TOOL_CHOICE,
    "metadata": Nullable(Shape({"user_id": Nullable(STRING)})),
    "thinking": THINKING,
    "output_config": Nullable(Shape({"effort": Nullable(STRING), "format": Nullable(OUTPUT_FORMAT)})),
    "output_format": Nullable(OUTPUT_FORMAT),
    "service_tier": Nullable(STRING),
    "container": Nullable(Either({str: STRING, dict: OBJECT}, "a string or an object")),
    "context_management": Nullable(OBJECT),
    "mcp_servers": Nullable(ArrayOf(ANY_TYPED)),
}

MESSAGES_REQUEST = Shape(_FIELDS, required=("model", "max_tokens", "messages"), rule=_within_bounds)
COUNT_TOKENS_REQUEST = Shape(_FIELDS, required=("model", "messages"), rule=_within_bounds)


# --- entry points -------------------------------------------------------------------------------------------


def parse_body(raw: bytes) -> dict[str, Any] | Invalid:
    if not raw.strip():
        return Invalid(400, "Request body is empty; expected a JSON object.")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Invalid(400, f"Request body is not valid JSON: {shown(str(exc), 200)}")
    if not isinstance(body, dict):
        return Invalid(400, f"Request body must be a JSON object, got {json_type(body)}.")
    if _deeper_than(body, MAX_DEPTH):
        return Invalid(400, f"Request body nests deeper than {MAX_DEPTH} levels.")
    return body


def validate_messages_request(body: dict[str, Any], *, require_max_tokens: bool = True) -> Invalid | None:
    """The first problem found, phrased like Anthropic's own validation errors (`field: problem`)."""
    spec = MESSAGES_REQUEST if require_max_tokens else COUNT_TOKENS_REQUEST
    problem = spec.check(body)
    return None if problem is None else Invalid(400, f"{problem}.")


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether arrays and objects nest more than `limit` levels (iterative: no recursion on hostile input)."""
    stack: list[tuple[dict[str, Any] | list[Any], int]] = [(value, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        item, depth = pop()
        for child in item.values() if type(item) is dict else item:
            if type(child) is dict or type(child) is list:
                if depth >= limit:
                    return True
                push((child, depth + 1))
    return False
