"""The .avsc event contract: file layout, docs, canonical JSON, event types and Avro round trips."""

from __future__ import annotations

import io
import json
from typing import Any

import fastavro
import pytest

from schemas import loader
from schemas.errors import SchemaError, UnknownEventTypeError
from schemas.evolution import released_versions, subjects

EVENT = "omnichannel.event.Event"
NAMED_KINDS = {"record", "enum", "fixed"}

# Payload records in the order of docs/event-contract-spec.md.
SPEC_PAYLOADS = [
    "Login",
    "Logout",
    "Identify",
    "PageViewed",
    "ProductViewed",
    "SearchPerformed",
    "CartLineAdded",
    "CartLineRemoved",
    "CartQuantitySet",
    "CartCleared",
    "CheckoutStarted",
    "OrderPlaced",
    "OrderStatusChanged",
    "OrderCollected",
    "StockLevelChanged",
    "StoreVisited",
    "ContactStarted",
    "ContactEnded",
    "QuoteStarted",
    "QuoteUpdated",
    "QuoteSubmitted",
    "CampaignTouched",
    "CouponRedeemed",
    "ConsentChanged",
    "FeedbackGiven",
    "LoyaltyCardUsed",
    "ProductReturned",
    "TicketOpened",
    "TicketClosed",
    "ErasureRequested",
]
SPEC_EVENT_FIELDS = [
    "event_id",
    "event_type",
    "occurred_at_ms",
    "received_at_ms",
    "channel",
    "device",
    "identities",
    "location",
    "actor",
    "session_id",
    "consent",
    "source_system",
    "payload",
]
SPEC_SUBJECTS = [
    "omnichannel.event.Event",
    "omnichannel.output.AttributionRecord",
    "omnichannel.output.Cart",
    "omnichannel.output.CustomerState",
    "omnichannel.output.ErasureAudit",
    "omnichannel.output.FailedEvent",
    "omnichannel.output.FollowUpTrigger",
    "omnichannel.output.IdentityLink",
]

# One realistic payload per event_type.
SAMPLE_PAYLOADS: dict[str, dict[str, Any]] = {
    "login": {"method": "magic_link"},
    "logout": {},
    "identify": {"traits": {"first_name": "Ana", "preferred_store": "S0231"}},
    "page_viewed": {
        "url": "https://shop.example.com/c/running?utm_source=email",
        "title": "Running shoes | Example",
        "referrer": None,
    },
    "product_viewed": {"product_id": "SKU-10042", "category": "footwear/running", "unit_price_cents": 4999},
    "search_performed": {"query": "trail running shoes", "results_count": 37},
    "cart_line_added": {"product_id": "SKU-10042", "quantity": 2, "unit_price_cents": 4999, "currency": "EUR"},
    "cart_line_removed": {"product_id": "SKU-10042"},
    "cart_quantity_set": {"product_id": "SKU-10042", "quantity": 0, "unit_price_cents": None, "currency": None},
    "cart_cleared": {"reason": "customer_emptied"},
    "checkout_started": {"cart_value_cents": 12998},
    "order_placed": {
        "order_id": "ORD-2024-000123",
        "lines": [
            {"product_id": "SKU-10042", "quantity": 2, "unit_price_cents": 4999},
            {"product_id": "SKU-20077", "quantity": 1, "unit_price_cents": 3000},
        ],
        "total_cents": 12998,
        "currency": "EUR",
        "fulfilment": "click_and_collect",
        "collect_store_id": "S0231",
        "coupon_codes": ["SPRING10"],
    },
    "order_status_changed": {"order_id": "ORD-2024-000123", "status": "shipped", "previous_status": "paid"},
    "order_collected": {"order_id": "ORD-2024-000123", "store_id": "S0231"},
    "stock_level_changed": {"store_id": "S0231", "product_id": "SKU-10042", "available": 0, "sequence": 981_223},
    "store_visited": {"store_id": "S0231"},
    "contact_started": {
        "contact_id": "CALL-88231",
        "medium": "call",
        "direction": "inbound",
        "reason": "order_status",
    },
    "contact_ended": {
        "contact_id": "CALL-88231",
        "medium": "call",
        "outcome": "resolved",
        "duration_seconds": 312,
        "notes": "Customer asked when parcel arrives; gave tracking link.",
    },
    "quote_started": {
        "quote_id": "Q-55120",
        "product": "home_insurance",
        "step": "property_details",
        "fields": {"postcode": "SW1A 1AA"},
    },
    "quote_updated": {
        "quote_id": "Q-55120",
        "product": "home_insurance",
        "step": "cover",
        "fields": {"cover": "buildings", "excess": "250"},
    },
    "quote_submitted": {"quote_id": "Q-55120", "product": "home_insurance"},
    "campaign_touched": {
        "campaign_id": "CMP-2024-SPRING",
        "action": "email_clicked",
        "message_id": "esp-7f3a9c",
        "promo_code": "SPRING10",
        "url": "https://shop.example.com/spring?utm_campaign=spring",
    },
    "coupon_redeemed": {"code": "SPRING10", "order_id": "ORD-2024-000123"},
    "consent_changed": {"purpose": "marketing_sms", "channel": "sms", "granted": False},
    "feedback_given": {
        "feedback_id": "REV-10023",
        "kind": "review",
        "text": "Great fit, délivery was quick.",
        "rating": 5,
    },
    "loyalty_card_used": {"card_id": "6330 0012 3456", "points": -250},
    "product_returned": {
        "return_id": "RET-7781",
        "order_id": None,
        "product_id": "SKU-10042",
        "quantity": 1,
        "reason": "wrong_size",
    },
    "ticket_opened": {"ticket_id": "TCK-40412", "subject": "Parcel not delivered"},
    "ticket_closed": {"ticket_id": "TCK-40412", "resolution": "replacement_sent"},
    "erasure_requested": {"request_id": "DSR-0042"},
}

CART_LINE = {
    "product_id": "SKU-10042",
    "quantity": 2,
    "unit_price_cents": 4999,
    "currency": "EUR",
    "channel": "mobile_app",
    "device_id": "a1b2c3d4-app",
    "updated_at_ms": 1_732_357_200_000,
}
SAMPLE_OUTPUTS: dict[str, dict[str, Any]] = {
    "omnichannel.output.ErasureAudit": {
        "request_id": "DSR-0042",
        "status": "done",
        "subject_sha256": "5b0d0ae3a52a1f3bd2b24ec2d1a7d7f3a3c5e8f2e1f0c9b8a7d6e5f4c3b2a190",
        "events_erased": 42,
        "profiles_erased": 2,
        "identifiers_erased": 5,
        "completed_at_ms": 1732357200000,
        "denied_sha256": ["3c" * 32, "9e" * 32],
    },
    "omnichannel.output.CustomerState": {
        "customer_id": "C000123456",
        "identities": [
            {"type": "anonymous_id", "value": "anon-5f2c"},
            {"type": "email_hash", "value": "b" * 64},
        ],
        "channels": {
            "web": {"count": 12, "last_seen_ms": 1_732_357_200_000},
            "store": {"count": 1, "last_seen_ms": 1_732_300_000_000},
        },
        "recent_searches": ["trail running shoes"],
        "recent_products": ["SKU-10042", "SKU-20077"],
        "consent": {"marketing_email": True},
        "open_tickets": ["TCK-40412"],
        "recent_returns": [],
        "last_verbatim": {"text": "Great fit.", "channel": "web", "at_ms": 1_732_357_100_000},
        "last_interaction_ms": 1_732_357_200_000,
        "last_channel": "web",
        "freshness": {"web": 1_732_357_200_000, "store": 1_732_300_000_000},
        "typology": "cross_channel",
        "updated_at_ms": 1_732_357_200_450,
        "recent_orders": [
            {
                "order_id": "ORD-2024-000123",
                "status": "ready_for_collection",
                "status_at_ms": 1_732_357_100_000,
                "channel": "web",
                "fulfilment": "click_and_collect",
                "collect_store_id": "S0231",
                "total_cents": 12998,
                "currency": "EUR",
                "placed_at_ms": 1_732_300_000_000,
            }
        ],
        "open_interactions": [
            {
                "kind": "quote",
                "ref": "Q-55120",
                "channel": "store",
                "store_id": "S0231",
                "site": None,
                "actor_id": "E10442",
                "actor_role": "employee",
                "detail": "kitchen_design, step layout",
                "started_at_ms": 1_732_300_000_000,
                "last_at_ms": 1_732_357_000_000,
            }
        ],
        "segments": ["prefers_human"],
    },
    "omnichannel.output.Cart": {
        "cart_key": "C000123456",
        "customer_id": "C000123456",
        "status": "open",
        "lines": [CART_LINE],
        "updated_at_ms": 1_732_357_200_000,
        "version": 7,
    },
    "omnichannel.output.IdentityLink": {
        "action": "merge",
        "identifier_type": "anonymous_id",
        "identifier_value": "anon-5f2c",
        "customer_id": "C000123456",
        "previous_customer_id": None,
        "reason": "login",
        "event_id": "3f1c0b1e-5a43-4c1e-9a57-2b3f9c1d7e20",
        "at_ms": 1_732_357_200_450,
    },
    "omnichannel.output.FollowUpTrigger": {
        "trigger_id": "trg-0b7e",
        "customer_id": "C000123456",
        "kind": "abandoned_cart",
        "action_channel": "email",
        "cart_lines": [CART_LINE],
        "quote_fields": {},
        "last_channel": "mobile_app",
        "last_step": None,
        "quiet_since_ms": 1_732_357_200_000,
        "fired_at_ms": 1_732_360_800_000,
        "quote_id": None,
        "quote_product": None,
    },
    "omnichannel.output.AttributionRecord": {
        "conversion_event_id": "9d0e6a55-1c1b-4d8e-8f0f-7c4f7a4f2b10",
        "customer_id": "C000123456",
        "response_channel": "store",
        "conversion_kind": "order_placed",
        "model": "linear",
        "credits": [
            {
                "action_channel": "email",
                "campaign_id": "CMP-2024-SPRING",
                "touch_event_id": "e1",
                "weight": 0.5,
            },
            {"action_channel": "sms", "campaign_id": None, "touch_event_id": "e2", "weight": 0.5},
        ],
        "at_ms": 1_732_357_200_000,
    },
    "omnichannel.output.FailedEvent": {
        "stage": "deserialize",
        "reason": "SchemaResolutionError: unknown union branch",
        "topic": "omnichannel.events.web",
        "partition": 3,
        "offset": 120_044,
        "raw_key": b"C000123456",
        "raw_value": b"\x00\x00\x00\x00\x01\x02garbage",
        "event_id": None,
        "failed_at_ms": 1_732_357_200_900,
    },
}


def _raw(fullname: str) -> dict[str, Any]:
    value = json.loads((loader.SCHEMA_DIR / f"{fullname}.avsc").read_text(encoding="utf-8"))
    assert isinstance(value, dict), fullname
    return value


def _walk(node: Any) -> list[dict[str, Any]]:
    """Every JSON object inside a schema value (the value itself included)."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        found.append(node)
        for value in node.values():
            found.extend(_walk(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_walk(item))
    return found


def _is_named_definition(node: dict[str, Any]) -> bool:
    kind = node.get("type")
    return isinstance(kind, str) and kind in NAMED_KINDS


def _envelope(event_type: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": "3f1c0b1e-5a43-4c1e-9a57-2b3f9c1d7e20",
        "event_type": event_type,
        "occurred_at_ms": 1_732_357_200_000,
        "received_at_ms": 1_732_357_200_431,
        "channel": "mobile_app",
        "device": {"device_id": "a1b2c3d4-app", "kind": "ios", "role": "customer_owned"},
        "identities": {
            "anonymous_id": "anon-5f2c",
            "customer_id": "C000123456",
            "email_hash": "a" * 64,
            "phone_hash": None,
            "loyalty_card": None,
        },
        "location": {"store_id": None, "site": "app-ios"},
        "actor": None,
        "session_id": "sess-77a1",
        "consent": {"marketing_email": True, "profiling": False},
        "source_system": "collector",
        "payload": (loader.payload_record_name(event_type), payload),
    }


def _round_trip(schema: Any, record: dict[str, Any]) -> Any:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schema, record, strict=True)
    buffer.seek(0)
    return fastavro.schemaless_reader(buffer, schema, return_record_name=True, return_record_name_override=True)


# --------------------------------------------------------------------------- files


def test_schema_folder_holds_the_spec_types() -> None:
    names = loader.all_fullnames()
    assert len(names) == len(set(names)) > 0
    for payload in SPEC_PAYLOADS:
        assert f"omnichannel.event.{payload}" in names
    for subject in SPEC_SUBJECTS:
        assert subject in names


@pytest.mark.parametrize("fullname", loader.all_fullnames())
def test_every_file_parses(fullname: str) -> None:
    parsed = loader.load(fullname)
    assert parsed["name"] == fullname
    fastavro.parse_schema(json.loads(loader.canonical_json(fullname)))


@pytest.mark.parametrize("fullname", loader.all_fullnames())
def test_every_file_holds_exactly_one_named_type_matching_its_name(fullname: str) -> None:
    raw = _raw(fullname)
    assert raw["type"] in NAMED_KINDS
    assert f"{raw['namespace']}.{raw['name']}" == fullname
    assert "." not in raw["name"]
    nested = [node for node in _walk(raw)[1:] if _is_named_definition(node)]
    assert nested == [], f"{fullname} defines nested named types; move them to their own files"


@pytest.mark.parametrize("fullname", loader.all_fullnames())
def test_every_type_and_field_is_documented(fullname: str) -> None:
    raw = _raw(fullname)
    assert len(raw.get("doc", "").strip()) >= 15, f"{fullname} needs a doc"
    for field in raw.get("fields", []):
        assert len(field.get("doc", "").strip()) >= 10, f"{fullname}.{field['name']} needs a doc"


@pytest.mark.parametrize("fullname", loader.all_fullnames())
def test_nullable_fields_are_null_first_with_null_default(fullname: str) -> None:
    for field in _raw(fullname).get("fields", []):
        kind = field["type"]
        if isinstance(kind, list) and "null" in kind:
            assert kind[0] == "null" and len(kind) == 2, f"{fullname}.{field['name']}"
            assert "default" in field and field["default"] is None, f"{fullname}.{field['name']}"


@pytest.mark.parametrize(
    ("fullname", "default"),
    [
        ("omnichannel.event.Channel", "other"),
        ("omnichannel.event.DeviceRole", "customer_owned"),
        ("omnichannel.event.Fulfilment", "delivery"),
    ],
)
def test_open_enums_have_a_default_symbol(fullname: str, default: str) -> None:
    raw = _raw(fullname)
    assert raw["default"] == default
    assert default in raw["symbols"]


def test_event_fields_and_payload_union_follow_the_spec() -> None:
    fields = _raw(EVENT)["fields"]
    assert [field["name"] for field in fields] == SPEC_EVENT_FIELDS
    payload = fields[-1]["type"]
    assert payload == [f"omnichannel.event.{name}" for name in SPEC_PAYLOADS]
    assert "null" not in payload


def test_unknown_schema_name_is_a_schema_error() -> None:
    with pytest.raises(SchemaError, match=r"omnichannel\.event\.Nope"):
        loader.load("omnichannel.event.Nope")


# --------------------------------------------------------------------------- canonical JSON


@pytest.mark.parametrize("fullname", loader.all_fullnames())
def test_canonical_json_has_no_private_keys_and_round_trips(fullname: str) -> None:
    text = loader.canonical_json(fullname)
    assert all(not key.startswith("__") for node in _walk(json.loads(text)) for key in node)
    reparsed = fastavro.parse_schema(json.loads(text))
    assert reparsed["name"] == fullname
    assert loader.canonical_json(fullname) == text  # stable


def test_canonical_json_inlines_each_named_type_once() -> None:
    document = json.loads(loader.canonical_json("omnichannel.output.FollowUpTrigger"))
    definitions = [node["name"] for node in _walk(document) if _is_named_definition(node)]
    assert definitions.count("omnichannel.output.CartLine") == 1
    event = json.loads(loader.canonical_json(EVENT))
    names = [node["name"] for node in _walk(event) if _is_named_definition(node)]
    assert len(names) == len(set(names))
    assert {f"omnichannel.event.{name}" for name in SPEC_PAYLOADS} <= set(names)


def test_every_subject_has_a_released_version() -> None:
    assert subjects() == SPEC_SUBJECTS
    for subject in SPEC_SUBJECTS:
        versions = released_versions(subject)
        assert versions, f"{subject} has no released version: run schemas.evolution.release({subject!r})"
        fastavro.parse_schema(json.loads(versions[0]))


# --------------------------------------------------------------------------- event types


def test_event_types_cover_every_payload_record_in_spec_order() -> None:
    assert list(loader.EVENT_TYPES.values()) == [f"omnichannel.event.{name}" for name in SPEC_PAYLOADS]
    assert loader.EVENT_TYPES["cart_line_added"] == "omnichannel.event.CartLineAdded"
    assert loader.EVENT_TYPES["erasure_requested"] == "omnichannel.event.ErasureRequested"
    for event_type, fullname in loader.EVENT_TYPES.items():
        assert loader.event_type_of(fullname) == event_type
        assert loader.payload_record_name(event_type) == fullname


def test_unknown_event_type_lists_the_valid_ones() -> None:
    with pytest.raises(UnknownEventTypeError, match="cart_line_added") as caught:
        loader.payload_record_name("cart_item_added")
    assert isinstance(caught.value, LookupError)
    assert isinstance(caught.value, SchemaError)
    assert "cart_item_added" in str(caught.value)


def test_samples_cover_every_event_type() -> None:
    assert set(SAMPLE_PAYLOADS) == set(loader.EVENT_TYPES)


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("event_type", sorted(SAMPLE_PAYLOADS))
def test_full_event_round_trips_for_every_payload_type(event_type: str) -> None:
    event = _envelope(event_type, SAMPLE_PAYLOADS[event_type])
    assert _round_trip(loader.load(EVENT), event) == event


def test_minimal_event_round_trips_with_nulls_and_defaults() -> None:
    event = _envelope("logout", {})
    event.update(channel="postal", device=None, location=None, session_id=None, consent={})
    event["identities"] = dict.fromkeys(event["identities"])
    event["actor"] = {"actor_id": "E10442", "role": "employee"}
    assert _round_trip(loader.load(EVENT), event) == event


def test_event_round_trips_through_the_canonical_json() -> None:
    event = _envelope("order_placed", SAMPLE_PAYLOADS["order_placed"])
    schema = fastavro.parse_schema(json.loads(loader.canonical_json(EVENT)))
    assert _round_trip(schema, event) == event


def test_current_reader_reads_data_written_with_released_v1() -> None:
    event = _envelope("cart_line_added", SAMPLE_PAYLOADS["cart_line_added"])
    v1 = fastavro.parse_schema(json.loads(released_versions(EVENT)[0]))
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, v1, event)
    buffer.seek(0)
    decoded = fastavro.schemaless_reader(buffer, v1, loader.load(EVENT), return_record_name=True)
    assert decoded["payload"] == event["payload"]


@pytest.mark.parametrize("fullname", sorted(SAMPLE_OUTPUTS))
def test_every_output_record_round_trips(fullname: str) -> None:
    record = SAMPLE_OUTPUTS[fullname]
    assert _round_trip(loader.load(fullname), record) == record


def test_samples_cover_every_output_subject() -> None:
    assert {name for name in SPEC_SUBJECTS if name.startswith("omnichannel.output.")} == set(SAMPLE_OUTPUTS)
