"""Real consumer groups driven into each status and back to OK, on the real broker.

The window is 3 s of the monitor's injected clock: each ``tick`` advances it one second and polls, so a
test walks through a whole window without sleeping. Consumers, commits and records are all real.
"""

from __future__ import annotations

import http.server
import json
import logging
import threading
import time
from collections.abc import Iterator

import pytest
from confluent_kafka import TopicPartition
from lag_harness import FakeClock, KafkaKit, MakeMonitor, RecordingNotifier

from omnichannel.lag.model import GroupState, GroupStatus, LagReport, PartitionLag, PartitionStatus
from omnichannel.lag.monitor import LagMonitor
from omnichannel.lag.notify import WebhookNotifier


def tick(monitor: LagMonitor, clock: FakeClock, seconds: float = 1.0) -> LagReport:
    clock.advance(seconds)
    return monitor.poll()


def part(report: LagReport, group: str, topic: str, partition: int = 0) -> PartitionLag:
    found = report.group(group)
    assert found is not None, f"{group} missing from {report}"
    return next(p for p in found.partitions() if (p.topic, p.partition) == (topic, partition))


def group_status(report: LagReport, group: str) -> GroupStatus:
    found = report.group(group)
    assert found is not None
    return found.status


def test_lag_stopped_consumer_goes_stop_while_time_lag_grows_then_back_to_ok(
    kit: KafkaKit, make_monitor: MakeMonitor, clock: FakeClock
) -> None:
    topic, group = kit.topic("stop"), kit.group("stop")
    kit.produce(topic, 10, timestamp=clock.now - 30)  # written 30 s before the monitor's clock starts
    worker = kit.member(group, topic)
    worker.commit(offsets=[TopicPartition(topic, 0, 4)], asynchronous=False)
    worker.close()  # the worker stops: nobody holds the partition, nobody commits, producers are idle

    notifier = RecordingNotifier()
    monitor = make_monitor([group], notifier=notifier)
    first = monitor.poll()
    p = part(first, group, topic)
    assert (p.lag, p.status, p.window_complete) == (6, PartitionStatus.OK, False)
    assert first.group(group) is not None and first.group(group).state is GroupState.EMPTY  # type: ignore[union-attr]
    assert p.time_lag == pytest.approx(30.0, abs=0.01)

    seen = [part(tick(monitor, clock), group, topic).status for _ in range(3)]
    assert seen == [PartitionStatus.OK] * 3  # no commit for exactly the window is not yet "longer than"
    stopped = tick(monitor, clock)
    q = part(stopped, group, topic)
    assert q.status is PartitionStatus.STOP, q.reason
    assert group_status(stopped, group) is GroupStatus.ERR
    # Time lag grows with the clock although nothing was produced: the unread record only gets older.
    assert q.time_lag == pytest.approx(34.0, abs=0.01)
    assert notifier.events() == [("group_left_ok", group)]

    replacement = kit.member(group, topic)  # a new worker catches up
    replacement.commit(offsets=[TopicPartition(topic, 0, 10)], asynchronous=False)
    back = tick(monitor, clock)
    r = part(back, group, topic)
    assert (r.status, r.lag, r.time_lag) == (PartitionStatus.OK, 0, 0.0)
    assert group_status(back, group) is GroupStatus.OK
    assert back.group(group).state is GroupState.STABLE  # type: ignore[union-attr]
    assert notifier.events() == [("group_left_ok", group), ("group_returned_ok", group)]
    replacement.close()


def test_lag_member_polling_without_committing_stalls_and_stops_once_it_leaves(
    kit: KafkaKit, make_monitor: MakeMonitor, clock: FakeClock
) -> None:
    topic, group = kit.topic("stall"), kit.group("stall")
    kit.produce(topic, 10)
    worker = kit.member(group, topic)
    worker.commit(offsets=[TopicPartition(topic, 0, 3)], asynchronous=False)

    monitor = make_monitor([group])
    first = monitor.poll()
    assert part(first, group, topic).owner is not None  # the member holds the partition
    statuses = []
    for _ in range(4):
        worker.poll(0.05)  # alive and fetching, never committing
        statuses.append(part(tick(monitor, clock), group, topic).status)
    assert statuses == [PartitionStatus.OK] * 3 + [PartitionStatus.STALL]
    stalled = monitor.latest()
    assert stalled is not None
    assert group_status(stalled, group) is GroupStatus.ERR
    assert stalled.group(group).state is GroupState.STABLE  # type: ignore[union-attr]

    worker.close()  # the stalled worker goes away: same offset, nobody holds it any more -> STOP
    assert part(tick(monitor, clock), group, topic).status is PartitionStatus.STOP

    kit.commit(group, topic, {0: 10})
    assert part(tick(monitor, clock), group, topic).status is PartitionStatus.OK


def test_lag_committed_offset_going_backwards_is_rewind_then_ok_once_caught_up(
    kit: KafkaKit, make_monitor: MakeMonitor, clock: FakeClock
) -> None:
    topic, group = kit.topic("rewind"), kit.group("rewind")
    kit.produce(topic, 10)
    kit.commit(group, topic, {0: 8})
    monitor = make_monitor([group])
    assert part(monitor.poll(), group, topic).status is PartitionStatus.OK

    kit.commit(group, topic, {0: 3})  # reset backwards: the group will re-read 5 records
    rewound = tick(monitor, clock)
    p = part(rewound, group, topic)
    assert p.status is PartitionStatus.REWIND
    assert "8 to 3" in p.reason
    assert group_status(rewound, group) is GroupStatus.ERR

    kit.commit(group, topic, {0: 10})
    back = tick(monitor, clock)
    assert part(back, group, topic).status is PartitionStatus.OK
    assert group_status(back, group) is GroupStatus.OK


def test_lag_growing_while_the_consumer_advances_is_warn_then_ok(
    kit: KafkaKit, make_monitor: MakeMonitor, clock: FakeClock
) -> None:
    topic, group = kit.topic("warn"), kit.group("warn")
    kit.produce(topic, 10)
    kit.commit(group, topic, {0: 1})
    monitor = make_monitor([group])
    lags = [part(monitor.poll(), group, topic).lag]
    statuses = []
    for step in range(1, 4):  # producers outpace a consumer that keeps committing a little further
        kit.produce(topic, 10)
        kit.commit(group, topic, {0: 1 + step})
        p = part(tick(monitor, clock), group, topic)
        lags.append(p.lag)
        statuses.append(p.status)
    assert lags == [9, 18, 27, 36]
    assert statuses == [PartitionStatus.OK, PartitionStatus.OK, PartitionStatus.WARN]  # once the window is full
    warned = monitor.latest()
    assert warned is not None and group_status(warned, group) is GroupStatus.WARN

    kit.commit(group, topic, {0: 40})
    assert group_status(tick(monitor, clock), group) is GroupStatus.OK


def test_lag_group_sums_offsets_takes_max_time_lag_and_counts_from_the_log_start(
    kit: KafkaKit, make_monitor: MakeMonitor, clock: FakeClock
) -> None:
    topic, group = kit.topic("figures", partitions=3), kit.group("figures")
    now = clock.now
    kit.produce(topic, 10, partition=0, timestamp=now - 100)
    kit.produce(topic, 10, partition=1, timestamp=now - 40)
    kit.produce(topic, 10, partition=2, timestamp=now - 500)
    kit.commit(group, topic, {0: 2, 1: 5, 2: 10})
    # Retention-like deletion below offset 6 of partition 0: records 2..5 can never be read by the group.
    deleted = kit.admin.delete_records([TopicPartition(topic, 0, 6)])
    for future in deleted.values():
        future.result(timeout=30)

    report = make_monitor([group]).poll()
    found = report.group(group)
    assert found is not None
    p0, p1, p2 = (part(report, group, topic, i) for i in range(3))
    assert (p0.earliest, p0.committed, p0.lag, p0.records_lost) == (6, 2, 4, 4)  # counted from the log start
    assert (p1.lag, p1.records_lost, p2.lag) == (5, 0, 0)
    assert p0.time_lag == pytest.approx(100.0, abs=0.01)  # the record at offset 6, the oldest one left
    assert p1.time_lag == pytest.approx(40.0, abs=0.01)
    assert p2.time_lag == 0.0  # caught up: 0, however old its records are
    assert found.lag == 9
    assert found.time_lag == pytest.approx(100.0, abs=0.01)  # the max, never the sum
    assert found.max_lag is not None and found.max_lag.partition == 1
    assert found.topics[0].lag == 9


class _Hook(http.server.BaseHTTPRequestHandler):
    received: list[dict[str, object]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self.received.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, object]]]]:
    received: list[dict[str, object]] = []
    handler = type("Hook", (_Hook,), {"received": received})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/lag", received
    server.shutdown()
    server.server_close()


def test_lag_webhook_receives_leaving_and_returning_to_ok(
    kit: KafkaKit, make_monitor: MakeMonitor, clock: FakeClock, webhook: tuple[str, list[dict[str, object]]]
) -> None:
    url, received = webhook
    topic, group = kit.topic("hook"), kit.group("hook")
    kit.produce(topic, 5)
    kit.commit(group, topic, {0: 2})
    notifier = WebhookNotifier(url)
    monitor = make_monitor([group], notifier=notifier)
    monitor.poll()
    for _ in range(4):
        tick(monitor, clock)
    kit.commit(group, topic, {0: 5})
    tick(monitor, clock)
    assert notifier.flush(10)
    assert [(r["event"], r["group"], r["status"]) for r in received] == [
        ("group_left_ok", group, "ERR"),
        ("group_returned_ok", group, "OK"),
    ]
    first = received[0]
    assert first["previous"] == "OK" and first["state"] == "empty" and first["lag"] == 3
    assert first["partitions"] == [
        {"topic": topic, "partition": 0, "status": "STOP", "lag": 3, "reason": first["partitions"][0]["reason"]}  # type: ignore[index]
    ]


def test_lag_without_webhook_transitions_are_structured_log_lines(
    kit: KafkaKit, make_monitor: MakeMonitor, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    from omnichannel.lag.notify import LogNotifier

    topic, group = kit.topic("logged"), kit.group("logged")
    kit.produce(topic, 5)
    kit.commit(group, topic, {0: 4})
    monitor = make_monitor([group], notifier=LogNotifier())
    with caplog.at_level(logging.WARNING, logger="omnichannel.lag"):
        monitor.poll()
        kit.commit(group, topic, {0: 1})
        tick(monitor, clock)
        kit.commit(group, topic, {0: 5})
        tick(monitor, clock)
    lines = [(r.getMessage(), getattr(r, "event", None), getattr(r, "group", None)) for r in caplog.records]
    assert lines == [
        ("consumer group left OK", "group_left_ok", group),
        ("consumer group returned to OK", "group_returned_ok", group),
    ]
    assert getattr(caplog.records[0], "status", None) == "ERR"
    assert "REWIND" in str(getattr(caplog.records[0], "partitions", ""))
    time.sleep(0)  # nothing left running: LogNotifier is synchronous
