"""The compiled Avro writers write fastavro's bytes for every type of the catalogue, or leave the value to it."""

from __future__ import annotations

import io
import os
from typing import Any

import pytest
from fastavro import schemaless_writer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.avro_writer import NotCompiled, compiled_writer
from schemas.codec import AvroCodec
from schemas.errors import EncodeError
from schemas.loader import EVENT_FULLNAME, EVENT_TYPES, all_fullnames, load
from schemas.samples import sample_event

EXAMPLES = int(os.environ.get("OMNICHANNEL_PROPERTY_EXAMPLES", "150"))
RECORDS = [name for name in all_fullnames() if load(name)["type"] == "record"]
_PRIMITIVE = {
    "null": st.none(),
    "boolean": st.booleans(),
    "int": st.integers(-(2**31), 2**31 - 1),
    "long": st.integers(-(2**63), 2**63 - 1),
    "string": st.text(),  # any code point, astral and combining ones included
    "bytes": st.binary(),
    "double": st.floats(allow_nan=False),
    "float": st.floats(width=32, allow_nan=False),
}


def _values(schema: Any, named: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values of ``schema`` in the shapes producers hand to fastavro (named union branches as tuples or not)."""
    if isinstance(schema, str):
        return _PRIMITIVE[schema] if schema in _PRIMITIVE else _values(named[schema], named)
    if isinstance(schema, list):
        names = [b if isinstance(b, str) else b.get("name", b["type"]) for b in schema]
        if len(schema) == 2 and "null" in names:
            other = schema[1 - names.index("null")]
            plain = _values(other, named)
            if isinstance(other, str) and other in _PRIMITIVE:
                return st.none() | plain
            name = names[1 - names.index("null")]
            return st.none() | plain | plain.map(lambda v: (name, v))
        return st.one_of(*(_values(b, named).map(lambda v, n=n: (n, v)) for n, b in zip(names, schema, strict=True)))
    kind = schema["type"]
    if kind in _PRIMITIVE:
        return _PRIMITIVE[kind]
    if kind == "record":
        return st.fixed_dictionaries({f["name"]: _values(f["type"], named) for f in schema["fields"]})
    if kind == "enum":
        return st.sampled_from(schema["symbols"])
    if kind == "array":
        return st.lists(_values(schema["items"], named), max_size=3)
    if kind == "map":
        return st.dictionaries(st.text(max_size=5), _values(schema["values"], named), max_size=3)
    raise AssertionError(f"the catalogue uses {kind!r}: teach this test and the compiler about it")


def _fastavro(schema: dict[str, Any], record: Any) -> bytes:
    buf = io.BytesIO()
    schemaless_writer(buf, schema, record)
    return buf.getvalue()


@pytest.mark.parametrize("fullname", RECORDS)
def test_every_record_type_of_the_catalogue_compiles_and_writes_fastavros_bytes(fullname: str) -> None:
    schema = load(fullname)
    encode = compiled_writer(schema)

    @settings(max_examples=max(20, EXAMPLES // 3), deadline=None, suppress_health_check=list(HealthCheck))
    @given(_values(schema, schema["__named_schemas"]))
    def same_bytes(record: dict[str, Any]) -> None:
        assert encode(record) == _fastavro(schema, record)

    same_bytes()


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"occurred_at_ms": 1.0}, "a float where a long is expected"),
        ({"occurred_at_ms": "1"}, "a string where a long is expected"),
        ({"occurred_at_ms": 2**63}, "a long out of range"),
        ({"event_id": b"e-1"}, "bytes where a string is expected"),
        ({"channel": "fax"}, "an enum symbol the schema lacks"),
        ({"unexpected": 1}, "a field the schema lacks"),
        ({"session_id": 7}, "a nullable string given an int"),
    ],
)
def test_a_value_it_cannot_write_as_fastavro_would_is_left_to_fastavro(change: dict[str, Any], why: str) -> None:
    schema = load(EVENT_FULLNAME)
    event = sample_event("cart_line_added")
    event["payload"] = ("omnichannel.event.CartLineAdded", event["payload"])
    encode = compiled_writer(schema)
    assert encode(event) == _fastavro(schema, event)  # the unchanged event is written
    with pytest.raises((NotCompiled, KeyError, TypeError, AttributeError)):
        encode({**event, **change})


def test_a_missing_field_is_left_to_fastavro_and_the_codec_still_names_it() -> None:
    schema = load(EVENT_FULLNAME)
    event = sample_event("page_viewed")
    del event["source_system"]
    with pytest.raises(KeyError):
        compiled_writer(schema)({**event, "payload": ("omnichannel.event.PageViewed", event["payload"])})

    class _Ids:
        def lookup(self, subject: str, schema_text: str) -> int:
            return 1

        def schema_text(self, schema_id: int) -> str:
            raise AssertionError("not decoding here")

    with pytest.raises(EncodeError, match="source_system"):
        AvroCodec(_Ids()).encode("events-value", EVENT_FULLNAME, event)


def test_the_codec_writes_the_same_bytes_as_fastavro_for_every_event_type() -> None:
    class _Ids:
        def lookup(self, subject: str, schema_text: str) -> int:
            return 7

        def schema_text(self, schema_id: int) -> str:
            raise AssertionError("not decoding here")

    codec = AvroCodec(_Ids())
    schema = load(EVENT_FULLNAME)
    assert len(EVENT_TYPES) >= 30
    for event_type, payload_name in EVENT_TYPES.items():
        event = sample_event(event_type)
        expected = _fastavro(schema, {**event, "payload": (payload_name, event["payload"])})
        assert codec.encode("events-value", EVENT_FULLNAME, event) == b"\x00\x00\x00\x00\x07" + expected


def test_with_a_discriminator_a_plain_payload_is_written_as_the_branch_its_event_type_names() -> None:
    """The codec's Event writer takes the payload as sent (no (branch, value) copy per event): the bytes are
    fastavro's for the branch the event_type names, in either notation; an unknown event_type is left to
    fastavro (which the codec turns into UnknownEventTypeError)."""
    schema = load(EVENT_FULLNAME)
    encode = compiled_writer(schema, {"payload": ("event_type", EVENT_TYPES)})
    for event_type, payload_name in EVENT_TYPES.items():
        event = sample_event(event_type)
        named = {**event, "payload": (payload_name, event["payload"])}
        assert encode(event) == encode(named) == _fastavro(schema, named), event_type
    with pytest.raises(NotCompiled, match="unknown union branch"):
        encode({**sample_event("login"), "event_type": "teleported"})
    with pytest.raises(NotCompiled, match="without its branch name"):
        compiled_writer(schema)(sample_event("login"))  # no discriminator: the plain payload is not guessed


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.text(), st.sampled_from(sorted(EVENT_TYPES)))
def test_strings_of_any_length_and_code_point_are_written_as_fastavro_writes_them(text: str, event_type: str) -> None:
    """Strings are written inline with a one-byte length up to 63 bytes, the general varint past it."""
    schema = load(EVENT_FULLNAME)
    event = {**sample_event(event_type), "session_id": text * 9, "source_system": text}
    named = {**event, "payload": (EVENT_TYPES[event_type], event["payload"])}
    assert compiled_writer(schema, {"payload": ("event_type", EVENT_TYPES)})(event) == _fastavro(schema, named)
