"""The codec against the real Schema Registry: round trips, stock-client compatibility, typed errors."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from omnichannel.stack import StackInfo
from schemas.codec import AvroCodec, frame
from schemas.errors import DecodeError, EncodeError, SchemaNotRegisteredError, UnknownEventTypeError
from schemas.loader import EVENT_FULLNAME, EVENT_TYPES
from schemas.registry import ConfluentSchemaRegistry
from schemas.samples import sample_event
from streams.domain.customer import CustomerState


class CountingRegistry(ConfluentSchemaRegistry):
    """The real registry client, counting lookups (to prove ids are cached)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.lookups = 0

    def lookup(self, subject: str, schema_text: str) -> int:
        self.lookups += 1
        return super().lookup(subject, schema_text)


@pytest.fixture
def codec(stack: StackInfo) -> AvroCodec:
    return AvroCodec(ConfluentSchemaRegistry(stack.registry.address))


@pytest.fixture
def subject(unique: Callable[[str], str], register_schema: Callable[[str, str], int]) -> str:
    """A subject of this test's own, with the Event schema registered (producers only look ids up)."""
    name = unique("t") + "-value"
    register_schema(name, EVENT_FULLNAME)
    return name


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_every_event_type_round_trips(codec: AvroCodec, subject: str, event_type: str) -> None:
    event = sample_event(event_type)
    data = codec.encode(subject, EVENT_FULLNAME, event)
    assert data[0] == 0
    assert AvroCodec(codec.registry).decode(data, EVENT_FULLNAME) == event  # a fresh codec: id looked up


def test_schema_id_is_looked_up_once_per_subject_and_nothing_is_registered(stack: StackInfo, subject: str) -> None:
    registry = CountingRegistry(stack.registry.address)
    codec = AvroCodec(registry)
    first = codec.encode(subject, EVENT_FULLNAME, sample_event("login"))
    second = codec.encode(subject, EVENT_FULLNAME, sample_event("logout"))
    assert registry.lookups == 1
    assert first[1:5] == second[1:5]
    assert len(registry.versions(subject)) == 1


def test_encoding_for_a_subject_never_registered_fails_and_the_registry_still_has_no_such_subject(
    codec: AvroCodec, stack: StackInfo, unique: Callable[[str], str]
) -> None:
    subject = unique("never-registered") + "-value"
    with pytest.raises(SchemaNotRegisteredError, match=r"run `omnichannel schemas register`") as caught:
        codec.encode(subject, EVENT_FULLNAME, sample_event("login"))
    assert caught.value.subject == subject
    assert subject in str(caught.value)
    assert not ConfluentSchemaRegistry(stack.registry.address).has_subject(subject)


def test_another_schema_under_a_registered_subject_is_refused_and_not_added_as_a_version(
    codec: AvroCodec, stack: StackInfo, subject: str
) -> None:
    with pytest.raises(SchemaNotRegisteredError, match="has no version of this schema under"):
        codec.schema_id(subject, "omnichannel.output.Cart")
    assert len(ConfluentSchemaRegistry(stack.registry.address).versions(subject)) == 1


def test_a_stock_confluent_deserializer_reads_what_the_project_wrote(
    codec: AvroCodec, stack: StackInfo, unique: Callable[[str], str], register_schema: Callable[[str, str], int]
) -> None:
    topic = unique("channel.web.events")
    register_schema(f"{topic}-value", EVENT_FULLNAME)
    event = sample_event("cart_line_added", channel="web")
    producer = Producer({"bootstrap.servers": stack.kafka.address, "acks": "all"})
    producer.produce(topic, key=b"customer:C-42", value=codec.encode(f"{topic}-value", EVENT_FULLNAME, event))
    assert producer.flush(30) == 0

    # From here on: confluent-kafka and the registry URL only, no project code.
    deserializer = AvroDeserializer(SchemaRegistryClient({"url": stack.registry.address}))
    consumer = Consumer(
        {"bootstrap.servers": stack.kafka.address, "group.id": unique("sub"), "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    try:
        message = None
        for _ in range(60):
            message = consumer.poll(1.0)
            if message is not None and message.error() is None:
                break
        assert message is not None and message.error() is None
        decoded = deserializer(message.value(), SerializationContext(topic, MessageField.VALUE))
    finally:
        consumer.close()
    assert decoded == event


@pytest.mark.parametrize(
    ("mutate", "field", "reason"),
    [
        (lambda e: e["payload"].update(quantity="two"), "payload.quantity", "expected int, got str 'two'"),
        (lambda e: e.pop("event_id"), "event_id", "required field is missing"),
        (lambda e: e.update(channel="fax"), "channel", "'fax' is not one of web, mobile_app"),
        (lambda e: e["identities"].update(customer_id=42), "identities.customer_id", "expected string, got int"),
        (lambda e: e.update(colour="red"), "colour", "unknown field"),
        (lambda e: e["payload"].update(colour="red"), "payload.colour", "unknown field"),
        (lambda e: e["payload"].update(quantity=2**40), "payload.quantity", "out of range for int"),
    ],
)
def test_encoding_a_bad_record_names_the_field_and_the_problem(
    codec: AvroCodec,
    unique: Callable[[str], str],
    mutate: Callable[[dict[str, object]], object],
    field: str,
    reason: str,
) -> None:
    event = sample_event("cart_line_added")
    mutate(event)
    with pytest.raises(EncodeError, match=reason) as caught:
        codec.encode(unique("bad") + "-value", EVENT_FULLNAME, event, validate=True)
    assert caught.value.field == field
    assert field in str(caught.value)


def test_even_without_validation_a_mistyped_field_is_named(codec: AvroCodec, unique: Callable[[str], str]) -> None:
    event = sample_event("cart_line_added")
    event["payload"]["quantity"] = "two"
    with pytest.raises(EncodeError, match=r"payload\.quantity: expected int, got str 'two'"):
        codec.encode(unique("bad") + "-value", EVENT_FULLNAME, event)


def test_the_unchecked_field_set_writes_the_same_bytes_and_still_names_a_missing_field(
    codec: AvroCodec, unique: Callable[[str], str], register_schema: Callable[[str, str], int]
) -> None:
    # The worker encodes its own to_avro_dict records with strict=False: same bytes; a required field still counts.
    subject = unique("state") + "-value"
    register_schema(subject, "omnichannel.output.CustomerState")
    record = CustomerState(key="customer:C1", recent_products=("P1",), updated_at_ms=5).to_avro_dict()
    strict = codec.encode(subject, "omnichannel.output.CustomerState", record)
    assert codec.encode(subject, "omnichannel.output.CustomerState", record, strict=False) == strict
    assert codec.decode(strict, "omnichannel.output.CustomerState") == record
    del record["updated_at_ms"]
    with pytest.raises(EncodeError, match="updated_at_ms"):
        codec.encode(subject, "omnichannel.output.CustomerState", record, strict=False)


def test_an_unknown_event_type_lists_the_valid_ones(codec: AvroCodec) -> None:
    with pytest.raises(UnknownEventTypeError, match=r"unknown event_type 'teleported'; valid event types: login"):
        codec.encode("x-value", EVENT_FULLNAME, sample_event("login", event_type="teleported"))


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "too short"),
        (b"\x00\x00", "too short"),
        (b'{"json": "not avro"}', "magic byte is 123"),
        (frame(987_654_321, b"\x02"), "987654321"),
    ],
)
def test_undecodable_bytes_raise_a_typed_error_that_keeps_them(codec: AvroCodec, raw: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason) as caught:
        codec.decode(raw)
    assert caught.value.raw == raw


def test_a_truncated_body_raises_a_typed_error_that_keeps_the_bytes(codec: AvroCodec, subject: str) -> None:
    data = codec.encode(subject, EVENT_FULLNAME, sample_event("order_placed"))
    with pytest.raises(DecodeError, match="does not decode with schema id") as caught:
        codec.decode(data[:30])
    assert caught.value.raw == data[:30]
