"""Table tests of every channel adapter's pure mapping, and of webhook signatures (no broker needed).

Each mapped event is also run through the envelope validation, so a mapping cannot drift from the contract.
"""

from __future__ import annotations

from typing import Any

import pytest

from connectors.channels import (
    ADAPTER_MODULES,
    back_office,
    call_centre,
    email_provider,
    load_adapters,
    pos,
    sms,
    tablet,
    web,
)
from connectors.envelope import normalise
from connectors.errors import InvalidEventError, SignatureError
from connectors.hashing import keyed_email_hash, keyed_phone_hash
from connectors.native import stable_event_id
from connectors.signatures import sign, verify

PHONE = "+447700900123"
HASH_KEY = b"hash-key-of-the-tests-0123456789"
PHONE_HASH = keyed_phone_hash(HASH_KEY, PHONE)
EMAIL_HASH = keyed_email_hash(HASH_KEY, "ana@example.com")


def _valid(event: dict[str, Any]) -> dict[str, Any]:
    return normalise(event, received_at_ms=1)


def _problems(error: pytest.ExceptionInfo[InvalidEventError]) -> dict[str, str]:
    return {p.path: p.reason for p in error.value.problems}


def test_every_registered_adapter_loads_and_names_a_known_channel() -> None:
    adapters = load_adapters()
    assert set(adapters) == set(ADAPTER_MODULES)
    assert {a.channel for a in adapters.values()} >= {"web", "mobile_app", "tablet", "store", "email", "sms"}
    assert all(a.webhook or a.file_format or a.source_system == "collector" for a in adapters.values())


# -- web / mobile / tablet: the collector's JSON --------------------------------------------------------------


def test_app_channels_fill_their_channel_and_defaults() -> None:
    raw = {"event_type": "search_performed", "occurred_at_ms": 7, "payload": {"query": "lamp"}}
    assert web.to_event(raw, received_at_ms=9, new_id=lambda: "e")["channel"] == "web"
    event = tablet.to_event(raw, received_at_ms=9, new_id=lambda: "e")
    assert (event["channel"], event["event_id"], event["received_at_ms"]) == ("tablet", "e", 9)
    assert event["payload"] == {"query": "lamp"}


# -- POS ------------------------------------------------------------------------------------------------------

SALE = {
    "type": "sale",
    "txn_id": "T-981",
    "timestamp": "2024-11-23T10:20:00+01:00",
    "store_id": "S0231",
    "till_id": "till-3",
    "employee_id": "E10442",
    "customer_id": "C-42",
    "items": "SKU-1:2:4999;SKU-7:1:1299",
    "total_cents": "11297",
    "currency": "EUR",
    "coupons": "SMS10",
}


@pytest.mark.parametrize(
    ("record", "event_type", "payload"),
    [
        (
            SALE,
            "order_placed",
            {
                "order_id": "T-981",
                "lines": [
                    {"product_id": "SKU-1", "quantity": 2, "unit_price_cents": 4999},
                    {"product_id": "SKU-7", "quantity": 1, "unit_price_cents": 1299},
                ],
                "total_cents": 11297,
                "currency": "EUR",
                "fulfilment": "in_store",
                "collect_store_id": None,
                "coupon_codes": ["SMS10"],
            },
        ),
        (
            {**SALE, "items": [{"sku": "SKU-1", "quantity": 1, "unit_price_cents": 5}], "coupons": ["A", "B"]},
            "order_placed",
            {
                "order_id": "T-981",
                "lines": [{"product_id": "SKU-1", "quantity": 1, "unit_price_cents": 5}],
                "total_cents": 11297,
                "currency": "EUR",
                "fulfilment": "in_store",
                "collect_store_id": None,
                "coupon_codes": ["A", "B"],
            },
        ),
        (
            {**SALE, "type": "return", "product_id": "SKU-1", "quantity": "1", "order_id": "T-1", "reason": "damaged"},
            "product_returned",
            {"return_id": "T-981", "order_id": "T-1", "product_id": "SKU-1", "quantity": 1, "reason": "damaged"},
        ),
        (
            {**SALE, "type": "collection", "order_id": "ORD-77"},
            "order_collected",
            {"order_id": "ORD-77", "store_id": "S0231"},
        ),
        (
            {**SALE, "type": "loyalty", "loyalty_card": "6330 0012", "points": "120"},
            "loyalty_card_used",
            {"card_id": "6330 0012", "points": 120},
        ),
    ],
    ids=["csv sale", "json sale", "return", "collection", "loyalty"],
)
def test_pos_records_map_to_store_events(record: dict[str, Any], event_type: str, payload: dict[str, Any]) -> None:
    event = _valid(pos.to_event(record))
    assert event["event_type"] == event_type
    assert event["payload"] == payload
    assert event["occurred_at_ms"] == 1_732_353_600_000  # 10:20 at +01:00 is 09:20Z
    assert event["channel"] == "store"
    assert event["device"] == {"device_id": "till-3", "kind": "pos_till", "role": "staff_operated"}
    assert event["actor"] == {"actor_id": "E10442", "role": "employee"}
    assert event["location"] == {"store_id": "S0231", "site": None}
    assert event["event_id"] == stable_event_id("store", "S0231", "T-981", record["type"])


@pytest.mark.parametrize(
    ("change", "path", "reason"),
    [
        ({"type": "refund"}, "type", "'refund' is not one of sale"),
        ({"timestamp": "2024-11-23T10:20:00"}, "timestamp", "no UTC offset"),
        ({"items": "SKU-1:two:4999"}, "items[0].quantity", "expected a whole number"),
        ({"items": "SKU-1-2-4999"}, "items[0]", "expected an object"),
        ({"items": ""}, "items", "at least one item"),
        ({"till_id": None}, "till_id", "required field is missing"),
        ({"total_cents": "-5"}, "total_cents", "at least 0"),
    ],
)
def test_bad_pos_records_name_the_field(change: dict[str, Any], path: str, reason: str) -> None:
    with pytest.raises(InvalidEventError) as caught:
        pos.to_event({**SALE, **change})
    assert reason in _problems(caught)[path]


# -- call centre ----------------------------------------------------------------------------------------------

CALL_START = {
    "event": "call.started",
    "call_id": "CALL-1",
    "occurred_at": "2024-11-23T10:20:00Z",
    "direction": "inbound",
    "caller_number": PHONE,
    "reason": "order_status",
}
CALL_END = {
    "event": "call.ended",
    "call_id": "CALL-1",
    "occurred_at": "2024-11-23T10:25:12Z",
    "agent_id": "agent-jsmith",
    "outcome": "resolved",
    "duration_seconds": 312,
    "customer_id": "C-42",
}


def test_call_start_and_end_map_to_contact_events_with_the_agent_as_actor() -> None:
    started, ended = (_valid(e) for e in call_centre.to_events([CALL_START, CALL_END], hash_key=HASH_KEY).events)
    assert started["event_type"] == "contact_started"
    assert started["payload"] == {
        "contact_id": "CALL-1",
        "medium": "call",
        "direction": "inbound",
        "reason": "order_status",
    }
    assert started["identities"]["phone_hash"] == PHONE_HASH, "the number is hashed, never kept"
    assert PHONE not in str(started)
    assert started["actor"] is None, "a queued call has no agent yet"
    assert ended["event_type"] == "contact_ended"
    assert ended["actor"] == {"actor_id": "agent-jsmith", "role": "agent"}
    assert ended["payload"]["outcome"] == "resolved"
    assert ended["payload"]["duration_seconds"] == 312
    assert ended["session_id"] == "CALL-1"
    assert ended["occurred_at_ms"] == 1_732_357_512_000
    assert started["event_id"] != ended["event_id"]


@pytest.mark.parametrize(
    ("document", "path", "reason"),
    [
        ({**CALL_END, "agent_id": None}, "agent_id", "required field is missing"),
        ({**CALL_END, "outcome": None}, "outcome", "required field is missing"),
        ({**CALL_START, "direction": "sideways"}, "direction", "not one of inbound"),
        ({**CALL_START, "caller_number": "0770090"}, "caller_number", "not an E.164 number"),
        ({**CALL_START, "event": "call.paused"}, "event", "not one of call.started"),
        ([CALL_START, {**CALL_END, "duration_seconds": "long"}], "[1].duration_seconds", "whole number"),
        ("call", "", "expected an object"),
    ],
)
def test_bad_call_events_name_the_field(document: Any, path: str, reason: str) -> None:
    with pytest.raises(InvalidEventError) as caught:
        call_centre.to_events(document, hash_key=HASH_KEY)
    assert reason in _problems(caught)[path]


# -- e-mail ---------------------------------------------------------------------------------------------------


def _mail(event: str, **extra: Any) -> dict[str, Any]:
    return {
        "event": event,
        "event_id": f"evt-{event}",
        "timestamp": 1_732_357_200,
        "message_id": "msg-1",
        "recipient_sha256": EMAIL_HASH,
        "campaign_id": "CMP-SPRING",
        **extra,
    }


@pytest.mark.parametrize(
    ("native", "action"),
    [
        (_mail("processed"), "email_sent"),
        (_mail("delivered"), "email_delivered"),
        (_mail("open"), "email_opened"),
        (_mail("click", url="https://shop.example/x"), "email_clicked"),
        (_mail("bounce"), "email_bounced"),
        (_mail("dropped"), "email_bounced"),
    ],
)
def test_email_events_map_to_campaign_touches(native: dict[str, Any], action: str) -> None:
    (event,) = email_provider.to_events([native], hash_key=HASH_KEY).events
    event = _valid(event)
    assert event["event_type"] == "campaign_touched"
    assert event["payload"]["action"] == action
    assert event["payload"]["campaign_id"] == "CMP-SPRING"
    assert event["payload"]["url"] == native.get("url")
    assert event["identities"]["email_hash"] == EMAIL_HASH
    assert event["occurred_at_ms"] == 1_732_357_200_000
    assert event["event_id"] == stable_event_id("email", native["event_id"])


def test_email_unsubscribe_is_a_refused_consent_and_a_clear_address_is_hashed() -> None:
    native = {**_mail("unsubscribe"), "recipient_sha256": None, "email": " Ana@Example.com "}
    (event,) = email_provider.to_events([native], hash_key=HASH_KEY).events
    assert _valid(event)["event_type"] == "consent_changed"
    assert event["payload"] == {"purpose": "marketing_email", "channel": "email", "granted": False}
    assert event["identities"]["email_hash"] == EMAIL_HASH
    assert "Ana@Example.com" not in str(event)


def test_email_events_not_tracked_are_listed_as_ignored() -> None:
    mapped = email_provider.to_events(
        [_mail("deferred"), _mail("open", campaign_id=None), _mail("open")], hash_key=HASH_KEY
    )
    assert len(mapped.events) == 1
    assert [(p.path, "retry" in p.reason or "transactional" in p.reason) for p in mapped.ignored] == [
        ("[0]", True),
        ("[1]", True),
    ]


@pytest.mark.parametrize(
    ("document", "path", "reason"),
    [
        ({"event": "open"}, "", "expected a JSON array"),
        ([_mail("open", timestamp="noon")], "[0].timestamp", "not epoch seconds"),
        ([_mail("click")], "[0].url", "required field is missing"),
        ([_mail("open", recipient_sha256="abc")], "[0].recipient_sha256", "64 hex"),
        ([_mail("open", email="not-an-address", recipient_sha256=None)], "[0].email", "not an e-mail"),
        ([_mail("open"), {"event": "open"}], "[1].message_id", "required field is missing"),
    ],
)
def test_bad_email_payloads_name_the_field(document: Any, path: str, reason: str) -> None:
    with pytest.raises(InvalidEventError) as caught:
        email_provider.to_events(document, hash_key=HASH_KEY)
    assert reason in _problems(caught)[path]


# -- SMS ------------------------------------------------------------------------------------------------------


def _sms(status: str, **extra: str) -> dict[str, str]:
    return {"MessageSid": "SM1", "MessageStatus": status, "To": PHONE, "From": "+447700900000", **extra}


@pytest.mark.parametrize(
    ("form", "event_type", "expected"),
    [
        (
            _sms("sent", CampaignId="SPRING", PromoCode="SMS10"),
            "campaign_touched",
            {"action": "sms_sent", "promo_code": "SMS10"},
        ),
        (_sms("delivered", CampaignId="SPRING"), "campaign_touched", {"action": "sms_delivered"}),
        (
            _sms("clicked", CampaignId="SPRING", ClickedUrl="https://s.example/x"),
            "campaign_touched",
            {"action": "sms_clicked", "url": "https://s.example/x"},
        ),
        (
            {**_sms("received", Body="Yes please"), "From": PHONE, "To": "+447700900000"},
            "campaign_touched",
            {"action": "sms_inbound", "campaign_id": sms.INBOUND_CAMPAIGN},
        ),
        (
            {**_sms("received", Body=" stop "), "From": PHONE, "To": "+447700900000"},
            "consent_changed",
            {"purpose": "marketing_sms", "granted": False},
        ),
        (
            {**_sms("received", Body="START"), "From": PHONE, "To": "+447700900000"},
            "consent_changed",
            {"granted": True},
        ),
    ],
    ids=["sent", "delivered", "clicked", "inbound reply", "STOP", "START"],
)
def test_sms_callbacks_map_to_touches_or_consent(
    form: dict[str, str], event_type: str, expected: dict[str, Any]
) -> None:
    (event,) = sms.to_events(form, signed_at_s=1_732_357_200, hash_key=HASH_KEY).events
    event = _valid(event)
    assert event["event_type"] == event_type
    assert expected.items() <= event["payload"].items()
    assert event["identities"]["phone_hash"] == PHONE_HASH, "the customer's number (To, or From when inbound)"
    assert event["occurred_at_ms"] == 1_732_357_200_000
    assert "Body" not in str(event) and "stop" not in str(event["payload"]).lower()


def test_sms_statuses_not_tracked_are_ignored() -> None:
    assert sms.to_events(_sms("failed", CampaignId="X"), signed_at_s=1, hash_key=HASH_KEY).events == []
    assert sms.to_events(_sms("delivered"), signed_at_s=1, hash_key=HASH_KEY).ignored[0].path == "CampaignId"


@pytest.mark.parametrize(
    ("form", "path", "reason"),
    [
        ({**_sms("sent"), "MessageSid": ""}, "MessageSid", "required field is missing"),
        (_sms("teleported"), "MessageStatus", "not one of sent"),
        ({**_sms("sent"), "To": "07700"}, "To", "not an E.164"),
        (_sms("clicked", CampaignId="X"), "ClickedUrl", "required field is missing"),
        (_sms("sent", EventTime="yesterday"), "EventTime", "Invalid isoformat"),
    ],
)
def test_bad_sms_callbacks_name_the_field(form: dict[str, str], path: str, reason: str) -> None:
    with pytest.raises(InvalidEventError) as caught:
        sms.to_events(form, signed_at_s=1, hash_key=HASH_KEY)
    assert reason in _problems(caught)[path]


def test_a_form_body_is_parsed_and_garbage_is_refused() -> None:
    assert sms.parse_form(b"MessageSid=SM1&To=%2B4477") == {"MessageSid": "SM1", "To": "+4477"}
    with pytest.raises(Exception, match="not application/x-www-form-urlencoded"):
        sms.parse_form(b"\xff\xfe")


# -- back office ----------------------------------------------------------------------------------------------

ORDER = {
    "type": "order.placed",
    "message_id": "OMS-1",
    "occurred_at": "2024-11-23T10:20:00Z",
    "source": "order-management",
    "order": {
        "order_id": "ORD-77",
        "customer_id": "C-42",
        "currency": "EUR",
        "total_cents": 9998,
        "fulfilment": "click_and_collect",
        "collect_store_id": "S0231",
        "lines": [{"sku": "SKU-1", "quantity": 2, "unit_price_cents": 4999}],
    },
}
STATUS = {
    "type": "order.status_changed",
    "message_id": "OMS-2",
    "occurred_at": "2024-11-23T11:00:00Z",
    "order_id": "ORD-77",
    "customer_id": "C-42",
    "status": "ready_for_collection",
    "previous_status": "picking",
}
STOCK = {
    "type": "stock.level_changed",
    "message_id": "STK-1",
    "occurred_at": "2024-11-23T11:00:00Z",
    "store_id": "S0231",
    "sku": "SKU-1",
    "available": 14,
    "sequence": 9001,
}


def test_back_office_messages_map_to_order_and_stock_events() -> None:
    placed, status, stock = (_valid(back_office.to_event(m)) for m in (ORDER, STATUS, STOCK))
    assert placed["event_type"] == "order_placed"
    assert placed["payload"]["lines"] == [{"product_id": "SKU-1", "quantity": 2, "unit_price_cents": 4999}]
    assert placed["payload"]["fulfilment"] == "click_and_collect"
    assert placed["identities"]["customer_id"] == "C-42"
    assert placed["actor"] == {"actor_id": "order-management", "role": "system"}
    assert status["payload"] == {"order_id": "ORD-77", "status": "ready_for_collection", "previous_status": "picking"}
    assert stock["payload"] == {"store_id": "S0231", "product_id": "SKU-1", "available": 14, "sequence": 9001}
    assert stock["location"] == {"store_id": "S0231", "site": None}
    assert all(v is None for v in stock["identities"].values()), "a stock level is about no customer"
    assert stock["actor"] == {"actor_id": "back-office", "role": "system"}
    assert back_office.to_events([ORDER, STOCK]).events[1]["event_id"] == stable_event_id("back_office", "STK-1")


@pytest.mark.parametrize(
    ("message", "path", "reason"),
    [
        ({**ORDER, "order": {**ORDER["order"], "lines": []}}, "order.lines", "non-empty list"),
        (
            {**ORDER, "order": {**ORDER["order"], "lines": [{"sku": "S", "quantity": 0, "unit_price_cents": 1}]}},
            "order.lines[0].quantity",
            "at least 1",
        ),
        ({**ORDER, "order": {**ORDER["order"], "fulfilment": "drone"}}, "order.fulfilment", "not one of delivery"),
        ({**STOCK, "available": "many"}, "available", "whole number"),
        ({**STOCK, "type": "stock.audit"}, "type", "not one of order.placed"),
        ({**STATUS, "occurred_at": 5}, "occurred_at", "ISO 8601"),
        ({k: v for k, v in STATUS.items() if k != "message_id"}, "message_id", "required field is missing"),
    ],
)
def test_bad_back_office_messages_name_the_field(message: dict[str, Any], path: str, reason: str) -> None:
    with pytest.raises(InvalidEventError) as caught:
        back_office.to_event(message)
    assert reason in _problems(caught)[path]


# -- signatures -----------------------------------------------------------------------------------------------

SECRET = "s3cret-s3cret-s3cret"
BODY = b'[{"event":"open"}]'


def test_a_signature_made_with_the_secret_verifies() -> None:
    header = sign(SECRET, 1000, BODY)
    assert verify(SECRET, body=BODY, signature=header, timestamp="1000", now_s=1100, tolerance_s=300) == 1000
    rotated = f"v1={'0' * 64}, {header}"
    assert verify(SECRET, body=BODY, signature=rotated, timestamp="1000", now_s=1000, tolerance_s=300) == 1000


@pytest.mark.parametrize(
    ("signature", "timestamp", "body", "now", "message"),
    [
        (sign("other-secret", 1000, BODY), "1000", BODY, 1000, "does not match"),
        (sign(SECRET, 1000, BODY), "1000", BODY + b" ", 1000, "does not match"),
        (sign(SECRET, 1000, BODY), "1001", BODY, 1000, "does not match"),
        (sign(SECRET, 1000, BODY), "1000", BODY, 1000 + 301, "more than 300 s"),
        (sign(SECRET, 1000, BODY), "1000", BODY, 1000 - 301, "more than 300 s"),
        (None, "1000", BODY, 1000, "signature header is missing"),
        (sign(SECRET, 1000, BODY), None, BODY, 1000, "timestamp header is missing"),
        (sign(SECRET, 1000, BODY), "noon", BODY, 1000, "epoch seconds"),
        ("sha256=abc", "1000", BODY, 1000, "must hold v1="),
    ],
    ids=[
        "wrong secret",
        "altered body",
        "altered timestamp",
        "replayed",
        "future",
        "no sig",
        "no ts",
        "bad ts",
        "bad scheme",
    ],
)
def test_a_bad_signature_says_what_is_wrong(
    signature: str | None, timestamp: str | None, body: bytes, now: int, message: str
) -> None:
    with pytest.raises(SignatureError, match=message):
        verify(SECRET, body=body, signature=signature, timestamp=timestamp, now_s=now, tolerance_s=300)
