"""Prometheus exposition of the monitor's latest report (``GET /metrics`` of ``omnichannel lag serve``).

A custom collector renders the current report at scrape time, so a group or partition that disappears
disappears from the scrape too (no stale label sets). While Kafka does not answer, the last figures read are
still exported and ``omnichannel_lag_monitor_broker_up`` is 0: alert on that first.

Per partition (labels ``group``, ``topic``, ``partition``)
    ``omnichannel_consumer_lag_offsets``          offset lag (absent where nothing is committed)
    ``omnichannel_consumer_lag_seconds``          time lag: age of the record at the read position
    ``omnichannel_consumer_committed_offset``     committed offset
    ``omnichannel_consumer_end_offset``           high watermark of the partition
    ``omnichannel_consumer_records_lost``         records retention deleted before the group read them
    ``omnichannel_consumer_partition_status``     0 OK, 1 WARN, 2 STALL, 3 STOP, 4 REWIND
Per topic (``group``, ``topic``)
    ``omnichannel_consumer_topic_lag_offsets``    summed offset lag
Per group (``group``)
    ``omnichannel_consumer_group_lag_offsets``    summed offset lag
    ``omnichannel_consumer_group_max_lag_offsets`` largest partition lag
    ``omnichannel_consumer_group_lag_seconds``    largest time lag (a maximum, never a sum)
    ``omnichannel_consumer_group_status``         0 OK, 1 WARN, 2 ERR, 3 NOTFOUND
    ``omnichannel_consumer_group_state``          1 for the current state, 0 for the others (label ``state``)
    ``omnichannel_consumer_group_members``        members in the group
The monitor itself
    ``omnichannel_lag_monitor_broker_up``         1 when the last poll reached Kafka
    ``omnichannel_lag_monitor_last_success_timestamp_seconds``
    ``omnichannel_lag_monitor_polls_total`` / ``omnichannel_lag_monitor_poll_errors_total``
The same figures under kafka-lag-exporter's and burrow_exporter's names and labels
    see :mod:`omnichannel.lag.compat_metrics`
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from omnichannel.lag.compat_metrics import compatible_families
from omnichannel.lag.model import GroupState, LagReport
from omnichannel.lag.monitor import LagMonitor

__all__ = ["LagCollector", "lag_metric_names", "lag_registry"]

_P = ["group", "topic", "partition"]


class LagCollector(Collector):
    """Builds every metric family from ``monitor.latest()`` on each scrape."""

    def __init__(self, monitor: LagMonitor) -> None:
        self._monitor = monitor

    def collect(self) -> Iterator[Metric]:
        """Yield the families listed in the module docstring."""
        polls, failures = self._monitor.counters()
        yield from lag_families(self._monitor.latest(), polls, failures)


def lag_metric_names() -> set[str]:
    """Every family name ``/metrics`` can hold (read from the families themselves, for dashboards' checks)."""
    empty = LagReport(taken_at=0.0, broker_ok=True, bootstrap="", window_seconds=0.0, interval_seconds=0.0)
    return {family.name for family in lag_families(empty, 0, 0)}


def lag_families(report: LagReport | None, polls: int, failures: int) -> Iterator[Metric]:
    """The families of one scrape: the monitor's own, then (with a report) the figures in every naming."""
    up = GaugeMetricFamily("omnichannel_lag_monitor_broker_up", "1 when the last poll reached Kafka, else 0")
    up.add_metric([], 1.0 if report is not None and report.broker_ok else 0.0)
    yield up
    last = GaugeMetricFamily(
        "omnichannel_lag_monitor_last_success_timestamp_seconds", "Unix time of the last successful poll"
    )
    if report is not None and report.last_success_at is not None:
        last.add_metric([], report.last_success_at)
    yield last
    yield CounterMetricFamily("omnichannel_lag_monitor_polls", "Successful polls of Kafka", value=polls)
    yield CounterMetricFamily("omnichannel_lag_monitor_poll_errors", "Polls Kafka did not answer", value=failures)
    if report is None:
        return

    lag = GaugeMetricFamily("omnichannel_consumer_lag_offsets", "Records the group still has to read", labels=_P)
    seconds = GaugeMetricFamily(
        "omnichannel_consumer_lag_seconds", "Age of the record at the group's read position", labels=_P
    )
    committed = GaugeMetricFamily("omnichannel_consumer_committed_offset", "Committed offset", labels=_P)
    end = GaugeMetricFamily("omnichannel_consumer_end_offset", "High watermark of the partition", labels=_P)
    lost = GaugeMetricFamily(
        "omnichannel_consumer_records_lost", "Records deleted by retention before the group read them", labels=_P
    )
    pstatus = GaugeMetricFamily(
        "omnichannel_consumer_partition_status", "0 OK, 1 WARN, 2 STALL, 3 STOP, 4 REWIND", labels=_P
    )
    tlag = GaugeMetricFamily(
        "omnichannel_consumer_topic_lag_offsets", "Offset lag summed over a topic", labels=["group", "topic"]
    )
    glag = GaugeMetricFamily("omnichannel_consumer_group_lag_offsets", "Offset lag summed", labels=["group"])
    gmax = GaugeMetricFamily(
        "omnichannel_consumer_group_max_lag_offsets", "Largest partition offset lag", labels=["group"]
    )
    gsec = GaugeMetricFamily("omnichannel_consumer_group_lag_seconds", "Largest partition time lag", labels=["group"])
    gstatus = GaugeMetricFamily(
        "omnichannel_consumer_group_status", "0 OK, 1 WARN, 2 ERR, 3 NOTFOUND", labels=["group"]
    )
    gstate = GaugeMetricFamily(
        "omnichannel_consumer_group_state", "1 for the group's current state", labels=["group", "state"]
    )
    members = GaugeMetricFamily("omnichannel_consumer_group_members", "Members in the group", labels=["group"])

    for group in report.groups:
        g = group.group
        gstatus.add_metric([g], group.status.code)
        for state in GroupState:
            gstate.add_metric([g, state.value], 1.0 if state is group.state else 0.0)
        members.add_metric([g], group.members)
        if group.lag is not None:
            glag.add_metric([g], group.lag)
        if group.max_lag is not None and group.max_lag.lag is not None:
            gmax.add_metric([g], group.max_lag.lag)
        if group.time_lag is not None:
            gsec.add_metric([g], group.time_lag)
        for topic in group.topics:
            if topic.lag is not None:
                tlag.add_metric([g, topic.topic], topic.lag)
            for p in topic.partitions:
                labels = [g, p.topic, str(p.partition)]
                pstatus.add_metric(labels, p.status.code)
                if p.lag is not None:
                    lag.add_metric(labels, p.lag)
                if p.time_lag is not None:
                    seconds.add_metric(labels, p.time_lag)
                if p.committed is not None:
                    committed.add_metric(labels, p.committed)
                if p.end is not None:
                    end.add_metric(labels, p.end)
                lost.add_metric(labels, p.records_lost)
    yield from (lag, seconds, committed, end, lost, pstatus, tlag, glag, gmax, gsec, gstatus, gstate, members)
    yield from compatible_families(report)


def lag_registry(monitor: LagMonitor) -> CollectorRegistry:
    """A registry of its own (not the process-wide default) holding only the lag metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LagCollector(monitor))
    return registry
