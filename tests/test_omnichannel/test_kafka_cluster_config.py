"""What `stack up --brokers N` and `topics create` configure (the fault test runs them on three real nodes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from omnichannel.kafka_admin import replication_for
from omnichannel.stack.kafka import server_properties


@pytest.mark.parametrize(
    ("brokers", "factor", "extra"),
    [(1, 1, {}), (2, 2, {}), (3, 3, {"min.insync.replicas": "2"}), (5, 3, {"min.insync.replicas": "2"})],
)
def test_topics_get_min_3_brokers_replicas_and_two_in_sync_from_three(
    brokers: int, factor: int, extra: dict[str, str]
) -> None:
    assert replication_for(brokers) == (factor, extra)


def test_a_cluster_node_is_a_voter_of_one_quorum_with_replicated_internal_topics() -> None:
    voters = "1@127.0.0.1:9001,2@127.0.0.1:9002,3@127.0.0.1:9003"
    props = dict(
        line.split("=", 1)
        for line in server_properties(Path("/d"), 9102, 9002, node_id=2, voters=voters, replicas=3).splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert props["node.id"] == "2"
    assert props["controller.quorum.voters"] == voters
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9102,CONTROLLER://127.0.0.1:9002"
    assert props["offsets.topic.replication.factor"] == props["default.replication.factor"] == "3"
    assert props["min.insync.replicas"] == props["transaction.state.log.min.isr"] == "2"


def test_a_single_broker_keeps_one_replica_everywhere() -> None:
    props = server_properties(Path("/d"), 9092, 9093)
    assert "controller.quorum.voters=1@127.0.0.1:9093" in props
    assert "offsets.topic.replication.factor=1" in props and "min.insync.replicas=1" in props
