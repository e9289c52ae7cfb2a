"""The compiled Avro readers give fastavro's records for every type of the catalogue, and refuse what it refuses."""

from __future__ import annotations

import io
import os
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_avro_writer import RECORDS, _values

from schemas.avro_reader import compiled_reader
from schemas.codec import AvroCodec, frame
from schemas.errors import DecodeError
from schemas.loader import EVENT_FULLNAME, canonical_json, load
from schemas.samples import sample_event

EXAMPLES = int(os.environ.get("OMNICHANNEL_PROPERTY_EXAMPLES", "150"))


def _fastavro(schema: dict[str, Any], body: bytes) -> Any:
    return schemaless_reader(io.BytesIO(body), schema, None)


def _outcome(read: Any, *args: Any) -> tuple[str, Any]:
    try:
        return "read", read(*args)
    except Exception:
        return "refused", None


@pytest.mark.parametrize("fullname", RECORDS)
def test_every_record_type_of_the_catalogue_reads_back_as_fastavro_reads_it(fullname: str) -> None:
    schema = load(fullname)
    decode = compiled_reader(schema)

    @settings(max_examples=max(20, EXAMPLES // 3), deadline=None, suppress_health_check=list(HealthCheck))
    @given(_values(schema, schema["__named_schemas"]), st.binary(max_size=3))
    def same_record(record: dict[str, Any], prefix: bytes) -> None:
        buf = io.BytesIO()
        schemaless_writer(buf, schema, record)
        body = buf.getvalue()
        assert decode(prefix + body, len(prefix)) == _fastavro(schema, body)

    same_record()


@pytest.mark.parametrize("fullname", [EVENT_FULLNAME, "omnichannel.output.CustomerState", "omnichannel.output.Cart"])
def test_bytes_fastavro_refuses_are_refused_and_bytes_it_reads_read_the_same(fullname: str) -> None:
    """Random and damaged bodies: the compiled reader never returns a record where fastavro would not."""
    schema = load(fullname)
    decode = compiled_reader(schema)

    def damaged(record: dict[str, Any], cut: int, flip: int) -> bytes:
        buf = io.BytesIO()
        schemaless_writer(buf, schema, record)
        body = bytearray(buf.getvalue())
        if body and flip >= 0:
            body[flip % len(body)] ^= 0xFF
        return bytes(body[: max(0, len(body) - cut)])

    bodies = st.binary(max_size=64) | st.builds(
        damaged, _values(schema, schema["__named_schemas"]), st.integers(0, 8), st.integers(-1, 300)
    )

    @settings(max_examples=max(50, EXAMPLES), deadline=None, suppress_health_check=list(HealthCheck))
    @given(bodies)
    def agree(body: bytes) -> None:
        mine, theirs = _outcome(decode, body, 0), _outcome(_fastavro, schema, body)
        if mine[0] == "read":
            assert theirs == mine

    agree()


def test_the_codec_reads_every_event_type_and_names_fastavros_error_for_a_broken_body() -> None:
    class _Registry:
        def lookup(self, subject: str, schema_text: str) -> int:
            return 3

        def schema_text(self, schema_id: int) -> str:
            return canonical_json(EVENT_FULLNAME)

    codec = AvroCodec(_Registry())
    event = sample_event("cart_line_added")
    data = codec.encode("events-value", EVENT_FULLNAME, event)
    assert codec.decode(data, EVENT_FULLNAME) == codec.decode(data) == _fastavro(load(EVENT_FULLNAME), data[5:])
    assert codec.decode(data)["payload"] == event["payload"]
    with pytest.raises(DecodeError, match="does not decode with schema id 3"):
        codec.decode(frame(3, data[5:-3]))


def test_a_boolean_byte_other_than_0_or_1_reads_as_fastavro_reads_it() -> None:
    schema = parse_schema({"type": "record", "name": "Flag", "fields": [{"name": "on", "type": "boolean"}]})
    for body in (b"\x00", b"\x01", b"\x02", b"\xff"):
        assert compiled_reader(schema)(body, 0) == _fastavro(schema, body)
