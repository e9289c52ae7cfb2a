"""The committed-offset reader on the real broker: right figures per group, a bounded number of open clients."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from lag_harness import KafkaKit

from omnichannel.lag import committed
from omnichannel.lag.committed import CommittedOffsetReader


def test_each_group_gets_its_own_committed_offsets_and_old_clients_are_closed(
    kit: KafkaKit, bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(committed, "MAX_CACHED", 2)
    topic = kit.topic("committed", partitions=2)
    kit.produce(topic, 5, partition=0)
    kit.produce(topic, 5, partition=1)
    groups = [kit.group(f"committed{i}") for i in range(5)]
    for i, group in enumerate(groups):
        kit.commit(group, topic, {0: i, 1: 5 - i} if i else {1: 5})
    reader = CommittedOffsetReader({"bootstrap.servers": bootstrap}, timeout=10.0)
    try:
        partitions = {(topic, 0), (topic, 1), ("no-such-topic-xyz", 0)}
        for i, group in enumerate(groups):  # one group per poll: the least recently used are closed
            answers = reader.fetch([group], partitions)
            assert answers[group].result(timeout=20) == ({(topic, 0): i, (topic, 1): 5 - i} if i else {(topic, 1): 5})
            assert reader.open_consumers <= 3
        together = reader.fetch([*groups, "never-committed-group"], partitions)
        assert together["never-committed-group"].result(timeout=20) == {}
        assert together[groups[3]].result(timeout=20) == {(topic, 0): 3, (topic, 1): 2}
    finally:
        reader.close()
    assert reader.open_consumers == 0


def test_no_partitions_asked_is_no_request(bootstrap: str, unique: Callable[[str], str]) -> None:
    reader = CommittedOffsetReader({"bootstrap.servers": bootstrap}, timeout=1.0)
    try:
        group = unique("empty")
        assert reader.fetch([group], set())[group].result(timeout=5) == {}
    finally:
        reader.close()
