"""The project's own set-up of a deployment: the catalogue's topics, then its schemas in the registry.

What ``make demo``, ``omnichannel stack up`` and the test fixtures run before any producer starts (in
production: ``omnichannel topics create`` and ``omnichannel schemas register``). Producers never register a
schema themselves; they look up the id registered here.
"""

from __future__ import annotations

from dataclasses import dataclass

from omnichannel.kafka_admin import TopicReport, ensure_topics
from omnichannel.settings import Settings
from schemas.publish import register_all
from schemas.registry import ConfluentSchemaRegistry
from schemas.topics import catalogue_for

__all__ = ["Provisioned", "provision"]


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
