"""The same figures under the names other lag tools export, so their dashboards and alerts work unchanged.

kafka-lag-exporter (labels ``cluster_name``, ``group``, ``topic``, ``partition``, ``member_host``,
``consumer_id``, ``client_id``; offsets in records, time lag in seconds)
    ``kafka_consumergroup_group_offset``          committed offset
    ``kafka_consumergroup_group_lag``             offset lag
    ``kafka_consumergroup_group_lag_seconds``     time lag (exact here: the age of the record at the position,
                                                  where kafka-lag-exporter interpolates)
    ``kafka_consumergroup_group_max_lag``         largest partition lag (``cluster_name, group, is_simple_consumer``)
    ``kafka_consumergroup_group_max_lag_seconds`` largest time lag (same labels)
    ``kafka_consumergroup_group_sum_lag``         summed lag (``cluster_name, group``)
    ``kafka_consumergroup_group_topic_sum_lag``   summed lag per topic (``cluster_name, group, topic``)
    ``kafka_partition_latest_offset``             high watermark (``cluster_name, topic, partition``)
    ``kafka_partition_earliest_offset``           log start offset (same labels)
burrow_exporter (labels ``cluster``, ``group``, ``topic``, ``partition``; statuses numbered as it numbers them)
    ``kafka_burrow_partition_lag``, ``kafka_burrow_partition_current_offset``, ``kafka_burrow_partition_max_offset``,
    ``kafka_burrow_partition_status``, ``kafka_burrow_total_lag``, ``kafka_burrow_status``,
    ``kafka_burrow_topic_partition_offset``

Status numbers (:data:`BURROW_EXPORTER_STATUS`): NOTFOUND 1, OK 2, WARN 3, ERR 4, STOP 5, STALL 6, REWIND 7, so
a ported alert such as ``kafka_burrow_status > 3`` fires on ERR and worse. Members: where no live member holds
a partition, ``member_host``, ``consumer_id`` and ``client_id`` are empty (Prometheus treats an empty label as
absent).
"""

from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily, Metric

from omnichannel.lag.model import LagReport

__all__ = ["BURROW_EXPORTER_STATUS", "compatible_families"]

#: burrow_exporter's numbering: Burrow's own status constants plus one (0 is left for "unknown").
BURROW_EXPORTER_STATUS = {"NOTFOUND": 1, "OK": 2, "WARN": 3, "ERR": 4, "STOP": 5, "STALL": 6, "REWIND": 7}

_KLE_PARTITION = ["cluster_name", "group", "topic", "partition", "member_host", "consumer_id", "client_id"]
_KLE_GROUP = ["cluster_name", "group", "is_simple_consumer"]
_BURROW_PARTITION = ["cluster", "group", "topic", "partition"]


def compatible_families(report: LagReport) -> list[Metric]:
    """kafka-lag-exporter's and burrow_exporter's families, filled from ``report`` (empty ones when it has
    no groups, so the names can be listed without a broker)."""
    cluster = report.cluster_name

    def gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, doc, labels=labels)

    offset = gauge("kafka_consumergroup_group_offset", "Committed offset", _KLE_PARTITION)
    lag = gauge("kafka_consumergroup_group_lag", "Offset lag of the group on the partition", _KLE_PARTITION)
    lag_s = gauge("kafka_consumergroup_group_lag_seconds", "Time lag in seconds", _KLE_PARTITION)
    max_lag = gauge("kafka_consumergroup_group_max_lag", "Largest partition offset lag of the group", _KLE_GROUP)
    max_lag_s = gauge("kafka_consumergroup_group_max_lag_seconds", "Largest partition time lag", _KLE_GROUP)
    sum_lag = gauge("kafka_consumergroup_group_sum_lag", "Offset lag summed", ["cluster_name", "group"])
    topic_sum = gauge(
        "kafka_consumergroup_group_topic_sum_lag", "Offset lag summed per topic", ["cluster_name", "group", "topic"]
    )
    latest = gauge("kafka_partition_latest_offset", "High watermark", ["cluster_name", "topic", "partition"])
    earliest = gauge("kafka_partition_earliest_offset", "Log start offset", ["cluster_name", "topic", "partition"])

    b_lag = gauge("kafka_burrow_partition_lag", "Offset lag (burrow_exporter name)", _BURROW_PARTITION)
    b_current = gauge("kafka_burrow_partition_current_offset", "Committed offset", _BURROW_PARTITION)
    b_max = gauge("kafka_burrow_partition_max_offset", "High watermark", _BURROW_PARTITION)
    b_pstatus = gauge(
        "kafka_burrow_partition_status", "1 NOTFOUND 2 OK 3 WARN 4 ERR 5 STOP 6 STALL 7 REWIND", _BURROW_PARTITION
    )
    b_total = gauge("kafka_burrow_total_lag", "Offset lag summed over the group", ["cluster", "group"])
    b_status = gauge("kafka_burrow_status", "Group status: 1 NOTFOUND 2 OK 3 WARN 4 ERR", ["cluster", "group"])
    b_topic = gauge("kafka_burrow_topic_partition_offset", "High watermark", ["cluster", "topic", "partition"])

    seen_partitions: set[tuple[str, int]] = set()
    for group in report.groups:
        g = group.group
        b_status.add_metric([cluster, g], BURROW_EXPORTER_STATUS[group.status.value])
        if group.lag is not None:
            sum_lag.add_metric([cluster, g], group.lag)
            b_total.add_metric([cluster, g], group.lag)
        simple = "true" if group.simple else "false"
        if group.max_lag is not None and group.max_lag.lag is not None:
            max_lag.add_metric([cluster, g, simple], group.max_lag.lag)
        if group.time_lag is not None:
            max_lag_s.add_metric([cluster, g, simple], group.time_lag)
        for topic in group.topics:
            if topic.lag is not None:
                topic_sum.add_metric([cluster, g, topic.topic], topic.lag)
            for p in topic.partitions:
                part = str(p.partition)
                m = p.member
                labels = [
                    cluster,
                    g,
                    p.topic,
                    part,
                    *(("", "", "") if m is None else (m.host, m.consumer_id, m.client_id)),
                ]
                burrow = [cluster, g, p.topic, part]
                b_pstatus.add_metric(burrow, BURROW_EXPORTER_STATUS[p.status.value])
                if p.committed is not None:
                    offset.add_metric(labels, p.committed)
                    b_current.add_metric(burrow, p.committed)
                if p.lag is not None:
                    lag.add_metric(labels, p.lag)
                    b_lag.add_metric(burrow, p.lag)
                if p.time_lag is not None:
                    lag_s.add_metric(labels, p.time_lag)
                if p.end is not None:
                    b_max.add_metric(burrow, p.end)
                # Partition series are per partition, not per group: several groups read the same one.
                if (p.topic, p.partition) not in seen_partitions:
                    seen_partitions.add((p.topic, p.partition))
                    if p.end is not None:
                        latest.add_metric([cluster, p.topic, part], p.end)
                        b_topic.add_metric([cluster, p.topic, part], p.end)
                    if p.earliest is not None:
                        earliest.add_metric([cluster, p.topic, part], p.earliest)
    return [
        offset, lag, lag_s, max_lag, max_lag_s, sum_lag, topic_sum, latest, earliest,
        b_lag, b_current, b_max, b_pstatus, b_total, b_status, b_topic,
    ]  # fmt: skip
