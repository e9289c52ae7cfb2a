"""Reading consumer-group positions from Kafka itself, through confluent-kafka's AdminClient.

Nothing here trusts a processor's own bookkeeping (Faust's committed figures can run ahead of the broker): the
committed offsets come from the group coordinator (``list_consumer_group_offsets``), the end and earliest
offsets from the partition leaders (``list_offsets``, read_uncommitted, so "end" is the high watermark as in
``kafka-consumer-groups --describe``), group state and assignments from ``describe_consumer_groups``, and the
timestamp of the record at each lagging group's read position from a short-lived consumer that is assigned
the partitions (it joins no group and commits nothing).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict, defaultdict
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from typing import Any, Protocol, TypeVar

from confluent_kafka import (
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]

from omnichannel.lag.errors import BrokerUnavailableError
from omnichannel.lag.figures import read_position
from omnichannel.lag.model import ClusterReading, GroupReading, GroupState, PartitionReading
from omnichannel.logs import kv

__all__ = ["KafkaLagSource", "LagSource"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_TP = tuple[str, int]
_STATES = {
    ConsumerGroupState.STABLE: GroupState.STABLE,
    ConsumerGroupState.PREPARING_REBALANCING: GroupState.REBALANCING,
    ConsumerGroupState.COMPLETING_REBALANCING: GroupState.REBALANCING,
    ConsumerGroupState.EMPTY: GroupState.EMPTY,
    ConsumerGroupState.DEAD: GroupState.DEAD,
}
#: Group id of the timestamp probe. It only ever ``assign()``s partitions and never commits, so it neither
#: joins nor creates a group; librdkafka merely refuses to build a consumer without one.
PROBE_GROUP = "omnichannel-lag-probe"
# Record timestamps at an offset never change, so they are cached; this bounds the cache's memory.
_TIMESTAMP_CACHE_SIZE = 50_000


class LagSource(Protocol):
    """Where the monitor gets its readings (the real broker here; tests of pure logic need no fake)."""

    @property
    def bootstrap(self) -> str:
        """The address readings come from, for reports."""
        ...

    def read(self, groups: Sequence[str] | None = None) -> ClusterReading:
        """One reading of the named groups (every consumer group when ``None``)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class _LibrdkafkaLog(logging.Logger):
    """librdkafka's own log lines (connection refused, retries...) at DEBUG: the monitor reports outages
    itself, once, instead of letting the client print a line per reconnect attempt on stderr."""

    def __init__(self) -> None:
        super().__init__("omnichannel.lag.librdkafka")
        self._target = logging.getLogger("omnichannel.lag.librdkafka")

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        self._target.debug(msg, *args, **kwargs)


class KafkaLagSource:
    """Reads groups, offsets and record timestamps from a Kafka cluster; one instance per monitor.

    ``timeout`` bounds every admin request: a broker that does not answer within it is reported as down
    (:class:`BrokerUnavailableError`) rather than blocking the monitor's poll loop.
    """

    def __init__(self, bootstrap: str, *, timeout: float = 10.0, client_id: str = "omnichannel-lag-monitor") -> None:
        self._bootstrap = bootstrap
        self._timeout = timeout
        self._logger = _LibrdkafkaLog()
        self._config: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "client.id": client_id,
            "logger": self._logger,
            "socket.timeout.ms": max(1000, int(timeout * 1000)),
        }
        self._admin = AdminClient(dict(self._config))
        self._timestamps: OrderedDict[tuple[str, int, int], float] = OrderedDict()

    @property
    def bootstrap(self) -> str:
        """The bootstrap address this source reads from."""
        return self._bootstrap

    def close(self) -> None:
        """Drain librdkafka's log queue; the AdminClient has no close and is freed with this object."""
        self._admin.poll(0)

    # -- the reading --------------------------------------------------------------------------------------------

    def read(self, groups: Sequence[str] | None = None) -> ClusterReading:
        """One reading; raises :class:`BrokerUnavailableError` when the cluster does not answer."""
        try:
            return self._read(groups)
        finally:
            self._admin.poll(0)  # serve queued librdkafka log lines to the (DEBUG) logger

    def _read(self, groups: Sequence[str] | None) -> ClusterReading:
        try:
            metadata = self._admin.list_topics(timeout=self._timeout)
        except KafkaException as exc:
            raise BrokerUnavailableError(
                f"Kafka at {self._bootstrap} did not answer a metadata request within {self._timeout:g}s "
                f"({_describe(exc)}); check that the broker is up and the address is right"
            ) from exc
        topics = {
            name: frozenset(meta.partitions)
            for name, meta in metadata.topics.items()
            if meta.error is None and not name.startswith("__")
        }
        self._forget_deleted_topics(set(topics))

        listing = self._result(self._admin.list_consumer_groups(request_timeout=self._timeout), "list groups")
        for error in listing.errors:
            log.warning("listing consumer groups partly failed", extra=kv(error=str(error)))
        known = {g.group_id for g in listing.valid}
        wanted = sorted(known) if groups is None else list(dict.fromkeys(groups))
        existing = [g for g in wanted if g in known]

        describe: dict[str, Future[Any]] = (
            self._admin.describe_consumer_groups(existing, request_timeout=self._timeout) if existing else {}
        )
        # One OffsetFetch per group: the API takes one group per request; all are in flight at once.
        offsets = {
            g: self._admin.list_consumer_group_offsets(
                [ConsumerGroupTopicPartitions(g)], request_timeout=self._timeout
            )[g]
            for g in existing
        }

        partial: list[tuple[str, Any, dict[_TP, int | None], dict[_TP, str], str | None]] = []
        for group in existing:
            description: Any = None
            committed: dict[_TP, int | None] = {}
            owners: dict[_TP, str] = {}
            failure: str | None = None
            try:
                description = describe[group].result(timeout=self._timeout + 5)
                for member in description.members:
                    host = str(member.host).lstrip("/")
                    for tp in member.assignment.topic_partitions:
                        owners[(tp.topic, tp.partition)] = f"{member.client_id}@{host}"
                fetched = offsets[group].result(timeout=self._timeout + 5)
                for tp in fetched.topic_partitions:
                    # Negative offsets are librdkafka's "no committed offset" sentinel (OFFSET_INVALID).
                    committed[(tp.topic, tp.partition)] = tp.offset if tp.offset >= 0 else None
            except KafkaException as exc:
                failure = f"could not read group {group!r}: {_describe(exc)}"
                log.warning("reading a consumer group failed", extra=kv(group=group, error=_describe(exc)))
            partial.append((group, description, committed, owners, failure))

        needed = {tp for _g, _d, committed, owners, _e in partial for tp in (*committed, *owners)}
        readable = {tp for tp in needed if tp[1] in topics.get(tp[0], frozenset())}
        ends = self._list_offsets(readable, OffsetSpec.latest())  # type: ignore[no-untyped-call]
        starts = self._list_offsets(readable, OffsetSpec.earliest())  # type: ignore[no-untyped-call]

        positions: set[tuple[str, int, int]] = set()
        for _g, _d, committed, _o, _e in partial:
            for tp, offset in committed.items():
                end, start = ends.get(tp), starts.get(tp)
                position = read_position(offset, start if isinstance(start, int) else None)
                if position is not None and isinstance(end, int) and position < end:
                    positions.add((tp[0], tp[1], position))
        stamps = self._record_timestamps(positions)

        readings: list[GroupReading] = []
        for group, description, committed, owners, error in partial:
            parts: list[PartitionReading] = []
            for topic, partition in sorted({*committed, *owners}):
                tp = (topic, partition)
                end, start = ends.get(tp), starts.get(tp)
                problem = None
                if topic not in topics:
                    problem = f"topic {topic!r} does not exist (deleted?)"
                elif partition not in topics[topic]:
                    problem = f"partition {partition} does not exist in topic {topic!r}"
                elif isinstance(end, str) or isinstance(start, str):
                    problem = end if isinstance(end, str) else str(start)
                offset = committed.get(tp)
                position = read_position(offset, start if isinstance(start, int) else None)
                parts.append(
                    PartitionReading(
                        topic=topic,
                        partition=partition,
                        committed=offset,
                        end=end if isinstance(end, int) else None,
                        earliest=start if isinstance(start, int) else None,
                        position_timestamp=None if position is None else stamps.get((topic, partition, position)),
                        owner=owners.get(tp),
                        error=problem,
                    )
                )
            state = GroupState.UNKNOWN if description is None else _STATES.get(description.state, GroupState.UNKNOWN)
            members = 0 if description is None else len(description.members)
            readings.append(GroupReading(group, True, state, members, tuple(parts), error))
        for group in wanted:
            if group not in known:
                readings.append(GroupReading(group, False, GroupState.DEAD, 0, (), f"group {group!r} does not exist"))
        order = {g: i for i, g in enumerate(wanted)}
        readings.sort(key=lambda r: order[r.group])
        return ClusterReading(topics=frozenset(topics), groups=tuple(readings))

    # -- helpers ------------------------------------------------------------------------------------------------

    def _result(self, future: Future[_T], what: str) -> _T:
        try:
            return future.result(timeout=self._timeout + 5)
        except KafkaException as exc:
            raise BrokerUnavailableError(f"Kafka at {self._bootstrap} failed to {what}: {_describe(exc)}") from exc

    def _list_offsets(self, partitions: set[_TP], spec: Any) -> dict[_TP, int | str]:
        """Offsets per partition, or an error sentence for a partition whose leader did not answer."""
        if not partitions:
            return {}
        request = {TopicPartition(t, p): spec for t, p in sorted(partitions)}
        futures = self._admin.list_offsets(request, request_timeout=self._timeout)
        found: dict[_TP, int | str] = {}
        for tp, future in futures.items():
            try:
                found[(tp.topic, tp.partition)] = int(future.result(timeout=self._timeout + 5).offset)
            except KafkaException as exc:
                if _code(exc) in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN):
                    raise BrokerUnavailableError(
                        f"Kafka at {self._bootstrap} stopped answering while listing offsets: {_describe(exc)}"
                    ) from exc
                found[(tp.topic, tp.partition)] = f"offsets of {tp.topic}[{tp.partition}] unavailable: {_describe(exc)}"
        return found

    def _forget_deleted_topics(self, existing: set[str]) -> None:
        # A topic deleted and re-created under the same name restarts at offset 0 with other records.
        for key in [k for k in self._timestamps if k[0] not in existing]:
            del self._timestamps[key]

    def _record_timestamps(self, positions: set[tuple[str, int, int]]) -> dict[tuple[str, int, int], float]:
        """Timestamp (Unix seconds) of the record at each (topic, partition, offset); unreadable ones absent."""
        found: dict[tuple[str, int, int], float] = {}
        missing: dict[_TP, list[int]] = defaultdict(list)
        for key in positions:
            if key in self._timestamps:
                self._timestamps.move_to_end(key)
                found[key] = self._timestamps[key]
            else:
                missing[(key[0], key[1])].append(key[2])
        if not missing:
            return found
        consumer = Consumer(
            {
                **self._config,
                "group.id": PROBE_GROUP,
                "enable.auto.commit": False,
                "enable.partition.eof": True,  # stop waiting at the end of a partition holding no record
                "isolation.level": "read_uncommitted",  # the record at the position, committed or not
                "auto.offset.reset": "earliest",  # retention moved past the position: take the oldest left
                "fetch.wait.max.ms": 50,
            }
        )
        try:
            while missing:
                # Several groups may read one partition at different offsets: one offset per partition a round.
                batch = {tp: offsets.pop() for tp, offsets in missing.items()}
                missing = defaultdict(list, {tp: offsets for tp, offsets in missing.items() if offsets})
                found.update(self._fetch_first_records(consumer, batch))
        except KafkaException as exc:
            log.warning("reading record timestamps failed", extra=kv(error=_describe(exc)))
        finally:
            consumer.close()
        return found

    def _fetch_first_records(self, consumer: Consumer, batch: Mapping[_TP, int]) -> dict[tuple[str, int, int], float]:
        consumer.assign([TopicPartition(t, p, offset) for (t, p), offset in batch.items()])
        pending = dict(batch)
        found: dict[tuple[str, int, int], float] = {}
        # Bounded: a partition whose leader is away must not hold up the whole poll.
        deadline = time.monotonic() + min(self._timeout, 5.0)
        while pending and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None:
                continue
            tp = (message.topic(), message.partition())
            if tp not in pending:
                continue
            error = message.error()
            if error is not None and error.code() != KafkaError._PARTITION_EOF:
                log.debug("timestamp probe error", extra=kv(topic=tp[0], partition=tp[1], error=str(error)))
                continue
            offset = pending.pop(tp)
            consumer.pause([TopicPartition(tp[0], tp[1])])
            if error is not None:
                continue  # only transaction markers or aborted records up to the end: nothing readable
            kind, millis = message.timestamp()
            if kind != TIMESTAMP_NOT_AVAILABLE:
                key = (tp[0], tp[1], offset)
                found[key] = millis / 1000.0
                self._timestamps[key] = millis / 1000.0
                if len(self._timestamps) > _TIMESTAMP_CACHE_SIZE:
                    self._timestamps.popitem(last=False)
        for tp in pending:
            log.debug("no record read at the position in time", extra=kv(topic=tp[0], partition=tp[1]))
        consumer.unassign()
        return found


def _code(exc: KafkaException) -> Any:
    error = exc.args[0] if exc.args else None
    return error.code() if isinstance(error, KafkaError) else None


def _describe(exc: KafkaException) -> str:
    error = exc.args[0] if exc.args else None
    if isinstance(error, KafkaError):
        return f"{error.name()}: {error.str()}"
    return str(exc)
