"""The figures under other tools' names: kafka-lag-exporter and burrow_exporter series on ``/metrics``, and
Burrow's ``/v3/kafka`` API, checked field by field against the shapes those tools document."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from lag_harness import FakeClock, KafkaKit, MakeMonitor
from prometheus_client.parser import text_string_to_metric_families

from omnichannel.lag.monitor import LagMonitor
from omnichannel.lag.web import create_app

Scenario = tuple[LagMonitor, str, str]


@pytest.fixture
def live(kit: KafkaKit, make_monitor: MakeMonitor, clock: FakeClock) -> Scenario:
    """A live group (one subscribed member) 6 records behind on partition 0 of 2, read three times."""
    topic, group = kit.topic("compat", partitions=2), kit.group("compat")
    kit.produce(topic, 10, partition=0, timestamp=clock.now - 30)
    kit.produce(topic, 4, partition=1, timestamp=clock.now - 30)
    kit.commit(group, topic, {0: 4, 1: 4})
    kit.member(group, topic)  # joins after the commit: it owns both partitions and never commits
    monitor = make_monitor([group], cluster_name="prod-eu")
    for _ in range(3):
        monitor.poll()
        clock.advance(1)
    return monitor, topic, group


@pytest.fixture
def client(live: Scenario) -> Iterator[TestClient]:
    with TestClient(create_app(live[0], poll=False)) as http:
        yield http


def _samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found.setdefault(s.name, []).append((s.labels, s.value))
    return found


def test_metrics_carry_kafka_lag_exporter_series_for_a_live_group(client: TestClient, live: Scenario) -> None:
    _monitor, topic, group = live
    samples = _samples(client.get("/metrics").text)

    def one(name: str, **labels: str) -> tuple[dict[str, str], float]:
        hits = [(lbl, v) for lbl, v in samples.get(name, []) if all(lbl.get(k) == x for k, x in labels.items())]
        assert len(hits) == 1, (name, labels, samples.get(name))
        return hits[0]

    p0 = {"cluster_name": "prod-eu", "group": group, "topic": topic, "partition": "0"}
    labels, value = one("kafka_consumergroup_group_lag", **p0)
    assert value == 6
    # Every label kafka-lag-exporter puts on a partition series; the member's come from the coordinator.
    assert set(labels) == {"cluster_name", "group", "topic", "partition", "member_host", "consumer_id", "client_id"}
    assert labels["client_id"] and labels["consumer_id"].startswith(labels["client_id"]) and labels["member_host"]
    assert one("kafka_consumergroup_group_offset", **p0)[1] == 4
    assert one("kafka_consumergroup_group_lag_seconds", **p0)[1] == pytest.approx(32.0, abs=0.01)
    assert one("kafka_consumergroup_group_lag", **{**p0, "partition": "1"})[1] == 0

    g = {"cluster_name": "prod-eu", "group": group}
    labels, value = one("kafka_consumergroup_group_max_lag", **g)
    assert value == 6 and labels["is_simple_consumer"] == "false"
    assert one("kafka_consumergroup_group_max_lag_seconds", **g)[1] == pytest.approx(32.0, abs=0.01)
    assert one("kafka_consumergroup_group_sum_lag", **g)[1] == 6
    assert one("kafka_consumergroup_group_topic_sum_lag", **g, topic=topic)[1] == 6
    assert one("kafka_partition_latest_offset", cluster_name="prod-eu", topic=topic, partition="0")[1] == 10
    assert one("kafka_partition_earliest_offset", cluster_name="prod-eu", topic=topic, partition="0")[1] == 0


def test_metrics_number_statuses_as_burrow_exporter_does(client: TestClient, live: Scenario) -> None:
    _monitor, topic, group = live
    samples = _samples(client.get("/metrics").text)
    status = {lbl["group"]: v for lbl, v in samples["kafka_burrow_status"] if lbl["cluster"] == "prod-eu"}
    assert status[group] == 2  # OK; a ported `kafka_burrow_status > 3` fires on ERR (4) and worse
    partition = {
        (lbl["topic"], lbl["partition"]): v
        for lbl, v in samples["kafka_burrow_partition_status"]
        if lbl["group"] == group
    }
    assert partition == {(topic, "0"): 2, (topic, "1"): 2}
    lag = {lbl["partition"]: v for lbl, v in samples["kafka_burrow_partition_lag"] if lbl["group"] == group}
    assert lag == {"0": 6, "1": 0}
    assert [v for lbl, v in samples["kafka_burrow_total_lag"] if lbl["group"] == group] == [6]


def test_lag_monitor_alone_exports_every_figure_once_per_partition_when_groups_share_it(
    kit: KafkaKit, make_monitor: MakeMonitor
) -> None:
    topic, first, second = kit.topic("shared"), kit.group("shared-a"), kit.group("shared-b")
    kit.produce(topic, 5)
    kit.commit(first, topic, {0: 1})
    kit.commit(second, topic, {0: 3})
    monitor = make_monitor([first, second])
    monitor.poll()
    with TestClient(create_app(monitor, poll=False)) as http:
        samples = _samples(http.get("/metrics").text)
    latest = [lbl for lbl, _ in samples["kafka_partition_latest_offset"] if lbl["topic"] == topic]
    assert len(latest) == 1  # one series per partition, not per group reading it (Prometheus rejects duplicates)


# -- Burrow's API -----------------------------------------------------------------------------------------------

_OFFSET_FIELDS = {"offset", "timestamp", "observedAt", "lag"}
_PARTITION_FIELDS = {"topic", "partition", "owner", "client_id", "status", "start", "end", "current_lag", "complete"}
_STATUS_FIELDS = {"cluster", "group", "status", "complete", "partitions", "partition_count", "maxlag", "totallag"}


def _envelope(body: dict[str, Any], path: str, *extra: str) -> None:
    assert set(body) == {"error", "message", "request", *extra}
    assert body["request"] == {"url": path, "host": socket.gethostname()}
    assert isinstance(body["error"], bool) and isinstance(body["message"], str)


def test_burrow_cluster_and_consumer_lists(client: TestClient, live: Scenario) -> None:
    _monitor, _topic, group = live
    clusters = client.get("/v3/kafka")
    assert clusters.status_code == 200
    _envelope(clusters.json(), "/v3/kafka", "clusters")
    assert clusters.json()["clusters"] == ["prod-eu"] and clusters.json()["error"] is False

    detail = client.get("/v3/kafka/prod-eu").json()
    _envelope(detail, "/v3/kafka/prod-eu", "module")
    module = detail["module"]
    assert set(module) == {"class-name", "servers", "client-profile", "topic-refresh", "offset-refresh"}
    assert module["class-name"] == "kafka" and module["servers"] == [live[0].source.bootstrap]
    assert set(module["client-profile"]) == {"name", "client-id", "kafka-version", "tls", "sasl"}

    consumers = client.get("/v3/kafka/prod-eu/consumer").json()
    _envelope(consumers, "/v3/kafka/prod-eu/consumer", "consumers")
    assert consumers["message"] == "consumer list returned" and consumers["consumers"] == [group]

    unknown = client.get("/v3/kafka/elsewhere/consumer")
    assert unknown.status_code == 404
    _envelope(unknown.json(), "/v3/kafka/elsewhere/consumer")
    assert unknown.json()["error"] is True and unknown.json()["message"] == "cluster not found"


def test_burrow_consumer_lag_has_burrows_shape_field_by_field(client: TestClient, live: Scenario) -> None:
    monitor, topic, group = live
    path = f"/v3/kafka/prod-eu/consumer/{group}/lag"
    response = client.get(path)
    assert response.status_code == 200
    body = response.json()
    _envelope(body, path, "status")
    assert (body["error"], body["message"]) == (False, "consumer status returned")

    status = body["status"]
    assert set(status) == _STATUS_FIELDS
    assert (status["cluster"], status["group"], status["status"]) == ("prod-eu", group, "OK")
    assert (status["partition_count"], status["totallag"]) == (2, 6)
    assert isinstance(status["complete"], float) and 0.0 <= status["complete"] <= 1.0
    assert [(p["topic"], p["partition"]) for p in status["partitions"]] == [(topic, 0), (topic, 1)]

    read_at = [int(s.at * 1000) for s in monitor.window(group)[(topic, 0)][1]]
    for p in status["partitions"]:
        assert set(p) == _PARTITION_FIELDS
        assert p["status"] == "OK" and isinstance(p["complete"], float)
        assert p["owner"] and p["client_id"]  # the live member's host and client id
        for edge in ("start", "end"):
            assert set(p[edge]) == _OFFSET_FIELDS
            assert all(isinstance(p[edge][k], int) for k in _OFFSET_FIELDS)
            assert p[edge]["offset"] == 4
    p0 = status["partitions"][0]
    assert p0["current_lag"] == 6 and p0["start"]["lag"] == 6 and p0["end"]["lag"] == 6
    # start/end are the oldest and newest samples of the window (observedAt: when the monitor read them).
    assert (p0["start"]["observedAt"], p0["end"]["observedAt"]) == (read_at[0], read_at[-1])
    assert p0["start"]["timestamp"] <= p0["end"]["timestamp"] <= p0["end"]["observedAt"]
    assert status["maxlag"] == p0

    # /status lists only the partitions that are not OK (none here), with the same summary.
    brief = client.get(f"/v3/kafka/prod-eu/consumer/{group}/status").json()["status"]
    assert brief["partitions"] == [] and brief["maxlag"] == p0 and brief["totallag"] == 6


def test_burrow_consumer_lag_is_404_notfound_for_an_unknown_group(client: TestClient) -> None:
    path = "/v3/kafka/prod-eu/consumer/no-such-group/lag"
    response = client.get(path)
    assert response.status_code == 404
    body = response.json()
    _envelope(body, path, "status")
    assert body["error"] is False  # as Burrow: the status says NOTFOUND
    assert body["status"] == {
        "cluster": "prod-eu",
        "group": "no-such-group",
        "status": "NOTFOUND",
        "complete": 1.0,
        "partitions": [],
        "partition_count": 0,
        "maxlag": None,
        "totallag": 0,
    }


def test_group_allow_and_deny_patterns_choose_the_groups_read(kit: KafkaKit, make_monitor: MakeMonitor) -> None:
    from omnichannel.lag.select import GroupSelector

    topic = kit.topic("select")
    kit.produce(topic, 3)
    orders, orders_test, billing = kit.group("orders"), kit.group("orders-test"), kit.group("billing")
    for group in (orders, orders_test, billing):
        kit.commit(group, topic, {0: 1})
    token = orders.rsplit("-", 1)[-1]
    selector = GroupSelector(allow=(f"lag-g-orders.*-{token}",), deny=(r".*-test-.*",))
    report = make_monitor(None, select=selector).poll()
    seen = {g.group for g in report.groups if g.group.endswith(token)}
    assert seen == {orders}
