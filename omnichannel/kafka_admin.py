"""Creating the catalogue's topics, idempotently, through Kafka's admin API."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from omnichannel.errors import KafkaAuthenticationError, ServiceUnavailableError
from omnichannel.kafka_logging import librdkafka_logger
from schemas.topics import TopicSpec

__all__ = [
    "MAX_REPLICATION_FACTOR",
    "MIN_INSYNC_REPLICAS",
    "Deleted",
    "TopicReport",
    "delete_prefixed",
    "ensure_topics",
    "replication_for",
]


@dataclass(frozen=True)
class TopicReport:
    """What happened to one topic: ``created`` or ``exists`` (with its partition count and replication factor)."""

    name: str
    outcome: str
    partitions: int
    replicas: int = 1


#: Replicas per partition on a cluster: three survive the loss of one broker with two still in sync.
MAX_REPLICATION_FACTOR = 3
#: With three replicas an ``acks=all`` write needs two in sync: one broker may die, no acknowledged write is lost.
MIN_INSYNC_REPLICAS = 2


def replication_for(brokers: int) -> tuple[int, dict[str, str]]:
    """Replication factor ``min(3, brokers)`` and the topic settings that go with it.

    From three brokers up a topic also gets ``min.insync.replicas=2``: the producers' ``acks=all`` then waits for
    two copies, so a write acknowledged before a broker dies is still on another one.
    """
    factor = max(1, min(MAX_REPLICATION_FACTOR, brokers))
    extra = {"min.insync.replicas": str(MIN_INSYNC_REPLICAS)} if factor >= MAX_REPLICATION_FACTOR else {}
    return factor, extra


def ensure_topics(
    bootstrap: str,
    specs: Iterable[TopicSpec],
    default_partitions: int,
    replication_factor: int | None = None,
    timeout: float = 30.0,
    *,
    security: Mapping[str, str] | None = None,
) -> list[TopicReport]:
    """Create the topics that do not exist yet; existing ones are left as they are and reported.

    Running it again changes nothing, so deployments can call it on every start. ``replication_factor`` defaults
    to :func:`replication_for` the number of brokers the cluster has now. ``security``: the librdkafka
    ``security.protocol``/``sasl.*``/``ssl.*`` properties (:meth:`KafkaSecurity.confluent_config`).
    """
    errors: list[KafkaError] = []
    config: dict[str, Any] = {"bootstrap.servers": bootstrap, "logger": librdkafka_logger(bootstrap)}
    config |= dict(security or {}) | {"error_cb": errors.append}
    admin = AdminClient(config)
    metadata = _metadata(admin, bootstrap, timeout, errors, dict(security or {}))
    existing = metadata.topics
    factor, extra = replication_for(len(metadata.brokers))
    if replication_factor is not None:
        factor, extra = replication_factor, replication_for(replication_factor)[1]
    reports: list[TopicReport] = []
    wanted = list(specs)
    new = [
        NewTopic(s.name, s.partitions or default_partitions, factor, config=s.config() | extra)
        for s in wanted
        if s.name not in existing
    ]
    futures = admin.create_topics(new, operation_timeout=timeout) if new else {}
    for spec in wanted:
        if spec.name in futures:
            try:
                futures[spec.name].result(timeout=timeout)
                reports.append(TopicReport(spec.name, "created", spec.partitions or default_partitions, factor))
                continue
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:  # a concurrent creator won the race
                    raise ServiceUnavailableError(f"creating topic {spec.name} failed: {exc}") from exc
        partitions = admin.list_topics(spec.name, timeout=timeout).topics[spec.name].partitions
        replicas = max((len(p.replicas) for p in partitions.values()), default=0)
        reports.append(TopicReport(spec.name, "exists", len(partitions), replicas))
    return reports


@dataclass(frozen=True)
class Deleted:
    """What :func:`delete_prefixed` deleted, and the groups it left because members still held them."""

    groups: list[str]
    topics: list[str]
    busy_groups: list[str]


def delete_prefixed(
    bootstrap: str, prefix: str, timeout: float = 30.0, *, security: Mapping[str, str] | None = None
) -> Deleted:
    """Delete every consumer group, then every topic, whose name starts with ``prefix``.

    A group the broker says still has members is left and reported in ``busy_groups`` (a consumer killed
    with SIGKILL stays a member until its session times out); its topics are deleted all the same, and Kafka
    drops the group's offsets after ``offsets.retention.minutes``.
    """
    if not prefix:
        raise ValueError("delete_prefixed needs a non-empty prefix: an empty one would delete every topic")
    errors: list[KafkaError] = []
    config: dict[str, Any] = {"bootstrap.servers": bootstrap, "logger": librdkafka_logger(bootstrap)}
    admin = AdminClient(config | dict(security or {}) | {"error_cb": errors.append})
    listed = admin.list_consumer_groups(request_timeout=timeout).result(timeout)
    groups = sorted(g.group_id for g in listed.valid if g.group_id.startswith(prefix))
    deleted, busy = [], []
    for group, future in (admin.delete_consumer_groups(groups, request_timeout=timeout) if groups else {}).items():
        try:
            future.result(timeout)
            deleted.append(group)
        except KafkaException as exc:
            code = exc.args[0].code()
            if code == KafkaError.NON_EMPTY_GROUP:
                busy.append(group)
            elif code != KafkaError.GROUP_ID_NOT_FOUND:
                raise ServiceUnavailableError(f"deleting consumer group {group} failed: {exc}") from exc
    metadata = _metadata(admin, bootstrap, timeout, errors, dict(security or {}))
    topics = sorted(t for t in metadata.topics if t.startswith(prefix))
    for topic, future in (admin.delete_topics(topics, operation_timeout=timeout) if topics else {}).items():
        try:
            future.result(timeout)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise ServiceUnavailableError(f"deleting topic {topic} failed: {exc}") from exc
    return Deleted(sorted(deleted), topics, sorted(busy))


def check_login(bootstrap: str, security: Mapping[str, str], timeout: float = 10.0) -> None:
    """:class:`KafkaAuthenticationError` if the broker refuses these credentials; nothing if it accepts them or
    does not answer within ``timeout`` (a broker that is down may come back; refused credentials will not)."""
    errors: list[KafkaError] = []
    config: dict[str, Any] = {"bootstrap.servers": bootstrap, "logger": librdkafka_logger(bootstrap)}
    admin = AdminClient(config | dict(security) | {"error_cb": errors.append})
    with contextlib.suppress(ServiceUnavailableError):
        _metadata(admin, bootstrap, timeout, errors, dict(security))


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
