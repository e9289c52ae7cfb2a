"""Field-level validation of a record against a parsed Avro schema, for error messages people can act on.

fastavro's own errors name the innermost field only ("an integer is required on field quantity"); this
walks the schema and the record together and reports every problem as ``path: reason``, e.g.
``payload.quantity: expected int, got str 'two'``. It runs on the failure path of encoding and in the
collector, so its cost does not touch the hot path of a valid record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Problem", "problems"]

_INT_RANGE = (-(2**31), 2**31 - 1)
_LONG_RANGE = (-(2**63), 2**63 - 1)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a record: where (dotted path, ``[i]`` for items) and what."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path or '(record)'}: {self.reason}"


def problems(record: Any, schema: Any, path: str = "") -> list[Problem]:
    """Every mismatch between ``record`` and the parsed ``schema``; empty when the record is valid.

    Unions accept the tuple notation ``(record full name, value)`` that the codec uses for payloads.
    """
    found: list[Problem] = []
    _check(record, schema, path, found, {})
    return found


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def _named(schema: Any, named: dict[str, Any]) -> Any:
    if isinstance(schema, dict) and "name" in schema and schema.get("type") in ("record", "enum", "fixed"):
        named[schema["name"]] = schema
    return schema


def _check(value: Any, schema: Any, path: str, out: list[Problem], named: dict[str, Any]) -> None:
    if isinstance(schema, str) and schema in named:
        schema = named[schema]
    if isinstance(schema, list):
        _check_union(value, schema, path, out, named)
        return
    kind = schema["type"] if isinstance(schema, dict) else schema
    if isinstance(kind, (dict, list)):
        _check(value, kind, path, out, named)
        return
    _named(schema, named)
    if kind == "null":
        if value is not None:
            out.append(Problem(path, f"expected null, got {_describe(value)}"))
    elif kind == "boolean":
        if not isinstance(value, bool):
            out.append(Problem(path, f"expected boolean, got {_describe(value)}"))
    elif kind in ("int", "long"):
        low, high = _INT_RANGE if kind == "int" else _LONG_RANGE
        if not isinstance(value, int) or isinstance(value, bool):
            out.append(Problem(path, f"expected {kind}, got {_describe(value)}"))
        elif not low <= value <= high:
            out.append(Problem(path, f"{value} is out of range for {kind}"))
    elif kind in ("float", "double"):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            out.append(Problem(path, f"expected {kind}, got {_describe(value)}"))
    elif kind == "string":
        if not isinstance(value, str):
            out.append(Problem(path, f"expected string, got {_describe(value)}"))
    elif kind in ("bytes", "fixed"):
        if not isinstance(value, (bytes, bytearray)):
            out.append(Problem(path, f"expected bytes, got {_describe(value)}"))
        elif kind == "fixed" and len(value) != schema["size"]:
            out.append(Problem(path, f"expected {schema['size']} bytes, got {len(value)}"))
    elif kind == "enum":
        if value not in schema["symbols"]:
            out.append(Problem(path, f"{value!r} is not one of {', '.join(schema['symbols'])}"))
    elif kind == "array":
        if not isinstance(value, (list, tuple)):
            out.append(Problem(path, f"expected a list, got {_describe(value)}"))
            return
        for i, item in enumerate(value):
            _check(item, schema["items"], f"{path}[{i}]", out, named)
    elif kind == "map":
        if not isinstance(value, Mapping):
            out.append(Problem(path, f"expected an object, got {_describe(value)}"))
            return
        for key, item in value.items():
            if not isinstance(key, str):
                out.append(Problem(path, f"map keys must be strings, got {_describe(key)}"))
            _check(item, schema["values"], f"{path}.{key}" if path else str(key), out, named)
    elif kind == "record":
        _check_record(value, schema, path, out, named)
    else:
        out.append(Problem(path, f"unsupported schema type {kind!r}"))


def _check_record(value: Any, schema: Any, path: str, out: list[Problem], named: dict[str, Any]) -> None:
    if not isinstance(value, Mapping):
        out.append(Problem(path, f"expected an object ({schema['name']}), got {_describe(value)}"))
        return
    fields = {f["name"]: f for f in schema["fields"]}
    for name, field in fields.items():
        where = f"{path}.{name}" if path else name
        if name not in value:
            if "default" not in field:
                out.append(Problem(where, "required field is missing"))
            continue
        _check(value[name], field["type"], where, out, named)
    for extra in sorted(set(value) - set(fields)):
        out.append(Problem(f"{path}.{extra}" if path else str(extra), "unknown field (check the spelling)"))


def _check_union(value: Any, branches: list[Any], path: str, out: list[Problem], named: dict[str, Any]) -> None:
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str):
        for branch in branches:
            resolved = named.get(branch, branch) if isinstance(branch, str) else branch
            if isinstance(resolved, dict) and resolved.get("name") == value[0]:
                _check(value[1], resolved, path, out, named)
                return
        out.append(Problem(path, f"{value[0]!r} is not a branch of this union"))
        return
    attempts: list[list[Problem]] = []
    for branch in branches:
        trial: list[Problem] = []
        _check(value, branch, path, trial, named)
        if not trial:
            return
        attempts.append(trial)
    if len(branches) == 2 and "null" in branches:  # an optional field: report the non-null branch's problem
        out.extend(attempts[1] if branches[0] == "null" else attempts[0])
    else:
        out.append(Problem(path, f"matches none of the union's types ({_describe(value)})"))
