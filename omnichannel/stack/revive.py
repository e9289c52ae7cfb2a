"""``stack up`` on a recorded stack: keep every service that answers, restart only the dead ones, in place.

A healthy service is never stopped or replaced: its clients (a running API, a worker) hold its address and,
for Redis and the registry, its data. A dead local process is started again on its previous port, when free,
with its previous data directory, so the addresses other commands saved keep working.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import unquote, urlsplit

from omnichannel.errors import OmnichannelError, ServiceUnavailableError
from omnichannel.settings import Settings
from omnichannel.stack.kafka import start_local_kafka
from omnichannel.stack.kafka_cluster import restart_kafka_node
from omnichannel.stack.model import Progress, ServiceInfo, StackInfo, quiet
from omnichannel.stack.processes import is_alive
from omnichannel.stack.redis_cluster import cluster_roles, restart_redis_node
from omnichannel.stack.redis_server import start_local_redis
from omnichannel.stack.registry import start_local_registry
from omnichannel.stack.resolve import service_answers, stop_service

__all__ = ["Revival", "revive_nodes", "revive_stack"]

#: A live process that does not answer yet may be a JVM still starting or Redis replaying its AOF.
_SETTLE_S = 20.0


@dataclass(frozen=True)
class Revival:
    """The stack after ``stack up``: which services were kept as they were and which were restarted."""

    info: StackInfo
    kept: tuple[str, ...]
    restarted: tuple[str, ...]


def revive_stack(
    settings: Settings, saved: StackInfo, *, progress: Progress = quiet, settle_s: float = _SETTLE_S
) -> Revival:
    """Keep each service of ``saved`` that answers; restart each dead local one on its previous port.

    Raises :class:`ServiceUnavailableError` for a service that is alive but silent past ``settle_s`` (it is
    left running: killing it could lose data) or that the project cannot restart (Docker, external). If a
    restart fails, the services restarted by this call are stopped again before the error propagates.
    """
    services: dict[str, ServiceInfo] = {}
    kept: list[str] = []
    restarted: list[ServiceInfo] = []
    try:
        for info in saved.services:
            if info.nodes and info.resolved_by == "local":
                revived = revive_nodes(settings, info, progress)
                services[info.name] = revived
                (restarted.append(revived) if revived.pids != info.pids else kept.append(info.name))
                continue
            if service_answers(info) or _settles(info, settle_s):
                services[info.name] = info
                kept.append(info.name)
                continue
            if info.pid is not None and is_alive(info.pid):
                raise ServiceUnavailableError(
                    f"{info.name} (pid {info.pid}) is running but has not answered at {info.address} for "
                    f"{settle_s:.0f}s; it was left running. Wait and run `omnichannel stack up` again, or run "
                    "`omnichannel stack down` then `omnichannel stack up` to restart the whole stack."
                )
            if info.resolved_by != "local":
                raise ServiceUnavailableError(
                    f"{info.name} at {info.address} (resolved by {info.resolved_by}) does not answer, and only "
                    "local processes can be restarted in place. Bring it back, or run `omnichannel stack down` "
                    "then `omnichannel stack up`."
                )
            fresh = _restart(settings, info, progress)
            restarted.append(fresh)
            services[info.name] = fresh
    except (OmnichannelError, OSError, KeyboardInterrupt):
        for info in restarted:
            stop_service(info)
        raise
    return Revival(
        StackInfo(services["kafka"], services["registry"], services["redis"]),
        tuple(kept),
        tuple(info.name for info in restarted),
    )


def revive_nodes(settings: Settings, info: ServiceInfo, progress: Progress = quiet) -> ServiceInfo:
    """A clustered service with each dead node started again on its own ports and data; live nodes are kept."""
    nodes = []
    for node in info.nodes:
        if node.pid is not None and is_alive(node.pid):
            nodes.append(node)
        elif info.name == "kafka":
            nodes.append(restart_kafka_node(settings.cache_dir, node, progress))
        else:
            nodes.append(restart_redis_node(node, settings.install_missing, progress))
    if info.name == "redis":  # a failover swapped roles: record them as the cluster sees them now
        roles = cluster_roles(int(nodes[0].address.rsplit(":", 1)[1]))
        nodes = [replace(n, role=roles.get(int(n.address.rsplit(":", 1)[1]), n.role)) for n in nodes]
    return replace(info, nodes=tuple(nodes))


def _settles(info: ServiceInfo, settle_s: float) -> bool:
    if info.pid is None or not is_alive(info.pid):
        return False
    deadline = time.monotonic() + settle_s
    while time.monotonic() < deadline:
        time.sleep(1.0)
        if service_answers(info):
            return True
    return False


def _restart(settings: Settings, info: ServiceInfo, progress: Progress) -> ServiceInfo:
    port = _port(info)
    run_dir = _run_dir(settings, info)
    progress(f"{info.name} at {info.address} does not answer: restarting it on the same port...")
    if info.name == "kafka":
        return start_local_kafka(settings.cache_dir, run_dir, progress, port=port)
    if info.name == "registry":
        return start_local_registry(settings.cache_dir, run_dir, progress, port=port)
    password = urlsplit(info.address).password
    return start_local_redis(
        run_dir, settings.install_missing, progress, port=port, password=unquote(password) if password else None
    )


def _port(info: ServiceInfo) -> int | None:
    address = info.address if "://" in info.address else f"kafka://{info.address.split(',')[0]}"
    try:
        return urlsplit(address).port
    except ValueError:
        return None


def _run_dir(settings: Settings, info: ServiceInfo) -> Path:
    # Each local service logs to <run_dir>/<service>/<service>.log beside its data: restart it on that data.
    if info.log_file:
        return Path(info.log_file).parent.parent
    return settings.state_dir / "run"
