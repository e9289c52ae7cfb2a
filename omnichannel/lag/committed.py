"""Committed offsets of consumer groups, read through consumers rather than the AdminClient.

Why not ``AdminClient.list_consumer_group_offsets``: in librdkafka (seen in 2.4-2.16) an OffsetFetch answered
``NOT_COORDINATOR`` or ``COORDINATOR_NOT_AVAILABLE`` (a fresh broker, a restart, a coordinator moving in a rolling
restart) makes the admin client ask *its* consumer-group handle to look the coordinator up again, and an admin
client has none: the whole process dies of a segmentation fault (librdkafka #5040, confluent-kafka-javascript
#374). A consumer built with ``group.id`` set to the group has that handle, so the same error only triggers the
re-query it was meant to. The consumer never subscribes, so it joins nothing, and never commits.

One consumer per group is kept (least recently used ones closed beyond :data:`MAX_CACHED`), and every group's
request is in flight at once on a small thread pool, as the admin requests were.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Collection, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

__all__ = ["MAX_CACHED", "CommittedOffsetReader"]

_TP = tuple[str, int]
#: Consumers kept open between polls (each holds librdkafka threads and a coordinator connection).
MAX_CACHED = 32
_THREADS = 8


class CommittedOffsetReader:
    """Reads groups' committed offsets; one per lag source, used from one thread (the monitor's)."""

    def __init__(self, config: Mapping[str, Any], timeout: float) -> None:
        self._config = dict(config)
        self._timeout = timeout
        self._consumers: OrderedDict[str, Consumer] = OrderedDict()
        self._pool = ThreadPoolExecutor(_THREADS, thread_name_prefix="lag-committed")
        self._in_flight: list[Future[dict[_TP, int]]] = []

    def fetch(self, groups: Collection[str], partitions: Collection[_TP]) -> dict[str, Future[dict[_TP, int]]]:
        """Start reading each group's committed offset on ``partitions`` (OffsetFetch cannot ask for "all" through
        a consumer, so the caller passes every partition of the cluster's topics). Each future gives the partitions
        the group has committed, ``{(topic, partition): offset}``, or raises ``KafkaException``."""
        self._settle()  # no consumer is evicted or closed while a request of the last poll still uses it
        wanted = [TopicPartition(topic, partition) for topic, partition in sorted(partitions)]
        futures = {group: self._pool.submit(self._committed, self._consumer(group), wanted) for group in groups}
        self._in_flight = list(futures.values())
        self._evict(keep=set(groups))
        return futures

    @property
    def open_consumers(self) -> int:
        """How many consumers are kept open between polls (at most :data:`MAX_CACHED` plus one poll's groups)."""
        return len(self._consumers)

    def close(self) -> None:
        """Wait for requests in flight, then close every consumer; idempotent."""
        self._settle()
        self._pool.shutdown(wait=True)
        while self._consumers:
            _group, consumer = self._consumers.popitem()
            _close(consumer)

    def reset(self) -> None:
        """Close the cached consumers (after an outage a fresh client recovers at once; see the lag source)."""
        self._settle()
        while self._consumers:
            _group, consumer = self._consumers.popitem()
            _close(consumer)

    def _consumer(self, group: str) -> Consumer:
        consumer = self._consumers.get(group)
        if consumer is None:
            consumer = Consumer(
                {
                    **self._config,
                    "group.id": group,
                    "enable.auto.commit": False,
                    "enable.auto.offset.store": False,
                }
            )
            self._consumers[group] = consumer
        self._consumers.move_to_end(group)
        return consumer

    def _committed(self, consumer: Consumer, wanted: list[TopicPartition]) -> dict[_TP, int]:
        if not wanted:
            return {}
        found: dict[_TP, int] = {}
        answer = consumer.committed(wanted, timeout=self._timeout)
        consumer.poll(0)  # serve queued librdkafka log lines (they go to the DEBUG logger); it joins nothing
        for tp in answer:
            if tp.error is not None:  # a partial answer would read as "nothing committed": the group fails instead
                raise KafkaException(tp.error)
            if tp.offset >= 0:  # negative: librdkafka's "no committed offset" (OFFSET_INVALID)
                found[(tp.topic, tp.partition)] = tp.offset
        return found

    def _evict(self, keep: set[str]) -> None:
        # Only consumers of groups not asked for in this poll: the others are in use by the requests just started.
        for group in [g for g in self._consumers if g not in keep][: max(0, len(self._consumers) - MAX_CACHED)]:
            _close(self._consumers.pop(group))

    def _settle(self) -> None:
        # Each request is bounded by its own ``timeout``; waiting here is what lets a consumer be closed safely.
        wait(self._in_flight)
        self._in_flight = []


def _close(consumer: Consumer) -> None:
    with contextlib.suppress(RuntimeError):  # already closed
        consumer.close()
