"""Faust reaches the project's codec through a registered codec (real registry, no broker needed)."""

from __future__ import annotations

from collections.abc import Callable

from faust.serializers import codecs

from omnichannel.stack import StackInfo
from schemas.codec import AvroCodec
from schemas.loader import EVENT_FULLNAME
from schemas.registry import ConfluentSchemaRegistry
from schemas.samples import sample_event
from streams.faust_codec import register_avro_codec


def test_a_registered_codec_round_trips_confluent_framed_avro(
    stack: StackInfo, unique: Callable[[str], str], register_schema: Callable[[str, str], int]
) -> None:
    codec = AvroCodec(ConfluentSchemaRegistry(stack.registry.address))
    topic = unique("channel.web.events")
    register_schema(f"{topic}-value", EVENT_FULLNAME)  # producers only look the id up
    name = register_avro_codec(codec, topic, EVENT_FULLNAME)
    event = sample_event("order_placed", channel="web")

    data = codecs.dumps(name, event)

    assert data[0] == 0  # Confluent framing, written by the one codec
    assert codec.decode(data) == event
    assert codecs.loads(name, data) == event
