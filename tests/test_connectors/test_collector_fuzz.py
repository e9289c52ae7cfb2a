"""Fuzzing the collector: no request, however odd, gets a 5xx while Kafka is up.

Schemathesis generates requests from the app's own OpenAPI document (every operation, bodies that do
and do not match the schemas); hypothesis throws arbitrary JSON at ``POST /v1/events``. Both run against
the real Kafka, bounded to a few seconds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.collector import create_app
from connectors.config import CollectorConfig
from connectors.publisher import Publisher
from connectors.signatures import sign

KEY = "web-key-0123456789"
#: The key each operation needs, so the fuzzer gets past authentication and reaches the mappings.
KEY_BY_PATH = {"/v1/webhooks/call_centre": "callcentre-key-012345", "/v1/webhooks/back_office": "backoffice-key-012345"}


@pytest.fixture
def app(config: CollectorConfig, publisher: Publisher) -> FastAPI:
    return create_app(config, publisher)


def test_schemathesis_finds_no_server_error(app: FastAPI) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    started = time.monotonic()
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def run(case: Any) -> None:
            case.headers = {**(case.headers or {}), "X-Api-Key": KEY_BY_PATH.get(case.path, KEY)}
            response = case.call()
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.path} -> {response.status_code}: {response.text[:300]}")

        run()
    assert operations >= 6
    assert not failures, failures[:5]
    assert time.monotonic() - started < 45


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20,
)
FIELDS = st.sampled_from(["event_type", "occurred_at_ms", "channel", "payload", "identities", "device", "event_id"])
EVENTISH = st.dictionaries(FIELDS, JSON, max_size=7) | st.fixed_dictionaries(
    {"event_type": st.sampled_from(["login", "cart_line_added", "order_placed", "nope"]), "occurred_at_ms": JSON},
    optional={"payload": st.dictionaries(st.text(max_size=10), JSON, max_size=4), "channel": JSON},
)
NATIVE = st.sampled_from(["event", "event_id", "timestamp", "message_id", "type", "call_id", "occurred_at", "order"])
BODIES = EVENTISH | st.fixed_dictionaries({"events": st.lists(EVENTISH, max_size=4)}) | JSON


def _dumps(document: Any) -> bytes:
    return json.dumps(document).encode()  # not orjson: it refuses integers beyond 64 bits, which clients may send


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


def test_arbitrary_json_never_gets_a_server_error(client: TestClient) -> None:
    @given(body=BODIES)
    @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def run(body: Any) -> None:
        response = client.post("/v1/events", json=body, headers={"X-Api-Key": KEY})
        assert response.status_code < 500, response.text
        assert response.status_code in (202, 207, 400, 403, 413, 422)
        if response.status_code >= 400:
            assert response.json()["detail"]

    run()


def test_arbitrary_bytes_to_the_webhooks_never_get_a_server_error(client: TestClient) -> None:
    bodies = st.binary(max_size=200) | BODIES.map(_dumps) | st.lists(st.dictionaries(NATIVE, JSON)).map(_dumps)

    @given(body=bodies, path=st.sampled_from(["email", "sms", "call_centre", "back_office"]))
    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def run(body: bytes, path: str) -> None:
        now = int(time.time())
        secret = {"email": "email-secret-0123456789", "sms": "sms-secret-0123456789"}.get(path, "")
        prefix = "Email" if path == "email" else "Sms"
        headers = {
            f"X-{prefix}-Timestamp": str(now),
            f"X-{prefix}-Signature": sign(secret, now, body),
            "X-Api-Key": {"call_centre": "callcentre-key-012345", "back_office": "backoffice-key-012345"}.get(path, ""),
        }
        response = client.post(f"/v1/webhooks/{path}", content=body, headers=headers)
        assert response.status_code in (202, 400, 413, 422), (path, body, response.text)

    run()
