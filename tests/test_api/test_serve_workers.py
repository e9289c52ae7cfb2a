"""``omnichannel serve --workers 2``: two processes serve one port, each publishing with its own producer.

Each worker in turn is paused (SIGSTOP) while an event is sent on a new connection: the other one must take
the connection and answer 202 (stored in Kafka). Both answering alone shows both serve.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from omnichannel.provision import provision, remove_namespace
from omnichannel.settings import Settings
from omnichannel.stack.processes import free_port, stop
from schemas.samples import sample_event


@pytest.fixture
def serve_two_workers(settings: Settings, tmp_path: Path) -> Iterator[tuple[str, int]]:
    """``serve --workers 2`` on a free port, in a namespace of its own; yields (base URL, supervisor pid)."""
    namespace = f"workers{uuid.uuid4().hex[:8]}"
    assert settings.kafka_bootstrap_servers is not None
    provision(dataclasses.replace(settings, namespace=namespace), 1)  # topics and schemas
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNICHANNEL_")}
    env |= {
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "SCHEMA_REGISTRY_URL": settings.schema_registry_url or "",
        "REDIS_URL": settings.redis_url or "",
        "OMNICHANNEL_NAMESPACE": namespace,
        "OMNICHANNEL_STATE_DIR": str(tmp_path),
        "OMNICHANNEL_DEV": "1",
    }
    port = free_port()
    argv = [sys.executable, "-m", "omnichannel.cli", "serve", "--port", str(port), "--workers", "2"]
    with (tmp_path / "serve.log").open("wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        stop(proc.pid)
        remove_namespace(dataclasses.replace(settings, namespace=namespace))


def _workers(supervisor: int) -> list[int]:
    """The supervisor's worker processes now (spawned interpreters; not its resource tracker)."""
    found = []
    for task in Path(f"/proc/{supervisor}/task").glob("*"):
        for child in (task / "children").read_text().split():
            with contextlib.suppress(OSError):
                if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                    found.append(int(child))
    return sorted(found)


def _post_while_paused(base: str, paused: int, event: dict[str, object]) -> httpx.Response | None:
    """POST ``event`` on a new connection while ``paused`` is stopped; None without an answer within 2 s."""
    try:
        os.kill(paused, signal.SIGSTOP)
    except ProcessLookupError:  # replaced by the supervisor meanwhile
        return None
    try:  # short: a worker that misses the supervisor's health checks for long is replaced
        return httpx.post(f"{base}/v1/events", json=event, headers={"X-Api-Key": "dev-web"}, timeout=2)
    except httpx.TransportError:  # not listening yet (refused until a worker started), or no answer in time
        return None
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(paused, signal.SIGCONT)


def test_each_of_two_workers_serves_the_port_alone(serve_two_workers: tuple[str, int]) -> None:
    base, supervisor = serve_two_workers
    answered: dict[int, httpx.Response] = {}  # worker pid -> its 202 while the other was paused
    deadline = time.monotonic() + 90  # the workers may take a while to start on a loaded machine
    while len(answered) < 2 and time.monotonic() < deadline:
        workers = _workers(supervisor)
        if len(workers) != 2:
            time.sleep(0.5)
            continue
        for paused, serving in ((workers[0], workers[1]), (workers[1], workers[0])):
            event = sample_event("cart_line_added", channel="web", event_id=str(uuid.uuid4()))
            del event["received_at_ms"], event["source_system"]
            response = _post_while_paused(base, paused, event)
            if response is not None and response.status_code == 202:
                assert response.json()["event_id"] == event["event_id"]
                assert response.json()["topic"].endswith(".channel.web.events")
                answered[serving] = response
        time.sleep(0.3)
    assert len(answered) >= 2, f"only workers {sorted(answered)} answered 202 while the other was paused"
