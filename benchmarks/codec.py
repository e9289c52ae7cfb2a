"""Envelope encode/decode throughput: the project's codec beside fastavro's own writer and reader and the
`avro` package, from the same run.

Single core, in-process, no registry round trip (ids are cached after the first call, as in production):
the figures are per core. Run: ``python -m benchmarks.codec``.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from typing import Any

import avro.io
import avro.schema
from fastavro import schemaless_reader, schemaless_writer

from benchmarks.machine import describe, save
from schemas.codec import AvroCodec, frame
from schemas.loader import EVENT_FULLNAME, canonical_json, load, payload_record_name
from schemas.samples import sample_event

N = 50_000


class _OneSchemaRegistry:
    """In-process registry for the benchmark only: measures the codec, not HTTP."""

    def lookup(self, subject: str, schema_text: str) -> int:
        return 1

    def schema_text(self, schema_id: int) -> str:
        return canonical_json(EVENT_FULLNAME)


def _rate(fn: Callable[[], Any], n: int = N) -> float:
    for _ in range(1000):
        fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - start)


def main() -> None:
    event = sample_event("cart_line_added")
    codec = AvroCodec(_OneSchemaRegistry())
    data = codec.encode("bench-value", EVENT_FULLNAME, event)

    parsed = avro.schema.parse(canonical_json(EVENT_FULLNAME))
    writer = avro.io.DatumWriter(parsed)
    reader = avro.io.DatumReader(parsed)

    def avro_encode() -> bytes:
        buf = io.BytesIO()
        writer.write(event, avro.io.BinaryEncoder(buf))
        return frame(1, buf.getvalue())

    def avro_decode() -> Any:
        return reader.read(avro.io.BinaryDecoder(io.BytesIO(data[5:])))

    schema = load(EVENT_FULLNAME)
    hinted = {**event, "payload": (payload_record_name(event["event_type"]), event["payload"])}

    def fastavro_encode() -> bytes:  # what the codec did before its compiled writer (union branch named too)
        buf = io.BytesIO()
        schemaless_writer(buf, schema, hinted)
        return frame(1, buf.getvalue())

    def fastavro_decode() -> Any:
        return schemaless_reader(io.BytesIO(data[5:]), schema, None)

    assert fastavro_encode() == data and fastavro_decode() == codec.decode(data)

    assert payload_record_name(event["event_type"])
    figures = {
        "envelope_bytes": len(data),
        "codec_encode_per_s": round(_rate(lambda: codec.encode("bench-value", EVENT_FULLNAME, event))),
        "fastavro_encode_per_s": round(_rate(fastavro_encode)),
        "codec_encode_validated_per_s": round(
            _rate(lambda: codec.encode("bench-value", EVENT_FULLNAME, event, validate=True))
        ),
        "codec_decode_per_s": round(_rate(lambda: codec.decode(data))),
        "fastavro_decode_per_s": round(_rate(fastavro_decode)),
        "avro_encode_per_s": round(_rate(avro_encode, N // 10)),
        "avro_decode_per_s": round(_rate(avro_decode, N // 10)),
        "json_dumps_per_s (reference)": round(_rate(lambda: json.dumps(event))),
    }
    result = {
        "benchmark": "codec",
        "machine": describe(),
        "settings": {"iterations": N, "event": "cart_line_added"},
        "figures": figures,
    }
    print(json.dumps(result, indent=2))
    print(f"saved to {save('codec', result)}")


if __name__ == "__main__":
    main()
