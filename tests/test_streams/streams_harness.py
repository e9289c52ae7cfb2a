"""Fixtures for the stream processors: a real worker process, and helpers to publish and observe."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from confluent_kafka import Consumer, Producer, TopicPartition

from omnichannel.provision import provision, remove_namespace
from omnichannel.settings import Settings
from schemas.codec import AvroCodec
from schemas.loader import EVENT_FULLNAME
from schemas.registry import ConfluentSchemaRegistry
from schemas.samples import sample_event
from schemas.topics import CHANNELS, channel_topic


@dataclass
class Worker:
    """A real `omnichannel worker` process."""

    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    argv_extra: list[str] = field(default_factory=list)  # e.g. ["--supervise"]

    def start(self) -> None:
        self.starts += 1
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "omnichannel.cli", "worker", *self.argv_extra],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self, sig: int = signal.SIGKILL) -> int:
        assert self.proc is not None
        os.killpg(self.proc.pid, sig)
        return self.proc.wait(timeout=60)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kill(signal.SIGTERM)


@dataclass
class Pipeline:
    """One isolated namespace (topics + Redis keys) with a worker, a producer and readers."""

    settings: Settings
    worker: Worker
    codec: AvroCodec
    redis: redis.Redis
    producer: Producer = field(init=False)

    def __post_init__(self) -> None:
        self.producer = Producer(
            {"bootstrap.servers": self.settings.kafka_bootstrap_servers, "partitioner": "murmur2_random", "acks": "all"}
        )

    def topic(self, name: str) -> str:
        return self.settings.topic(name)

    def publish(self, events: list[dict[str, Any]]) -> None:
        """Publish like a connector: to the channel's topic, keyed by the strongest identity."""
        for event in events:
            ids = event["identities"]
            key = (
                f"customer:{ids['customer_id']}"
                if ids.get("customer_id")
                else f"anonymous:{ids['anonymous_id']}"
                if ids.get("anonymous_id")
                else f"device:{(event.get('device') or {}).get('device_id')}"
            )
            topic = self.topic(channel_topic(event["channel"]))
            self.producer.produce(topic, key=key, value=self.codec.encode(f"{topic}-value", EVENT_FULLNAME, event))
        assert self.producer.flush(30) == 0

    def publish_raw(self, channel: str, key: bytes, value: bytes) -> None:
        self.producer.produce(self.topic(channel_topic(channel)), key=key, value=value)
        assert self.producer.flush(30) == 0

    def key(self, kind: str, key: str) -> str:
        prefix = f"{self.settings.namespace}:" if self.settings.namespace else ""
        return f"{prefix}{kind}:{{{key}}}"

    def cart(self, key: str) -> dict[str, Any] | None:
        raw = self.redis.get(self.key("cart", key))
        return json.loads(raw) if raw else None

    def wait_for(self, condition: Callable[[], Any], timeout: float = 90.0, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            if self.worker.proc is not None and self.worker.proc.poll() is not None:
                pytest.fail(
                    f"worker exited with {self.worker.proc.returncode} while waiting for {what}; "
                    f"log: {self.worker.log.read_text()[-3000:]}"
                )
            time.sleep(0.2)
        pytest.fail(f"timed out after {timeout}s waiting for {what}; worker log: {self.worker.log.read_text()[-3000:]}")

    def consume(self, topic: str, count: int, timeout: float = 60.0) -> list[Any]:
        consumer = Consumer(
            {
                "bootstrap.servers": self.settings.kafka_bootstrap_servers,
                "group.id": f"test-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
            }
        )
        consumer.subscribe([self.topic(topic)])
        found: list[Any] = []
        deadline = time.monotonic() + timeout
        try:
            while len(found) < count and time.monotonic() < deadline:
                message = consumer.poll(0.5)
                if message is not None and message.error() is None:
                    found.append(message)
        finally:
            consumer.close()
        return found

    def committed(self) -> int:
        """How many channel-topic records the worker's consumer group has committed (all partitions)."""
        group = self.topic("omnichannel-processor")
        consumer = Consumer({"bootstrap.servers": self.settings.kafka_bootstrap_servers, "group.id": group})
        try:
            names = [self.topic(channel_topic(c)) for c in CHANNELS]
            listed = consumer.list_topics(timeout=10).topics
            partitions = [TopicPartition(n, p) for n in names if n in listed for p in listed[n].partitions]
            return sum(max(tp.offset, 0) for tp in consumer.committed(partitions, timeout=10))
        finally:
            consumer.close()

    def event_ids_on(self, topic: str, wanted: set[str], timeout: float = 60.0) -> set[str]:
        """The ids of the events on ``topic`` (Avro events), read until all of ``wanted`` were seen or ``timeout``."""
        consumer = Consumer(
            {
                "bootstrap.servers": self.settings.kafka_bootstrap_servers,
                "group.id": f"test-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
            }
        )
        consumer.subscribe([self.topic(topic)])
        seen: set[str] = set()
        deadline = time.monotonic() + timeout
        try:
            while not wanted <= seen and time.monotonic() < deadline:
                for message in consumer.consume(500, 0.5):
                    if message.error() is None and message.value() is not None:
                        seen.add(self.codec.decode(message.value(), EVENT_FULLNAME)["event_id"])
        finally:
            consumer.close()
        return seen


@pytest.fixture
def pipeline_factory(settings: Settings, tmp_path: Path) -> Iterator[Callable[..., Pipeline]]:
    made: list[Pipeline] = []

    def make(start: bool = True, redis_url: str | None = None, extra_env: dict[str, str] | None = None) -> Pipeline:
        namespace = f"t{uuid.uuid4().hex[:10]}"
        scoped = Settings.from_env(
            {
                "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers or "",
                "SCHEMA_REGISTRY_URL": settings.schema_registry_url or "",
                "REDIS_URL": redis_url or settings.redis_url or "",
                "OMNICHANNEL_NAMESPACE": namespace,
                "OMNICHANNEL_PARTITIONS": "2",
                "OMNICHANNEL_STATE_DIR": str(tmp_path / namespace),
            }
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("OMNICHANNEL_")}
        env |= {
            "KAFKA_BOOTSTRAP_SERVERS": scoped.kafka_bootstrap_servers or "",
            "SCHEMA_REGISTRY_URL": scoped.schema_registry_url or "",
            "REDIS_URL": scoped.redis_url or "",
            "OMNICHANNEL_NAMESPACE": namespace,
            "OMNICHANNEL_PARTITIONS": "2",
            "OMNICHANNEL_STATE_DIR": str(tmp_path / namespace),
            **(extra_env or {}),
        }
        assert scoped.kafka_bootstrap_servers is not None
        provision(scoped, partitions=2)  # topics and schemas, as deployed
        worker = Worker(env, tmp_path / f"{namespace}-worker.log")
        assert scoped.schema_registry_url and scoped.redis_url
        pipeline = Pipeline(
            scoped,
            worker,
            AvroCodec(ConfluentSchemaRegistry(scoped.schema_registry_url)),
            redis.Redis.from_url(scoped.redis_url, decode_responses=True),
        )
        made.append(pipeline)
        if start:
            worker.start()
        return pipeline

    yield make
    for pipeline in made:
        pipeline.worker.stop()
        pipeline.redis.close()
    # A long-lived development broker would keep every run's partitions. A test's private Redis (``redis_url``)
    # is gone by now, and its keys with it: the session's Redis is the one to clean.
    for pipeline in made:
        remove_namespace(dataclasses.replace(pipeline.settings, redis_url=settings.redis_url))


CUSTOMERS = 40
PRODUCTS = ("SKU-1", "SKU-2", "SKU-3", "SKU-4")


def random_cart_traffic(seed: int, count: int, now: int) -> tuple[list[dict[str, Any]], dict[str, dict[str, int]]]:
    """Seeded cart operations, and the expected carts by a deliberately simple model."""
    rng = random.Random(seed)
    model: dict[str, dict[str, int]] = {f"C{i}": {} for i in range(CUSTOMERS)}
    events = []
    for n in range(count):
        customer = f"C{rng.randrange(CUSTOMERS)}"
        product = rng.choice(PRODUCTS)
        ids = {
            "anonymous_id": None,
            "customer_id": customer,
            "email_hash": None,
            "phone_hash": None,
            "loyalty_card": None,
        }
        device = {"device_id": f"phone-{customer}", "kind": "phone", "role": "customer_owned"}
        op = rng.random()
        if op < 0.6:
            qty = rng.randint(1, 3)
            payload: dict[str, Any] = {
                "product_id": product,
                "quantity": qty,
                "unit_price_cents": 500,
                "currency": "EUR",
            }
            event = sample_event(
                "cart_line_added", channel="web", identities=ids, device=device, payload=payload, occurred_at_ms=now + n
            )
            model[customer][product] = model[customer].get(product, 0) + qty
        elif op < 0.85:
            qty = rng.randint(0, 4)
            payload = {"product_id": product, "quantity": qty, "unit_price_cents": 500, "currency": "EUR"}
            event = sample_event(
                "cart_quantity_set",
                channel="web",
                identities=ids,
                device=device,
                payload=payload,
                occurred_at_ms=now + n,
            )
            if qty == 0:
                model[customer].pop(product, None)
            else:
                model[customer][product] = qty
        else:
            event = sample_event(
                "cart_line_removed",
                channel="web",
                identities=ids,
                device=device,
                payload={"product_id": product},
                occurred_at_ms=now + n,
            )
            model[customer].pop(product, None)
        events.append(event)
    return events, model


def carts_by_customer(pipeline: Pipeline) -> dict[str, dict[str, int]]:
    found = {}
    for i in range(CUSTOMERS):
        cart = pipeline.cart(f"customer:C{i}")
        found[f"C{i}"] = {line["product_id"]: line["quantity"] for line in (cart or {}).get("lines", [])}
    return found


def _ids(anonymous: str | None = None, customer: str | None = None) -> dict[str, Any]:
    return {
        "anonymous_id": anonymous,
        "customer_id": customer,
        "email_hash": None,
        "phone_hash": None,
        "loyalty_card": None,
    }


def _device(device_id: str, kind: str) -> dict[str, Any]:
    return {"device_id": device_id, "kind": kind, "role": "customer_owned"}


def _add(channel: str, ids: dict[str, Any], device: dict[str, Any], product: str, qty: int, at: int) -> dict[str, Any]:
    payload = {"product_id": product, "quantity": qty, "unit_price_cents": 1000, "currency": "EUR"}
    return sample_event(
        "cart_line_added", channel=channel, identities=ids, device=device, occurred_at_ms=at, payload=payload
    )


def point_one_journey(token: str, now: int) -> list[dict[str, Any]]:
    """Phone adds A x1, B x2 anonymously and saves the basket with an e-mail; the tablet logs in with it and
    adds D; the phone removes B (the merge-core issue's point 1)."""
    email = hashlib.sha256(token.encode()).hexdigest()
    phone, tablet = _device(f"phone-{token}", "phone"), _device(f"tablet-{token}", "tablet")
    anonymous = _ids(anonymous=f"a-{token}")
    customer = _ids(customer=f"C-{token}")
    return [
        _add("mobile_app", anonymous, phone, "SKU-A", 1, now),
        _add("mobile_app", anonymous, phone, "SKU-B", 2, now + 1),
        sample_event(
            "identify",
            channel="mobile_app",
            identities={**anonymous, "email_hash": email},
            device=phone,
            occurred_at_ms=now + 2,
        ),
        sample_event(
            "login",
            channel="tablet",
            identities={**customer, "email_hash": email},
            device=tablet,
            occurred_at_ms=now + 3,
        ),
        _add("tablet", customer, tablet, "SKU-D", 1, now + 4),
        sample_event(
            "cart_line_removed",
            channel="mobile_app",
            identities=anonymous,
            device=phone,
            payload={"product_id": "SKU-B"},
            occurred_at_ms=now + 5,
        ),
    ]
