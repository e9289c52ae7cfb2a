"""The one place that turns ``REDIS_URL`` into a client: a plain Redis, or a Redis Cluster.

``REDIS_URL`` forms:

- ``redis://[:password@]host:port/0`` (or ``rediss://``): one Redis server, as before;
- ``redis+cluster://[:password@]host:port[,host:port...]`` (or ``rediss+cluster://``): a Redis Cluster, reached
  through any of the listed nodes (list several: the client finds the others, and a listed node may be down).
  There is no database number: a cluster has only database 0.

The cluster clients (``redis.cluster.RedisCluster``, ``redis.asyncio.cluster.RedisCluster``) follow MOVED/ASK
redirections and a replica promoted by a failover; they are returned typed as the plain clients, whose commands
they offer, so readers (the API, the CLI) need not know which one they have.

The stream worker is different: redis-py's cluster pipelines refuse MGET, PUBLISH, PING and EVALSHA even on one
slot, and the merge core sends them in its pipelines and its fenced commit script. On a cluster every key of the
backbone carries one hash tag (:attr:`streams.keys.Keys.single_slot`), so the worker asks for ``slot_of`` that tag
and gets a plain client on the master serving it: the same commands as on one server. After a failover that
client's connection fails, the worker stops with 75 without committing, and ``--supervise`` restarts it on the
promoted master (docs/reliability.md).

The asyncio clients pack commands with hiredis (:class:`HiredisPacking`): redis-py's asyncio connection packs
every argument in Python (an ``isinstance`` chain and a few byte joins per argument), and the worker's
reads and commits carry thousands of keys a batch (MGET, the commit script's keys and fence): about 5 % of its CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import hiredis
import redis
import redis.asyncio
from redis.asyncio.cluster import ClusterNode as AsyncClusterNode
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import ClusterNode, RedisCluster

from omnichannel.errors import ConfigError, ServiceUnavailableError

__all__ = [
    "ClusterAddress",
    "HiredisPacking",
    "async_redis",
    "cluster_address",
    "is_cluster_url",
    "slot_master",
    "sync_redis",
]

_CLUSTER_SCHEMES = {"redis+cluster": False, "rediss+cluster": True}  # scheme -> TLS


@dataclass(frozen=True)
class ClusterAddress:
    """A parsed ``redis+cluster://`` URL."""

    nodes: tuple[tuple[str, int], ...]
    username: str | None
    password: str | None
    ssl: bool


def is_cluster_url(url: str | None) -> bool:
    """True for a ``redis+cluster://`` or ``rediss+cluster://`` URL."""
    return bool(url) and urlsplit(url or "").scheme in _CLUSTER_SCHEMES


def cluster_address(url: str) -> ClusterAddress:
    """Parse a cluster URL; :class:`ConfigError` saying the expected form when it is not one."""
    parts = urlsplit(url)
    if parts.scheme not in _CLUSTER_SCHEMES:
        raise ConfigError(f"{url!r} is not a Redis Cluster URL: expected redis+cluster://host:port[,host:port]")
    credentials, _, hosts = parts.netloc.rpartition("@")
    username, _, password = credentials.partition(":")
    nodes = []
    for host_port in filter(None, hosts.split(",")):
        host, _, port = host_port.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"REDIS_URL node {host_port!r} is not host:port (in {url!r})")
        nodes.append((host.strip("[]"), int(port)))
    if not nodes:
        raise ConfigError(f"REDIS_URL {url!r} names no node: expected redis+cluster://host:port[,host:port]")
    if parts.path.strip("/") not in ("", "0"):
        raise ConfigError(f"REDIS_URL {url!r}: a Redis Cluster has only database 0; drop the /<db> part")
    return ClusterAddress(
        tuple(nodes),
        unquote(username) or None,
        unquote(password) if password else None,
        _CLUSTER_SCHEMES[parts.scheme],
    )


class HiredisPacking:
    """Mixin for a :class:`redis.asyncio.Connection` class: commands packed by ``hiredis.pack_command`` (in C).

    Same bytes as redis-py's own packing (str as UTF-8, the clients' encoding); an argument hiredis does not take
    (None and bools, which redis-py refuses too; a bytearray) goes to redis-py's packing, so errors stay the same.
    """

    def pack_command(self, *args: Any) -> list[bytes]:
        first = args[0]
        # A command name with its sub-command ("CONFIG GET", "SCRIPT LOAD") goes as separate arguments.
        if isinstance(first, str):
            split = (*first.encode().split(), *args[1:])
        elif b" " in first:
            split = (*first.split(), *args[1:])
        else:
            split = args
        try:
            return [hiredis.pack_command(split)]
        except TypeError:
            return super().pack_command(*args)  # type: ignore[misc, no-any-return]  # the Connection it is mixed into


@cache
def _hiredis_packing(connection_class: type[Any]) -> type[Any]:
    if issubclass(connection_class, HiredisPacking):
        return connection_class
    return type(f"HiredisPacking{connection_class.__name__}", (HiredisPacking, connection_class), {})


def _packing_with_hiredis(client: redis.asyncio.Redis) -> redis.asyncio.Redis:
    pool = client.connection_pool
    pool.connection_class = _hiredis_packing(cast(Any, pool.connection_class))
    return client


def async_redis(url: str, *, slot_of: str | None = None, **options: Any) -> redis.asyncio.Redis:
    """An asyncio client for ``url`` (see the module docstring); ``options`` go to the client as they are.

    ``slot_of``: on a cluster, a plain client on the master serving this key's slot (found now, once).
    """
    if not is_cluster_url(url):
        return _packing_with_hiredis(redis.asyncio.Redis.from_url(url, **options))
    address = cluster_address(url)
    if slot_of is not None:
        host, port = slot_master(url, slot_of)
        return _packing_with_hiredis(
            redis.asyncio.Redis(
                host=host, port=port, username=address.username, password=address.password, ssl=address.ssl, **options
            )
        )
    client = AsyncRedisCluster(
        startup_nodes=[AsyncClusterNode(host, port) for host, port in address.nodes],
        username=address.username,
        password=address.password,
        ssl=address.ssl,
        **options,
    )
    return cast(redis.asyncio.Redis, client)


def slot_master(url: str, key: str) -> tuple[str, int]:
    """``(host, port)`` of the master serving ``key``'s slot in the cluster at ``url``."""
    client = sync_redis(url, socket_timeout=5.0, socket_connect_timeout=5.0)
    try:
        node = cast(RedisCluster, client).get_node_from_key(key)  # type: ignore[no-untyped-call]
    except redis.RedisError as exc:
        raise ServiceUnavailableError(f"the Redis Cluster at {url} did not say who serves {key!r}: {exc}") from exc
    finally:
        client.close()
    if node is None:
        raise ServiceUnavailableError(f"no master of the Redis Cluster at {url} serves {key!r} now; retry shortly")
    return str(node.host), int(node.port)


def sync_redis(url: str, **options: Any) -> redis.Redis:
    """A blocking client for ``url`` (see the module docstring); ``options`` go to the client as they are."""
    if not is_cluster_url(url):
        return redis.Redis.from_url(url, **options)
    address = cluster_address(url)
    client = RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in address.nodes],  # type: ignore[no-untyped-call]
        username=address.username,
        password=address.password,
        ssl=address.ssl,
        **options,
    )
    return cast(redis.Redis, client)
