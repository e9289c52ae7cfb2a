"""One broker of three killed with SIGKILL while a sender posts: the collector keeps accepting, nothing is lost.

The test starts its own three-node KRaft cluster (``stack up --brokers 3``'s starter) so it can kill a node
without touching the session's stack; the registry and Redis are the session's.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import redis
from confluent_kafka.admin import AdminClient, ConfigResource
from faults_harness import Backbone, Sent, count, wait_applied

from omnichannel.settings import Settings
from omnichannel.stack.kafka_cluster import start_local_kafka_cluster
from omnichannel.stack.model import ServiceInfo, quiet
from omnichannel.stack.processes import is_alive, stop
from omnichannel.stack.revive import revive_nodes

pytestmark = pytest.mark.faults


class Running:
    """The test's cluster as it is now (a revived node has a new pid)."""

    def __init__(self, info: ServiceInfo) -> None:
        self.info = info


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    cache = Settings.from_env().cache_dir
    held = Running(start_local_kafka_cluster(cache, tmp_path_factory.mktemp("kc"), quiet, brokers=3))
    yield held
    for pid in held.info.pids:
        stop(pid)


def _leader_node(bootstrap: str, topic: str) -> int:
    """Index (0-based) of the node leading most partitions of ``topic`` (node ids are 1, 2, 3 in order)."""
    partitions = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10).topics[topic].partitions
    leaders = [p.leader for p in partitions.values()]
    return max(set(leaders), key=leaders.count) - 1


def test_a_broker_killed_mid_traffic_loses_and_doubles_nothing(
    running: Running, settings: Settings, start_backbone: Callable[..., Backbone]
) -> None:
    kafka_cluster = running.info
    assert settings.schema_registry_url and settings.redis_url
    on_cluster = settings.with_addresses(kafka_cluster.address, settings.schema_registry_url, settings.redis_url)
    backbone = start_backbone(on_cluster)
    topic = f"{backbone.namespace}.channel.web.events"

    # What `topics create` made on three brokers: three replicas per partition, two in sync for acks=all.
    admin = AdminClient({"bootstrap.servers": kafka_cluster.address})
    partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions
    assert {len(p.replicas) for p in partitions.values()} == {3}
    [described] = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic)]).values()
    assert described.result(timeout=10)["min.insync.replicas"].value == "2"

    sent = Sent()
    sender = threading.Thread(target=backbone.send, args=(900, 30.0, sent))
    sender.start()
    while len(sent.outcomes) < 300:
        time.sleep(0.2)
    victim = kafka_cluster.nodes[_leader_node(kafka_cluster.address, topic)]
    assert victim.pid is not None
    os.kill(victim.pid, signal.SIGKILL)
    killed_at = len(sent.outcomes)
    sender.join(timeout=300)
    assert not is_alive(victim.pid)

    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    figures = count(sent, wait_applied(backbone, client, sent))
    figures["refused_longest_s"] = round(sent.longest_refusal_s(), 1)  # type: ignore[assignment]
    print(f"\nkill -9 broker {victim.address} after {killed_at} events: {figures}")  # the figures for docs/
    assert figures["sent"] == 900
    assert figures["lost"] == 0, backbone.log("worker")
    assert figures["doubled"] == 0
    assert figures["accepted"] >= 0.9 * figures["sent"], "the collector should keep answering 202"
    assert sent.longest_refusal_s() < 15, "refusals should be a short blip while leaders move"
    accepted_after = [p for p in sent.accepted if int(p[2:]) > killed_at + 60]
    assert accepted_after, "events sent after the kill are accepted by the two brokers left"

    # `stack up` brings the node back on its ports and data, and it rejoins the quorum.
    revived = revive_nodes(settings, kafka_cluster)
    assert all(n.pid is not None and is_alive(n.pid) for n in revived.nodes)
    running.info = revived
