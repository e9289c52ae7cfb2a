"""`remove_namespace` deletes a scratch namespace's topics, groups, Redis keys and subjects, and nothing else."""

from __future__ import annotations

import time
import uuid
from dataclasses import replace

import pytest
import redis
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from omnichannel.provision import provision, remove_namespace
from omnichannel.settings import Settings
from schemas.registry import ConfluentSchemaRegistry
from schemas.topics import catalogue_for


def _leave_traces(settings: Settings) -> None:
    """What a run leaves in its namespace: provisioned topics and subjects, a committed group, Redis keys."""
    assert settings.kafka_bootstrap_servers and settings.redis_url
    provision(settings, partitions=1)
    topic = settings.topic("customer.carts")
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers})
    producer.produce(topic, b"x", key=b"k")
    assert producer.flush(30) == 0
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "group.id": settings.topic("omnichannel-processor"),
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.subscribe([topic])
        message = None
        while message is None:
            message = consumer.poll(1)
        consumer.commit(message, asynchronous=False)
    finally:
        consumer.close()
    client = redis.Redis.from_url(settings.redis_url)
    client.set(f"{settings.namespace}:cart:{{k}}", "{}")
    client.close()


def test_removing_a_namespace_leaves_nothing_of_it_and_spares_a_namespace_that_shares_its_start(
    settings: Settings,
) -> None:
    token = uuid.uuid4().hex[:8]
    doomed = replace(settings, namespace=f"rm{token}")
    neighbour = replace(settings, namespace=f"rm{token}x")  # "rm<token>." must not match "rm<token>x."
    _leave_traces(doomed)
    _leave_traces(neighbour)

    removed = remove_namespace(doomed)

    assert settings.kafka_bootstrap_servers and settings.redis_url and settings.schema_registry_url
    catalogue = catalogue_for(doomed.namespace)
    assert set(removed.topics) >= {spec.name for spec in catalogue}
    assert removed.groups == [doomed.topic("omnichannel-processor")]
    assert removed.redis_keys == 1
    assert sorted(removed.subjects) == sorted(spec.subject for spec in catalogue)

    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    topics = admin.list_topics(timeout=30).topics
    groups = {g.group_id for g in admin.list_consumer_groups().result(30).valid}
    assert not [t for t in topics if t.startswith(f"{doomed.namespace}.")]
    assert doomed.topic("omnichannel-processor") not in groups
    registry = ConfluentSchemaRegistry(settings.schema_registry_url)
    assert not any(registry.has_subject(spec.subject) for spec in catalogue)
    client = redis.Redis.from_url(settings.redis_url)
    try:
        assert list(client.scan_iter(match=f"{doomed.namespace}:*")) == []
        assert client.exists(f"{neighbour.namespace}:cart:{{k}}") == 1
    finally:
        client.close()
    # The neighbour keeps everything.
    assert neighbour.topic("customer.carts") in topics
    assert neighbour.topic("omnichannel-processor") in groups
    assert all(registry.has_subject(spec.subject) for spec in catalogue_for(neighbour.namespace))

    again = remove_namespace(neighbour)
    assert again.groups == [neighbour.topic("omnichannel-processor")] and again.redis_keys == 1


def test_the_default_namespace_is_never_removed(settings: Settings) -> None:
    with pytest.raises(ValueError, match="default"):
        remove_namespace(replace(settings, namespace=""))


def test_a_group_that_still_has_members_is_reported_and_its_topics_are_removed_all_the_same(
    settings: Settings,
) -> None:
    namespace = replace(settings, namespace=f"rm{uuid.uuid4().hex[:8]}")
    assert settings.kafka_bootstrap_servers
    provision(namespace, partitions=1)
    live = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "group.id": namespace.topic("still-running"),
            "auto.offset.reset": "earliest",
        }
    )
    try:
        live.subscribe([namespace.topic("customer.carts")])
        deadline = time.monotonic() + 30
        while not live.assignment() and time.monotonic() < deadline:
            live.poll(0.5)
        assert live.assignment(), "the consumer never joined its group"

        removed = remove_namespace(namespace)
    finally:
        live.close()

    assert removed.busy_groups == [namespace.topic("still-running")] and removed.groups == []
    topics = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers}).list_topics(timeout=30).topics
    assert not [t for t in topics if t.startswith(f"{namespace.namespace}.")]
    remove_namespace(namespace)  # once the member has left, the group goes too
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    assert namespace.topic("still-running") not in {g.group_id for g in admin.list_consumer_groups().result(30).valid}
