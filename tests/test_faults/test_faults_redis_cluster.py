"""The Redis Cluster master holding the backbone's slot killed with SIGKILL mid-traffic: its replica takes over,
the supervised worker comes back on it, and every accepted event is applied once.

The test starts its own Redis Cluster (``stack up --redis-cluster``'s starter: 3 masters, 3 replicas, AOF);
Kafka and the registry are the session's.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from faults_harness import Backbone, Sent, count, wait_applied

from omnichannel.redis_clients import slot_master, sync_redis
from omnichannel.settings import Settings
from omnichannel.stack.model import ServiceInfo, quiet
from omnichannel.stack.processes import stop
from omnichannel.stack.redis_cluster import NODE_TIMEOUT_MS, cluster_roles, start_local_redis_cluster
from streams.keys import SINGLE_SLOT_TAG

pytestmark = pytest.mark.faults


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceInfo]:
    cluster = start_local_redis_cluster(tmp_path_factory.mktemp("rc"), install_missing=False, progress=quiet)
    yield cluster
    for pid in cluster.pids:
        stop(pid)


def test_a_redis_master_killed_mid_traffic_fails_over_and_loses_and_doubles_nothing(
    redis_cluster: ServiceInfo, settings: Settings, start_backbone: Callable[..., Backbone]
) -> None:
    assert settings.kafka_bootstrap_servers and settings.schema_registry_url
    on_cluster = settings.with_addresses(
        settings.kafka_bootstrap_servers, settings.schema_registry_url, redis_cluster.address
    )
    backbone = start_backbone(on_cluster)

    sent = Sent()
    sender = threading.Thread(target=backbone.send, args=(600, 30.0, sent))
    sender.start()
    client = sync_redis(redis_cluster.address, decode_responses=True)
    while len(backbone.applied(client)) < 150:  # the worker is writing when the master dies
        time.sleep(0.2)
    host, port = slot_master(redis_cluster.address, SINGLE_SLOT_TAG)
    [victim] = [n for n in redis_cluster.nodes if n.address == f"{host}:{port}"]
    assert victim.pid is not None
    os.kill(victim.pid, signal.SIGKILL)
    killed_at, killed = len(sent.outcomes), time.monotonic()

    survivor = next(int(n.address.rsplit(":", 1)[1]) for n in redis_cluster.nodes if n is not victim)
    deadline = time.monotonic() + 60
    while slot_master(redis_cluster.address, SINGLE_SLOT_TAG) == (host, port) and time.monotonic() < deadline:
        time.sleep(0.5)
    promoted_after_s = time.monotonic() - killed
    assert slot_master(redis_cluster.address, SINGLE_SLOT_TAG) != (host, port), cluster_roles(survivor)
    sender.join(timeout=300)

    figures = count(sent, wait_applied(backbone, client, sent, timeout=240))
    figures["worker_restarts"] = backbone.log("worker", tail=None).count("restarting")
    print(
        f"\nkill -9 Redis master {victim.address} after {killed_at} events (replica promoted after "
        f"{promoted_after_s:.1f} s, node timeout {NODE_TIMEOUT_MS} ms): {figures}"
    )
    assert figures["sent"] == 600
    assert figures["accepted"] == 600, "the collector does not need Redis to accept events"
    assert figures["lost"] == 0, backbone.log("worker")
    assert figures["doubled"] == 0
    assert backbone.procs["worker"].poll() is None, "the supervised worker is still running"

    # The read API (a cluster client) serves the same carts from the promoted master.
    answer = httpx.get(f"{backbone.base_url}/v1/customers/C-0/cart", headers={"X-Api-Key": "dev-read"}, timeout=10)
    assert answer.status_code == 200, answer.text
    mine = {p for n, p in enumerate(sorted(sent.outcomes)) if n % len(backbone.customers) == 0}
    assert {line["product_id"] for line in answer.json()["cart"]["lines"]} == mine
