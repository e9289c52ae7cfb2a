"""Fixtures for the lag monitor's tests: a fake clock, real topics and groups, and Kafka's own group tool.

Every group and topic is made by a real confluent-kafka client on the session's real broker; only the
monitor's clock is injected, so windows of a few seconds pass without sleeping.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from omnichannel.lag.broker import KafkaLagSource
from omnichannel.lag.monitor import LagMonitor
from omnichannel.lag.notify import GroupTransition, Notifier
from omnichannel.settings import Settings
from omnichannel.stack.maven import kafka_classpath, require_java
from omnichannel.stack.model import quiet
from omnichannel.stack.processes import free_port


class FakeClock:
    """Wall-clock time that moves only when told to (starts at the real time, so record ages make sense)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


class RecordingNotifier(Notifier):
    """An in-memory notifier port: keeps the transitions it was given."""

    def __init__(self) -> None:
        self.changes: list[GroupTransition] = []

    def notify(self, change: GroupTransition) -> None:
        self.changes.append(change)

    def close(self) -> None:
        pass

    def events(self) -> list[tuple[str, str]]:
        return [(c.event, c.group) for c in self.changes]


class KafkaKit:
    """Small helpers on the real broker: topics, records, commits and live group members."""

    def __init__(self, bootstrap: str, unique: Callable[[str], str]) -> None:
        self.bootstrap = bootstrap
        self.unique = unique
        self.admin = AdminClient({"bootstrap.servers": bootstrap})
        self.producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
        self._consumers: list[Consumer] = []
        self._committers: dict[str, Consumer] = {}

    def topic(self, prefix: str, partitions: int = 1) -> str:
        name = self.unique(f"lag-t-{prefix}")
        self.admin.create_topics([NewTopic(name, partitions, 1)])[name].result(timeout=30)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:  # metadata propagates to the leader asynchronously
            meta = self.admin.list_topics(name, timeout=10).topics.get(name)
            if meta is not None and meta.error is None and len(meta.partitions) == partitions:
                return name
            time.sleep(0.05)
        raise AssertionError(f"topic {name} did not appear")

    def group(self, prefix: str) -> str:
        return self.unique(f"lag-g-{prefix}")

    def produce(self, topic: str, count: int, partition: int = 0, timestamp: float | None = None) -> None:
        """``count`` records to one partition; ``timestamp`` (Unix seconds) sets their CreateTime."""
        millis = 0 if timestamp is None else int(timestamp * 1000)
        for i in range(count):
            self.producer.produce(topic, value=f"r{i}".encode(), partition=partition, timestamp=millis)
        assert self.producer.flush(30) == 0

    def commit(self, group: str, topic: str, offsets: Mapping[int, int]) -> None:
        """Commit offsets for a group with no live member (a 'simple' commit, as tools and scripts do)."""
        committer = self._committers.get(group)
        if committer is None:
            committer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": group, "enable.auto.commit": False})
            self._committers[group] = committer
        committer.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False)

    def member(self, group: str, topic: str) -> Consumer:
        """A live, subscribed member that has its assignment; it never commits on its own."""
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
            }
        )
        self._consumers.append(consumer)
        consumer.subscribe([topic])
        deadline = time.monotonic() + 30
        while not consumer.assignment():
            assert time.monotonic() < deadline, "no assignment within 30s"
            consumer.poll(0.1)
        return consumer

    def close(self) -> None:
        for consumer in [*self._consumers, *self._committers.values()]:
            with contextlib.suppress(RuntimeError):  # already closed by the test
                consumer.close()
        self._consumers, self._committers = [], {}
        # Free the clients now: a client left alive keeps reconnecting (and printing) if its broker goes away.
        del self.admin, self.producer


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
def bootstrap(settings: Settings) -> str:
    assert settings.kafka_bootstrap_servers is not None
    return settings.kafka_bootstrap_servers


@pytest.fixture
def kit(bootstrap: str, unique: Callable[[str], str]) -> Iterator[KafkaKit]:
    helpers = KafkaKit(bootstrap, unique)
    yield helpers
    helpers.close()


MakeMonitor = Callable[..., LagMonitor]


@pytest.fixture
def make_monitor(bootstrap: str, clock: FakeClock) -> Iterator[MakeMonitor]:
    """Monitors on the real broker with the fake clock, a 3s window and a recording notifier by default."""
    made: list[LagMonitor] = []

    def make(
        groups: Sequence[str] | None,
        *,
        window: float = 3.0,
        interval: float = 1.0,
        notifier: Notifier | None = None,
        address: str | None = None,
        timeout: float = 5.0,
        cluster_name: str = "local",
        select: Callable[[str], bool] | None = None,
    ) -> LagMonitor:
        monitor = LagMonitor(
            KafkaLagSource(address or bootstrap, timeout=timeout, select=select),
            interval_seconds=interval,
            window_seconds=window,
            groups=groups,
            notifier=notifier if notifier is not None else RecordingNotifier(),
            clock=clock,
            cluster_name=cluster_name,
        )
        made.append(monitor)
        return monitor

    yield make
    for monitor in made:
        monitor.close()


@dataclass(frozen=True)
class ToolRow:
    """One line of ``kafka-consumer-groups --describe``; ``None`` where the tool prints '-'."""

    group: str
    topic: str
    partition: int
    current_offset: int | None
    log_end_offset: int | None
    lag: int | None


@dataclass(frozen=True)
class ToolOutput:
    rows: list[ToolRow]
    stdout: str


def _number(text: str) -> int | None:
    return None if text == "-" else int(text)


def parse_describe(stdout: str) -> list[ToolRow]:
    """Rows under each ``GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG ...`` header."""
    rows: list[ToolRow] = []
    columns: list[str] | None = None
    for line in stdout.splitlines():
        fields = line.split()
        if not fields:
            columns = None
        elif fields[0] == "GROUP" and "LOG-END-OFFSET" in fields:
            columns = fields
        elif columns is not None and len(fields) >= 6 and re.fullmatch(r"\d+", fields[columns.index("PARTITION")]):
            value = dict(zip(columns, fields, strict=False))
            rows.append(
                ToolRow(
                    value["GROUP"],
                    value["TOPIC"],
                    int(value["PARTITION"]),
                    _number(value["CURRENT-OFFSET"]),
                    _number(value["LOG-END-OFFSET"]),
                    _number(value["LAG"]),
                )
            )
    return rows


@pytest.fixture(scope="session")
def kafka_tool(settings: Settings, bootstrap: str) -> Callable[[Sequence[str]], ToolOutput]:
    """Kafka's ConsumerGroupCommand from the same Maven-fetched distribution as the broker."""
    java = require_java()
    classpath = kafka_classpath(settings.cache_dir, quiet)

    def describe(groups: Sequence[str]) -> ToolOutput:
        argv = [java, "-cp", classpath, "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"]
        argv += ["--bootstrap-server", bootstrap, "--describe"]
        for group in groups:
            argv += ["--group", group]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        # The tool prints its errors on stdout and exits 0: callers look at the rows and the text.
        assert done.returncode == 0, done.stderr
        return ToolOutput(parse_describe(done.stdout), done.stdout)

    return describe


@contextmanager
def lag_serve(bootstrap: str, *args: str) -> Iterator[str]:
    """``omnichannel lag serve`` as its own process on a free port; yields its base URL."""
    port = free_port()
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "OMNICHANNEL_LAG_TIMEOUT": "1"}
    argv = [sys.executable, "-m", "omnichannel.cli", "lag", "serve", "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen([*argv, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, f"lag serve exited: {proc.stdout.read() if proc.stdout else ''}"
            assert time.monotonic() < deadline, "lag serve did not answer within 30s"
            try:
                if httpx.get(f"{base}/healthz", timeout=1).json()["polled"]:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)  # uvicorn shuts down cleanly on SIGTERM
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
