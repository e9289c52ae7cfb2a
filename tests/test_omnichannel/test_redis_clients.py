"""REDIS_URL forms: one server or a Redis Cluster, and the one factory that builds the client for each."""

from __future__ import annotations

import inspect
import re
from typing import Any

import pytest
import redis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

from omnichannel.errors import ConfigError
from omnichannel.redis_clients import HiredisPacking, async_redis, cluster_address, is_cluster_url, sync_redis
from omnichannel.settings import Settings
from streams.keys import Keys


def test_a_cluster_url_lists_its_seed_nodes_and_credentials() -> None:
    address = cluster_address("rediss+cluster://:p%40ss@10.0.0.1:7000,10.0.0.2:7001")
    assert address.nodes == (("10.0.0.1", 7000), ("10.0.0.2", 7001))
    assert (address.username, address.password, address.ssl) == (None, "p@ss", True)
    assert is_cluster_url("redis+cluster://h:1") and not is_cluster_url("redis://h:1/0") and not is_cluster_url(None)
    assert (
        Settings(redis_url="redis+cluster://h:1").redis_cluster
        and not Settings(redis_url="redis://h:1/0").redis_cluster
    )


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+cluster://", "names no node"),
        ("redis+cluster://h:1/3", "only database 0"),
        ("redis+cluster://h", "is not host:port"),
        ("redis://h:1/0", "is not a Redis Cluster URL"),
    ],
)
def test_a_malformed_cluster_url_says_what_is_expected(url: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        cluster_address(url)


def test_the_factory_returns_a_cluster_client_for_a_cluster_url_and_a_plain_one_otherwise() -> None:
    # Constructing these connects to nothing (the blocking cluster client does: tests/test_omnichannel/
    # test_stack_redis_cluster.py has it on a real cluster).
    assert isinstance(async_redis("redis+cluster://127.0.0.1:1"), AsyncRedisCluster)
    assert type(sync_redis("redis://127.0.0.1:1/0")) is redis.Redis
    assert type(async_redis("redis://127.0.0.1:1/0", slot_of="{idg}")) is redis.asyncio.Redis


def test_every_key_of_the_backbone_is_in_one_slot_on_a_cluster_and_unchanged_otherwise() -> None:
    single, plain = Keys("ns", single_slot=True), Keys("ns")
    builders = [
        (name, method)
        for name, method in inspect.getmembers(Keys, inspect.isfunction)
        # cart_updates: a pub/sub channel, not a key; derived_patterns: SCAN patterns (test_keys_patterns.py)
        if not name.startswith("_") and name not in ("cart_updates", "derived_patterns")
    ]
    assert len(builders) > 20
    slots = set()
    for name, method in builders:
        args = ["x"] * (len(inspect.signature(method).parameters) - 1)
        key, before = method(single, *args), method(plain, *args)
        slots.add(redis.cluster.key_slot(key.encode()))
        # The same name with the hash tag moved behind {idg}: "cart:{customer:C-1}" -> "cart:{idg}:customer:C-1".
        if "{" in before and "{idg}" not in before:
            assert key == re.sub(r"\{([^}]*)\}", r"{idg}:\1", before, count=1), name
    assert len(slots) == 1
    assert plain.cart("customer:C-1") == "ns:cart:{customer:C-1}", "one Redis keeps its layout"


@pytest.mark.parametrize(
    "args",
    [
        ("SET", "k", "v"),
        ("CONFIG GET", "maxmemory"),
        (b"SCRIPT LOAD", b"return 1"),
        ("EVALSHA", "abc", 2, "{idg}:a", "{idg}:b", 1.5, -3, 2**70, "é✓ ünïcode", b"\x00\xff binary"),
        ("MGET", *(f"ns:{{idg}}:cluster-of:anonymous_id:a-{n}" for n in range(3000))),
    ],
)
def test_the_async_clients_pack_commands_in_c_to_the_same_bytes(args: tuple[Any, ...]) -> None:
    # Each URL form's connection class (plain, TLS, Unix socket) packs with hiredis, to redis-py's own bytes.
    for url in ("redis://h:1/0", "rediss://h:1/0", "unix:///tmp/redis.sock"):
        pool = async_redis(url).connection_pool
        assert issubclass(pool.connection_class, HiredisPacking)
        ours = pool.connection_class(**pool.connection_kwargs)
        theirs = inspect.getmro(pool.connection_class)[2](**pool.connection_kwargs)
        assert b"".join(ours.pack_command(*args)) == b"".join(theirs.pack_command(*args))


@pytest.mark.parametrize("bad", [None, True])
def test_an_argument_redis_py_refuses_is_still_refused_with_its_error(bad: object) -> None:
    pool = async_redis("redis://h:1/0").connection_pool
    with pytest.raises(redis.DataError, match="Invalid input of type"):
        pool.connection_class(**pool.connection_kwargs).pack_command("SET", "k", bad)
