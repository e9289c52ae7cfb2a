"""The metric contract stream processors export, so lag, latency and freshness line up on one dashboard.

The lag monitor reads *positions* from the broker; only a processor knows when a record's effect reached
Redis. Processors import this module (it depends on ``prometheus_client`` alone, never on Kafka or the
monitor) and call :meth:`ProcessorMetrics.record_applied` once per record (or
:meth:`ProcessorMetrics.records_applied` once per batch), *after* its Redis write succeeded::

    from omnichannel.lag.processor_metrics import processor_metrics

    metrics = processor_metrics()                      # process-wide, on the default registry
    ...
    await redis_write(...)
    metrics.record_applied(group, topic, partition, record_timestamp=ts_ms / 1000)

and expose the default registry as usual (``prometheus_client.start_http_server(port)``).

Metrics (``group`` is the processor's consumer group, as in the monitor's metrics):

``omnichannel_processor_end_to_end_latency_seconds`` (histogram; labels ``group``, ``topic``)
    Time from the record's Kafka timestamp to its effect applied in Redis. No ``partition`` label: a
    histogram per partition multiplies series by the bucket count for little insight; the per-partition
    view is the monitor's ``omnichannel_consumer_lag_seconds``.
``omnichannel_processor_last_processed_timestamp_seconds`` (gauge; labels ``group``, ``topic``, ``partition``)
    Unix time at which the processor last applied a record from that partition.
``omnichannel_processor_last_processed_record_timestamp_seconds`` (gauge; same labels)
    The Kafka timestamp of that record; ``time() - this`` is how stale the applied state is.

Creating the metrics has a side effect (registration), so importing this module creates nothing:
:func:`processor_metrics` builds them once per process, and tests can build a private
:class:`ProcessorMetrics` on their own ``CollectorRegistry``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Gauge, Histogram

__all__ = [
    "END_TO_END_LATENCY",
    "LAST_PROCESSED",
    "LAST_PROCESSED_RECORD",
    "LATENCY_BUCKETS",
    "ProcessorMetrics",
    "processor_metrics",
]

END_TO_END_LATENCY = "omnichannel_processor_end_to_end_latency_seconds"
LAST_PROCESSED = "omnichannel_processor_last_processed_timestamp_seconds"
LAST_PROCESSED_RECORD = "omnichannel_processor_last_processed_record_timestamp_seconds"
#: From 5 ms (a warm pipeline) to 10 min (replaying after an outage); the default buckets stop at 10 s.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


class ProcessorMetrics:
    """The three metrics of the contract, registered on ``registry``."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.latency = Histogram(
            END_TO_END_LATENCY,
            "Seconds from a record's Kafka timestamp to its effect applied in Redis",
            ["group", "topic"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.last_processed = Gauge(
            LAST_PROCESSED,
            "Unix time the processor last applied a record from the partition",
            ["group", "topic", "partition"],
            registry=registry,
        )
        self.last_processed_record = Gauge(
            LAST_PROCESSED_RECORD,
            "Kafka timestamp of the last record applied from the partition",
            ["group", "topic", "partition"],
            registry=registry,
        )

    def record_applied(
        self, group: str, topic: str, partition: int, *, record_timestamp: float, applied_at: float | None = None
    ) -> None:
        """Record that a record (Kafka timestamp ``record_timestamp``, Unix seconds) reached Redis.

        ``applied_at`` defaults to now. Producer clocks can run ahead: negative latencies count as 0.
        """
        self.records_applied(group, [(topic, partition, record_timestamp)], applied_at=applied_at)

    def records_applied(
        self, group: str, records: Iterable[tuple[str, int, float]], *, applied_at: float | None = None
    ) -> None:
        """:meth:`record_applied` for each ``(topic, partition, record_timestamp)``, in the order given (a batch).

        Same samples as one call per record, at a fraction of the cost: each label set is looked up once, and
        each partition's gauges are set once, to its last record's values.
        """
        applied = time.time() if applied_at is None else applied_at
        histograms: dict[str, Any] = {}
        last: dict[tuple[str, int], float] = {}
        for topic, partition, record_timestamp in records:
            histogram = histograms.get(topic)
            if histogram is None:
                histogram = histograms[topic] = self.latency.labels(group, topic)
            histogram.observe(max(0.0, applied - record_timestamp))
            last[(topic, partition)] = record_timestamp
        for (topic, partition), record_timestamp in last.items():
            self.last_processed.labels(group, topic, str(partition)).set(applied)
            self.last_processed_record.labels(group, topic, str(partition)).set(record_timestamp)


_default: ProcessorMetrics | None = None
_default_lock = threading.Lock()


def processor_metrics() -> ProcessorMetrics:
    """The process-wide instance on the default registry, created on first call."""
    global _default
    with _default_lock:
        if _default is None:
            _default = ProcessorMetrics()
        return _default
