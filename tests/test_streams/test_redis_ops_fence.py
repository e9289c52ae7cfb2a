"""The commit script's fence on the real Redis: it writes only if every key and set still holds what was read.

The merge core's commit relies on it for every race (tests/test_streams/test_cluster_store_redis.py); here the
script alone, with fences past its 500-key MGET chunks, keys that must not exist, and sets.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from omnichannel.settings import Settings
from streams.redis_ops import FENCED_APPLY_OPS, RedisOps

pytestmark = pytest.mark.integration

HELD = 1_203  # three MGET chunks in the script: 500, 500, 203


@pytest.fixture
def client(settings: Settings) -> Iterator[redis.Redis]:
    assert settings.redis_url
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def prefix(client: redis.Redis) -> Iterator[str]:
    prefix = f"fence{uuid.uuid4().hex[:10]}"
    client.mset({f"{prefix}:k{n}": f"v{n}" for n in range(HELD)})
    client.sadd(f"{prefix}:set", "a", "b")
    yield prefix
    client.delete(*(f"{prefix}:k{n}" for n in range(HELD)), f"{prefix}:set", f"{prefix}:out", f"{prefix}:none")


def commit(client: redis.Redis, prefix: str, *, wrong: int | None = None, members: tuple[str, ...] = ("a", "b")) -> int:
    """Fence every held key (``wrong``: expect another value at that one), a key that must not exist and the set;
    then write ``out``. The script's answer: 1 written, 0 refused."""
    ops = RedisOps()
    for n in range(HELD):
        ops.expect(f"{prefix}:k{n}", "other" if n == wrong else f"v{n}")
    ops.expect(f"{prefix}:none", None)
    ops.expect_members(f"{prefix}:set", members)
    ops.set(f"{prefix}:out", "written")
    return int(client.register_script(FENCED_APPLY_OPS)(keys=ops.keys, args=ops.fenced_args))


def test_a_fence_that_holds_lets_the_writes_through(client: redis.Redis, prefix: str) -> None:
    assert commit(client, prefix) == 1
    assert client.get(f"{prefix}:out") == "written"


@pytest.mark.parametrize("wrong", [0, 499, 500, HELD - 1], ids=["first", "end-of-chunk", "next-chunk", "last"])
def test_one_changed_key_anywhere_refuses_every_write(client: redis.Redis, prefix: str, wrong: int) -> None:
    assert commit(client, prefix, wrong=wrong) == 0
    assert client.get(f"{prefix}:out") is None


def test_a_key_that_appeared_or_a_set_that_changed_refuses(client: redis.Redis, prefix: str) -> None:
    client.set(f"{prefix}:none", "founded meanwhile")
    assert commit(client, prefix) == 0
    client.delete(f"{prefix}:none")
    assert commit(client, prefix, members=("a",)) == 0  # one more member than read
    assert commit(client, prefix, members=("a", "b", "c")) == 0  # one fewer
    assert commit(client, prefix, members=("a", "c")) == 0  # as many, another one
    assert client.get(f"{prefix}:out") is None
    assert commit(client, prefix) == 1
