"""A compiled yes/no validity check of Event records: the collector's fast path for valid events.

:func:`schemas.validation.problems` explains every mismatch but walks the schema generically (about 30 µs
per event); most events are valid and need no explanation. :func:`compile_check` walks the schema once and
generates the source of one Python function per record type (every field's test inlined: no call per field,
as a tree of closures would make), then ``exec``s it: it only answers "valid or not". It is never more lenient
than ``problems``: when it says no, the caller asks ``problems`` for the reasons, and ``problems`` has the last
word (tests pin that agreement on generated records).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["Check", "compile_check"]

Check = Callable[[Any], bool]

_INT = (-(2**31), 2**31 - 1)
_LONG = (-(2**63), 2**63 - 1)
_NUMBER = "(type({v}) is float or type({v}) is int)"
_PRIMITIVE = {
    "null": "{v} is None",
    "boolean": "({v} is True or {v} is False)",
    "string": "type({v}) is str",
    "float": _NUMBER,
    "double": _NUMBER,
    "int": f"(type({{v}}) is int and {_INT[0]} <= {{v}} <= {_INT[1]})",
    "long": f"(type({{v}}) is int and {_LONG[0]} <= {{v}} <= {_LONG[1]})",
    "bytes": "False",  # bytes and fixed never come from JSON
    "fixed": "False",
}


def compile_check(schema: Any, *, unchecked: frozenset[str] = frozenset()) -> Check:
    """A function telling whether a value (plain dicts, lists and scalars, as parsed from JSON) fits ``schema``.

    ``unchecked`` names top-level record fields whose presence is checked but not their value (the Event's
    ``payload``, checked against the record its ``event_type`` names). Union values must be plain: the
    tuple notation is not accepted.
    """
    generator = _Generator()
    if isinstance(schema, dict) and schema.get("type") == "record":
        entry = generator.record(schema, unchecked)
    else:
        entry = generator.helper(schema)
    namespace = dict(generator.constants)
    exec(compile("\n".join(generator.lines), "<fast check>", "exec"), namespace)  # noqa: S102 - our own source
    check: Check = namespace[entry]
    return check


class _Generator:
    """Source of the check functions: ``lines`` (Python), ``constants`` (frozensets they test against)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.constants: dict[str, Any] = {"_missing": _MISSING}  # an optional field's "not given"
        self.records: dict[str, str] = {}  # record name -> function name (defined or being defined)
        self.count = 0

    def _name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}_{self.count}"

    def constant(self, value: Any) -> str:
        name = self._name("_c")
        self.constants[name] = value
        return name

    def expression(self, schema: Any, v: str) -> str:
        """A Python expression, true when the value in variable ``v`` fits ``schema`` (``v`` read several times)."""
        if isinstance(schema, str) and schema in self.records:
            return f"{self.records[schema]}({v})"  # a named type used again, or recursively
        if isinstance(schema, list):
            branches = [self.expression(branch, v) for branch in schema]
            return "(" + " or ".join(branches) + ")" if branches else "False"
        kind = schema["type"] if isinstance(schema, dict) else schema
        if isinstance(kind, (dict, list)):
            return self.expression(kind, v)
        if kind == "record":
            return f"{self.record(schema)}({v})"
        if kind == "enum":
            symbols = self.constant(frozenset(schema["symbols"]))
            self.records[schema["name"]] = self.helper(schema, expression=f"(type(v) is str and v in {symbols})")
            return f"(type({v}) is str and {v} in {symbols})"
        if kind in ("array", "map"):
            return f"{self.helper(schema)}({v})"
        if kind in _PRIMITIVE:
            return _PRIMITIVE[kind].format(v=v)
        return "False"  # an unknown type name: nothing fits it

    def helper(self, schema: Any, *, expression: str | None = None) -> str:
        """A function of one value ``v``: arrays and maps loop over their items; anything else tests ``v``."""
        name = self._name("_check")
        kind = schema.get("type") if isinstance(schema, dict) else None
        if expression is None and kind == "array":
            item = self.expression(schema["items"], "x")
            body = ["    if type(v) is not list:", "        return False", "    for x in v:"]
            body += [f"        if not {item}:", "            return False", "    return True"]
        elif expression is None and kind == "map":
            item = self.expression(schema["values"], "x")
            body = ["    if type(v) is not dict:", "        return False", "    for k, x in v.items():"]
            body += [f"        if type(k) is not str or not {item}:", "            return False", "    return True"]
        else:
            body = [f"    return bool({expression or self.expression(schema, 'v')})"]
        self.lines += [f"def {name}(v):", *body, ""]
        return name

    def record(self, schema: dict[str, Any], unchecked: frozenset[str] = frozenset()) -> str:
        name = self._name("_record")
        self.records[schema["name"]] = name  # before the fields: a field may name this record again
        fields = schema["fields"]
        names = self.constant(frozenset(field["name"] for field in fields))
        required = self.constant(frozenset(field["name"] for field in fields if "default" not in field))
        body = [
            "    if type(v) is not dict:",
            "        return False",
            "    keys = v.keys()",
            f"    if not keys <= {names} or not {required} <= keys:",
            "        return False",
        ]
        for field in fields:
            if field["name"] in unchecked:
                continue
            test = self.expression(field["type"], "x")
            if "default" in field:  # optional: tested only when present
                body += [f"    x = v.get({field['name']!r}, _missing)", f"    if x is not _missing and not {test}:"]
            else:
                body += [f"    x = v[{field['name']!r}]", f"    if not {test}:"]
            body.append("        return False")
        body.append("    return True")
        self.lines += [f"def {name}(v):", *body, ""]
        return name


_MISSING = object()
