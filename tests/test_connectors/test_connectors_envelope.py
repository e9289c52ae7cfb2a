"""The pure envelope rules: partition key, defaults filled by the connectors, contract validation."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.envelope import normalise, partition_key, validate_event
from connectors.errors import InvalidEventError
from schemas.samples import sample_event


def _ids(**known: str) -> dict[str, Any]:
    return {"identities": known}


@pytest.mark.parametrize(
    ("event", "key"),
    [
        ({**_ids(customer_id="C-1", anonymous_id="a-1"), "device": {"device_id": "d-1"}}, "customer:C-1"),
        ({**_ids(anonymous_id="a-1"), "device": {"device_id": "d-1"}}, "anonymous:a-1"),
        ({**_ids(email_hash="ab" * 32), "device": {"device_id": "d-1"}}, "device:d-1"),
        ({"identities": {}, "device": None, "event_id": "e-1"}, "event:e-1"),
        ({**_ids(customer_id="", anonymous_id="a-2"), "event_id": "e-2"}, "anonymous:a-2"),
        (
            {"event_type": "stock_level_changed", "identities": {}, "payload": {"store_id": "S1", "product_id": "P"}},
            "stock:S1:P",
        ),
    ],
    ids=["customer wins", "anonymous before device", "device", "event id last", "empty id skipped", "stock level"],
)
def test_the_partition_key_is_the_strongest_identity(event: dict[str, Any], key: str) -> None:
    assert partition_key(event) == key


def test_normalise_fills_what_the_sender_may_omit() -> None:
    raw = {"event_type": "logout", "occurred_at_ms": 5, "channel": "web", "payload": {}}
    event = normalise(raw, received_at_ms=99, new_id=lambda: "id-1", source_system="test")
    assert event == {
        "event_id": "id-1",
        "event_type": "logout",
        "occurred_at_ms": 5,
        "received_at_ms": 99,
        "channel": "web",
        "device": None,
        "identities": dict.fromkeys(["anonymous_id", "customer_id", "email_hash", "phone_hash", "loyalty_card"]),
        "location": None,
        "actor": None,
        "session_id": None,
        "consent": {},
        "source_system": "test",
        "payload": {},
    }
    assert raw == {"event_type": "logout", "occurred_at_ms": 5, "channel": "web", "payload": {}}, "input untouched"


def test_normalise_keeps_the_senders_id_and_stamps_its_own_receive_time() -> None:
    raw = sample_event("login", received_at_ms=1, identities={"customer_id": "C-9"})
    event = normalise(raw, received_at_ms=42, channel="tablet")
    assert event["event_id"] == raw["event_id"]
    assert event["received_at_ms"] == 42
    assert event["channel"] == "mobile_app", "a channel given by the sender is kept (and checked by the collector)"
    assert event["identities"]["customer_id"] == "C-9"
    assert event["identities"]["anonymous_id"] is None


@pytest.mark.parametrize(
    ("change", "path", "reason"),
    [
        ({"event_type": "teleported"}, "event_type", "unknown event type 'teleported'"),
        ({"event_type": 7}, "event_type", "expected string"),
        ({"channel": "fax"}, "channel", "'fax' is not one of web"),
        ({"occurred_at_ms": "yesterday"}, "occurred_at_ms", "expected long"),
        (
            {"payload": {"product_id": "P", "quantity": "two", "unit_price_cents": 1, "currency": "EUR"}},
            "payload.quantity",
            "expected int, got str 'two'",
        ),
        (
            {"payload": {"product_id": "P", "unit_price_cents": 1, "currency": "EUR"}},
            "payload.quantity",
            "required field is missing",
        ),
        (
            {"payload": {"product_id": "P", "quantity": 2**40, "unit_price_cents": 1, "currency": "EUR"}},
            "payload.quantity",
            "out of range for int",
        ),
        ({"payload": "lamp"}, "payload", "expected an object"),
        ({"identities": {"customer_idd": "C-1"}}, "identities.customer_idd", "unknown field"),
        ({"device": {"kind": "ios", "role": "customer_owned"}}, "device.device_id", "required field is missing"),
        ({"colour": "red"}, "colour", "unknown field"),
        ({"event_id": "  "}, "event_id", "must not be empty"),
    ],
)
def test_validation_names_the_field_and_the_reason(change: dict[str, Any], path: str, reason: str) -> None:
    raw = {**sample_event("cart_line_added"), **change}
    with pytest.raises(InvalidEventError) as caught:
        normalise(raw, received_at_ms=1)
    assert any(p.path == path and reason in p.reason for p in caught.value.problems), caught.value.problems


def test_every_problem_is_reported_at_once() -> None:
    raw = {"event_type": "cart_line_added", "payload": {"quantity": "x"}, "channel": "fax"}
    with pytest.raises(InvalidEventError) as caught:
        normalise(raw, received_at_ms=1)
    paths = {p.path for p in caught.value.problems}
    assert {"occurred_at_ms", "channel", "payload.product_id", "payload.quantity", "payload.currency"} <= paths
    assert "payload.quantity" in str(caught.value)


def test_an_unknown_event_type_still_reports_envelope_problems_but_not_the_payloads() -> None:
    with pytest.raises(InvalidEventError) as caught:
        validate_event({**sample_event("login"), "event_type": "nope", "occurred_at_ms": None})
    assert [p.path for p in caught.value.problems] == ["event_type", "occurred_at_ms"]


@pytest.mark.parametrize("raw", [[], "event", 3, None])
def test_a_non_object_is_rejected(raw: object) -> None:
    with pytest.raises(InvalidEventError, match="expected a JSON object"):
        normalise(raw, received_at_ms=1)
