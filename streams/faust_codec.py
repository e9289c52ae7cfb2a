"""The project's Avro codec as a registered Faust codec, for Faust agents that want decoded values.

``register_avro_codec(codec, "customer.state", "omnichannel.output.CustomerState")`` registers the codec
name ``avro:customer.state``; an agent then declares ``app.topic("customer.state",
value_serializer="avro:customer.state")`` and receives dicts. Framing and schema ids stay in
:class:`schemas.codec.AvroCodec`: this class only adapts its interface.

The backbone's own agents read raw bytes on purpose: when Faust's deserializer fails, Faust logs and skips
the record, whereas a raw agent sends it to the dead-letter topic with the reason. Use the registered codec
for downstream agents that consume the unified topics.
"""

from __future__ import annotations

from typing import Any

from faust.serializers import codecs

from schemas.codec import AvroCodec
from schemas.topics import subject_for

__all__ = ["AvroFaustCodec", "codec_name", "register_avro_codec"]


def codec_name(topic: str) -> str:
    """The registered codec name for a topic's values."""
    return f"avro:{topic}"


class AvroFaustCodec(codecs.Codec):
    """Encodes dicts as ``fullname`` under the topic's subject; decodes with the writer's schema."""

    def __init__(self, codec: AvroCodec, topic: str, fullname: str) -> None:
        super().__init__()
        self._codec = codec
        self._subject = subject_for(topic)
        self._fullname = fullname

    def _dumps(self, obj: Any) -> bytes:
        return self._codec.encode(self._subject, self._fullname, dict(obj))

    def _loads(self, data: bytes) -> Any:
        return self._codec.decode(data, self._fullname)


def register_avro_codec(codec: AvroCodec, topic: str, fullname: str) -> str:
    """Register the codec for ``topic`` and return its name (for ``value_serializer=``)."""
    name = codec_name(topic)
    codecs.register(name, AvroFaustCodec(codec, topic, fullname))
    return name
