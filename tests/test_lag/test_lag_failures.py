"""Bad input and failure: a broker that goes down (and comes back), a group that does not exist, a topic
deleted under a group. Each is reported clearly in the JSON, the table and the metrics, and the monitor
keeps running."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from lag_harness import FakeClock, KafkaKit, MakeMonitor
from rich.console import Console

from omnichannel.cli import cli
from omnichannel.lag.model import GroupStatus, LagReport, report_to_json
from omnichannel.lag.table import render_report
from omnichannel.lag.web import create_app
from omnichannel.settings import Settings
from omnichannel.stack.kafka import kafka_answers, start_local_kafka
from omnichannel.stack.maven import kafka_classpath, require_java
from omnichannel.stack.model import ServiceInfo, quiet
from omnichannel.stack.processes import free_port, spawn, stop, wait_until


def table_text(report: dict[str, object]) -> str:
    console = Console(width=160, record=True, file=open("/dev/null", "w"))  # noqa: SIM115 - closed by Console
    console.print(render_report(report))
    return console.export_text()


def test_lag_unknown_group_is_notfound_in_json_table_and_cli(bootstrap: str, make_monitor: MakeMonitor) -> None:
    report = make_monitor(["no-such-group-here"]).poll()
    group = report.group("no-such-group-here")
    assert group is not None and group.status is GroupStatus.NOTFOUND
    body = report_to_json(report)
    assert body["groups"][0]["status"] == "NOTFOUND"
    assert "does not exist" in table_text(body)

    result = CliRunner().invoke(
        cli, ["lag", "--group", "no-such-group-here"], env={"KAFKA_BOOTSTRAP_SERVERS": bootstrap}
    )
    assert result.exit_code == 4, result.output  # NOTFOUND has its own status
    assert "NOTFOUND" in result.output and "does not exist" in result.output


def test_lag_topic_deleted_under_a_group_is_reported_and_the_monitor_goes_on(
    kit: KafkaKit, make_monitor: MakeMonitor, clock: FakeClock
) -> None:
    doomed, kept = kit.topic("doomed"), kit.topic("kept")
    group, other = kit.group("doomed"), kit.group("kept")
    kit.produce(doomed, 5)
    kit.produce(kept, 5)
    kit.commit(group, doomed, {0: 2})
    kit.commit(other, kept, {0: 1})
    monitor = make_monitor([group, other])
    assert monitor.poll().group(group).lag == 3  # type: ignore[union-attr]

    kit.admin.delete_topics([doomed])[doomed].result(timeout=30)
    deadline = time.monotonic() + 15
    while doomed in kit.admin.list_topics(timeout=10).topics:  # deletion completes asynchronously
        assert time.monotonic() < deadline
        time.sleep(0.1)

    for _ in range(2):  # reported on every poll, not just once; and the other group is unaffected
        clock.advance(1)
        report = monitor.poll()
        assert report.broker_ok
        hit = report.group(group)
        assert hit is not None
        assert any(f"topic {doomed!r} was deleted" in p for p in hit.problems), hit.problems
        assert report.group(other).lag == 4  # type: ignore[union-attr]
    body = report_to_json(report)
    assert any("was deleted" in p for p in body["groups"][0]["problems"])
    assert "was deleted" in table_text(body)


def test_lag_cli_says_kafka_does_not_answer(tmp_path: Path) -> None:
    dead = f"127.0.0.1:{free_port()}"
    result = CliRunner().invoke(
        cli,
        ["lag"],
        env={"KAFKA_BOOTSTRAP_SERVERS": dead, "OMNICHANNEL_LAG_TIMEOUT": "1", "OMNICHANNEL_STATE_DIR": str(tmp_path)},
    )
    assert result.exit_code == 75, result.output  # EX_TEMPFAIL, as documented (1 is a bad setting)
    assert "Kafka does not answer" in result.output and dead in result.output


@dataclass
class OwnBroker:
    """A broker of this test's own (so stopping it does not disturb the session's) and its processes."""

    info: ServiceInfo
    pids: list[int]

    @property
    def address(self) -> str:
        return self.info.address

    def stop(self) -> None:
        for pid in self.pids:
            stop(pid)

    def restart(self, settings: Settings) -> None:
        """Start the stopped broker again on its old port and data, as an operator's restart does."""
        home = Path(self.info.log_file or "").parent
        argv = [require_java(), "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"]
        argv += [f"-Dlog4j2.configurationFile={home / 'log4j2.properties'}"]
        argv += ["-cp", kafka_classpath(settings.cache_dir, quiet), "kafka.Kafka", str(home / "server.properties")]
        proc = spawn(argv, home / "kafka-restarted.log")
        self.pids.append(proc.pid)
        wait_until(lambda: kafka_answers(self.address, 2.0), what="restarted Kafka", timeout=90, process=proc)


@pytest.fixture
def own_broker(settings: Settings, tmp_path: Path) -> Iterator[OwnBroker]:
    info = start_local_kafka(settings.cache_dir, tmp_path, quiet)
    assert info.pid is not None
    broker = OwnBroker(info, [info.pid])
    yield broker
    broker.stop()


def _wait_for(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def part_status(report: LagReport | None, group: str) -> str:
    assert report is not None
    found = report.group(group)
    assert found is not None
    [p] = found.partitions()
    return p.status.value


def _fresh(report: LagReport, group: str) -> bool:
    found = report.group(group)
    return report.broker_ok and found is not None and not found.problems


def _fresh_lag(http: TestClient, group: str) -> int | None:
    response = http.get("/v1/ops/lag", params={"group": group})
    if response.status_code != 200:
        return None
    found = response.json()["groups"][0]
    return None if found["problems"] else found["lag"]


def test_lag_broker_outage_is_reported_while_the_monitor_keeps_running_and_recovers(
    own_broker: OwnBroker,
    settings: Settings,
    unique: Callable[[str], str],
    make_monitor: MakeMonitor,
    clock: FakeClock,
) -> None:
    kit = KafkaKit(own_broker.address, unique)
    topic, group = kit.topic("outage"), kit.group("outage")
    kit.produce(topic, 8)
    kit.commit(group, topic, {0: 5})
    kit.close()
    monitor = make_monitor([group], address=own_broker.address, interval=0.3, window=1.0, timeout=1.0)
    # A second monitor, polled by hand on the fake clock, to check how windows treat the outage's duration.
    manual = make_monitor([group], address=own_broker.address, window=3.0, timeout=1.0)
    assert part_status(manual.poll(), group) == "OK"

    with TestClient(create_app(monitor)) as http:  # the real poll loop, in its thread
        _wait_for(lambda: http.get("/v1/ops/lag").status_code == 200, "a first reading")
        assert http.get("/v1/ops/lag").json()["groups"][0]["lag"] == 3

        own_broker.stop()  # the broker goes down under the running monitor
        _wait_for(lambda: http.get("/v1/ops/lag").status_code == 503, "the outage to be reported")
        body = http.get("/v1/ops/lag").json()
        assert body["broker"]["ok"] is False
        assert own_broker.address in body["broker"]["error"] and "did not answer" in body["broker"]["error"]
        assert body["broker"]["last_success_at"] is not None
        assert body["groups"][0]["lag"] == 3  # the last figures read, kept and labelled as such
        assert "Kafka does not answer" in table_text(body)
        metrics = http.get("/metrics").text
        assert "omnichannel_lag_monitor_broker_up 0.0" in metrics
        assert http.get("/healthz").status_code == 200  # the process is alive and serving
        history = http.get("/v1/ops/lag/history").json()["groups"][group]
        assert history["lag"][-1] is None  # a gap in the plot, not a flat line
        clock.advance(10)  # an outage longer than the manual monitor's 3 s window
        assert manual.poll().broker_ok is False

        own_broker.restart(settings)
        # Right after a restart the group coordinator may still be loading; the figures come back with it.
        _wait_for(lambda: _fresh_lag(http, group) == 3, "recovery after the restart", timeout=60)
        assert "omnichannel_lag_monitor_broker_up 1.0" in http.get("/metrics").text

    # Nobody could commit while Kafka was down: the outage does not count as 10 s without commits...
    _wait_for(lambda: _fresh(manual.poll(), group), "the manual monitor to read the group again")
    assert part_status(manual.latest(), group) == "OK"
    clock.advance(4)  # ...but a group that still does not commit once Kafka is back is STOP after the window.
    assert part_status(manual.poll(), group) == "STOP"


def test_lag_on_a_fresh_broker_reads_groups_at_once_and_creates_none(
    own_broker: OwnBroker, unique: Callable[[str], str], make_monitor: MakeMonitor
) -> None:
    """Right after a broker starts its group coordinator is still loading (NOT_COORDINATOR, LOAD_IN_PROGRESS):
    the first poll still gives a clear answer, and reading a group neither creates nor joins it. (Reading
    committed offsets through the AdminClient in this window killed the process: librdkafka #5040.)"""
    unknown = unique("fresh-unknown")
    report = make_monitor([unknown], address=own_broker.address, timeout=10.0).poll()
    found = report.group(unknown)
    assert found is not None and found.status is GroupStatus.NOTFOUND, found

    kit = KafkaKit(own_broker.address, unique)
    topic, group = kit.topic("fresh"), kit.group("fresh")
    kit.produce(topic, 6)
    kit.commit(group, topic, {0: 2})
    report = make_monitor([group, unknown], address=own_broker.address, timeout=10.0).poll()
    assert report.group(group).lag == 4  # type: ignore[union-attr]
    assert report.group(unknown).status is GroupStatus.NOTFOUND  # type: ignore[union-attr]
    listed = {g.group_id for g in kit.admin.list_consumer_groups().result(timeout=10).valid}
    assert group in listed and unknown not in listed
    assert not kit.admin.describe_consumer_groups([group])[group].result(timeout=10).members  # nor a member
    kit.close()
