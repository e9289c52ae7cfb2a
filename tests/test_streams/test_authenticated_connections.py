"""Authenticated connections, end to end: a broker that requires SASL/SCRAM-SHA-512 and a Redis with requirepass.

A second, separate Kafka (KRaft, from the project's cached jars) is started for this module with a
SASL_PLAINTEXT listener; its one SCRAM user is created when its storage is formatted. The CLI, the collector's
producer and the Faust/aiokafka worker reach it with the credentials from the environment, as deployed; the
registry is the session's. It also checks that run-time producers register no schema.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from fastapi.testclient import TestClient

from connectors.collector import create_app
from connectors.config import CollectorConfig
from connectors.publisher import publisher_for
from omnichannel.cli import cli
from omnichannel.exit_codes import ERROR
from omnichannel.settings import Settings
from omnichannel.stack import StackInfo
from omnichannel.stack.kafka import ScramUser, kafka_answers, start_local_kafka
from omnichannel.stack.model import quiet
from omnichannel.stack.processes import free_port, stop
from omnichannel.stack.redis_server import start_local_redis
from schemas.registry import ConfluentSchemaRegistry
from schemas.samples import sample_event
from schemas.topics import catalogue_for
from streams.keys import Keys

USER = ScramUser("backbone", "scram-secret-0123456789")
REDIS_PASSWORD = "redis-secret-0123456789"
WEB_KEY = "web-key-0123456789"


@dataclass(frozen=True)
class Secured:
    """The module's SCRAM broker and requirepass Redis (their addresses carry no credentials but Redis's URL)."""

    kafka: str
    redis_url: str
    registry: str


@pytest.fixture(scope="module")
def secured(stack: StackInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    run_dir = tmp_path_factory.mktemp("secured")
    kafka = start_local_kafka(Settings.from_env().cache_dir, run_dir, quiet, scram=USER)
    try:
        redis_info = start_local_redis(run_dir, install_missing=False, progress=quiet, password=REDIS_PASSWORD)
        try:
            yield Secured(kafka.address, redis_info.address, stack.registry.address)
        finally:
            assert redis_info.pid is not None
            stop(redis_info.pid)
    finally:
        assert kafka.pid is not None
        stop(kafka.pid)


def _env(secured: Secured, tmp_path: Path, namespace: str, password: str = USER.password) -> dict[str, str]:
    """A deployment's environment: addresses and credentials only."""
    return {
        "KAFKA_BOOTSTRAP_SERVERS": secured.kafka,
        "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": USER.username,
        "KAFKA_SASL_PASSWORD": password,
        "SCHEMA_REGISTRY_URL": secured.registry,
        "REDIS_URL": secured.redis_url,
        "OMNICHANNEL_NAMESPACE": namespace,
        "OMNICHANNEL_PARTITIONS": "1",
        "OMNICHANNEL_STATE_DIR": str(tmp_path / "state"),
        "OMNICHANNEL_DOCKER": "never",
    }


def _namespace() -> str:
    return f"sasl{uuid.uuid4().hex[:8]}"


def _run(argv: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """An `omnichannel` command as a user runs it: its own process, only this environment's settings."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OMNICHANNEL_", "KAFKA_", "SCHEMA_", "REDIS_"))}
    return subprocess.run(
        [sys.executable, "-m", "omnichannel.cli", *argv],
        env=base | env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_the_broker_refuses_clients_without_credentials(secured: Secured) -> None:
    assert kafka_answers(secured.kafka, 5.0, USER.client_config())
    assert not kafka_answers(secured.kafka, 3.0), "a PLAINTEXT client must not get metadata"


def test_topics_create_authenticates_with_the_credentials_from_env(secured: Secured, tmp_path: Path) -> None:
    namespace = _namespace()
    result = CliRunner().invoke(cli, ["topics", "create"], env=_env(secured, tmp_path, namespace))
    assert result.exit_code == 0, result.output
    created = [line.split()[1] for line in result.output.splitlines() if line.startswith("created")]
    assert sorted(created) == sorted(spec.name for spec in catalogue_for(namespace))
    again = CliRunner().invoke(cli, ["topics", "create"], env=_env(secured, tmp_path, namespace))
    assert again.exit_code == 0 and "created" not in again.output, again.output


def _versions(registry: ConfluentSchemaRegistry, namespace: str) -> dict[str, list[int]]:
    # The listing may be a first page only (Apicurio: 1,000 subjects): the topics' own subjects are asked for too.
    subjects = {s for s in registry.subjects() if s.startswith(f"{namespace}.")}
    subjects |= {spec.subject for spec in catalogue_for(namespace)}
    versions = {subject: [n for n, _ in registry.versions(subject)] for subject in sorted(subjects)}
    return {subject: numbers for subject, numbers in versions.items() if numbers}


def _wait(condition: Callable[[], object], worker: subprocess.Popen[bytes], log: Path, what: str) -> object:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if found := condition():
            return found
        if worker.poll() is not None:
            pytest.fail(f"the worker exited with {worker.returncode} waiting for {what}: {log.read_text()[-3000:]}")
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}; worker log: {log.read_text()[-3000:]}")


def test_the_collector_publishes_and_the_worker_applies_with_credentials_from_env_registering_nothing(
    secured: Secured, tmp_path: Path
) -> None:
    namespace = _namespace()
    env = _env(secured, tmp_path, namespace)
    for step in (["topics", "create"], ["schemas", "register"]):  # the deployment steps, before any producer
        done = _run(step, env)
        assert done.returncode == 0, done.stderr
    registry = ConfluentSchemaRegistry(secured.registry)
    before = _versions(registry, namespace)
    assert len(before) == len(catalogue_for(namespace)) and all(v == [1] for v in before.values())

    settings = Settings.from_env(env)  # the collector's producer: SASL settings from the environment
    config = CollectorConfig(hash_key=b"hash-key-of-the-tests-0123456789", keys={WEB_KEY: frozenset({"web"})})
    event = sample_event(
        "cart_line_added",
        channel="web",
        identities={"customer_id": "C-SASL"},
        occurred_at_ms=int(time.time() * 1000),
        payload={"product_id": "SKU-LAMP", "quantity": 2, "unit_price_cents": 4999, "currency": "EUR"},
    )
    del event["received_at_ms"], event["source_system"]
    with publisher_for(settings, 15) as publisher, TestClient(create_app(config, publisher)) as client:
        answer = client.post("/v1/events", json=event, headers={"Authorization": f"Bearer {WEB_KEY}"})
        assert answer.status_code == 202, answer.text

    log = tmp_path / "worker.log"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OMNICHANNEL_", "KAFKA_", "SCHEMA_", "REDIS_"))}
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "omnichannel.cli", "worker"],
            env=base | env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        store = redis.Redis.from_url(secured.redis_url, decode_responses=True)  # the password is in the URL
        cart_key = Keys(namespace).cart("customer:C-SASL")
        _wait(lambda: store.get(cart_key), worker, log, "the cart in Redis")
        assert "SKU-LAMP" in str(store.get(cart_key))
        with pytest.raises(redis.AuthenticationError):
            redis.Redis.from_url(secured.redis_url.replace(f":{REDIS_PASSWORD}@", "")).get(cart_key)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)
    assert _versions(registry, namespace) == before, "a producer registered a schema at run time"


@pytest.mark.parametrize(
    "command",
    [["topics", "create"], ["worker"], ["serve", "--port", "0"], ["lag"], ["lag", "serve", "--port", "{free}"]],
    ids=["topics-create", "worker", "serve", "lag", "lag-serve"],
)
def test_a_wrong_password_is_one_error_line_and_exit_status_1(
    secured: Secured, tmp_path: Path, command: list[str]
) -> None:
    # serve: development keys, so nothing but the refused login can stop it. The lag monitor would otherwise
    # report an outage (exit 75) or poll one for ever; a retry loop would run into the 60 s limit.
    env = _env(secured, tmp_path, _namespace(), password="not-the-password") | {"OMNICHANNEL_DEV": "1"}
    result = _run([a.format(free=free_port()) for a in command], env, timeout=60)
    assert result.returncode == ERROR, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "refused the credentials of user 'backbone' (SCRAM-SHA-512)" in lines[0]
    assert "KAFKA_SASL_PASSWORD" in lines[0] and "not-the-password" not in result.stderr


def test_the_lag_monitor_reads_groups_with_the_credentials_from_env(secured: Secured, tmp_path: Path) -> None:
    namespace = _namespace()
    env = _env(secured, tmp_path, namespace)
    topic, group = f"{namespace}.lagged", f"{namespace}-group"
    admin = AdminClient({"bootstrap.servers": secured.kafka, **USER.client_config()})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=30)
    producer = Producer({"bootstrap.servers": secured.kafka, **USER.client_config()})
    for i in range(7):
        producer.produce(topic, value=f"r{i}".encode(), partition=0)
    assert producer.flush(30) == 0
    committer = Consumer({"bootstrap.servers": secured.kafka, "group.id": group, **USER.client_config()})
    committer.commit(offsets=[TopicPartition(topic, 0, 3)], asynchronous=False)
    committer.close()

    result = _run(["lag", "--group", group, "--json"], env)
    assert result.returncode == 0, result.stderr
    [found] = json.loads(result.stdout)["groups"]
    assert found["lag"] == 4 and found["status"] == "OK" and not found["problems"], found
