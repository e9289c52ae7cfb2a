"""The project's own set-up of a deployment: the catalogue's topics, then its schemas in the registry; and the
tear-down of a whole namespace (tests and benchmarks each run in one of their own).

What ``make demo``, ``omnichannel stack up`` and the test fixtures run before any producer starts (in
production: ``omnichannel topics create`` and ``omnichannel schemas register``). Producers never register a
schema themselves; they look up the id registered here.
"""

from __future__ import annotations

from dataclasses import dataclass

from omnichannel.kafka_admin import TopicReport, delete_prefixed, ensure_topics
from omnichannel.redis_clients import sync_redis
from omnichannel.settings import Settings
from schemas.publish import register_all
from schemas.registry import ConfluentSchemaRegistry
from schemas.topics import catalogue_for

__all__ = ["Provisioned", "Removed", "provision", "remove_namespace"]


@dataclass(frozen=True)
class Provisioned:
    """What :func:`provision` did: each topic's report and each subject's schema id."""

    topics: list[TopicReport]
    schema_ids: dict[str, int]


def provision(settings: Settings, partitions: int | None = None) -> Provisioned:
    """Create the catalogue's topics in ``settings.namespace`` and register their value schemas (idempotent).

    ``settings`` must hold the Kafka and registry addresses; ``partitions`` overrides
    ``settings.partitions`` for topics created now.
    """
    assert settings.kafka_bootstrap_servers is not None and settings.schema_registry_url is not None
    specs = catalogue_for(settings.namespace)
    topics = ensure_topics(
        settings.kafka_bootstrap_servers,
        specs,
        partitions or settings.partitions,
        security=settings.kafka_security.confluent_config(),
    )
    registry = ConfluentSchemaRegistry(settings.schema_registry_url, basic_auth=settings.schema_registry_basic_auth)
    return Provisioned(topics, register_all(registry, specs))


@dataclass(frozen=True)
class Removed:
    """What :func:`remove_namespace` deleted."""

    groups: list[str]
    topics: list[str]
    redis_keys: int
    subjects: list[str]
    #: Groups left because members still held them (see :func:`omnichannel.kafka_admin.delete_prefixed`).
    busy_groups: list[str]


def remove_namespace(settings: Settings) -> Removed:
    """Delete everything of ``settings.namespace``: its consumer groups and topics (``<ns>.*``), its Redis keys
    (``<ns>:*``) and its catalogue's registry subjects. Stop the namespace's processes first: a group that still
    has members is left (``busy_groups``).

    Refuses the empty (default) namespace: that is a deployment's real data, never a scratch namespace.
    """
    namespace = settings.namespace
    if not namespace:
        raise ValueError("remove_namespace refuses the default (empty) namespace: it holds a deployment's data")
    assert settings.kafka_bootstrap_servers and settings.redis_url and settings.schema_registry_url
    kafka = delete_prefixed(
        settings.kafka_bootstrap_servers, f"{namespace}.", security=settings.kafka_security.confluent_config()
    )
    client = sync_redis(settings.redis_url)
    keys = 0
    try:
        pipe = client.pipeline(transaction=False)  # a cluster pipeline sends each key to its node
        for key in client.scan_iter(match=f"{namespace}:*", count=1000):
            pipe.unlink(key)
            keys += 1
            if len(pipe) >= 1000:
                pipe.execute()
        pipe.execute()
    finally:
        client.close()
    registry = ConfluentSchemaRegistry(settings.schema_registry_url, basic_auth=settings.schema_registry_basic_auth)
    # The catalogue's subjects by name: a registry's subject list may be a first page only.
    subjects = [s.subject for s in catalogue_for(namespace) if registry.delete_subject(s.subject)]
    return Removed(kafka.groups, kafka.topics, keys, subjects, kafka.busy_groups)
