"""Several KRaft nodes from the same jars (``omnichannel stack up --brokers 3``).

Each node is a combined broker+controller with its own ports and log directory under
``<run_dir>/kafka-cluster/node-<id>``; the controllers form one static quorum (``controller.quorum.voters``), so
the cluster keeps a leader while a majority (two of three) is up. Internal topics are replicated on
``min(3, brokers)`` nodes with ``min.insync.replicas=2`` from three up, like the catalogue's topics
(:func:`omnichannel.kafka_admin.ensure_topics`).
"""

from __future__ import annotations

import functools
import re
import shutil
import time
from pathlib import Path

from omnichannel.errors import ServiceStartError
from omnichannel.settings import KAFKA_VERSION
from omnichannel.stack.kafka import (
    START_TIMEOUT_S,
    broker_ready,
    format_storage,
    kafka_answers,
    new_cluster_id,
    read_log,
    server_properties,
    spawn_broker,
)
from omnichannel.stack.maven import kafka_classpath, require_java
from omnichannel.stack.model import NodeInfo, Progress, ServiceInfo
from omnichannel.stack.processes import free_ports, is_alive, port_is_free, stop, wait_until

__all__ = ["MAX_REPLICAS", "restart_kafka_node", "start_local_kafka_cluster"]

#: Replicas per partition: three survive one broker loss with two in sync; more only costs disk and traffic.
MAX_REPLICAS = 3
#: Each JVM of a cluster gets less heap than a lone broker: three share the machine.
_NODE_HEAP = "512m"


def start_local_kafka_cluster(cache_dir: Path, run_dir: Path, progress: Progress, *, brokers: int) -> ServiceInfo:
    """Format and start ``brokers`` broker+controller nodes on loopback ports; return once all serve metadata."""
    if brokers < 2:
        raise ValueError("a Kafka cluster needs at least 2 brokers; use start_local_kafka for one")
    java = require_java()
    classpath = kafka_classpath(cache_dir, progress)
    root = run_dir / "kafka-cluster"
    last_error = ""
    for _attempt in range(3):  # ports picked free can be taken before the nodes bind them
        picked = free_ports(2 * brokers)
        ports = [(picked[2 * n], picked[2 * n + 1]) for n in range(brokers)]
        voters = ",".join(f"{n}@127.0.0.1:{c}" for n, (_, c) in enumerate(ports, start=1))
        cluster_id = new_cluster_id()
        homes = [root / f"node-{n}" for n in range(1, brokers + 1)]
        for n, (home, (port, controller)) in enumerate(zip(homes, ports, strict=True), start=1):
            # A new cluster starts empty: its quorum and ports are new (a recorded one is revived node by node).
            shutil.rmtree(home, ignore_errors=True)
            home.mkdir(parents=True)
            config = home / "server.properties"
            replicas = min(MAX_REPLICAS, brokers)
            data = home / "data"
            properties = server_properties(data, port, controller, node_id=n, voters=voters, replicas=replicas)
            config.write_text(properties)
            format_storage(java, classpath, home, config, cluster_id)
        progress(
            f"Starting {brokers} Apache Kafka {KAFKA_VERSION} (KRaft) nodes on 127.0.0.1:"
            + ",".join(str(p) for p, _ in ports)
            + "..."
        )
        procs = [spawn_broker(java, classpath, home, home / "server.properties", _NODE_HEAP) for home in homes]
        nodes = tuple(
            NodeInfo(f"127.0.0.1:{port}", proc.pid, str(home / "kafka.log"))
            for (port, _), proc, home in zip(ports, procs, homes, strict=True)
        )
        try:
            for node, proc in zip(nodes, procs, strict=True):
                wait_until(
                    functools.partial(broker_ready, Path(node.log_file), node.address),
                    what=f"Kafka node on {node.address}",
                    timeout=START_TIMEOUT_S,
                    process=proc,
                    log_file=Path(node.log_file),
                )
        except ServiceStartError as exc:
            for proc in procs:
                stop(proc.pid)
            last_error = str(exc)
            if any("Address already in use" in read_log(Path(n.log_file)) for n in nodes):
                continue
            raise
        bootstrap = ",".join(n.address for n in nodes)
        return ServiceInfo("kafka", bootstrap, "local", KAFKA_VERSION, log_file=str(root), nodes=nodes)
    raise ServiceStartError(f"the Kafka cluster could not bind free ports after 3 attempts: {last_error}")


def restart_kafka_node(cache_dir: Path, node: NodeInfo, progress: Progress) -> NodeInfo:
    """Start a dead node again on its own ports and log directory (its ``server.properties`` is kept).

    It rejoins the quorum and catches its replicas up from the other nodes.
    """
    if node.pid is not None and is_alive(node.pid):
        return node
    home = Path(node.log_file).parent
    config = home / "server.properties"
    ports = [int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", _listeners(config))]
    deadline = time.monotonic() + 30  # a port of a node killed a moment ago can stay taken briefly
    while not all(port_is_free(p) for p in ports):
        if time.monotonic() > deadline:
            raise ServiceStartError(f"ports {ports} of the Kafka node in {home} stay taken; free them and retry.")
        time.sleep(0.5)
    progress(f"Kafka node on {node.address} does not run: restarting it on the same ports...")
    proc = spawn_broker(require_java(), kafka_classpath(cache_dir, progress), home, config, _NODE_HEAP)
    log_file = Path(node.log_file)
    start = len(read_log(log_file))
    wait_until(
        lambda: "Kafka Server started" in read_log(log_file)[start:] and kafka_answers(node.address, 2.0),
        what=f"Kafka node on {node.address}",
        timeout=START_TIMEOUT_S,
        process=proc,
        log_file=log_file,
    )
    return NodeInfo(node.address, proc.pid, node.log_file, node.role)


def _listeners(config: Path) -> str:
    match = re.search(r"^listeners=(.*)$", read_log(config), re.MULTILINE)
    if match is None:
        raise ServiceStartError(f"{config} has no listeners line: restart the whole stack (stack down, stack up).")
    return match.group(1)
