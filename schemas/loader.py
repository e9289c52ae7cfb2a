"""Load the Avro event contract from ``schemas/avro/`` (one named type per ``<fullname>.avsc`` file).

A file refers to other named types by full name; :func:`fastavro.schema.load_schema` resolves them from
the sibling files and inlines each at its first use. Two forms are offered:

* :func:`load` gives fastavro's parsed schema, ready for ``fastavro.schemaless_writer`` and
  ``schemaless_reader`` (write a payload as ``("omnichannel.event.CartLineAdded", {...})`` so that the
  union branch is explicit: several payload records share a shape);
* :func:`canonical_json` gives the same schema as plain JSON text, without fastavro's private keys, to
  register in a Schema Registry or to keep as a released version.

:data:`EVENT_TYPES` maps every ``event_type`` to its payload record, read from the ``Event.payload``
union itself, so adding a payload record to the union is all it takes to add an event type.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

from fastavro.repository.base import SchemaRepositoryError
from fastavro.schema import SchemaParseException, UnknownType, load_schema

from schemas.errors import SchemaError, UnknownEventTypeError

__all__ = [
    "EVENT_FULLNAME",
    "EVENT_TYPES",
    "SCHEMA_DIR",
    "all_fullnames",
    "canonical_json",
    "event_type_of",
    "load",
    "payload_record_name",
]

SCHEMA_DIR: Final[Path] = Path(__file__).resolve().parent / "avro"
"""Folder holding one ``<namespace>.<Name>.avsc`` file per named type."""

EVENT_FULLNAME: Final = "omnichannel.event.Event"
"""Full name of the envelope record carried by every channel topic."""

# Key order of the JSON written by canonical_json: the usual reading order of an Avro schema.
_KEY_ORDER: Final = (
    "name",
    "type",
    "namespace",
    "aliases",
    "doc",
    "symbols",
    "size",
    "items",
    "values",
    "default",
    "order",
    "fields",
)
_SNAKE_BOUNDARY: Final = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def all_fullnames() -> list[str]:
    """Full names of every named type (records and enums) defined in :data:`SCHEMA_DIR`, sorted."""
    return sorted(path.name.removesuffix(".avsc") for path in SCHEMA_DIR.glob("*.avsc"))


@functools.lru_cache(maxsize=256)
def load(fullname: str) -> dict[str, Any]:
    """Return fastavro's parsed schema of the named type ``fullname`` (e.g. ``omnichannel.event.Event``).

    The result is cached and shared: do not mutate it. Raises :class:`SchemaError` when the file or a
    type it refers to is missing or malformed.
    """
    path = SCHEMA_DIR / f"{fullname}.avsc"
    if not path.is_file():
        known = ", ".join(all_fullnames())
        raise SchemaError(f"no schema named {fullname!r}: expected the file {path}; known schemas: {known}")
    try:
        schema = load_schema(str(path))
    except UnknownType as exc:
        raise SchemaError(
            f"{path.name} refers to the unknown type {exc.name!r}: create {SCHEMA_DIR / exc.name}.avsc "
            "or use the full name of an existing type"
        ) from exc
    except (SchemaParseException, SchemaRepositoryError, KeyError, TypeError, ValueError) as exc:
        raise SchemaError(f"{path.name} (or a type it refers to) is not a valid Avro schema: {exc}") from exc
    if not isinstance(schema, dict):
        raise SchemaError(f"{path.name} must hold one named type (a JSON object), not {type(schema).__name__}")
    return schema


def _public(value: Any) -> Any:
    """Copy a parsed schema without fastavro's private ``__*`` keys, keys in :data:`_KEY_ORDER`."""
    if isinstance(value, list):
        return [_public(item) for item in value]
    if not isinstance(value, dict):
        return value
    known = [key for key in _KEY_ORDER if key in value]
    rest = sorted(key for key in value if key not in _KEY_ORDER and not key.startswith("__"))
    return {key: _public(value[key]) for key in (*known, *rest)}


@functools.lru_cache(maxsize=256)
def canonical_json(fullname: str) -> str:
    """The fully expanded schema of ``fullname`` as compact JSON text, for a Schema Registry.

    Every named type it uses is inlined at its first use and referred to by full name afterwards, docs and
    defaults are kept, and fastavro's private keys are dropped, so the text parses anywhere
    (``fastavro.parse_schema(json.loads(text))``, the Java Avro parser, the registry).
    """
    return json.dumps(_public(load(fullname)), ensure_ascii=False, separators=(",", ":"))


def event_type_of(payload_fullname: str) -> str:
    """The ``event_type`` of a payload record: snake_case of its name (``...CartLineAdded`` -> ``cart_line_added``)."""
    short = payload_fullname.rsplit(".", 1)[-1]
    return _SNAKE_BOUNDARY.sub("_", short).lower()


def _branch_name(branch: Any) -> str:
    """Full name of one branch of a parsed union (a definition dict or a name)."""
    if isinstance(branch, dict):
        return str(branch["name"])
    return str(branch)


@functools.lru_cache(maxsize=1)
def _event_types() -> Mapping[str, str]:
    """Read ``event_type -> payload record full name`` from the ``Event.payload`` union."""
    fields = {field["name"]: field for field in load(EVENT_FULLNAME)["fields"]}
    union = fields["payload"]["type"]
    if not isinstance(union, list):
        raise SchemaError(f"{EVENT_FULLNAME}.payload must be a union of payload records")
    mapping: dict[str, str] = {}
    for branch in union:
        name = _branch_name(branch)
        event_type = event_type_of(name)
        if event_type in mapping:
            raise SchemaError(f"payload records {mapping[event_type]} and {name} share event_type {event_type!r}")
        mapping[event_type] = name
    return mapping


class _EventTypes(Mapping[str, str]):
    """Read-only ``event_type -> payload record full name``, computed from the schema on first use."""

    def __getitem__(self, event_type: str) -> str:
        return _event_types()[event_type]

    def __iter__(self) -> Iterator[str]:
        return iter(_event_types())

    def __len__(self) -> int:
        return len(_event_types())

    def __repr__(self) -> str:
        return f"EVENT_TYPES({dict(_event_types())!r})"


EVENT_TYPES: Final[Mapping[str, str]] = _EventTypes()
"""``event_type`` (snake_case) -> full name of its payload record, in the order of the ``Event.payload`` union."""


def payload_record_name(event_type: str) -> str:
    """Full name of the payload record of ``event_type``; :class:`UnknownEventTypeError` if there is none."""
    try:
        return EVENT_TYPES[event_type]
    except KeyError:
        raise UnknownEventTypeError(
            f"unknown event_type {event_type!r}; valid event types: {', '.join(EVENT_TYPES)}"
        ) from None
