"""Fixtures of the connector tests: a publisher on per-test topics, the collector app, reading records back.

Every test publishes to its own topics (``<unique prefix>.<channel>``), so tests never see each other's
records; records are read back with the project's codec, as any subscriber would.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from fastapi.testclient import TestClient

from connectors.collector import create_app
from connectors.config import CollectorConfig
from connectors.publisher import Publisher
from omnichannel.stack import StackInfo
from schemas.codec import AvroCodec
from schemas.loader import EVENT_FULLNAME
from schemas.registry import ConfluentSchemaRegistry
from schemas.topics import subject_for

#: The collector's clock in tests: every accepted event's received_at_ms.
NOW_MS = 1_764_000_000_500
KEYS = {
    "web-key-0123456789": frozenset({"web"}),
    "mobile-key-0123456789": frozenset({"mobile_app"}),
    "tablet-key-0123456789": frozenset({"tablet"}),
    "store-key-0123456789": frozenset({"store"}),
    "callcentre-key-012345": frozenset({"call_centre"}),
    "backoffice-key-012345": frozenset({"back_office"}),
    "apps-key-0123456789": frozenset({"mobile_app", "tablet"}),
}
SECRETS = {"email": "email-secret-0123456789", "sms": "sms-secret-0123456789"}
#: The keyed hash's secret in tests (OMNICHANNEL_HASH_KEY).
HASH_KEY = b"hash-key-of-the-tests-0123456789"

Record = tuple[str, dict[str, Any], int]  # key, decoded event, partition
ReadBack = Callable[..., list[Record]]


@pytest.fixture
def now_ms() -> int:
    """The collector's clock in tests (the ``client`` fixture): every accepted event's received_at_ms."""
    return NOW_MS


@pytest.fixture
def codec(stack: StackInfo) -> AvroCodec:
    return AvroCodec(ConfluentSchemaRegistry(stack.registry.address))


@pytest.fixture
def topic_for(unique: Callable[[str], str], register_schema: Callable[[str, str], int]) -> Callable[[str], str]:
    """This test's topic of a channel, its subject registered on first use (producers only look ids up)."""
    prefix = unique("conn")
    registered: set[str] = set()

    def topic(channel: str) -> str:
        name = f"{prefix}.{channel}"
        if name not in registered:  # what `omnichannel schemas register` does for the catalogue's topics
            register_schema(subject_for(name), EVENT_FULLNAME)
            registered.add(name)
        return name

    return topic


@pytest.fixture
def publisher(stack: StackInfo, codec: AvroCodec, topic_for: Callable[[str], str]) -> Iterator[Publisher]:
    with Publisher(stack.kafka.address, codec, delivery_timeout_s=15, topic_for=topic_for) as pub:
        yield pub


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def dead_publisher(codec: AvroCodec, topic_for: Callable[[str], str]) -> Iterator[Publisher]:
    """A publisher whose Kafka does not exist (a closed port): every publish runs into its bounded wait."""
    pub = Publisher(f"127.0.0.1:{_free_port()}", codec, delivery_timeout_s=0.5, topic_for=topic_for)
    yield pub
    pub.close(timeout_s=0.1)


@pytest.fixture
def config() -> CollectorConfig:
    return CollectorConfig(
        hash_key=HASH_KEY, keys=KEYS, webhook_secrets=SECRETS, max_body_bytes=64_000, max_batch_events=20
    )


@pytest.fixture
def client(config: CollectorConfig, publisher: Publisher) -> Iterator[TestClient]:
    app = create_app(config, publisher, clock=lambda: NOW_MS, wall_clock_s=time.time)
    with TestClient(app, raise_server_exceptions=True) as test_client:
        yield test_client


@pytest.fixture
def read_back(stack: StackInfo, codec: AvroCodec, unique: Callable[[str], str]) -> ReadBack:
    """``read_back(topic, count)``: the first ``count`` records of ``topic`` (key, decoded event, partition)."""

    def read(topic: str, count: int, timeout_s: float = 20.0) -> list[Record]:
        consumer = Consumer(
            {"bootstrap.servers": stack.kafka.address, "group.id": unique("read"), "enable.auto.commit": False}
        )
        try:
            deadline = time.monotonic() + timeout_s
            partitions: list[int] = []
            while not partitions and time.monotonic() < deadline:
                metadata = consumer.list_topics(topic, timeout=5).topics.get(topic)
                partitions = sorted(metadata.partitions) if metadata and not metadata.error else []
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
            records: list[Record] = []
            while len(records) < count and time.monotonic() < deadline:
                message = consumer.poll(0.2)
                if message is None or message.error() is not None:
                    continue
                key = (message.key() or b"").decode()
                records.append((key, codec.decode(message.value(), EVENT_FULLNAME), message.partition()))
            assert len(records) == count, f"{topic}: read {len(records)} records, expected {count}"
            return records
        finally:
            consumer.close()

    return read
