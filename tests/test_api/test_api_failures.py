"""Failures are 503, not 500: a Redis outage answers reads with 503 + Retry-After, and ``/readyz`` names
each dependency that is down while ``/healthz`` (liveness) stays 200.

Each test starts its own redis-server (the project's local one) so it can stop it without touching the
session's stack; Kafka and the registry are the session's, or closed ports where the test needs them down.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.server import create_server
from connectors.config import CollectorConfig
from connectors.publisher import Publisher, publisher_for
from omnichannel.settings import Settings
from omnichannel.stack.model import ServiceInfo
from omnichannel.stack.processes import free_port, stop
from omnichannel.stack.redis_server import start_local_redis

READ_KEY = "read-key-0123456789abcdef"
READ = {"X-Api-Key": READ_KEY}
RETRY_AFTER_S = 4


def _config() -> CollectorConfig:
    return CollectorConfig(
        hash_key=b"h" * 32,
        keys={"web-key-0123456789": frozenset({"web"})},
        read_keys=frozenset({READ_KEY}),
        retry_after_s=RETRY_AFTER_S,
    )


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[ServiceInfo]:
    info = start_local_redis(tmp_path / "redis", install_missing=False, progress=lambda _: None)
    yield info
    assert info.pid is not None
    stop(info.pid)


@pytest.fixture
def publisher(registered: Settings) -> Iterator[Publisher]:
    with publisher_for(registered, delivery_timeout_s=5) as pub:
        yield pub


def test_reads_answer_503_with_retry_after_while_redis_is_down(
    settings: Settings, own_redis: ServiceInfo, publisher: Publisher
) -> None:
    assert settings.kafka_bootstrap_servers and settings.schema_registry_url
    ours = settings.with_addresses(settings.kafka_bootstrap_servers, settings.schema_registry_url, own_redis.address)
    with TestClient(create_server(ours, _config(), publisher)) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert {name: check["ok"] for name, check in ready.json()["checks"].items()} == {
            "kafka": True,
            "registry": True,
            "redis": True,
        }
        assert client.get("/v1/customers/C-nobody", headers=READ).status_code == 404

        assert own_redis.pid is not None
        stop(own_redis.pid)
        for url in ("/v1/customers/C-nobody", "/v1/customers/C-nobody/cart", "/v1/identities/customer_id/C-nobody"):
            answer = client.get(url, headers=READ)
            assert answer.status_code == 503, (url, answer.text)
            assert answer.headers["Retry-After"] == str(RETRY_AFTER_S)
            assert answer.json()["error"] == "redis_unavailable"
            assert "retry after" in answer.json()["detail"]

        ready = client.get("/readyz")
        assert ready.status_code == 503
        checks = ready.json()["checks"]
        assert (checks["kafka"]["ok"], checks["registry"]["ok"], checks["redis"]["ok"]) == (True, True, False)
        assert "PING" in checks["redis"]["detail"]
        assert client.get("/healthz").status_code == 200, "liveness: a restart would not bring Redis back"


def test_readyz_names_kafka_and_the_registry_when_they_are_down(settings: Settings, own_redis: ServiceInfo) -> None:
    closed = f"127.0.0.1:{free_port()}"
    down = settings.with_addresses(closed, f"http://{closed}/apis/ccompat/v7", own_redis.address)
    with (
        publisher_for(down, delivery_timeout_s=0.5) as dead,
        TestClient(create_server(down, _config(), dead)) as client,
    ):
        ready = client.get("/readyz")
        assert ready.status_code == 503
        checks = ready.json()["checks"]
        assert (checks["kafka"]["ok"], checks["registry"]["ok"], checks["redis"]["ok"]) == (False, False, True)
        assert closed in checks["kafka"]["detail"] and closed in checks["registry"]["detail"]
        assert client.get("/healthz").status_code == 200


def test_a_redis_with_requirepass_is_read_with_the_password_in_redis_url(
    settings: Settings, tmp_path: Path, publisher: Publisher
) -> None:
    info = start_local_redis(tmp_path / "secured", install_missing=False, progress=lambda _: None, password="p@ss w0rd")
    assert info.pid is not None
    try:
        assert settings.kafka_bootstrap_servers and settings.schema_registry_url
        kafka, registry = settings.kafka_bootstrap_servers, settings.schema_registry_url
        right = settings.with_addresses(kafka, registry, info.address)
        with TestClient(create_server(right, _config(), publisher)) as client:
            assert client.get("/readyz").json()["checks"]["redis"]["ok"] is True
            assert client.get("/v1/customers/C-nobody", headers=READ).status_code == 404
        wrong = settings.with_addresses(kafka, registry, info.address.replace("p%40ss%20w0rd", "guess"))
        with TestClient(create_server(wrong, _config(), publisher)) as client:
            assert client.get("/v1/customers/C-nobody", headers=READ).status_code == 503
            assert client.get("/readyz").json()["checks"]["redis"]["ok"] is False
        anonymous = settings.with_addresses(kafka, registry, info.address.replace(":p%40ss%20w0rd@", ""))
        with TestClient(create_server(anonymous, _config(), publisher)) as client:
            assert client.get("/v1/customers/C-nobody", headers=READ).status_code == 503, "no password, no data"
    finally:
        stop(info.pid)
