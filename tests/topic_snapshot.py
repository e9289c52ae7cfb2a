"""Test helper: the latest value of every key of a topic, decoded (what a compacted topic converges to)."""

from __future__ import annotations

import uuid
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from schemas.codec import AvroCodec


def latest_values(bootstrap: str, topic: str, codec: AvroCodec) -> dict[str, Any]:
    """Read ``topic`` from the start to its current end; the last value of each key (None: a tombstone)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"snapshot-{uuid.uuid4()}"})
    found: dict[str, Any] = {}
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
        consumer.assign([TopicPartition(topic, p, 0) for p, end in ends.items() if end])
        done = {p for p, end in ends.items() if not end}
        while len(done) < len(ends):
            for message in consumer.consume(500, timeout=1.0):
                assert message.error() is None, message.error()
                value = message.value()
                found[message.key().decode()] = codec.decode(value) if value is not None else None
                if message.offset() + 1 >= ends[message.partition()]:
                    done.add(message.partition())
    finally:
        consumer.close()
    return found
