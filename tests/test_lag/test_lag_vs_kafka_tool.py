"""The monitor's offset lag agrees, partition by partition, with Kafka's own ``kafka-consumer-groups --describe``.

Both read the same idle groups at one instant (nothing produces or commits during the comparison): one
group whose consumer committed and left (empty), one with a live member assigned partitions it committed
only partly ('-' in the tool, absent lag in the monitor), across two topics.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from confluent_kafka import TopicPartition
from lag_harness import KafkaKit, MakeMonitor, ToolOutput

from omnichannel.lag.model import GroupState, GroupStatus


def test_lag_offsets_agree_with_kafka_consumer_groups_describe(
    kit: KafkaKit, make_monitor: MakeMonitor, kafka_tool: Callable[[Sequence[str]], ToolOutput]
) -> None:
    orders, clicks = kit.topic("orders", partitions=3), kit.topic("clicks", partitions=2)
    for partition, count in enumerate((12, 7, 0)):
        kit.produce(orders, count, partition)
    for partition, count in enumerate((5, 9)):
        kit.produce(clicks, count, partition)

    # Group 1: a consumer committed on both topics, then left the group (state empty).
    departed = kit.group("departed")
    kit.commit(departed, orders, {0: 3, 1: 7, 2: 0})
    kit.commit(departed, clicks, {1: 4})

    # Group 2: a live member owns every partition of `orders` but committed only partition 0.
    live = kit.group("live")
    member = kit.member(live, orders)
    member.commit(offsets=[TopicPartition(orders, 0, 10)], asynchronous=False)

    monitor = make_monitor([departed, live])
    report = monitor.poll()
    tool = kafka_tool([departed, live])

    ours = {(g.group, p.topic, p.partition): (p.committed, p.end, p.lag) for g in report.groups for p in g.partitions()}
    theirs = {(r.group, r.topic, r.partition): (r.current_offset, r.log_end_offset, r.lag) for r in tool.rows}
    assert theirs, f"no rows parsed from the tool's output:\n{tool.stdout}"
    assert ours == theirs, f"monitor {ours}\ntool {theirs}\n{tool.stdout}"

    # The cases the comparison was built to cover really occurred.
    assert ours[(departed, orders, 1)] == (7, 7, 0)
    assert ours[(departed, orders, 2)] == (0, 0, 0)
    assert ours[(live, orders, 1)] == (None, 7, None)  # '-' in the tool: absent, not zero
    # Two groups read orders[0] at different offsets: each gets the age of its own next record.
    assert all(p.time_lag is not None for g in report.groups for p in g.partitions() if p.lag is not None)
    state = {g.group: g.state for g in report.groups}
    assert state == {departed: GroupState.EMPTY, live: GroupState.STABLE}
    by_group = {g.group: g for g in report.groups}
    assert by_group[departed].lag == 9 + 0 + 0 + 5  # orders 9+0+0, clicks 5 (partition 0 never committed)
    assert by_group[live].lag == 2
    biggest = by_group[departed].max_lag
    assert biggest is not None and (biggest.topic, biggest.partition) == (orders, 0)
    member.close()


def test_lag_unknown_group_is_notfound_where_the_kafka_tool_says_it_does_not_exist(
    kit: KafkaKit, make_monitor: MakeMonitor, kafka_tool: Callable[[Sequence[str]], ToolOutput]
) -> None:
    ghost = kit.group("ghost")
    report = make_monitor([ghost]).poll()
    tool = kafka_tool([ghost])
    assert tool.rows == []
    # Kafka 4.1 says "GroupIdNotFoundException: Group ... not found", on stdout, with exit status 0.
    assert "not found" in tool.stdout or "does not exist" in tool.stdout, tool.stdout
    group = report.group(ghost)
    assert group is not None and group.status is GroupStatus.NOTFOUND
    assert any("does not exist" in problem for problem in group.problems)
