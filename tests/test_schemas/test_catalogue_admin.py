"""`topics create` and `schemas register` are idempotent against the real broker and registry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from omnichannel.kafka_admin import ensure_topics
from omnichannel.stack import StackInfo
from schemas.publish import register_all
from schemas.registry import ConfluentSchemaRegistry
from schemas.topics import CATALOGUE, Cleanup, by_name


def test_topics_are_created_once_with_their_cleanup_policy(stack: StackInfo, unique: Callable[[str], str]) -> None:
    specs = [
        replace(by_name("customer.carts"), name=unique("carts")),
        replace(by_name("channel.sms.events"), name=unique("sms")),
    ]
    first = ensure_topics(stack.kafka.address, specs, default_partitions=3)
    second = ensure_topics(stack.kafka.address, specs, default_partitions=3)
    assert [(r.outcome, r.partitions) for r in first] == [("created", 3), ("created", 3)]
    assert [(r.outcome, r.partitions) for r in second] == [("exists", 3), ("exists", 3)]

    admin = AdminClient({"bootstrap.servers": stack.kafka.address})
    resource = ConfigResource(ResourceType.TOPIC, specs[0].name)
    config = admin.describe_configs([resource])[resource].result(timeout=30)
    assert config["cleanup.policy"].value == Cleanup.COMPACT.value


def test_registering_the_catalogue_twice_gives_the_same_ids(stack: StackInfo) -> None:
    registry = ConfluentSchemaRegistry(stack.registry.address)
    first = register_all(registry)
    second = register_all(registry)
    assert first == second
    assert set(first) == {spec.subject for spec in CATALOGUE}
    for subject, schema_id in first.items():
        assert registry.schema_text(schema_id)  # registered and retrievable by id
        assert subject.endswith("-value")
