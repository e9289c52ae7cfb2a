"""Channel webhooks end to end: native payloads in, Events stored in the real Kafka, read back with the codec."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest
from fastapi.testclient import TestClient

from connectors.collector import create_app
from connectors.config import CollectorConfig
from connectors.hashing import keyed_email_hash, keyed_phone_hash
from connectors.native import stable_event_id
from connectors.publisher import Publisher
from connectors.signatures import sign

ReadBack = Callable[..., list[tuple[str, dict[str, Any], int]]]
EMAIL_SECRET, SMS_SECRET = "email-secret-0123456789", "sms-secret-0123456789"
PHONE = "+447700900123"


def _signed(secret: str, body: bytes, prefix: str, *, at: int | None = None) -> dict[str, str]:
    timestamp = int(time.time()) if at is None else at
    return {f"X-{prefix}-Timestamp": str(timestamp), f"X-{prefix}-Signature": sign(secret, timestamp, body)}


def _mail(event: str, **extra: Any) -> dict[str, Any]:
    return {
        "event": event,
        "event_id": f"evt-{event}-{time.monotonic_ns()}",
        "timestamp": 1_732_357_200,
        "message_id": "msg-1",
        "email": "ana@example.com",
        "campaign_id": "CMP-SPRING",
        "customer_id": "C-42",
        **extra,
    }


def test_signed_email_events_are_stored(
    client: TestClient, config: CollectorConfig, topic_for: Callable[[str], str], read_back: ReadBack
) -> None:
    native = [_mail("delivered"), _mail("click", url="https://shop.example/x"), _mail("deferred"), _mail("unsubscribe")]
    body = orjson.dumps(native)
    response = client.post("/v1/webhooks/email", content=body, headers=_signed(EMAIL_SECRET, body, "Email"))
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["accepted"] == 3
    assert answer["ignored"] == [{"path": "[2]", "reason": "event 'deferred': a delivery retry in progress"}]
    records = read_back(topic_for("email"), 3)
    actions = [e["payload"].get("action", e["event_type"]) for _, e, _ in records]
    assert actions == ["email_delivered", "email_clicked", "consent_changed"]
    key, clicked, _ = records[1]
    assert key == "customer:C-42"
    assert clicked["payload"]["url"] == "https://shop.example/x"
    assert clicked["identities"]["email_hash"] == keyed_email_hash(config.hash_key, "ana@example.com")
    assert clicked["identities"]["email_hash"] != hashlib.sha256(b"ana@example.com").hexdigest(), "keyed, not bare"
    assert clicked["source_system"] == "email-webhook"
    assert clicked["event_id"] == stable_event_id("email", native[1]["event_id"])


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        (lambda body: _signed("not-the-secret-000000", body, "Email"), "does not match"),
        (lambda body: _signed(EMAIL_SECRET, body + b" ", "Email"), "does not match"),
        (lambda body: _signed(EMAIL_SECRET, body, "Email", at=int(time.time()) - 3600), "more than 300 s"),
        (lambda body: {"X-Email-Timestamp": str(int(time.time()))}, "X-Email-Signature header is missing"),
        (lambda body: _signed(EMAIL_SECRET, body, "Sms"), "X-Email-Timestamp header is missing"),
    ],
    ids=["wrong secret", "altered body", "replayed", "unsigned", "other provider's headers"],
)
def test_a_bad_email_signature_is_401_and_nothing_is_stored(
    client: TestClient,
    topic_for: Callable[[str], str],
    read_back: ReadBack,
    headers: Callable[[bytes], dict[str, str]],
    reason: str,
) -> None:
    body = orjson.dumps([_mail("open")])
    response = client.post("/v1/webhooks/email", content=body, headers=headers(body))
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "bad_signature"
    assert reason in response.json()["detail"]
    marker = orjson.dumps([_mail("open")])
    assert (
        client.post("/v1/webhooks/email", content=marker, headers=_signed(EMAIL_SECRET, marker, "Email")).status_code
        == 202
    )
    ((_, first, _),) = read_back(topic_for("email"), 1)
    assert first["event_id"] == stable_event_id("email", orjson.loads(marker)[0]["event_id"])


def test_a_malformed_email_item_rejects_the_whole_payload(
    client: TestClient, topic_for: Callable[[str], str], read_back: ReadBack
) -> None:
    body = orjson.dumps([_mail("open"), _mail("open", timestamp="noon")])
    response = client.post("/v1/webhooks/email", content=body, headers=_signed(EMAIL_SECRET, body, "Email"))
    assert response.status_code == 422
    assert response.json()["problems"][0]["path"] == "[1].timestamp"
    marker = orjson.dumps([_mail("processed")])
    client.post("/v1/webhooks/email", content=marker, headers=_signed(EMAIL_SECRET, marker, "Email"))
    ((_, first, _),) = read_back(topic_for("email"), 1)
    assert first["payload"]["action"] == "email_sent", "the valid first item was not published either"


def test_an_email_event_dated_in_the_year_3000_is_refused_naming_occurred_at_ms(client: TestClient) -> None:
    body = orjson.dumps([_mail("open"), _mail("open", timestamp=32_503_680_000)])
    response = client.post("/v1/webhooks/email", content=body, headers=_signed(EMAIL_SECRET, body, "Email"))
    assert response.status_code == 422
    ((problem,),) = [response.json()["problems"]]
    assert problem["path"] == "[1].occurred_at_ms"
    assert "OMNICHANNEL_MAX_CLOCK_SKEW_MINUTES" in problem["reason"]


def test_form_encoded_sms_callbacks_are_verified_and_stored(
    config: CollectorConfig, publisher: Publisher, topic_for: Callable[[str], str], read_back: ReadBack
) -> None:
    # The events' time defaults to the signed timestamp (the wall clock): the collector's clock must be the
    # wall clock too, or the event would lie outside the accepted window around its receipt.
    client = TestClient(create_app(config, publisher))
    forms = [
        {
            "MessageSid": "SM1",
            "MessageStatus": "delivered",
            "To": PHONE,
            "From": "+447700900000",
            "CampaignId": "SPRING-SMS",
            "PromoCode": "SMS10",
        },
        {"MessageSid": "SM2", "MessageStatus": "received", "From": PHONE, "To": "+447700900000", "Body": "STOP"},
        {"MessageSid": "SM1", "MessageStatus": "queued", "To": PHONE},
    ]
    for form in forms:
        body = urlencode(form).encode()
        headers = {**_signed(SMS_SECRET, body, "Sms"), "Content-Type": "application/x-www-form-urlencoded"}
        response = client.post("/v1/webhooks/sms", content=body, headers=headers)
        assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 0 and response.json()["ignored"][0]["path"] == "MessageStatus"
    (_, delivered, _), (_, stop, _) = read_back(topic_for("sms"), 2)
    assert delivered["payload"] == {
        "campaign_id": "SPRING-SMS",
        "action": "sms_delivered",
        "message_id": "SM1",
        "promo_code": "SMS10",
        "url": None,
    }
    assert delivered["identities"]["phone_hash"] == keyed_phone_hash(config.hash_key, PHONE)
    assert stop["event_type"] == "consent_changed" and stop["payload"]["granted"] is False


def test_a_bad_sms_signature_is_401(client: TestClient) -> None:
    body = urlencode({"MessageSid": "SM1", "MessageStatus": "sent", "To": PHONE}).encode()
    headers = {**_signed(EMAIL_SECRET, body, "Sms"), "Content-Type": "application/x-www-form-urlencoded"}
    response = client.post("/v1/webhooks/sms", content=body, headers=headers)
    assert response.status_code == 401
    assert "check the webhook secret" in response.json()["detail"]


def test_call_events_are_stored_with_the_agent(
    client: TestClient, topic_for: Callable[[str], str], read_back: ReadBack
) -> None:
    headers = {"X-Api-Key": "callcentre-key-012345"}
    start = {
        "event": "call.started",
        "call_id": "CALL-9",
        "occurred_at": "2024-11-23T10:20:00Z",
        "direction": "inbound",
        "caller_number": PHONE,
        "customer_id": "C-42",
    }
    end = {
        "event": "call.ended",
        "call_id": "CALL-9",
        "occurred_at": "2024-11-23T10:25:00Z",
        "agent_id": "agent-jsmith",
        "outcome": "resolved",
        "customer_id": "C-42",
        "duration_seconds": 300,
    }
    assert client.post("/v1/webhooks/call_centre", json=start, headers=headers).status_code == 202
    assert client.post("/v1/webhooks/call_centre", json=[end], headers=headers).status_code == 202
    (_, started, _), (key, ended, _) = read_back(topic_for("call_centre"), 2)
    assert (started["event_type"], ended["event_type"]) == ("contact_started", "contact_ended")
    assert ended["actor"] == {"actor_id": "agent-jsmith", "role": "agent"}
    assert key == "customer:C-42"
    assert ended["channel"] == "call_centre"


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"X-Api-Key": "web-key-0123456789"}, 403), ({"X-Api-Key": "backoffice-key-012345"}, 403)],
)
def test_call_centre_and_back_office_webhooks_need_their_own_key(
    client: TestClient, headers: dict[str, str], status: int
) -> None:
    path = "/v1/webhooks/back_office" if "backoffice" not in str(headers) else "/v1/webhooks/call_centre"
    response = client.post(path, json={}, headers=headers)
    assert response.status_code == status, response.text


def test_back_office_orders_and_stock_are_stored(
    client: TestClient, topic_for: Callable[[str], str], read_back: ReadBack
) -> None:
    messages = [
        {
            "type": "order.status_changed",
            "message_id": "OMS-2",
            "occurred_at": "2024-11-23T11:00:00Z",
            "order_id": "ORD-77",
            "customer_id": "C-42",
            "status": "shipped",
        },
        {
            "type": "stock.level_changed",
            "message_id": "STK-1",
            "occurred_at": "2024-11-23T11:00:00Z",
            "store_id": "S0231",
            "sku": "SKU-1",
            "available": 0,
            "sequence": 12,
        },
    ]
    response = client.post("/v1/webhooks/back_office", json=messages, headers={"X-Api-Key": "backoffice-key-012345"})
    assert response.status_code == 202, response.text
    records = read_back(topic_for("back_office"), 2)
    assert [e["event_type"] for _, e, _ in records] == ["order_status_changed", "stock_level_changed"]
    assert records[1][1]["payload"]["available"] == 0
    bad = client.post(
        "/v1/webhooks/back_office",
        json={**messages[1], "available": "none"},
        headers={"X-Api-Key": "backoffice-key-012345"},
    )
    assert bad.status_code == 422
    assert bad.json()["problems"] == [{"path": "available", "reason": "expected a whole number, got 'none'"}]
