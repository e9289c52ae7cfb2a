"""Avro binary encoders compiled from a schema: the same bytes as fastavro's writer, 3-4x faster.

fastavro's writer walks the schema for every value it writes: a type-name dispatch per field, and a union's
branch found by validating the value against each branch in turn. :func:`compiled_writer` does that walk once,
turning a parsed schema into the source of one Python function per record type, and ``exec``s it. Measured
(2,000-event mixed dataset): an Event 40 -> 11 µs, a customer record 51 -> 18 µs.

It covers what the catalogue uses (records, enums, arrays, maps, ``["null", T]`` unions, unions of named
types in fastavro's tuple notation ``(name, value)``, and the primitives) and refuses any other schema with
:class:`NotImplementedError` at compile time. A value it cannot write exactly as fastavro would raises
:class:`NotCompiled`; :class:`schemas.codec.AvroCodec` then writes the record with fastavro, so errors, defaults
for missing fields and lenient inputs keep fastavro's behaviour. Tests compare the bytes with fastavro's for
every schema of the catalogue (``tests/test_schemas/test_avro_writer.py``).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["NotCompiled", "compiled_writer"]

_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_LONG_MIN, _LONG_MAX = -(1 << 63), (1 << 63) - 1

#: Zig-zag varints already made: timestamps repeat within a record and across a batch; lengths are small.
_VARINTS: dict[int, bytes] = {}
_VARINTS_MAX = 16_384


class NotCompiled(Exception):  # noqa: N818 - a signal to fall back, not an error a caller sees
    """The compiled writer cannot write this value as fastavro would: write it with fastavro instead."""


def _varint(n: int) -> bytes:
    """Avro's zig-zag varint of a long (``int`` and ``long`` share it)."""
    if type(n) is not int:
        return _long(n)
    found = _VARINTS.get(n)
    if found is not None:
        return found
    if not _LONG_MIN <= n <= _LONG_MAX:
        raise NotCompiled(f"{n} does not fit a long")
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    if len(_VARINTS) >= _VARINTS_MAX:
        _VARINTS.clear()
    found = _VARINTS[n] = bytes(out)
    return found


def _long(value: Any) -> bytes:
    if type(value) is bool:
        return b"\x02" if value else b"\x00"
    raise NotCompiled(f"{type(value).__name__} where a long is expected")


def _string(value: Any) -> bytes:
    if type(value) is not str:
        raise NotCompiled(f"{type(value).__name__} where a string is expected")
    data = value.encode()
    return _varint(len(data)) + data


def _bytes(value: Any) -> bytes:
    if type(value) is not bytes:
        raise NotCompiled(f"{type(value).__name__} where bytes are expected")
    return _varint(len(value)) + value


def _fields_mismatch(record: Any, expected: int) -> None:
    """Raised after a record's fields were all read: more keys than fields (fastavro's strict check decides)."""
    raise NotCompiled(f"a record with {len(record)} keys for {expected} fields")


class _Compiler:
    """Emits one function per named record: ``w_<name>(append, record)``."""

    def __init__(self, named: Mapping[str, Any]) -> None:
        self._named = named
        self.functions: dict[str, str] = {}
        self.constants: dict[str, Any] = {
            "_varint": _varint,
            "_string": _string,
            "_bytes": _bytes,
            "_fields_mismatch": _fields_mismatch,
            "NotCompiled": NotCompiled,
            "_double": struct.Struct("<d").pack,
            "_float": struct.Struct("<f").pack,
        }
        self._names = 0

    def _fresh(self, stem: str = "v") -> str:
        self._names += 1
        return f"{stem}{self._names}"

    def record(self, schema: Mapping[str, Any]) -> str:
        name = "w_" + str(schema["name"]).replace(".", "_")
        if name not in self.functions:
            self.functions[name] = ""  # claimed first: a recursive type refers to itself
            fields = schema["fields"]
            body = [f"def {name}(a, d):"]
            for field in fields:
                value = self._fresh()
                body.append(f"    {value} = d[{field['name']!r}]")
                body.extend("    " + line for line in self.value(field["type"], value))
            body.append(f"    if len(d) != {len(fields)}:")
            body.append(f"        _fields_mismatch(d, {len(fields)})")
            self.functions[name] = "\n".join(body)
        return name

    def value(self, schema: Any, var: str) -> list[str]:
        """Lines appending the encoding of ``var`` (of type ``schema``) with ``a``."""
        if isinstance(schema, str):
            return self.primitive(schema, var) if schema in _PRIMITIVES else self.value(self._named[schema], var)
        if isinstance(schema, list):
            return self.union(schema, var)
        kind = schema["type"]
        if kind in _PRIMITIVES:
            if schema.get("logicalType"):
                raise NotImplementedError(f"logical type {schema['logicalType']!r}")
            return self.primitive(kind, var)
        if kind == "record":
            return [f"{self.record(schema)}(a, {var})"]
        if kind == "enum":
            table = self._fresh("E")
            self.constants[table] = {symbol: _varint(n) for n, symbol in enumerate(schema["symbols"])}
            return [f"a({table}[{var}])"]
        if kind == "array":
            item = self._fresh()
            lines = [f"if {var}:", f"    a(_varint(len({var})))", f"    for {item} in {var}:"]
            lines += ["        " + line for line in self.value(schema["items"], item)]
            return [*lines, "a(b'\\x00')"]
        if kind == "map":
            key, item = self._fresh("k"), self._fresh()
            lines = [f"if {var}:", f"    a(_varint(len({var})))", f"    for {key}, {item} in {var}.items():"]
            lines += [f"        a(_string({key}))"]
            lines += ["        " + line for line in self.value(schema["values"], item)]
            return [*lines, "a(b'\\x00')"]
        raise NotImplementedError(f"Avro type {kind!r}")

    def primitive(self, kind: str, var: str) -> list[str]:
        if kind == "null":
            return [f"if {var} is not None:", "    raise NotCompiled('a value where null is expected')"]
        if kind == "boolean":
            return [f"a(b'\\x01' if {var} else b'\\x00')"]
        if kind in ("int", "long"):
            return [f"a(_varint({var}))"]
        if kind == "string":
            return [f"a(_string({var}))"]
        if kind in ("double", "float"):
            return [f"a(_{kind}({var}))"]
        if kind == "bytes":
            return [f"a(_bytes({var}))"]
        raise NotImplementedError(f"Avro type {kind!r}")

    def union(self, branches: list[Any], var: str) -> list[str]:
        names = [b if isinstance(b, str) else b.get("name", b["type"]) for b in branches]
        if len(branches) == 2 and "null" in names:
            null = names.index("null")
            other = branches[1 - null]
            named = not (isinstance(other, str) and other in _PRIMITIVES)
            # A named branch may come in tuple notation (name, value), as fastavro accepts it.
            unwrap = [f"if type({var}) is tuple:", f"    {var} = _branch({var}, {names[1 - null]!r})"] if named else []
            self.constants["_branch"] = _branch
            return [
                *unwrap,
                f"if {var} is None:",
                f"    a({_varint(null)!r})",
                "else:",
                f"    a({_varint(1 - null)!r})",
                *("    " + line for line in self.value(other, var)),
            ]
        # Any other union: tuple notation only (fastavro would otherwise test the value against each branch).
        table, index, value = self._fresh("U"), self._fresh("i"), self._fresh()
        self.constants[table] = {name: n for n, name in enumerate(names)}
        lines = [
            f"if type({var}) is not tuple:",
            "    raise NotCompiled('a union value without its branch name')",
            f"{index} = {table}.get({var}[0])",
            f"if {index} is None:",
            "    raise NotCompiled('an unknown union branch')",
            f"{value} = {var}[1]",
            f"a(_varint({index}))",
        ]
        for n, branch in enumerate(branches):
            lines.append(f"{'if' if n == 0 else 'elif'} {index} == {n}:")
            lines.extend("    " + line for line in (self.value(branch, value) or ["pass"]))
        return lines


def _branch(value: tuple[Any, Any], name: str) -> Any:
    if len(value) != 2 or value[0] != name:
        raise NotCompiled("a union branch name that is not the schema's")
    return value[1]


def compiled_writer(schema: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], bytes]:
    """The Avro binary encoder of fastavro-parsed record ``schema``; raises :class:`NotCompiled` for a value
    it does not write exactly as fastavro would, :class:`NotImplementedError` at once for a schema it cannot."""
    if schema.get("type") != "record":
        raise NotImplementedError("only record schemas are compiled")
    compiler = _Compiler(schema.get("__named_schemas", {}))
    top = compiler.record(schema)
    source = "\n\n".join(compiler.functions.values())
    source += f"\n\ndef encode(d):\n    b = bytearray()\n    {top}(b.extend, d)\n    return bytes(b)\n"
    namespace = dict(compiler.constants)
    exec(compile(source, f"<avro writer of {schema['name']}>", "exec"), namespace)  # noqa: S102 - our own code
    encode: Callable[[Mapping[str, Any]], bytes] = namespace["encode"]
    return encode
