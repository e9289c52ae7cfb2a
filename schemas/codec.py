"""The one Avro codec: Confluent wire format (magic byte 0, 4-byte big-endian schema id, Avro body).

Connectors, stream processors, the API and tests all encode and decode through :class:`AvroCodec`;
nothing else frames bytes. Writer schema ids are looked up once per (subject, schema) and cached: the codec
never registers a schema (``omnichannel schemas register`` does, as a deployment step, so the registry's
compatibility check sees every change before data is written with it). Decoding looks up the writer's
schema by the id in the bytes (cached) and resolves it to the reader's. fastavro is the engine (measured
against the ``avro`` package in benchmarks/codec.py), with two faster paths: records are written by an encoder
compiled from their schema (:mod:`schemas.avro_writer`: the same bytes, 3-4x faster) and read by a decoder
compiled from the writer's schema when it is the reader's (:mod:`schemas.avro_reader`, ~2x faster); whatever
either cannot handle exactly as fastavro would goes to fastavro.
"""

from __future__ import annotations

import functools
import io
import json
import struct
import threading
from collections.abc import Callable, Mapping
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.validation import validate as fastavro_validate

from schemas.avro_reader import compiled_reader
from schemas.avro_writer import compiled_writer
from schemas.errors import DecodeError, EncodeError, RegistryError
from schemas.loader import EVENT_FULLNAME, EVENT_TYPES, canonical_json, load, payload_record_name
from schemas.registry import SchemaRegistry
from schemas.validation import problems

__all__ = ["MAGIC_BYTE", "AvroCodec", "frame", "unframe"]

MAGIC_BYTE = 0
_HEADER = struct.Struct(">bI")


def frame(schema_id: int, body: bytes) -> bytes:
    """Prefix an Avro body with the Confluent header."""
    return _HEADER.pack(MAGIC_BYTE, schema_id) + body


def unframe(data: bytes) -> tuple[int, memoryview]:
    """Split Confluent-framed bytes into (schema id, body); :class:`DecodeError` if not framed."""
    if not isinstance(data, (bytes, bytearray)):
        raise DecodeError(f"expected bytes, got {type(data).__name__}", raw=bytes(str(data), "utf-8"))
    if len(data) < _HEADER.size:
        raise DecodeError(f"{len(data)} bytes is too short for the Confluent wire format (5-byte header)", raw=data)
    magic, schema_id = _HEADER.unpack_from(data)
    if magic != MAGIC_BYTE:
        raise DecodeError(f"magic byte is {magic}, not 0: not Confluent-framed Avro", raw=data, schema_id=None)
    return schema_id, memoryview(data)[_HEADER.size :]


@functools.cache
def _optional_records(fullname: str) -> tuple[tuple[str, str], ...]:
    """Top-level fields typed ``["null", <record>]``: (field name, record full name)."""
    found = []
    for field in load(fullname)["fields"]:
        kind = field["type"]
        if isinstance(kind, list) and len(kind) == 2 and "null" in kind:
            branch = kind[1] if kind[0] == "null" else kind[0]
            if isinstance(branch, dict) and branch.get("type") == "record":
                found.append((field["name"], branch["name"]))
            elif isinstance(branch, str) and "." in branch:  # a named type defined earlier in the schema
                found.append((field["name"], branch))
    return tuple(found)


@functools.cache
def _compiled(fullname: str) -> Callable[[Mapping[str, Any]], bytes] | None:
    """The compiled writer of ``fullname``, or None when its schema uses what the compiler does not cover."""
    # The Event's payload is written as the record its event_type names: no (branch, value) copy per event.
    discriminators = {"payload": ("event_type", EVENT_TYPES)} if fullname == EVENT_FULLNAME else None
    try:
        return compiled_writer(load(fullname), discriminators)
    except NotImplementedError:
        return None


def _with_union_branches(fullname: str, record: dict[str, Any]) -> dict[str, Any]:
    """Name the union branch of record-typed values, so fastavro need not test each branch against the value.

    The Event payload is written as the record named by ``event_type``; optional records (device, location,
    actor ...) as their one record type. Measured: about 10% faster encoding of the envelope.
    """
    named = {
        field: (name, record[field])
        for field, name in _optional_records(fullname)
        if isinstance(record.get(field), dict)
    }
    if fullname == EVENT_FULLNAME and isinstance(record.get("payload"), dict):
        named["payload"] = (payload_record_name(str(record.get("event_type"))), record["payload"])
    return {**record, **named} if named else record


class AvroCodec:
    """Encode records of the project's named types and decode any registered writer schema.

    Thread-safe: caches are filled under a lock and read without one.
    """

    def __init__(self, registry: SchemaRegistry) -> None:
        self.registry = registry
        self._ids: dict[tuple[str, str], int] = {}
        self._writers: dict[int, Any] = {}
        self._readers: dict[int, Callable[[bytes, int], dict[str, Any]] | None] = {}
        self._own_ids: dict[str, set[int]] = {}
        self._texts: dict[int, str] = {}
        self._same: dict[tuple[int, str], bool] = {}
        self._lock = threading.Lock()

    def schema_id(self, subject: str, fullname: str) -> int:
        """The id of ``fullname``'s schema as registered under ``subject`` (looked up once, then cached).

        :class:`SchemaNotRegisteredError` when it is not registered there (run ``omnichannel schemas register``).
        """
        key = (subject, fullname)
        found = self._ids.get(key)
        if found is not None:
            return found
        with self._lock:
            if key not in self._ids:
                schema_id = self.registry.lookup(subject, canonical_json(fullname))
                self._writers.setdefault(schema_id, load(fullname))
                self._own_ids.setdefault(fullname, set()).add(schema_id)
                self._ids[key] = schema_id
            return self._ids[key]

    def encode(
        self, subject: str, fullname: str, record: dict[str, Any], *, validate: bool = False, strict: bool = True
    ) -> bytes:
        """Encode ``record`` as ``fullname`` for ``subject``.

        For the Event envelope a plain ``payload`` dict is written as the branch named by ``event_type``.
        Missing, unknown or mistyped fields always raise :class:`EncodeError` naming each offending field
        (or ``UnknownEventTypeError``). ``validate=True`` also checks what the writer lets through (an int
        out of range, for example); connectors use it for untrusted input, at about half the speed.
        ``strict=False`` skips the check that the record holds exactly the schema's fields (a third of the cost of
        a customer record): only for records built by the project's own ``to_avro_dict`` methods, whose shape the
        domain tests pin; a missing nullable field would then be written as null instead of refused.
        """
        body = None
        writer = _compiled(fullname)
        if validate:
            record = _with_union_branches(fullname, record)
            if not fastavro_validate(record, load(fullname), raise_errors=False):
                raise self._encode_error(fullname, record, load(fullname), "invalid record")
        if writer is not None:
            try:
                body = writer(record)
            except Exception:  # NotCompiled, or a mistyped value: fastavro's writer below writes it or refuses it
                body = None
        if body is None:
            schema = load(fullname)
            record = _with_union_branches(fullname, record)
            buf = io.BytesIO()
            try:
                schemaless_writer(buf, schema, record, strict_allow_default=strict)
            except (TypeError, ValueError, KeyError, AttributeError, OverflowError, struct.error) as exc:
                raise self._encode_error(fullname, record, schema, str(exc)) from exc
            body = buf.getvalue()
        return frame(self.schema_id(subject, fullname), body)

    @staticmethod
    def _encode_error(fullname: str, record: dict[str, Any], schema: Any, fallback: str) -> EncodeError:
        found = problems(record, schema)
        detail = "; ".join(str(p) for p in found) or fallback
        return EncodeError(f"record does not match {fullname}: {detail}", field=found[0].path if found else None)

    def decode(self, data: bytes, reader: str | None = None) -> dict[str, Any]:
        """Decode Confluent-framed bytes with the writer's schema, resolved to ``reader`` when given.

        Raises :class:`DecodeError` (keeping ``raw``) for unframed bytes, an unknown schema id, or a body
        that does not parse.
        """
        schema_id, body = unframe(data)
        writer = self._writer(schema_id, data)
        reader_schema = None
        if reader is not None and not self._same_schema(schema_id, reader):
            reader_schema = load(reader)  # different writer: let fastavro resolve (added defaults etc.)
        else:
            compiled = self._readers.get(schema_id) or self._compiled_reader(schema_id, writer)
            if compiled is not None:
                try:
                    return compiled(data, _HEADER.size)
                except Exception:  # noqa: S110 - fastavro below reads these bytes the same, or raises its own error
                    pass
        try:
            decoded = schemaless_reader(io.BytesIO(body), writer, reader_schema)
        except Exception as exc:  # fastavro raises EOFError, ValueError, IndexError, SchemaResolutionError...
            raise DecodeError(
                f"the body does not decode with schema id {schema_id}: {type(exc).__name__}: {exc}",
                raw=bytes(data),
                schema_id=schema_id,
            ) from exc
        if not isinstance(decoded, dict):
            raise DecodeError(f"schema id {schema_id} is not a record schema", raw=bytes(data), schema_id=schema_id)
        return decoded

    def _compiled_reader(self, schema_id: int, writer: Any) -> Callable[[bytes, int], dict[str, Any]] | None:
        """The compiled decoder of writer schema ``schema_id`` (None: a schema only fastavro reads)."""
        if schema_id not in self._readers:
            try:
                compiled = compiled_reader(writer)
            except NotImplementedError:
                compiled = None
            with self._lock:
                self._readers.setdefault(schema_id, compiled)
        return self._readers[schema_id]

    def _same_schema(self, schema_id: int, reader: str) -> bool:
        """True when the writer's schema is the reader's own: decoding then skips resolution (about 5x faster)."""
        if schema_id in self._own_ids.get(reader, ()):
            return True
        key = (schema_id, reader)
        same = self._same.get(key)
        if same is None:
            text = self._texts.get(schema_id)
            same = text is not None and json.loads(text) == json.loads(canonical_json(reader))
            self._same[key] = same
        return same

    def _writer(self, schema_id: int, data: bytes) -> Any:
        writer = self._writers.get(schema_id)
        if writer is not None:
            return writer
        try:
            text = self.registry.schema_text(schema_id)
        except RegistryError as exc:
            raise DecodeError(str(exc), raw=bytes(data), schema_id=schema_id) from exc
        with self._lock:
            self._texts.setdefault(schema_id, text)
            return self._writers.setdefault(schema_id, parse_schema(json.loads(text)))
