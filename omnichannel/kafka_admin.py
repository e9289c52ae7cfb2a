"""Creating the catalogue's topics, idempotently, through Kafka's admin API."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from omnichannel.errors import KafkaAuthenticationError, ServiceUnavailableError
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
    errors: list[KafkaError] = []
    config: dict[str, Any] = {"bootstrap.servers": bootstrap, "logger": librdkafka_logger(bootstrap)}
    config |= dict(security or {}) | {"error_cb": errors.append}
    admin = AdminClient(config)
    existing = _metadata(admin, bootstrap, timeout, errors, dict(security or {})).topics
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


#: librdkafka retries a refused login like a lost connection; asking for metadata in slices of this many
#: seconds lets a wrong password end the command within about a second instead of the whole timeout.
_PROBE_SLICE_S = 1.0


def _metadata(
    admin: AdminClient, bootstrap: str, timeout: float, errors: list[KafkaError], security: dict[str, str]
) -> Any:
    """The cluster's metadata; :class:`KafkaAuthenticationError` as soon as the broker refuses the login."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return admin.list_topics(timeout=max(0.1, min(_PROBE_SLICE_S, deadline - time.monotonic())))
        except KafkaException as exc:
            admin.poll(0)  # serves librdkafka's queued lines and error_cb: one warning, then this error
            refused = next((e for e in errors if e.code() == KafkaError._AUTHENTICATION), None)
            if refused is not None:
                user = security.get("sasl.username", "(none)")
                mechanism = security.get("sasl.mechanism", "(none)")
                raise KafkaAuthenticationError(
                    f"Kafka at {bootstrap} refused the credentials of user {user!r} ({mechanism}): "
                    f"{refused.str().rpartition(': ')[2]}. Check KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD and "
                    "KAFKA_SASL_MECHANISM"
                ) from exc
            if time.monotonic() >= deadline:
                raise ServiceUnavailableError(
                    f"Kafka at {bootstrap} did not answer a metadata request within {timeout:g}s ({exc}); check "
                    "that the broker is up, KAFKA_BOOTSTRAP_SERVERS is right and KAFKA_SECURITY_PROTOCOL matches "
                    "its listener"
                ) from exc
