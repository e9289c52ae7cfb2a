"""`stack up --redis-cluster`'s cluster: three masters and three replicas with AOF, reached through the factory."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster

from omnichannel.redis_clients import async_redis, slot_master, sync_redis
from omnichannel.settings import Settings
from omnichannel.stack.model import ServiceInfo, quiet
from omnichannel.stack.processes import is_alive, stop
from omnichannel.stack.redis_cluster import cluster_roles, start_local_redis_cluster
from omnichannel.stack.revive import revive_nodes
from streams.keys import SINGLE_SLOT_TAG, Keys
from streams.redis_ops import FENCED_APPLY_OPS, RedisOps

pytestmark = pytest.mark.integration  # needs redis-server


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceInfo]:
    info = start_local_redis_cluster(tmp_path_factory.mktemp("rc"), install_missing=False, progress=quiet)
    yield info
    for pid in info.pids:
        stop(pid)


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def test_three_masters_three_replicas_each_with_an_append_only_file(cluster: ServiceInfo) -> None:
    assert cluster.address.startswith("redis+cluster://127.0.0.1:")
    roles = cluster_roles(_port(cluster.nodes[0].address))
    assert sorted(roles.values()) == ["master"] * 3 + ["replica"] * 3
    assert sorted(n.role for n in cluster.nodes) == sorted(roles.values())
    for node in cluster.nodes:
        client = redis.Redis(port=_port(node.address), decode_responses=True)
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("appendfsync") == {"appendfsync": "everysec"}
        client.close()


def test_the_factory_reaches_every_slot_and_the_workers_commit_runs_on_the_tag_master(
    cluster: ServiceInfo,
) -> None:
    client = sync_redis(cluster.address, decode_responses=True)
    assert isinstance(client, RedisCluster)
    for n in range(30):  # keys spread over the three masters
        client.set(f"spread:{n}", str(n))
    assert [client.get(f"spread:{n}") for n in range(30)] == [str(n) for n in range(30)]
    keys = Keys("t", single_slot=True)

    async def transaction() -> list[object]:
        # What the merge core sends: its fenced commit script (carts, the index, a PUBLISH), and MGET in a pipeline.
        pinned = async_redis(cluster.address, slot_of=SINGLE_SLOT_TAG, decode_responses=True)
        try:
            ops = RedisOps()
            ops.expect(keys.cluster_of("customer_id:C-1"), None)
            ops.expect_members(keys.unlinked(), ())
            ops.set(keys.cart("customer:C-1"), "{}")
            ops.set(keys.owner("customer_id:C-1"), "customer:C-1")
            ops.publish(keys.cart_updates("customer:C-1"), "{}")
            commit = pinned.register_script(FENCED_APPLY_OPS)
            assert await commit(keys=ops.keys, args=ops.fenced_args) == 1
            refused = RedisOps()
            refused.expect(keys.owner("customer_id:C-1"), None)  # it is set now: the fence refuses, writes nothing
            refused.set(keys.cart("customer:C-1"), "not written")
            assert await commit(keys=refused.keys, args=refused.fenced_args) == 0
            reads = pinned.pipeline(transaction=False)
            reads.mget([keys.cart("customer:C-1"), keys.owner("customer_id:C-1")])
            return list(await reads.execute())
        finally:
            await pinned.aclose()

    assert asyncio.run(transaction()) == [["{}", "customer:C-1"]]
    assert client.get(keys.cart("customer:C-1")) == "{}", "the cluster client reads what the pinned one wrote"
    client.close()


def test_a_killed_node_is_revived_on_its_port_and_rejoins(cluster: ServiceInfo) -> None:
    master = slot_master(cluster.address, SINGLE_SLOT_TAG)
    [replica] = [n for n in cluster.nodes if n.role == "replica" and n.address != f"{master[0]}:{master[1]}"][:1]
    assert replica.pid is not None
    os.kill(replica.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10  # SIGKILL is delivered asynchronously: `stack up` comes after it took effect
    while is_alive(replica.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    revived = revive_nodes(Settings.from_env(), cluster)
    [back] = [n for n in revived.nodes if n.address == replica.address]
    assert back.pid != replica.pid and back.pid is not None and is_alive(back.pid)
    assert cluster_roles(_port(back.address))[_port(back.address)] == "replica"
    for node in revived.nodes:  # so the fixture stops the new process too
        if node.pid not in cluster.pids and node.pid is not None:
            stop(node.pid)


def test_start_refuses_without_redis_cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("shutil.which", lambda name: None if name == "redis-cli" else f"/usr/bin/{name}")
    with pytest.raises(Exception, match="redis-cli"):
        start_local_redis_cluster(tmp_path, install_missing=False, progress=quiet)
