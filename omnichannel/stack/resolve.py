"""The one code path that finds Kafka, the Schema Registry and Redis (tests, demo and CLI all use it).

For each service, in order:
1. an address given by environment (``KAFKA_BOOTSTRAP_SERVERS``, ``SCHEMA_REGISTRY_URL``, ``REDIS_URL``);
2. a stack already started by ``omnichannel stack up`` (its stack file, if every service still answers);
3. a Docker engine that answers a ping: testcontainers;
4. local processes started here (Kafka and Apicurio from Maven Central, Debian's ``redis-server``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any

from omnichannel.errors import OmnichannelError, ServiceUnavailableError
from omnichannel.logs import kv
from omnichannel.settings import Settings
from omnichannel.stack.docker import docker_engine_answers, start_docker_services
from omnichannel.stack.kafka import kafka_answers, start_local_kafka
from omnichannel.stack.kafka_cluster import start_local_kafka_cluster
from omnichannel.stack.model import Progress, ServiceInfo, StackInfo, quiet
from omnichannel.stack.processes import is_alive, stop
from omnichannel.stack.redis_cluster import start_local_redis_cluster
from omnichannel.stack.redis_server import redis_answers, redis_version, start_local_redis
from omnichannel.stack.registry import registry_answers, registry_version, start_local_registry

__all__ = ["Stack", "connect", "resolve_stack", "service_answers", "stack_file", "stop_service"]

log = logging.getLogger(__name__)


def stack_file(settings: Settings) -> Path:
    """Where ``stack up`` records the addresses for the other commands."""
    return settings.state_dir / "stack.json"


def service_answers(info: ServiceInfo) -> bool:
    """Probe one service with a real request (metadata, ``/subjects``, PING)."""
    if info.pids and not any(is_alive(pid) for pid in info.pids):
        return False
    probes: dict[str, Callable[[str], bool]] = {
        "kafka": kafka_answers,
        "registry": registry_answers,
        "redis": redis_answers,
    }
    return probes[info.name](info.address)


def stop_service(info: ServiceInfo) -> None:
    """Stop a service this project started (a local process or a container); external ones are left alone."""
    if info.resolved_by == "local":
        for pid in info.pids:
            stop(pid)
    elif info.resolved_by == "docker" and info.container_id:
        with contextlib.suppress(Exception):  # already gone is fine
            import docker

            docker.from_env().containers.get(info.container_id).remove(force=True)


class Stack:
    """A resolved stack; closing it stops exactly the services it started (and nothing external)."""

    def __init__(self, info: StackInfo, owned: list[ServiceInfo], containers: list[Any]) -> None:
        self.info = info
        self._owned = owned
        self._containers = containers

    def settings(self, base: Settings) -> Settings:
        """``base`` pointed at this stack's addresses."""
        return base.with_addresses(self.info.kafka.address, self.info.registry.address, self.info.redis.address)

    def close(self) -> None:
        for container in self._containers:
            with contextlib.suppress(Exception):
                container.stop()
        for info in self._owned:
            stop_service(info)
        self._owned, self._containers = [], []

    def __enter__(self) -> Stack:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _from_env(settings: Settings) -> dict[str, ServiceInfo]:
    found: dict[str, ServiceInfo] = {}
    given = {
        "kafka": ("KAFKA_BOOTSTRAP_SERVERS", settings.kafka_bootstrap_servers),
        "registry": ("SCHEMA_REGISTRY_URL", settings.schema_registry_url),
        "redis": ("REDIS_URL", settings.redis_url),
    }
    for name, (variable, address) in given.items():
        if address is None:
            continue
        info = ServiceInfo(name, address, "env", "external")
        if not service_answers(info):
            raise ServiceUnavailableError(
                f"{variable}={address} does not answer. Check the address and that the service is up, "
                f"or unset {variable} to let the project start a local {name}."
            )
        version = {"registry": registry_version, "redis": redis_version}.get(name, lambda _a: "external")(address)
        found[name] = ServiceInfo(name, address, "env", version)
    return found


def _from_stack_file(settings: Settings) -> dict[str, ServiceInfo]:
    saved = StackInfo.load(stack_file(settings))
    if saved is None or not all(service_answers(s) for s in saved.services):
        return {}
    # Without pids: a stack found in the file belongs to `stack up`, never stopped by whoever found it.
    return {
        s.name: ServiceInfo(
            s.name,
            s.address,
            "stack-file",
            s.version,
            log_file=s.log_file,
            nodes=tuple(replace(n, pid=None) for n in s.nodes),
        )
        for s in saved.services
    }


def resolve_stack(
    settings: Settings,
    *,
    run_dir: Path | None = None,
    progress: Progress = quiet,
    keep: bool = False,
    use_stack_file: bool = True,
    brokers: int = 1,
    redis_cluster: bool = False,
) -> Stack:
    """Find or start the three services; see the module docstring for the order.

    ``brokers`` above one starts that many local KRaft nodes for a Kafka that is not found, and ``redis_cluster``
    a local Redis Cluster (three masters, three replicas) for a Redis that is not found (never Docker).

    ``run_dir`` holds logs and data of local processes (default ``<state_dir>/run``). ``keep`` is for
    ``stack up``: containers must outlive this process. On any failure, whatever was started is stopped
    before the error propagates, so no stray process is left behind.
    """
    run_dir = run_dir or settings.state_dir / "run"
    found = _from_env(settings)
    if use_stack_file and len(found) < 3:
        for name, info in _from_stack_file(settings).items():
            found.setdefault(name, info)
    owned: list[ServiceInfo] = []
    containers: list[Any] = []
    try:
        missing = [n for n in ("kafka", "registry", "redis") if n not in found]
        if brokers > 1 and "kafka" in missing:  # Docker starts one broker: a cluster is local processes only
            missing.remove("kafka")
        if redis_cluster and "redis" in missing:
            missing.remove("redis")
        if missing and settings.docker == "auto" and docker_engine_answers():
            try:
                progress("A Docker engine answers: starting the services with testcontainers...")
                containers, infos = start_docker_services(keep)
                for info in infos:
                    if info.name in missing:
                        found[info.name] = info
                        owned.append(info)
            except Exception as exc:  # an unpullable image must not block the local path
                log.warning("docker start failed; falling back to local processes", extra=kv(error=str(exc)))
                for container in containers:
                    with contextlib.suppress(Exception):
                        container.stop()
                containers = []
        starters = {
            "kafka": lambda: (
                start_local_kafka_cluster(settings.cache_dir, run_dir, progress, brokers=brokers)
                if brokers > 1
                else start_local_kafka(settings.cache_dir, run_dir, progress)
            ),
            "registry": lambda: start_local_registry(settings.cache_dir, run_dir, progress),
            "redis": lambda: (
                start_local_redis_cluster(run_dir, settings.install_missing, progress)
                if redis_cluster
                else start_local_redis(run_dir, settings.install_missing, progress)
            ),
        }
        for name in ("kafka", "registry", "redis"):
            if name not in found:
                info = starters[name]()
                found[name] = info
                owned.append(info)
                log.info("service started", extra=kv(service=name, address=info.address))
    except (OmnichannelError, OSError, KeyboardInterrupt):
        for container in containers:
            with contextlib.suppress(Exception):
                container.stop()
        for info in owned:
            stop_service(info)
        raise
    return Stack(StackInfo(found["kafka"], found["registry"], found["redis"]), owned, containers)


def connect(settings: Settings) -> Settings:
    """Settings with every address filled, from the environment or a running ``stack up``; starts nothing.

    For commands that act on an existing stack (topics, schemas, workers); raises
    :class:`ServiceUnavailableError` saying how to get one.
    """
    saved = StackInfo.load(stack_file(settings))
    kafka = settings.kafka_bootstrap_servers or (saved.kafka.address if saved else None)
    registry = settings.schema_registry_url or (saved.registry.address if saved else None)
    redis_url = settings.redis_url or (saved.redis.address if saved else None)
    if kafka is None or registry is None or redis_url is None:
        raise ServiceUnavailableError(
            "no Kafka / Schema Registry / Redis addresses: run `omnichannel stack up` first, or set "
            "KAFKA_BOOTSTRAP_SERVERS, SCHEMA_REGISTRY_URL and REDIS_URL"
        )
    return settings.with_addresses(kafka, registry, redis_url)
