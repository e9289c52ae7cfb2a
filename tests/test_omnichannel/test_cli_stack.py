"""`omnichannel stack up | status | down` as a user runs it, against real local services."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from omnichannel.stack.processes import is_alive

CLI = [sys.executable, "-m", "omnichannel.cli"]


def _run(args: list[str], state: Path) -> subprocess.CompletedProcess[str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "SCHEMA_REGISTRY_URL", "REDIS_URL")
    }
    env |= {"OMNICHANNEL_STATE_DIR": str(state), "OMNICHANNEL_DOCKER": "never"}
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.integration
def test_stack_up_twice_is_harmless_and_down_leaves_no_process(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = _run(["stack", "up"], state)
    assert first.returncode == 0, first.stderr
    saved = json.loads((state / "stack.json").read_text())
    pids = [saved[name]["pid"] for name in ("kafka", "registry", "redis")]
    try:
        assert all(is_alive(pid) for pid in pids)
        second = _run(["stack", "up"], state)
        assert second.returncode == 0, second.stderr
        assert "already up" in second.stdout
        assert json.loads((state / "stack.json").read_text()) == saved  # nothing new was started

        status = _run(["stack", "status"], state)
        assert status.returncode == 0
        for name in ("kafka", "registry", "redis"):
            assert f"{name}: {saved[name]['address']}" in status.stdout
        assert "resolved by local" in status.stdout
    finally:
        down = _run(["stack", "down"], state)
    assert down.returncode == 0, down.stderr
    assert not any(is_alive(pid) for pid in pids)
    assert not (state / "stack.json").exists()
    after = _run(["stack", "status"], state)
    assert after.returncode == 3
    assert "omnichannel stack up" in after.stdout
