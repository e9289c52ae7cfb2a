"""Creating the catalogue's topics, idempotently, through Kafka's admin API."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from omnichannel.errors import ServiceUnavailableError
from omnichannel.kafka_logging import librdkafka_logger
from schemas.topics import TopicSpec

__all__ = ["TopicReport", "ensure_topics"]


@dataclass(frozen=True)
class TopicReport:
    """What happened to one topic: ``created`` or ``exists`` (with its partition count)."""

    name: str
    outcome: str
    partitions: int


def ensure_topics(
    bootstrap: str,
    specs: Iterable[TopicSpec],
    default_partitions: int,
    replication_factor: int = 1,
    timeout: float = 30.0,
    *,
    security: Mapping[str, str] | None = None,
) -> list[TopicReport]:
    """Create the topics that do not exist yet; existing ones are left as they are and reported.

    Running it again changes nothing, so deployments can call it on every start. ``security``: the
    librdkafka ``security.protocol``/``sasl.*``/``ssl.*`` properties (:meth:`KafkaSecurity.confluent_config`).
    """
    config: dict[str, Any] = {"bootstrap.servers": bootstrap, "logger": librdkafka_logger(bootstrap)}
    config |= dict(security or {})
    admin = AdminClient(config)
    try:
        existing = admin.list_topics(timeout=timeout).topics
    except KafkaException as exc:
        admin.poll(0)  # serve librdkafka's queued lines: one warning, then this error
        raise ServiceUnavailableError(
            f"Kafka at {bootstrap} did not answer a metadata request within {timeout:g}s ({exc}); check that the "
            "broker is up and KAFKA_BOOTSTRAP_SERVERS is right"
        ) from exc
    reports: list[TopicReport] = []
    wanted = list(specs)
    new = [
        NewTopic(s.name, s.partitions or default_partitions, replication_factor, config=s.config())
        for s in wanted
        if s.name not in existing
    ]
    futures = admin.create_topics(new, operation_timeout=timeout) if new else {}
    for spec in wanted:
        if spec.name in futures:
            try:
                futures[spec.name].result(timeout=timeout)
                reports.append(TopicReport(spec.name, "created", spec.partitions or default_partitions))
                continue
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:  # a concurrent creator won the race
                    raise ServiceUnavailableError(f"creating topic {spec.name} failed: {exc}") from exc
        partitions = len(admin.list_topics(spec.name, timeout=timeout).topics[spec.name].partitions)
        reports.append(TopicReport(spec.name, "exists", partitions))
    return reports
