"""A running backbone for the read-API tests: a worker and the HTTP API as real processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest

from omnichannel.provision import provision, remove_namespace
from omnichannel.settings import Settings
from omnichannel.stack.processes import free_port, stop


@dataclass(frozen=True)
class Backbone:
    base_url: str
    namespace: str
    settings: Settings

    def cli_env(self, **extra: str) -> dict[str, str]:
        """The environment of an ``omnichannel`` command run against this backbone (its services, its namespace)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("OMNICHANNEL_")}
        return env | {
            "KAFKA_BOOTSTRAP_SERVERS": self.settings.kafka_bootstrap_servers or "",
            "SCHEMA_REGISTRY_URL": self.settings.schema_registry_url or "",
            "REDIS_URL": self.settings.redis_url or "",
            "OMNICHANNEL_NAMESPACE": self.namespace,
            **extra,
        }


@pytest.fixture(scope="module")
def backbone(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backbone]:
    namespace = f"api{uuid.uuid4().hex[:8]}"
    state = tmp_path_factory.mktemp(namespace)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNICHANNEL_")}
    env |= {
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers or "",
        "SCHEMA_REGISTRY_URL": settings.schema_registry_url or "",
        "REDIS_URL": settings.redis_url or "",
        "OMNICHANNEL_NAMESPACE": namespace,
        "OMNICHANNEL_PARTITIONS": "2",
        "OMNICHANNEL_STATE_DIR": str(state),
        "OMNICHANNEL_DEV": "1",
    }
    assert settings.kafka_bootstrap_servers is not None
    provision(replace(settings, namespace=namespace), partitions=2)  # topics and schemas, as deployed
    port = free_port()
    cli = [sys.executable, "-m", "omnichannel.cli"]
    procs = []
    for name, argv in (("worker", [*cli, "worker"]), ("api", [*cli, "serve", "--port", str(port)])):
        with Path(state / f"{name}.log").open("wb") as log:
            procs.append(subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail(f"the API did not start: {(state / 'api.log').read_text()[-2000:]}")
        yield Backbone(base, namespace, Settings.from_env(env))
    finally:
        for proc in procs:
            stop(proc.pid)
        remove_namespace(Settings.from_env(env))  # a long-lived development broker would keep every run's partitions
