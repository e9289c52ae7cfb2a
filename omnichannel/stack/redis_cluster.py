"""A local Redis Cluster (``omnichannel stack up --redis-cluster``): three masters, one replica each.

Debian's ``redis-server`` with ``--cluster-enabled yes``, one directory per node under
``<run_dir>/redis-cluster/node-<n>`` (its ``nodes.conf`` and append-only file), joined by
``redis-cli --cluster create ... --cluster-replicas 1``. Every node writes an AOF fsynced once a second, as the
single server does. A replica is promoted when its master stays unreachable for ``cluster-node-timeout``.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import redis

from omnichannel.errors import ServiceStartError
from omnichannel.stack.model import NodeInfo, Progress, ServiceInfo
from omnichannel.stack.processes import free_port, port_is_free, spawn, stop, wait_until
from omnichannel.stack.redis_server import redis_answers, redis_version, require_redis_server, server_options

__all__ = ["NODE_TIMEOUT_MS", "cluster_roles", "restart_redis_node", "start_local_redis_cluster"]

#: How long a master may be unreachable before its replica takes over (Redis's default is 15 s; a local stack
#: favours a short outage).
NODE_TIMEOUT_MS = 3000


#: Each node also listens on its port + 10000 for the cluster bus (so a node port must be at most 55535).
_BUS_OFFSET = 10000


def _node_port() -> int:
    """A free port whose cluster-bus port (+10000) is free too."""
    for _ in range(200):
        port = free_port()
        if port + _BUS_OFFSET <= 65535 and port_is_free(port + _BUS_OFFSET):
            return port
    raise ServiceStartError("no free port pair (port, port + 10000) for a Redis Cluster node on 127.0.0.1")


def _node_argv(binary: str, port: int, home: Path) -> list[str]:
    return [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
        "--cluster-node-timeout",
        str(NODE_TIMEOUT_MS),
        *server_options(home),
    ]


def start_local_redis_cluster(
    run_dir: Path, install_missing: bool, progress: Progress, *, masters: int = 3, replicas: int = 1
) -> ServiceInfo:
    """Start ``masters * (1 + replicas)`` nodes, create the cluster, and return once every slot is served."""
    binary = require_redis_server(install_missing, progress)
    cli = shutil.which("redis-cli")
    if cli is None:
        raise ServiceStartError("`redis-cli` is missing (Debian: `apt-get install redis-tools`): it creates clusters.")
    root = run_dir / "redis-cluster"
    shutil.rmtree(root, ignore_errors=True)  # a new cluster starts empty (a recorded one is revived node by node)
    count = masters * (1 + replicas)
    ports: list[int] = []
    while len(ports) < count:
        port = _node_port()
        if port not in ports and port + _BUS_OFFSET not in ports:
            ports.append(port)
    progress(f"Starting a Redis Cluster of {count} nodes on 127.0.0.1:{','.join(map(str, ports))}...")
    procs = []
    try:
        for n, port in enumerate(ports, start=1):
            home = root / f"node-{n}"
            home.mkdir(parents=True)
            procs.append(spawn(_node_argv(binary, port, home), home / "redis.log"))
        for port, proc in zip(ports, procs, strict=True):
            url = f"redis://127.0.0.1:{port}/0"
            log_file = root / f"node-{ports.index(port) + 1}" / "redis.log"
            wait_until(
                functools.partial(redis_answers, url, 0.5),
                what=f"Redis node on {url}",
                timeout=30,
                process=proc,
                log_file=log_file,
            )
        nodes_arg = [f"127.0.0.1:{p}" for p in ports]
        create = subprocess.run(
            [cli, "--cluster", "create", *nodes_arg, "--cluster-replicas", str(replicas), "--cluster-yes"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if create.returncode != 0:
            raise ServiceStartError(f"`redis-cli --cluster create` failed: {(create.stdout + create.stderr)[-1500:]}")
        wait_until(
            lambda: all(_cluster_ok(p) for p in ports) and _replicas_joined(ports, masters * replicas),
            what="the Redis Cluster to serve every slot with its replicas",
            timeout=60,
        )
    except BaseException:
        for proc in procs:
            stop(proc.pid)
        raise
    roles = cluster_roles(ports[0])
    nodes = tuple(
        NodeInfo(f"127.0.0.1:{p}", proc.pid, str(root / f"node-{n}" / "redis.log"), roles.get(p, ""))
        for n, (p, proc) in enumerate(zip(ports, procs, strict=True), start=1)
    )
    url = "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in ports)
    version = redis_version(f"redis://127.0.0.1:{ports[0]}/0")
    return ServiceInfo("redis", url, "local", version, log_file=str(root), nodes=nodes)


def _cluster_ok(port: int) -> bool:
    client = redis.Redis(port=port, socket_timeout=1.0)
    try:
        info = client.cluster("info")
        return bool(info.get("cluster_state") == "ok" and int(info.get("cluster_slots_assigned", 0)) == 16384)
    except redis.RedisError:
        return False
    finally:
        client.close()


def _replicas_joined(ports: list[int], replicas: int) -> bool:
    try:
        return sum(1 for role in cluster_roles(ports[0]).values() if role == "replica") == replicas
    except redis.RedisError:
        return False


def cluster_roles(port: int) -> dict[int, str]:
    """Port -> ``master`` or ``replica`` as the node on ``port`` sees the cluster now."""
    client = redis.Redis(port=port, socket_timeout=2.0, decode_responses=True)
    try:
        nodes: dict[str, dict[str, Any]] = client.cluster("nodes")  # "host:port" -> {"flags": "master,...", ...}
    finally:
        client.close()
    roles = {}
    for address, node in nodes.items():
        flags = str(node.get("flags", "")).split(",")
        if "fail" not in flags:
            roles[int(address.split("@")[0].rsplit(":", 1)[1])] = "master" if "master" in flags else "replica"
    return roles


def restart_redis_node(node: NodeInfo, install_missing: bool, progress: Progress) -> NodeInfo:
    """Start a dead node again on its port and directory: it reloads its AOF and ``nodes.conf`` and rejoins.

    A master that was replaced meanwhile comes back as a replica of its promoted replica.
    """
    home = Path(node.log_file).parent
    port = int(node.address.rsplit(":", 1)[1])
    deadline = time.monotonic() + 15  # a node killed a moment ago can hold its port briefly
    while not (port_is_free(port) and port_is_free(port + _BUS_OFFSET)):
        if time.monotonic() > deadline:
            raise ServiceStartError(f"port {port} of the Redis node in {home} stays taken; free it and retry.")
        time.sleep(0.25)
    progress(f"Redis node on {node.address} does not run: restarting it on the same port...")
    proc = spawn(_node_argv(require_redis_server(install_missing, progress), port, home), Path(node.log_file))
    url = f"redis://{node.address}/0"
    wait_until(
        lambda: redis_answers(url, 0.5) and _cluster_ok(port),
        what=f"Redis node on {node.address}",
        timeout=60,
        process=proc,
        log_file=Path(node.log_file),
    )
    return NodeInfo(node.address, proc.pid, node.log_file, cluster_roles(port).get(port, ""))
