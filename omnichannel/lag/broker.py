"""Reading consumer-group positions from Kafka itself, through confluent-kafka's AdminClient.

Nothing here trusts a processor's own bookkeeping (Faust's committed figures can run ahead of the broker): the
committed offsets come from the group coordinator (an OffsetFetch per group, sent through a consumer: see
:mod:`omnichannel.lag.committed` for why not the AdminClient's), the end and earliest
offsets from the partition leaders (``list_offsets``, read_uncommitted, so "end" is the high watermark as in
``kafka-consumer-groups --describe``), group state and assignments from ``describe_consumer_groups``, and the
timestamp of the record at each lagging group's read position from a short-lived consumer that is assigned
the partitions (it joins no group and commits nothing).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from confluent_kafka import (
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    ConsumerGroupState,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]

from omnichannel.kafka_logging import librdkafka_logger
from omnichannel.lag.committed import CommittedOffsetReader
from omnichannel.lag.errors import BrokerUnavailableError
from omnichannel.lag.figures import read_position
from omnichannel.lag.model import ClusterReading, GroupReading, GroupState, Member, PartitionReading
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
# Errors of a coordinator that is loading its groups or not yet elected: transient, worth asking again.
_COORDINATOR_NOT_READY = frozenset(
    {KafkaError.COORDINATOR_LOAD_IN_PROGRESS, KafkaError.COORDINATOR_NOT_AVAILABLE, KafkaError.NOT_COORDINATOR}
)
_RETRY_PAUSE = 0.2
# Record timestamps at an offset never change, so they are cached; this bounds the cache's memory.
_TIMESTAMP_CACHE_SIZE = 50_000


@dataclass
class _RawGroup:
    """What the coordinator said about one group, before partitions are joined with log offsets."""

    group: str
    description: Any = None
    committed: dict[_TP, int | None] = field(default_factory=dict)
    owners: dict[_TP, Member] = field(default_factory=dict)
    failure: str | None = None


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


class KafkaLagSource:
    """Reads groups, offsets and record timestamps from a Kafka cluster; one instance per monitor.

    ``select`` (e.g. a :class:`~omnichannel.lag.select.GroupSelector`) narrows the groups a reading of "every
    group" lists; groups asked for by name are read whatever it says.

    ``timeout`` bounds every admin request: a broker that does not answer within it is reported as down
    (:class:`BrokerUnavailableError`) rather than blocking the monitor's poll loop.

    ``security`` holds the librdkafka properties of an authenticated listener (``security.protocol``,
    ``sasl.*``, ``ssl.ca.location``: ``KafkaSecurity.confluent_config()``); every client of the source gets them.
    """

    def __init__(
        self,
        bootstrap: str,
        *,
        timeout: float = 10.0,
        client_id: str = "omnichannel-lag-monitor",
        select: Callable[[str], bool] | None = None,
        security: Mapping[str, str] | None = None,
    ) -> None:
        self._bootstrap = bootstrap
        self.client_id = client_id
        self._select = select
        self._timeout = timeout
        # librdkafka's reconnect lines at DEBUG: the monitor reports an outage itself, once.
        self._logger = librdkafka_logger(bootstrap, announce=False)
        self._config: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "client.id": client_id,
            "logger": self._logger,
            "socket.timeout.ms": max(1000, int(timeout * 1000)),
            **(security or {}),
        }
        self._admin = AdminClient(dict(self._config))
        self._committed = CommittedOffsetReader(self._config, timeout)
        self._renew_admin = False
        self._failing_groups: set[str] = set()
        self._timestamps: OrderedDict[tuple[str, int, int], float] = OrderedDict()

    @property
    def bootstrap(self) -> str:
        """The bootstrap address this source reads from."""
        return self._bootstrap

    def close(self) -> None:
        """Drain librdkafka's log queue and destroy the admin client here (see :func:`_destroy`); idempotent."""
        with contextlib.suppress(RuntimeError):  # destroyed by an earlier close
            self._admin.poll(0)
        _destroy(self._admin)
        self._committed.close()

    # -- the reading --------------------------------------------------------------------------------------------

    def read(self, groups: Sequence[str] | None = None) -> ClusterReading:
        """One reading; raises :class:`BrokerUnavailableError` when the cluster does not answer."""
        if self._renew_admin:
            # After a broker restart, a long-lived AdminClient was seen answering metadata again while its
            # group requests kept timing out (librdkafka 2.16); a fresh client recovers at once.
            self._admin.poll(0)
            _destroy(self._admin)
            self._admin = AdminClient(dict(self._config))
            self._committed.reset()
            self._renew_admin = False
        try:
            reading = self._read(groups)
        except BrokerUnavailableError:
            self._renew_admin = True
            raise
        finally:
            self._admin.poll(0)  # serve queued librdkafka log lines to the (DEBUG) logger
        failing = {g.group for g in reading.groups if g.error is not None}
        self._renew_admin = bool(failing)
        for group in sorted(self._failing_groups - failing):
            log.warning("consumer group readable again", extra=kv(group=group))
        self._failing_groups = failing
        return reading

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
        listed = {g.group_id for g in listing.valid}
        # Groups asked for by name are described even when not listed: a listing can be partial (a coordinator
        # still loading after a restart), and only the coordinator's own answer (state DEAD) means "no such group".
        # Patterns (``select``) filter the listing only: a group asked for by name is always read.
        if groups is None:
            wanted = sorted(g for g in listed if self._select is None or self._select(g))
        else:
            wanted = list(dict.fromkeys(groups))
        raw = self._read_groups(wanted, {(t, p) for t, parts in topics.items() for p in parts})

        needed = {tp for r in raw for tp in (*r.committed, *r.owners)}
        readable = {tp for tp in needed if tp[1] in topics.get(tp[0], frozenset())}
        ends = self._list_offsets(readable, OffsetSpec.latest())  # type: ignore[no-untyped-call]
        starts = self._list_offsets(readable, OffsetSpec.earliest())  # type: ignore[no-untyped-call]

        def position_of(tp: _TP, committed: int | None) -> int | None:
            start = starts.get(tp)
            return read_position(committed, start if isinstance(start, int) else None)

        positions: set[tuple[str, int, int]] = set()
        for r in raw:
            for tp, offset in r.committed.items():
                position, end = position_of(tp, offset), ends.get(tp)
                if position is not None and isinstance(end, int) and position < end:
                    positions.add((tp[0], tp[1], position))
        stamps = self._record_timestamps(positions)

        readings: list[GroupReading] = []
        for r in raw:
            parts: list[PartitionReading] = []
            for tp in sorted({*r.committed, *r.owners}):
                topic, partition = tp
                end, start = ends.get(tp), starts.get(tp)
                problem = None
                if topic not in topics:
                    problem = f"topic {topic!r} does not exist (deleted?)"
                elif partition not in topics[topic]:
                    problem = f"partition {partition} does not exist in topic {topic!r}"
                elif isinstance(end, str) or isinstance(start, str):
                    problem = end if isinstance(end, str) else str(start)
                position = position_of(tp, r.committed.get(tp))
                parts.append(
                    PartitionReading(
                        topic=topic,
                        partition=partition,
                        committed=r.committed.get(tp),
                        end=end if isinstance(end, int) else None,
                        earliest=start if isinstance(start, int) else None,
                        position_timestamp=None if position is None else stamps.get((topic, partition, position)),
                        member=r.owners.get(tp),
                        error=problem,
                    )
                )
            if r.description is not None:
                state = _STATES.get(r.description.state, GroupState.UNKNOWN)
            else:
                state = GroupState.UNKNOWN if r.failure else GroupState.DEAD
            members = 0 if r.description is None else len(r.description.members)
            exists = r.failure is not None or r.group in listed or state is not GroupState.DEAD or bool(parts)
            simple = r.description is not None and bool(r.description.is_simple_consumer_group)
            readings.append(GroupReading(r.group, exists, state, members, tuple(parts), r.failure, simple))
        return ClusterReading(topics=frozenset(topics), groups=tuple(readings))

    def _read_groups(self, wanted: list[str], partitions: set[_TP]) -> list[_RawGroup]:
        """State, assignments and committed offsets (on ``partitions``) of each group; a group that fails carries
        the reason."""
        # One OffsetFetch per group (the API takes one group per request); all are in flight at once.
        offsets = self._committed.fetch(wanted, partitions)
        descriptions = self._describe_groups(wanted)
        raw: list[_RawGroup] = []
        for group in wanted:
            found = _RawGroup(group)
            try:
                description = descriptions[group]
                if isinstance(description, Exception):
                    raise description
                found.description = description
                for member in description.members:
                    host = str(member.host).lstrip("/")
                    for tp in member.assignment.topic_partitions:
                        found.owners[(tp.topic, tp.partition)] = Member(member.client_id, member.member_id, host)
                found.committed.update(offsets[group].result(timeout=self._timeout + 5))
            except (KafkaException, TimeoutError) as exc:
                if isinstance(exc, KafkaException) and _code(exc) == KafkaError.GROUP_ID_NOT_FOUND:
                    raw.append(_RawGroup(group))  # the new (KIP-848) coordinator says so outright
                    continue
                found.failure = f"could not read group {group!r}: {_describe(exc)}"
                # Once per outage of this group, not once per poll.
                level = logging.DEBUG if group in self._failing_groups else logging.WARNING
                log.log(level, "reading a consumer group failed", extra=kv(group=group, error=_describe(exc)))
            raw.append(found)
        return raw

    def _describe_groups(self, wanted: list[str]) -> dict[str, Any]:
        """Each group's description, or the exception its request ended with. A coordinator that is loading or
        moving (a fresh broker, a restart) is asked again until ``timeout``: it is a matter of a second or two,
        and "could not read" on a healthy cluster would page someone for nothing."""
        found: dict[str, Any] = {}
        deadline = time.monotonic() + self._timeout
        pending = wanted
        while pending:
            futures = self._admin.describe_consumer_groups(pending, request_timeout=self._timeout)
            again: list[str] = []
            for group in pending:
                try:
                    found[group] = futures[group].result(timeout=self._timeout + 5)
                except (KafkaException, TimeoutError) as exc:
                    found[group] = exc
                    if isinstance(exc, KafkaException) and _code(exc) in _COORDINATOR_NOT_READY:
                        again.append(group)
            if not again or time.monotonic() + _RETRY_PAUSE >= deadline:
                break
            time.sleep(_RETRY_PAUSE)
            pending = again
        return found

    # -- helpers ------------------------------------------------------------------------------------------------

    def _result(self, future: Future[_T], what: str) -> _T:
        try:
            return future.result(timeout=self._timeout + 5)
        except (KafkaException, TimeoutError) as exc:
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
            except TimeoutError:
                found[(tp.topic, tp.partition)] = f"offsets of {tp.topic}[{tp.partition}] did not come in time"
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
        # librdkafka keeps a partition's pause flag across unassign/assign: a later round re-reading the same
        # partition at another offset would wait for nothing.
        consumer.resume([TopicPartition(t, p) for t, p in batch])
        consumer.unassign()
        return found


def _code(exc: KafkaException) -> Any:
    error = exc.args[0] if exc.args else None
    return error.code() if isinstance(error, KafkaError) else None


def _describe(exc: Exception) -> str:
    error = exc.args[0] if exc.args else None
    if isinstance(error, KafkaError):
        return f"{error.name()}: {error.str()}"
    return str(exc) or type(exc).__name__


def _destroy(admin: AdminClient) -> None:
    """Destroy ``admin`` now, in this thread. Left to the garbage collector, a dropped client can be freed inside
    one of librdkafka's own threads (a request future's callback allocating), where ``rd_kafka_destroy`` aborts the
    process (confluent-kafka-python #2129/#2131); the monitor drops one after every outage."""
    with contextlib.suppress(Exception):  # already destroyed
        admin.__exit__(None, None, None)
