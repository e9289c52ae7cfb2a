"""The Docker path: when an engine answers a ping, run the services with testcontainers.

Not exercised on machines without a Docker engine (the project's CI machines); any failure here
(no engine, an image that cannot be pulled) makes the resolver fall back to local processes.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from omnichannel.stack.model import ServiceInfo
from omnichannel.stack.redis_server import redis_version
from omnichannel.stack.registry import CCOMPAT_PATH, registry_answers, registry_version

__all__ = ["KAFKA_IMAGE", "REDIS_IMAGE", "REGISTRY_IMAGE", "docker_engine_answers", "start_docker_services"]

log = logging.getLogger(__name__)

KAFKA_IMAGE = "confluentinc/cp-kafka:7.9.0"
REGISTRY_IMAGE = "apicurio/apicurio-registry:3.0.9"
REDIS_IMAGE = "redis:7.4"


def docker_engine_answers() -> bool:
    """Ping the Docker API itself: a ``docker`` CLI without an engine (common) does not count."""
    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # any failure means "no usable engine"
        return False


def start_docker_services(keep: bool) -> tuple[list[Any], tuple[ServiceInfo, ServiceInfo, ServiceInfo]]:
    """Start Kafka (KRaft), Apicurio and Redis containers; ``keep`` disables the reaper for ``stack up``."""
    if keep:
        os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for
    from testcontainers.kafka import KafkaContainer
    from testcontainers.redis import RedisContainer

    started: list[Any] = []
    try:
        kafka = KafkaContainer(KAFKA_IMAGE).with_kraft()
        kafka.start()
        started.append(kafka)
        registry = DockerContainer(REGISTRY_IMAGE).with_exposed_ports(8080)
        registry.start()
        started.append(registry)
        url = f"http://{registry.get_container_host_ip()}:{registry.get_exposed_port(8080)}{CCOMPAT_PATH}"
        wait_for(lambda: registry_answers(url))
        redis_c = RedisContainer(REDIS_IMAGE)
        redis_c.start()
        started.append(redis_c)
        redis_url = f"redis://{redis_c.get_container_host_ip()}:{redis_c.get_exposed_port(6379)}/0"
    except Exception:
        for container in started:
            container.stop()
        raise
    infos = (
        ServiceInfo(
            "kafka", kafka.get_bootstrap_server(), "docker", KAFKA_IMAGE, container_id=kafka.get_wrapped_container().id
        ),
        ServiceInfo("registry", url, "docker", registry_version(url), container_id=registry.get_wrapped_container().id),
        ServiceInfo(
            "redis", redis_url, "docker", redis_version(redis_url), container_id=redis_c.get_wrapped_container().id
        ),
    )
    return started, infos
