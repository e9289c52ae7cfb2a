"""Failures while bringing services up end with a message that says what to do, in bounded time."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from omnichannel.errors import ServiceStartError, ServiceUnavailableError
from omnichannel.settings import Settings
from omnichannel.stack import resolve_stack
from omnichannel.stack.maven import require_java
from omnichannel.stack.model import ServiceInfo, StackInfo
from omnichannel.stack.processes import free_port, is_alive, spawn, stop, wait_until
from omnichannel.stack.redis_server import require_redis_server
from omnichannel.stack.revive import revive_stack


def test_missing_java_says_which_version_and_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ServiceStartError, match=r"Java 17 or newer is required.*KAFKA_BOOTSTRAP_SERVERS"):
        require_java()


def test_missing_redis_server_without_permission_to_install_says_how(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ServiceStartError, match=r"redis-server. is not installed.*REDIS_URL"):
        require_redis_server(install_missing=False, progress=lambda _m: None)


def test_an_env_address_that_does_not_answer_names_the_variable(tmp_path: Path) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    settings = Settings.from_env({"REDIS_URL": dead, "OMNICHANNEL_STATE_DIR": str(tmp_path)})
    with pytest.raises(ServiceUnavailableError, match=r"REDIS_URL=redis://127\.0\.0\.1:\d+/0 does not answer"):
        resolve_stack(settings, run_dir=tmp_path / "run")


def test_a_server_that_exits_during_start_up_is_reported_with_its_log(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    proc = spawn(["sh", "-c", "echo 'bind: Address already in use'; exit 3"], log)
    with pytest.raises(ServiceStartError, match=r"(?s)exited with code 3.*Address already in use"):
        wait_until(lambda: False, what="test server", timeout=30, process=proc, log_file=log)


def test_a_server_that_never_becomes_ready_fails_within_the_timeout_and_is_stopped(tmp_path: Path) -> None:
    proc = spawn(["sleep", "60"], tmp_path / "sleep.log")
    started = time.monotonic()
    with pytest.raises(ServiceStartError, match=r"was not ready after 1s"):
        wait_until(lambda: False, what="slow server", timeout=1.0, process=proc)
    assert time.monotonic() - started < 5
    stop(proc.pid, timeout=5)
    assert not is_alive(proc.pid)


def test_stop_kills_the_whole_process_group(tmp_path: Path) -> None:
    # A launcher script with a child, like a JVM wrapper: the child must not survive.
    proc = spawn(["sh", "-c", "sleep 60 & echo $! > child.pid; wait"], tmp_path / "x.log", cwd=tmp_path)
    for _ in range(50):
        if (tmp_path / "child.pid").exists() and (tmp_path / "child.pid").read_text().strip():
            break
        time.sleep(0.1)
    child = int((tmp_path / "child.pid").read_text())
    stop(proc.pid, timeout=5)
    subprocess.run(["true"], check=True)
    assert not is_alive(proc.pid)
    assert not is_alive(child)


def _stack_with(kafka: ServiceInfo) -> StackInfo:
    # Kafka comes first: revive_stack stops at it, so the other two are never examined.
    registry = ServiceInfo("registry", "http://127.0.0.1:1/apis/ccompat/v7", "local", "x")
    redis = ServiceInfo("redis", "redis://127.0.0.1:1/0", "local", "x")
    return StackInfo(kafka, registry, redis)


def test_stack_up_never_kills_a_live_service_that_does_not_answer_yet(tmp_path: Path) -> None:
    silent = spawn(["sleep", "60"], tmp_path / "sleep.log")  # alive, but serves nothing on its port
    try:
        kafka = ServiceInfo("kafka", f"127.0.0.1:{free_port()}", "local", "x", pid=silent.pid)
        settings = Settings.from_env({"OMNICHANNEL_STATE_DIR": str(tmp_path)})
        with pytest.raises(ServiceUnavailableError, match=r"kafka \(pid \d+\) is running but has not answered.*left"):
            revive_stack(settings, _stack_with(kafka), settle_s=0.5)
        assert is_alive(silent.pid)
    finally:
        stop(silent.pid, timeout=5)


def test_stack_up_does_not_replace_a_service_it_cannot_restart_in_place(tmp_path: Path) -> None:
    gone = ServiceInfo("kafka", f"127.0.0.1:{free_port()}", "docker", "x", container_id="0123456789abcdef")
    settings = Settings.from_env({"OMNICHANNEL_STATE_DIR": str(tmp_path)})
    with pytest.raises(ServiceUnavailableError, match=r"resolved by docker\) does not answer.*stack down"):
        revive_stack(settings, _stack_with(gone), settle_s=0.1)
