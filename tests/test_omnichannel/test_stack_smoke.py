"""The session stack is real: a broker, a Confluent-compatible registry and Redis that answer."""

from __future__ import annotations

from collections.abc import Callable

import redis
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from omnichannel.stack import StackInfo

SCHEMA = """{"type": "record", "name": "Ping", "namespace": "omnichannel.test",
  "fields": [{"name": "id", "type": "string"}, {"name": "n", "type": "long"}]}"""


def test_avro_record_round_trips_through_kafka_and_the_registry(stack: StackInfo, unique: Callable[[str], str]) -> None:
    topic = unique("smoke")
    admin = AdminClient({"bootstrap.servers": stack.kafka.address})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=30)
    registry = SchemaRegistryClient({"url": stack.registry.address})
    ctx = SerializationContext(topic, MessageField.VALUE)
    value = AvroSerializer(registry, SCHEMA)({"id": "a-1", "n": 42}, ctx)
    assert value is not None and value[0] == 0  # Confluent framing: magic byte, then the schema id

    producer = Producer({"bootstrap.servers": stack.kafka.address, "acks": "all"})
    producer.produce(topic, key=b"a-1", value=value)
    assert producer.flush(30) == 0

    consumer = Consumer(
        {"bootstrap.servers": stack.kafka.address, "group.id": unique("g"), "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    try:
        message = None
        for _ in range(60):
            message = consumer.poll(1.0)
            if message is not None and message.error() is None:
                break
        assert message is not None and message.error() is None, "no record came back from the broker"
        decoded = AvroDeserializer(registry)(message.value(), ctx)
    finally:
        consumer.close()
    assert decoded == {"id": "a-1", "n": 42}
    # The subject exists under the topic's name (TopicNameStrategy); asked directly, as listing pages.
    assert registry.get_latest_version(f"{topic}-value").schema.schema_str is not None


def test_redis_reads_back_what_was_written(stack: StackInfo, unique: Callable[[str], str]) -> None:
    client = redis.Redis.from_url(stack.redis.address, decode_responses=True)
    key = unique("smoke")
    try:
        client.hset(key, mapping={"basket": "3 lines"})
        assert client.hgetall(key) == {"basket": "3 lines"}
        assert client.delete(key) == 1
        assert client.exists(key) == 0
    finally:
        client.close()
