"""POST /v1/events end to end: the collector app publishing into the real Kafka, records read back.

The bad-input table checks three things per case: the status, a body naming the problem, and that
nothing was published (a valid marker event sent afterwards is the only record on the topic).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from connectors.collector import create_app
from connectors.config import CollectorConfig
from connectors.publisher import Publisher
from schemas.samples import sample_event

ReadBack = Callable[..., list[tuple[str, dict[str, Any], int]]]
WEB = {"X-Api-Key": "web-key-0123456789"}


def _event(event_type: str = "cart_line_added", **changes: Any) -> dict[str, Any]:
    event = sample_event(event_type, **{"channel": "web", **changes})
    del event["received_at_ms"], event["source_system"]
    return event


def _with_ids(**identities: str) -> dict[str, Any]:
    event = _event()
    return {**event, "identities": {**event["identities"], **identities}}


@pytest.mark.parametrize(
    ("channel", "headers"),
    [
        ("web", {"Authorization": "Bearer web-key-0123456789"}),
        ("mobile_app", {"X-Api-Key": "mobile-key-0123456789"}),
        ("tablet", {"authorization": "bearer tablet-key-0123456789"}),
        ("store", {"X-Api-Key": "store-key-0123456789"}),
    ],
)
def test_one_event_is_stored_before_the_202(
    client: TestClient,
    topic_for: Callable[[str], str],
    read_back: ReadBack,
    now_ms: int,
    channel: str,
    headers: dict[str, str],
) -> None:
    sent = _event("product_viewed", channel=channel)
    response = client.post("/v1/events", json=sent, headers=headers)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "accepted"
    assert (body["event_id"], body["topic"]) == (sent["event_id"], topic_for(channel))
    ((key, stored, _),) = read_back(topic_for(channel), 1)
    assert key == "customer:C-42"
    assert stored == {**sent, "received_at_ms": now_ms, "source_system": "collector"}


def test_the_collector_fills_the_id_and_the_channel_of_a_one_channel_key(
    client: TestClient, topic_for: Callable[[str], str], read_back: ReadBack
) -> None:
    sent = {"event_type": "search_performed", "occurred_at_ms": 1_764_000_000_000, "payload": {"query": "lamp"}}
    response = client.post("/v1/events", json=sent, headers=WEB)
    assert response.status_code == 202, response.text
    ((key, stored, _),) = read_back(topic_for("web"), 1)
    assert stored["event_id"] == response.json()["event_id"]
    assert key == f"event:{stored['event_id']}"
    assert stored["channel"] == "web"
    assert stored["payload"] == {"query": "lamp", "results_count": None}


def test_identifier_hashes_of_the_documented_shape_are_stored_as_sent(
    client: TestClient, topic_for: Callable[[str], str], read_back: ReadBack
) -> None:
    email_hash, phone_hash = hashlib.sha256(b"ana@example.com").hexdigest(), "0f" * 32
    response = client.post("/v1/events", json=_with_ids(email_hash=email_hash, phone_hash=phone_hash), headers=WEB)
    assert response.status_code == 202, response.text
    ((_, stored, _),) = read_back(topic_for("web"), 1)
    assert (stored["identities"]["email_hash"], stored["identities"]["phone_hash"]) == (email_hash, phone_hash)


def test_a_batch_reports_each_event_and_stores_the_valid_ones(
    client: TestClient, topic_for: Callable[[str], str], read_back: ReadBack
) -> None:
    good, also_good = _event(), _event("login")
    bad = _event(payload={"product_id": "SKU-1", "quantity": "two", "unit_price_cents": 1, "currency": "EUR"})
    response = client.post("/v1/events", json={"events": [good, bad, also_good]}, headers=WEB)
    assert response.status_code == 207, response.text
    body = response.json()
    assert (body["accepted"], body["rejected"], body["unavailable"]) == (2, 1, 0)
    assert [r["status"] for r in body["results"]] == ["accepted", "rejected", "accepted"]
    assert body["results"][1]["problems"] == [{"path": "payload.quantity", "reason": "expected int, got str 'two'"}]
    assert body["problems"][0]["path"] == "events[1].payload.quantity"
    stored = [event["event_id"] for _, event, _ in read_back(topic_for("web"), 2)]
    assert stored == [good["event_id"], also_good["event_id"]]


def test_a_batch_of_valid_events_is_202(
    client: TestClient, topic_for: Callable[[str], str], read_back: ReadBack
) -> None:
    events = [_event("page_viewed") for _ in range(20)]
    response = client.post("/v1/events", json={"events": events}, headers=WEB)
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 20
    assert len(read_back(topic_for("web"), 20)) == 20


def test_a_key_with_several_channels_must_say_which(client: TestClient) -> None:
    headers = {"X-Api-Key": "apps-key-0123456789"}
    event = _event()
    del event["channel"]
    response = client.post("/v1/events", json=event, headers=headers)
    assert response.status_code == 422
    assert response.json()["problems"] == [{"path": "channel", "reason": "required field is missing"}]
    assert client.post("/v1/events", json={**event, "channel": "tablet"}, headers=headers).status_code == 202


OVERSIZED = {
    **_event(),
    "payload": {"product_id": "x" * 70_000, "quantity": 1, "unit_price_cents": 1, "currency": "EUR"},
}
TABLET = {"X-Api-Key": "tablet-key-0123456789"}


BAD_INPUT = [
    # (id, headers, body (bytes or JSON), status, error code, text the body must contain, marker channel)
    ("malformed json", WEB, b'{"event_type": "login",', 400, "malformed_json", "line 1 column", "web"),
    ("not utf-8", WEB, b'{"event_type": "\xff"}', 400, "malformed_json", "not valid JSON", "web"),
    (
        "missing field",
        WEB,
        {k: v for k, v in _event().items() if k != "occurred_at_ms"},
        422,
        "invalid_event",
        "occurred_at_ms",
        "web",
    ),
    ("wrong type", WEB, _event(occurred_at_ms="yesterday"), 422, "invalid_event", "expected long", "web"),
    # The collector's clock reads 2025-11-24T16:00:00Z (NOW_MS); the window is 3650 days back, 60 minutes ahead.
    ("dated 1970", WEB, _event(occurred_at_ms=5), 422, "invalid_event", "OMNICHANNEL_MAX_EVENT_AGE_DAYS", "web"),
    (
        "dated year 3000",
        WEB,
        _event(occurred_at_ms=32_503_680_000_000),
        422,
        "invalid_event",
        "3000-01-01T00:00:00Z is more than 60 minutes after",
        "web",
    ),
    (
        "seconds sent as milliseconds in a batch",
        WEB,
        {"events": [_event(occurred_at_ms=1_764_000_000)]},
        422,
        "invalid_events",
        "events[0].occurred_at_ms",
        "web",
    ),
    (
        "payload type",
        WEB,
        _event(payload={"product_id": 1, "quantity": 1, "unit_price_cents": 1, "currency": "EUR"}),
        422,
        "invalid_event",
        "payload.product_id",
        "web",
    ),
    (
        "unknown event type",
        WEB,
        {**_event("login"), "event_type": "teleported"},
        422,
        "invalid_event",
        "unknown event type",
        "web",
    ),
    ("unknown channel", WEB, _event(channel="fax"), 422, "invalid_event", "'fax' is not one of", "web"),
    ("unknown field", WEB, {**_event(), "colour": "red"}, 422, "invalid_event", "colour", "web"),
    (
        "clear e-mail as email_hash",
        WEB,
        _with_ids(email_hash="alice.martin@example.com"),
        422,
        "invalid_event",
        "identities.email_hash",
        "web",
    ),
    ("phone as phone_hash", WEB, _with_ids(phone_hash="+447700900123"), 422, "invalid_event", "phone_hash", "web"),
    ("upper-case hash", WEB, _with_ids(email_hash="AB" * 32), 422, "invalid_event", "lowercase hex", "web"),
    ("short hash", WEB, _with_ids(phone_hash="ab" * 31), 422, "invalid_event", "identities.phone_hash", "web"),
    (
        "clear e-mail in a batch",
        WEB,
        {"events": [_with_ids(email_hash="alice@example.com")]},
        422,
        "invalid_events",
        "events[0].identities.email_hash",
        "web",
    ),
    ("array body", WEB, [_event()], 422, "invalid_body", "got a JSON array", "web"),
    ("empty batch", WEB, {"events": []}, 422, "invalid_body", "empty", "web"),
    ("batch not a list", WEB, {"events": {"a": 1}}, 422, "invalid_body", "expected a list", "web"),
    ("all rejected", WEB, {"events": [_event(channel="fax")]}, 422, "invalid_events", "events[0].channel", "web"),
    ("oversized body", WEB, OVERSIZED, 413, "body_too_large", "limit of 64000 bytes", "web"),
    ("oversized batch", WEB, {"events": [_event() for _ in range(21)]}, 413, "batch_too_large", "limit is 20", "web"),
    ("no key", {}, _event(), 401, "unauthenticated", "missing API key", "web"),
    ("unknown key", {"X-Api-Key": "guess"}, _event(), 401, "unauthenticated", "unknown API key", "web"),
    ("bearer without key", {"Authorization": "Bearer "}, _event(), 401, "unauthenticated", "missing API key", "web"),
    ("other channel's key", WEB, _event(channel="tablet"), 403, "forbidden_channel", "not tablet events", "tablet"),
    (
        "one foreign event in a batch",
        WEB,
        {"events": [_event(), _event(channel="tablet")]},
        403,
        "forbidden_channel",
        "not tablet",
        "web",
    ),
]


@pytest.mark.parametrize(
    ("headers", "body", "status", "error", "text", "marker_channel"),
    [case[1:] for case in BAD_INPUT],
    ids=[case[0] for case in BAD_INPUT],
)
def test_bad_input_is_a_4xx_naming_the_problem_and_nothing_is_published(
    client: TestClient,
    topic_for: Callable[[str], str],
    read_back: ReadBack,
    headers: dict[str, str],
    body: Any,
    status: int,
    error: str,
    text: str,
    marker_channel: str,
) -> None:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    response = client.post("/v1/events", content=content, headers={**headers, "Content-Type": "application/json"})
    assert response.status_code == status, response.text
    answer = response.json()
    assert answer["error"] == error
    assert text in response.text, answer
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    marker = _event("logout", channel=marker_channel, payload={})
    marker_key = WEB if marker_channel == "web" else TABLET
    assert client.post("/v1/events", json=marker, headers=marker_key).status_code == 202
    ((_, first, _),) = read_back(topic_for(marker_channel), 1)
    assert first["event_id"] == marker["event_id"], "the bad request published something"


def test_kafka_unreachable_is_a_503_with_retry_after_after_a_bounded_wait(dead_publisher: Publisher) -> None:
    config = CollectorConfig(hash_key=b"k" * 32, keys={"web-key-0123456789": frozenset({"web"})}, retry_after_s=3)
    with TestClient(create_app(config, dead_publisher)) as client:
        started = time.monotonic()
        response = client.post("/v1/events", json=_event(), headers=WEB)
        elapsed = time.monotonic() - started
        batch = client.post("/v1/events", json={"events": [_event(), _event()]}, headers=WEB)
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "3"
    assert response.json()["error"] == "kafka_unavailable"
    assert elapsed < 3.0, "bounded by the publish timeout (0.5 s here) plus a grace second"
    assert batch.status_code == 503
    assert batch.headers["Retry-After"] == "3"
    assert [r["status"] for r in batch.json()["results"]] == ["unavailable", "unavailable"]
    assert all(r["event_id"] for r in batch.json()["results"]), "the client knows which ids to resend"


def test_health_and_openapi(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    spec = client.get("/openapi.json").json()
    post = spec["paths"]["/v1/events"]["post"]
    assert post["summary"] and "Retry-After" in post["description"]
    assert {"202", "207", "400", "401", "403", "413", "422", "503"} <= set(post["responses"])
    examples = post["requestBody"]["content"]["application/json"]["examples"]
    assert examples["single"]["value"]["event_type"] == "cart_line_added"
    schemas = spec["components"]["schemas"]
    assert "payload" in schemas["EventInput"]["properties"]
    assert schemas["omnichannel.event.Channel"]["enum"][0] == "web"
    assert {"/v1/webhooks/email", "/v1/webhooks/sms", "/v1/webhooks/call_centre", "/v1/webhooks/back_office"} <= set(
        spec["paths"]
    )
    missing = client.get("/v1/nothing")
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
