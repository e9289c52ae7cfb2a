"""``/metrics``, ``GET /v1/ops/lag``, the history and the page's HTML, served from a monitor on the real broker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from lag_harness import FakeClock, KafkaKit, MakeMonitor
from prometheus_client.parser import text_string_to_metric_families

from omnichannel.lag.monitor import LagMonitor
from omnichannel.lag.web import create_app


@pytest.fixture
def scenario(kit: KafkaKit, make_monitor: MakeMonitor, clock: FakeClock) -> tuple[LagMonitor, str, str]:
    """One group behind by 6 records on partition 0 (of 2), read three times one second apart."""
    topic, group = kit.topic("http", partitions=2), kit.group("http")
    kit.produce(topic, 10, partition=0, timestamp=clock.now - 20)
    kit.produce(topic, 4, partition=1, timestamp=clock.now - 20)
    kit.commit(group, topic, {0: 4, 1: 4})
    monitor = make_monitor(None)  # every group on the cluster, as `lag serve` does by default
    for _ in range(3):
        monitor.poll()
        clock.advance(1)
    return monitor, topic, group


@pytest.fixture
def client(scenario: tuple[LagMonitor, str, str]) -> Iterator[TestClient]:
    with TestClient(create_app(scenario[0], poll=False)) as http:  # the test drives the polls
        yield http


def test_lag_json_api_reports_group_topic_and_partition_figures(
    client: TestClient, scenario: tuple[LagMonitor, str, str]
) -> None:
    _monitor, topic, group = scenario
    everything = client.get("/v1/ops/lag")
    assert everything.status_code == 200
    assert group in [g["group"] for g in everything.json()["groups"]]

    response = client.get("/v1/ops/lag", params={"group": group})
    assert response.status_code == 200
    body = response.json()
    assert body["broker"]["ok"] is True and body["broker"]["error"] is None
    assert body["window_seconds"] == 3.0
    [found] = body["groups"]
    assert (found["group"], found["status"], found["state"], found["lag"]) == (group, "OK", "empty", 6)
    assert found["max_lag"] == {"topic": topic, "partition": 0, "lag": 6}
    [t] = found["topics"]
    assert [(p["partition"], p["committed"], p["end"], p["lag"]) for p in t["partitions"]] == [
        (0, 4, 10, 6),
        (1, 4, 4, 0),
    ]
    assert t["partitions"][0]["time_lag_seconds"] == pytest.approx(22.0, abs=0.01)
    assert t["partitions"][1]["time_lag_seconds"] == 0.0


def test_lag_json_api_says_notfound_for_an_unknown_group(client: TestClient) -> None:
    response = client.get("/v1/ops/lag", params={"group": "no-such-group"})
    assert response.status_code == 404
    body = response.json()
    assert "does not exist" in body["error"]
    assert [(g["group"], g["status"]) for g in body["groups"]] == [("no-such-group", "NOTFOUND")]


def test_lag_metrics_use_conventional_names_and_labels(
    client: TestClient, scenario: tuple[LagMonitor, str, str]
) -> None:
    _monitor, topic, group = scenario
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }
    p0 = (("group", group), ("partition", "0"), ("topic", topic))
    assert samples[("omnichannel_consumer_lag_offsets", p0)] == 6
    assert samples[("omnichannel_consumer_lag_seconds", p0)] == pytest.approx(22.0, abs=0.01)
    assert samples[("omnichannel_consumer_committed_offset", p0)] == 4
    assert samples[("omnichannel_consumer_end_offset", p0)] == 10
    assert samples[("omnichannel_consumer_partition_status", p0)] == 0
    g = (("group", group),)
    assert samples[("omnichannel_consumer_group_lag_offsets", g)] == 6
    assert samples[("omnichannel_consumer_group_lag_seconds", g)] == pytest.approx(22.0, abs=0.01)
    assert samples[("omnichannel_consumer_group_status", g)] == 0
    assert samples[("omnichannel_consumer_group_state", (("group", group), ("state", "empty")))] == 1
    assert samples[("omnichannel_consumer_group_state", (("group", group), ("state", "stable")))] == 0
    assert samples[("omnichannel_consumer_topic_lag_offsets", (("group", group), ("topic", topic)))] == 6
    assert samples[("omnichannel_lag_monitor_broker_up", ())] == 1
    assert samples[("omnichannel_lag_monitor_polls_total", ())] == 3


def test_lag_history_and_page(client: TestClient, scenario: tuple[LagMonitor, str, str]) -> None:
    _monitor, _topic, group = scenario
    history = client.get("/v1/ops/lag/history", params={"group": group}).json()
    assert history["span_seconds"] == 3600
    series = history["groups"][group]
    assert series["lag"] == [6, 6, 6] and len(series["t"]) == 3
    page = client.get("/ops/lag")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    # No CDN, no external asset: the only absolute URL is the SVG namespace.
    assert [u for u in ("http://", "https://") if u in page.text.replace("http://www.w3.org/2000/svg", "")] == []
    assert client.get("/healthz").json()["broker_ok"] is True
