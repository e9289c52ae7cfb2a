"""A running backbone for the journeys tests: a real worker and the HTTP API in one namespace, short quiet
periods, a producer that publishes like a connector, and a background consumer of the journey topics.

Helpers live here (a uniquely named module) and the fixtures are re-exported by this folder's conftest.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer, Producer

from omnichannel.provision import provision, remove_namespace
from omnichannel.settings import Settings
from omnichannel.stack.processes import free_port, stop
from schemas.codec import AvroCodec
from schemas.loader import EVENT_FULLNAME
from schemas.registry import ConfluentSchemaRegistry
from schemas.samples import sample_event
from schemas.topics import channel_topic

#: Quiet periods of the tests (seconds): short, but long enough that a cancelling event published right after
#: the cart is applied well before the check comes due.
QUIET_S = 3.0
READ_KEY = {"X-Api-Key": "dev-read"}  # reads need the read key: channel keys only publish
NO_IDS = {"anonymous_id": None, "customer_id": None, "email_hash": None, "phone_hash": None, "loyalty_card": None}


def now_ms() -> int:
    return int(time.time() * 1000)


def ids(**given: str | None) -> dict[str, str | None]:
    """An identities record: the given identifiers, the others null."""
    return {**NO_IDS, **given}


def event(
    event_type: str, channel: str, identities: dict[str, Any], payload: dict[str, Any], at: int
) -> dict[str, Any]:
    """A complete Event of ``event_type`` (no device: keyed by identity only)."""
    return sample_event(
        event_type,
        channel=channel,
        identities=identities,
        device=None,
        occurred_at_ms=at,
        received_at_ms=at,
        payload=payload,
        consent={},
    )


@dataclass
class Journeys:
    """One namespace with a worker, the API, a producer and a consumer of the triggers and attribution topics."""

    settings: Settings
    env: dict[str, str]
    state_dir: Path
    base_url: str
    codec: AvroCodec
    worker: subprocess.Popen[bytes] | None = None
    api: subprocess.Popen[bytes] | None = None
    triggers: list[dict[str, Any]] = field(default_factory=list)
    attributions: list[dict[str, Any]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.producer = Producer(
            {"bootstrap.servers": self.settings.kafka_bootstrap_servers, "partitioner": "murmur2_random", "acks": "all"}
        )
        self.http = httpx.Client(base_url=self.base_url, timeout=10, headers=READ_KEY)

    # -- processes ----------------------------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        with (self.state_dir / f"{name}.log").open("ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "omnichannel.cli", *argv],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def start_worker(self) -> None:
        self.worker = self._spawn("worker", ["worker"])

    def stop_worker(self) -> None:
        """SIGTERM, as an orchestrator stops a worker; waits for it to exit."""
        assert self.worker is not None
        os.killpg(self.worker.pid, signal.SIGTERM)
        self.worker.wait(timeout=60)
        self.worker = None

    def start(self) -> None:
        self.start_worker()
        self.api = self._spawn("api", ["serve", "--port", self.base_url.rsplit(":", 1)[1]])
        for topic, sink in (("customer.triggers", self.triggers), ("customer.attribution", self.attributions)):
            thread = threading.Thread(target=self._consume, args=(topic, sink), daemon=True)
            thread.start()
            self._threads.append(thread)

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self.http.close()
        for proc in (self.worker, self.api):
            if proc is not None and proc.poll() is None:
                stop(proc.pid)
        remove_namespace(self.settings)  # a long-lived development broker would keep every run's partitions

    def log(self, name: str = "worker") -> str:
        path = self.state_dir / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def _consume(self, topic: str, sink: list[dict[str, Any]]) -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": self.settings.kafka_bootstrap_servers,
                "group.id": f"test-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
            }
        )
        consumer.subscribe([self.settings.topic(topic)])
        try:
            while not self._stop.is_set():
                message = consumer.poll(0.2)
                if message is not None and message.error() is None:
                    record = self.codec.decode(message.value() or b"")
                    with self._lock:
                        sink.append({"_key": (message.key() or b"").decode(), **record})
        finally:
            consumer.close()

    # -- publishing and reading ---------------------------------------------------------------------------

    def publish(self, *events: dict[str, Any]) -> None:
        """Publish like a connector: to the channel's topic, keyed by the strongest identity."""
        for ev in events:
            given = ev["identities"]
            key = next(
                (f"{prefix}:{given[name]}" for name, prefix in _KEYS if given.get(name)),
                "stock:" + str(ev["payload"].get("store_id")),
            )
            topic = self.settings.topic(channel_topic(ev["channel"]))
            self.producer.produce(topic, key=key, value=self.codec.encode(f"{topic}-value", EVENT_FULLNAME, ev))
        assert self.producer.flush(30) == 0

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.http.get(path, params=params)

    def wait_for(self, condition: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            for name, proc in (("worker", self.worker), ("api", self.api)):
                if proc is not None and proc.poll() is not None:
                    pytest.fail(f"the {name} exited with {proc.poll()} while waiting for {what}: {self.log(name)}")
            time.sleep(0.1)
        pytest.fail(f"timed out after {timeout}s waiting for {what}; worker log: {self.log()}")

    def customer(self, customer_id: str) -> dict[str, Any] | None:
        answer = self.get(f"/v1/customers/{customer_id}")
        return answer.json()["customer"] if answer.status_code == 200 else None

    def triggers_for(self, key: str) -> list[dict[str, Any]]:
        with self._lock:
            return [t for t in self.triggers if t["_key"] == key]

    def attributions_for(self, key: str) -> list[dict[str, Any]]:
        with self._lock:
            return [a for a in self.attributions if a["_key"] == key]


_KEYS = (
    ("customer_id", "customer"),
    ("loyalty_card", "loyalty"),
    ("email_hash", "email"),
    ("phone_hash", "phone"),
    ("anonymous_id", "anonymous"),
)


def start_journeys(settings: Settings, state_dir: Path, extra_env: dict[str, str] | None = None) -> Journeys:
    """Create the topics of a fresh namespace and start its worker and API (returns at once)."""
    namespace = f"j{uuid.uuid4().hex[:9]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNICHANNEL_")}
    env |= {
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers or "",
        "SCHEMA_REGISTRY_URL": settings.schema_registry_url or "",
        "REDIS_URL": settings.redis_url or "",
        "OMNICHANNEL_NAMESPACE": namespace,
        "OMNICHANNEL_PARTITIONS": "2",
        "OMNICHANNEL_STATE_DIR": str(state_dir),
        "OMNICHANNEL_DEV": "1",
        "OMNICHANNEL_CART_QUIET_SECONDS": str(QUIET_S),
        "OMNICHANNEL_QUOTE_QUIET_SECONDS": str(QUIET_S),
        "OMNICHANNEL_JOURNEY_TICK_SECONDS": "0.25",
        **(extra_env or {}),
    }
    assert settings.kafka_bootstrap_servers and settings.schema_registry_url
    provision(replace(settings, namespace=namespace), partitions=2)  # topics and schemas, as deployed
    journeys = Journeys(
        Settings.from_env(env),
        env,
        state_dir,
        f"http://127.0.0.1:{free_port()}",
        AvroCodec(ConfluentSchemaRegistry(settings.schema_registry_url)),
    )
    journeys.start()
    return journeys


def wait_ready(journeys: Journeys) -> None:
    """Until the API answers and the worker applied a first event (so later timings are the worker's own)."""
    token = uuid.uuid4().hex[:8]
    journeys.publish(event("page_viewed", "web", ids(customer_id=f"warm-{token}"), _PAGE, now_ms()))

    def applied() -> bool:
        try:
            return journeys.customer(f"warm-{token}") is not None
        except httpx.HTTPError:
            return False

    journeys.wait_for(applied, "the worker and the API to be ready", timeout=90)


_PAGE = {"url": "https://shop.example/", "title": "Home", "referrer": None}


@pytest.fixture(scope="module")
def journeys(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Journeys]:
    """The module's backbone (worker + API) with quiet periods of :data:`QUIET_S` seconds."""
    running = start_journeys(settings, tmp_path_factory.mktemp("journeys"))
    try:
        wait_ready(running)
        yield running
    finally:
        running.close()
