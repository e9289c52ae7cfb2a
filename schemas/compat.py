"""Pure Avro schema-resolution compatibility checker: no registry, no network.

:func:`check_backward` answers "can data written with ``writer`` be read with ``reader``?" by applying the
resolution rules of the Avro specification (section "Schema Resolution"):

* records match by unqualified name (or the reader's aliases); each reader field takes the writer field
  of the same name (or one of its aliases), and a reader field the writer lacks needs a default; writer
  fields the reader lacks are skipped;
* enums match by name; a writer symbol the reader lacks is an error unless the reader enum has a default;
* fixed types match by name and size; arrays and maps by their items and values;
* primitives must be equal or promotable: int -> long, float, double; long -> float, double;
  float -> double; string <-> bytes;
* a writer union is readable when every branch is; a reader union reads a writer type through its first
  matching branch;
* logical types are ignored (their underlying types are compared); recursive types are handled.

Each problem is an :class:`Incompatibility` whose ``path`` locates it (``Event.payload[CartLineAdded].quantity``:
``.field``, ``[Branch]`` for a union branch, ``[]`` for array items, ``{}`` for map values) and whose
``message`` says what breaks and how to fix it.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from fastavro.schema import SchemaParseException, UnknownType, parse_schema

from schemas.errors import CompatibilityError

__all__ = ["Incompatibility", "SchemaInput", "check_backward", "check_backward_transitive"]

SchemaInput = dict[str, Any] | list[Any] | str
"""A schema as JSON data (an object, plain or fastavro-parsed, or a union list) or as JSON text.

JSON text may also be a bare primitive name such as ``long``."""

PRIMITIVES: Final = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_NAMED_KINDS: Final = frozenset({"record", "error", "enum", "fixed"})
# writer type -> reader types it may be promoted to.
_PROMOTIONS: Final[dict[str, frozenset[str]]] = {
    "int": frozenset({"long", "float", "double"}),
    "long": frozenset({"float", "double"}),
    "float": frozenset({"double"}),
    "string": frozenset({"bytes"}),
    "bytes": frozenset({"string"}),
}
_PROMOTION_RULES: Final = "int->long/float/double, long->float/double, float->double, string<->bytes"


@dataclass(frozen=True)
class Incompatibility:
    """One reason why data written with an earlier schema cannot be read with a newer one.

    ``path`` locates the problem, e.g. ``Event.payload[CartLineAdded].quantity``; ``message`` says what
    breaks and what to do; ``against`` names the earlier version checked (e.g. ``v1``), empty for a single
    :func:`check_backward`.
    """

    path: str
    message: str
    against: str = ""

    def __str__(self) -> str:
        suffix = f" (against {self.against})" if self.against else ""
        return f"{self.path}: {self.message}{suffix}"


def _short(fullname: str) -> str:
    return fullname.rsplit(".", 1)[-1]


def _qualify(name: str, namespace: str) -> str:
    if "." in name or not namespace:
        return name
    return f"{namespace}.{name}"


def _strip_private(value: Any) -> Any:
    """Copy a schema without fastavro's private ``__*`` keys."""
    if isinstance(value, list):
        return [_strip_private(item) for item in value]
    if isinstance(value, dict):
        return {key: _strip_private(item) for key, item in value.items() if not key.startswith("__")}
    return value


def _as_json(schema: SchemaInput, role: str) -> Any:
    """Turn a checker argument into a plain JSON schema, validated by fastavro."""
    if isinstance(schema, (dict, list)):
        value: Any = _strip_private(schema)
    elif isinstance(schema, str):
        text = schema.strip()
        if text in PRIMITIVES:
            value = text
        else:
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise CompatibilityError(f"the {role} schema is not valid JSON: {exc}") from exc
    else:
        raise CompatibilityError(f"the {role} schema must be JSON data or JSON text, not {type(schema).__name__}")
    try:
        parse_schema(copy.deepcopy(value), _write_hint=False)
    except (SchemaParseException, UnknownType, KeyError, TypeError, ValueError, AttributeError) as exc:
        reason = f"{type(exc).__name__}: {exc}"
        raise CompatibilityError(f"the {role} schema is not a valid Avro schema: {reason}") from exc
    return value


class _Schema:
    """A schema normalised for resolution: named types indexed by full name, references as full names.

    A normalised node is a primitive name, a named type's full name, a list (union), or a dict
    ``{"type": "array", "items": node}`` / ``{"type": "map", "values": node}``.
    """

    def __init__(self, schema: Any) -> None:
        self.named: dict[str, dict[str, Any]] = {}
        self.root = self._walk(schema, "")

    def _walk(self, node: Any, namespace: str) -> Any:
        if isinstance(node, list):
            return [self._walk(branch, namespace) for branch in node]
        if isinstance(node, str):
            return node if node in PRIMITIVES else _qualify(node, namespace)
        if not isinstance(node, dict):
            raise CompatibilityError(f"unexpected schema node {node!r}")
        kind = node.get("type")
        if isinstance(kind, (dict, list)):
            return self._walk(kind, namespace)
        if not isinstance(kind, str):
            raise CompatibilityError(f"schema node without a type: {node!r}")
        if kind == "array":
            return {"type": "array", "items": self._walk(node["items"], namespace)}
        if kind == "map":
            return {"type": "map", "values": self._walk(node["values"], namespace)}
        if kind in _NAMED_KINDS:
            return self._define(node, kind, namespace)
        # A primitive with attributes (e.g. a logical type, ignored) or a reference written as {"type": name}.
        return kind if kind in PRIMITIVES else _qualify(kind, namespace)

    def _define(self, node: dict[str, Any], kind: str, enclosing: str) -> str:
        name = str(node["name"])
        if "." in name:
            fullname = name
        else:
            namespace = node.get("namespace", enclosing) or ""
            fullname = _qualify(name, str(namespace))
        namespace = fullname.rsplit(".", 1)[0] if "." in fullname else ""
        definition: dict[str, Any] = {
            "kind": "record" if kind == "error" else kind,
            "name": fullname,
            "aliases": [_qualify(str(alias), namespace) for alias in node.get("aliases", [])],
        }
        self.named[fullname] = definition
        if kind == "enum":
            definition["symbols"] = list(node["symbols"])
            definition["default"] = node.get("default")
        elif kind == "fixed":
            definition["size"] = node["size"]
        else:
            if not isinstance(node.get("fields"), list):
                raise CompatibilityError(f"record {fullname} has no 'fields' list")
            definition["fields"] = [
                {
                    "name": field["name"],
                    "type": self._walk(field["type"], namespace),
                    "has_default": "default" in field,
                    "aliases": list(field.get("aliases", [])),
                }
                for field in node["fields"]
            ]
        return fullname

    def deref(self, node: Any) -> Any:
        """The definition of a named type, or the node itself."""
        if isinstance(node, str) and node not in PRIMITIVES:
            try:
                return self.named[node]
            except KeyError:
                raise CompatibilityError(f"reference to the undefined named type {node!r}") from None
        return node


def _kind(node: Any) -> str:
    """Kind of a dereferenced node: a primitive name, 'union', 'array', 'map', 'record', 'enum', 'fixed'."""
    if isinstance(node, list):
        return "union"
    if isinstance(node, str):
        return node
    return str(node.get("kind", node.get("type")))


def _label(node: Any) -> str:
    """How a (dereferenced) node is named in paths and messages."""
    kind = _kind(node)
    if kind in ("record", "enum", "fixed"):
        return _short(node["name"])
    if kind == "array":
        return "array"
    if kind == "map":
        return "map"
    return kind


def _names_match(reader: dict[str, Any], writer: dict[str, Any]) -> bool:
    """Avro name matching: same unqualified name, or the writer's name among the reader's aliases."""
    if _short(reader["name"]) == _short(writer["name"]):
        return True
    aliases = reader["aliases"]
    return writer["name"] in aliases or _short(writer["name"]) in {_short(alias) for alias in aliases}


class _Checker:
    """One backward check: the reader and writer schemas plus a guard against recursive named types."""

    def __init__(self, reader: _Schema, writer: _Schema) -> None:
        self.reader = reader
        self.writer = writer
        self.visited: set[tuple[str, str]] = set()

    def run(self) -> list[Incompatibility]:
        root = self.reader.deref(self.reader.root)
        path = _label(root) if _kind(root) in ("record", "enum", "fixed") else "<root>"
        return self.check(self.reader.root, self.writer.root, path, in_writer_union=False)

    def check(self, reader_node: Any, writer_node: Any, path: str, *, in_writer_union: bool) -> list[Incompatibility]:
        reader = self.reader.deref(reader_node)
        writer = self.writer.deref(writer_node)
        if isinstance(writer, list):
            return self.check_writer_union(reader, writer, path)
        if isinstance(reader, list):
            branch = self.select_branch(reader, writer)
            if branch is None:
                labels = ", ".join(_label(self.reader.deref(b)) for b in reader)
                return [
                    Incompatibility(
                        path,
                        f"the old schema writes {_label(writer)} here but none of the new union's branches "
                        f"[{labels}] can read it: add a branch of type {_label(writer)} to the union",
                    )
                ]
            return self.check(branch, writer_node, path, in_writer_union=in_writer_union)
        kind, writer_kind = _kind(reader), _kind(writer)
        if kind in PRIMITIVES and writer_kind in PRIMITIVES:
            if kind == writer_kind or kind in _PROMOTIONS.get(writer_kind, frozenset()):
                return []
            return [self.type_changed(path, writer, reader, in_writer_union=in_writer_union)]
        if kind != writer_kind:
            return [self.type_changed(path, writer, reader, in_writer_union=in_writer_union)]
        if kind == "array":
            return self.check(reader["items"], writer["items"], f"{path}[]", in_writer_union=False)
        if kind == "map":
            return self.check(reader["values"], writer["values"], f"{path}{{}}", in_writer_union=False)
        return self.check_named(reader, writer, path)

    def check_writer_union(self, reader: Any, writer: list[Any], path: str) -> list[Incompatibility]:
        """Every branch the old schema could write must be readable."""
        problems: list[Incompatibility] = []
        for branch_node in writer:
            branch = self.writer.deref(branch_node)
            branch_path = f"{path}[{_label(branch)}]"
            if isinstance(reader, list) and self.select_branch(reader, branch) is None:
                labels = ", ".join(_label(self.reader.deref(b)) for b in reader)
                problems.append(
                    Incompatibility(
                        branch_path,
                        f"union branch {_label(branch)} was removed (or changed beyond promotion): old data "
                        f"written as {_label(branch)} cannot be read by the new union [{labels}]; keep the "
                        "branch",
                    )
                )
                continue
            problems.extend(self.check(reader, branch_node, branch_path, in_writer_union=True))
        return problems

    def select_branch(self, union: list[Any], writer: Any) -> Any | None:
        """The reader union's branch that reads ``writer``: an exact match first, then a promotion."""
        writer_kind = _kind(writer)
        candidates = [(node, self.reader.deref(node)) for node in union]
        if writer_kind in ("record", "enum", "fixed"):
            for node, branch in candidates:
                if _kind(branch) == writer_kind and branch["name"] == writer["name"]:
                    return node
            for node, branch in candidates:
                if _kind(branch) == writer_kind and _names_match(branch, writer):
                    return node
            return None
        for node, branch in candidates:
            if _kind(branch) == writer_kind:
                return node
        promotions = _PROMOTIONS.get(writer_kind, frozenset())
        for node, branch in candidates:
            if _kind(branch) in promotions:
                return node
        return None

    def type_changed(self, path: str, writer: Any, reader: Any, *, in_writer_union: bool) -> Incompatibility:
        old, new = _label(writer), _label(reader)
        promotions = ""
        if old in PRIMITIVES and new in PRIMITIVES and old != "null":
            promotions = f" (Avro only promotes {_PROMOTION_RULES})"
        if in_writer_union:
            return Incompatibility(
                path,
                f"the old schema could write {old} here but the new type {new} cannot read it{promotions}: "
                f"keep a union with a {old} branch",
            )
        return Incompatibility(
            path,
            f"type changed from {old} to {new}, which cannot read old data{promotions}: keep the old type, "
            "or add a new field with a default and stop writing this one",
        )

    def check_named(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> list[Incompatibility]:
        kind = reader["kind"]
        if not _names_match(reader, writer):
            return [
                Incompatibility(
                    path,
                    f"{kind} renamed from {writer['name']} to {reader['name']}: keep the name, or add "
                    f'"{writer["name"]}" to the new {kind}\'s "aliases"',
                )
            ]
        key = (reader["name"], writer["name"])
        if key in self.visited:  # recursive type, or a pair already checked elsewhere
            return []
        self.visited.add(key)
        if kind == "enum":
            return self.check_enum(reader, writer, path)
        if kind == "fixed":
            if reader["size"] != writer["size"]:
                return [
                    Incompatibility(
                        path,
                        f"fixed size changed from {writer['size']} to {reader['size']} bytes: keep the size, "
                        "or add a new field with a default",
                    )
                ]
            return []
        return self.check_record(reader, writer, path)

    def check_enum(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> list[Incompatibility]:
        missing = [symbol for symbol in writer["symbols"] if symbol not in reader["symbols"]]
        if not missing or reader["default"] is not None:
            return []
        listed = ", ".join(repr(symbol) for symbol in missing)
        return [
            Incompatibility(
                path,
                f"enum {_short(reader['name'])} no longer has symbol(s) {listed} that old data may hold and "
                'has no "default": keep the symbol(s), or give the enum a "default" symbol that readers '
                "use for symbols they do not know",
            )
        ]

    def check_record(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> list[Incompatibility]:
        writer_fields = {field["name"]: field for field in writer["fields"]}
        problems: list[Incompatibility] = []
        for field in reader["fields"]:
            field_path = f"{path}.{field['name']}"
            match = writer_fields.get(field["name"])
            if match is None:
                match = next((writer_fields[a] for a in field["aliases"] if a in writer_fields), None)
            if match is None:
                if not field["has_default"]:
                    problems.append(
                        Incompatibility(
                            field_path,
                            f"field '{field['name']}' was added without a default, so old data has no value "
                            'for it: add a "default", or make it optional (["null", T] with "default": null)',
                        )
                    )
                continue
            problems.extend(self.check(field["type"], match["type"], field_path, in_writer_union=False))
        return problems


def check_backward(reader: SchemaInput, writer: SchemaInput) -> list[Incompatibility]:
    """Can data written with ``writer`` be read with ``reader``? Returns the problems, empty if it can.

    ``reader`` is typically the new schema and ``writer`` a released one. Both are JSON data (plain or
    fastavro-parsed) or JSON text. Raises :class:`CompatibilityError` if either is not a valid Avro schema.
    """
    checker = _Checker(_Schema(_as_json(reader, "reader")), _Schema(_as_json(writer, "writer")))
    return checker.run()


def check_backward_transitive(
    new: SchemaInput,
    earlier: Sequence[SchemaInput],
    *,
    labels: Sequence[str] | None = None,
) -> list[Incompatibility]:
    """Check that ``new`` reads data written with every schema in ``earlier`` (oldest first).

    Each problem's ``against`` is the matching entry of ``labels`` (e.g. ``v1``), or ``earlier[i]``.
    """
    if labels is not None and len(labels) != len(earlier):
        raise CompatibilityError(f"got {len(labels)} labels for {len(earlier)} earlier schemas")
    problems: list[Incompatibility] = []
    for index, old in enumerate(earlier):
        label = labels[index] if labels is not None else f"earlier[{index}]"
        problems.extend(dataclasses.replace(problem, against=label) for problem in check_backward(new, old))
    return problems
