"""`omnichannel stack up` after one service died: the others are untouched, the dead one comes back in place.

One local stack for the module (its own state directory; the session's shared stack is not touched): each
test kills one service with SIGKILL, runs `stack up` as a user would, and checks addresses, pids and data.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from confluent_kafka.admin import AdminClient, NewTopic

from omnichannel.stack.processes import is_alive
from schemas.registry import ConfluentSchemaRegistry

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "omnichannel.cli"]
_SCHEMA = '{"type": "record", "name": "Kept", "namespace": "test.revive", "fields": [{"name": "a", "type": "int"}]}'


def _run(args: list[str], state: Path) -> subprocess.CompletedProcess[str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "SCHEMA_REGISTRY_URL", "REDIS_URL")
    }
    env |= {"OMNICHANNEL_STATE_DIR": str(state), "OMNICHANNEL_DOCKER": "never"}
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=300, check=False)


def _saved(state: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((state / "stack.json").read_text())
    return data


def _kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    for _ in range(100):
        if not is_alive(pid):
            return
        time.sleep(0.05)
    raise AssertionError(f"pid {pid} survived SIGKILL")


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    state = tmp_path_factory.mktemp("revive") / "state"
    up = _run(["stack", "up"], state)
    assert up.returncode == 0, up.stderr
    try:
        yield state
    finally:
        _run(["stack", "down"], state)


def _restart_only(state: Path, name: str) -> dict[str, Any]:
    """SIGKILL ``name``, run `stack up`, check the other two kept pid and address; return the new record."""
    before = _saved(state)
    _kill(before[name]["pid"])
    up = _run(["stack", "up"], state)
    assert up.returncode == 0, up.stderr
    assert f"Restarted {name}" in up.stdout
    after = _saved(state)
    for other in {"kafka", "registry", "redis"} - {name}:
        assert after[other] == before[other], f"{other} was touched while restarting {name}"
        assert is_alive(after[other]["pid"])
    assert after[name]["address"] == before[name]["address"]  # back on its old port
    assert after[name]["pid"] != before[name]["pid"] and is_alive(after[name]["pid"])
    return after


def test_kafka_killed_comes_back_on_its_port_with_its_topics(state: Path) -> None:
    bootstrap = _saved(state)["kafka"]["address"]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic("revive.kept", 1, 1)])["revive.kept"].result(timeout=30)

    _restart_only(state, "kafka")

    topics = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=30).topics
    assert "revive.kept" in topics


def test_redis_killed_comes_back_on_its_port_with_its_keys(state: Path) -> None:
    url = _saved(state)["redis"]["address"]
    client = redis.Redis.from_url(url)
    client.set("revive:cart", "3 lines")
    time.sleep(1.5)  # appendfsync everysec: a write is on disk within a second
    client.close()

    after = _restart_only(state, "redis")

    client = redis.Redis.from_url(after["redis"]["address"])
    try:
        assert client.get("revive:cart") == b"3 lines"
        assert client.config_get("appendonly") == {"appendonly": "yes"}
    finally:
        client.close()


def test_registry_killed_comes_back_with_the_same_schema_ids(state: Path) -> None:
    url = _saved(state)["registry"]["address"]
    schema_id = ConfluentSchemaRegistry(url).register("revive-value", _SCHEMA)

    _restart_only(state, "registry")

    registry = ConfluentSchemaRegistry(url)
    assert "Kept" in registry.schema_text(schema_id)
    assert registry.register("revive-value", _SCHEMA) == schema_id


def test_stack_up_on_a_healthy_stack_changes_nothing(state: Path) -> None:
    before = _saved(state)
    up = _run(["stack", "up"], state)
    assert up.returncode == 0, up.stderr
    assert "already up" in up.stdout
    assert _saved(state) == before
