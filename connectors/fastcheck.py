"""A compiled yes/no validity check of Event records: the collector's fast path for valid events.

:func:`schemas.validation.problems` explains every mismatch but walks the schema generically (about 30 µs
per event); most events are valid and need no explanation. :func:`compile_check` turns a parsed Avro
schema into nested closures that only answer "valid or not" (a few µs). It is never more lenient than
``problems``: when it says no, the caller asks ``problems`` for the reasons, and ``problems`` has the
last word (a test pins that agreement on generated records).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["Check", "compile_check"]

Check = Callable[[Any], bool]

_INT = (-(2**31), 2**31 - 1)
_LONG = (-(2**63), 2**63 - 1)


def compile_check(schema: Any, *, unchecked: frozenset[str] = frozenset()) -> Check:
    """A function telling whether a value (plain dicts, lists and scalars, as parsed from JSON) fits ``schema``.

    ``unchecked`` names top-level record fields whose presence is checked but not their value (the Event's
    ``payload``, checked against the record its ``event_type`` names). Union values must be plain: the
    tuple notation is not accepted.
    """
    if isinstance(schema, dict) and schema.get("type") == "record" and unchecked:
        return _record(schema, {}, unchecked)
    return _compile(schema, {})


def _compile(schema: Any, named: dict[str, Check]) -> Check:
    if isinstance(schema, str) and schema in named:
        return lambda value: named[schema](value)  # resolved at call time: the definition may come later
    if isinstance(schema, list):
        return _union([_compile(branch, named) for branch in schema], schema)
    kind = schema["type"] if isinstance(schema, dict) else schema
    if isinstance(kind, (dict, list)):
        return _compile(kind, named)
    if kind == "record":
        check = _record(schema, named)
        named[schema["name"]] = check
        return check
    if kind == "enum":
        symbols = frozenset(schema["symbols"])
        check = lambda value: type(value) is str and value in symbols  # noqa: E731
        named[schema["name"]] = check
        return check
    if kind == "array":
        item = _compile(schema["items"], named)
        return lambda value: type(value) is list and all(item(v) for v in value)
    if kind == "map":
        values = _compile(schema["values"], named)
        return lambda value: type(value) is dict and all(type(k) is str and values(v) for k, v in value.items())
    return _primitive(kind)


def _primitive(kind: str) -> Check:
    if kind in ("int", "long"):
        low, high = _INT if kind == "int" else _LONG
        return lambda value: type(value) is int and low <= value <= high
    checks: dict[str, Check] = {
        "null": lambda value: value is None,
        "boolean": lambda value: value is True or value is False,
        "string": lambda value: type(value) is str,
        "float": lambda value: type(value) is float or type(value) is int,
        "double": lambda value: type(value) is float or type(value) is int,
    }
    return checks.get(kind, lambda value: False)  # bytes and fixed never come from JSON


def _union(branches: list[Check], schema: list[Any]) -> Check:
    if len(branches) == 2 and schema[0] == "null":
        other = branches[1]
        return lambda value: value is None or other(value)
    return lambda value: any(branch(value) for branch in branches)


def _record(schema: dict[str, Any], named: dict[str, Check], unchecked: frozenset[str] = frozenset()) -> Check:
    names = frozenset(field["name"] for field in schema["fields"])
    required = frozenset(field["name"] for field in schema["fields"] if "default" not in field)
    fields = tuple(
        (field["name"], _compile(field["type"], named)) for field in schema["fields"] if field["name"] not in unchecked
    )

    def check(value: Any) -> bool:
        if type(value) is not dict or not value.keys() <= names or not required <= value.keys():
            return False
        for name, field_check in fields:  # noqa: SIM110 - a plain loop beats all() over a generator here
            if name in value and not field_check(value[name]):
                return False
        return True

    return check
