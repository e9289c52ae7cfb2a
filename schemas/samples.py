"""Realistic example events, one per event type: for docs, tests, benchmarks and the demo.

``sample_event("cart_line_added", channel="tablet")`` gives a complete, valid Event dict (payload as a
plain dict, as the codec and connectors take it).
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

__all__ = ["SAMPLE_PAYLOADS", "sample_event"]

SAMPLE_PAYLOADS: dict[str, dict[str, Any]] = {
    "login": {"method": "password"},
    "logout": {},
    "identify": {"traits": {"first_name": "Ana", "tier": "gold"}},
    "page_viewed": {"url": "https://shop.example/lamps", "title": "Lamps", "referrer": None},
    "product_viewed": {"product_id": "SKU-1001", "category": "lighting", "unit_price_cents": 4999},
    "search_performed": {"query": "reading lamp", "results_count": 12},
    "cart_line_added": {"product_id": "SKU-1001", "quantity": 2, "unit_price_cents": 4999, "currency": "EUR"},
    "cart_line_removed": {"product_id": "SKU-1001"},
    "cart_quantity_set": {"product_id": "SKU-1001", "quantity": 3, "unit_price_cents": 4999, "currency": "EUR"},
    "cart_cleared": {"reason": "customer emptied the basket"},
    "checkout_started": {"cart_value_cents": 9998},
    "order_placed": {
        "order_id": "ORD-77",
        "lines": [{"product_id": "SKU-1001", "quantity": 2, "unit_price_cents": 4999}],
        "total_cents": 9998,
        "currency": "EUR",
        "fulfilment": "click_and_collect",
        "collect_store_id": "STORE-LYON-2",
        "coupon_codes": ["SMS10"],
    },
    "order_status_changed": {"order_id": "ORD-77", "status": "ready_for_collection", "previous_status": "picking"},
    "order_collected": {"order_id": "ORD-77", "store_id": "STORE-LYON-2"},
    "stock_level_changed": {"store_id": "STORE-LYON-2", "product_id": "SKU-1001", "available": 14, "sequence": 9001},
    "store_visited": {"store_id": "STORE-LYON-2"},
    "contact_started": {"contact_id": "CALL-5", "medium": "call", "direction": "inbound", "reason": "delivery"},
    "contact_ended": {
        "contact_id": "CALL-5",
        "medium": "call",
        "outcome": "resolved",
        "duration_seconds": 312,
        "notes": "rescheduled delivery",
    },
    "quote_started": {"quote_id": "Q-9", "product": "home_insurance", "step": "property", "fields": {"rooms": "4"}},
    "quote_updated": {"quote_id": "Q-9", "product": "home_insurance", "step": "cover", "fields": {"cover": "full"}},
    "quote_submitted": {"quote_id": "Q-9", "product": "home_insurance"},
    "campaign_touched": {
        "campaign_id": "SPRING-SMS",
        "action": "sms_sent",
        "message_id": "msg-123",
        "promo_code": "SMS10",
        "url": None,
    },
    "coupon_redeemed": {"code": "SMS10", "order_id": "ORD-77"},
    "consent_changed": {"purpose": "marketing", "channel": "sms", "granted": True},
    "feedback_given": {"feedback_id": "FB-3", "kind": "review", "text": "Great lamp, quick pickup", "rating": 5},
    "loyalty_card_used": {"card_id": "LOY-555", "points": 120},
    "product_returned": {
        "return_id": "RET-4",
        "order_id": "ORD-77",
        "product_id": "SKU-1001",
        "quantity": 1,
        "reason": "damaged",
    },
    "ticket_opened": {"ticket_id": "T-8", "subject": "Lamp arrived damaged"},
    "ticket_closed": {"ticket_id": "T-8", "resolution": "replacement sent"},
    "erasure_requested": {"request_id": "GDPR-1"},
}


def sample_event(event_type: str, /, **overrides: Any) -> dict[str, Any]:
    """A complete Event of ``event_type`` from a customer's phone; keyword arguments replace fields."""
    event: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "occurred_at_ms": 1_764_000_000_000,
        "received_at_ms": 1_764_000_000_120,
        "channel": "mobile_app",
        "device": {"device_id": "dev-phone-1", "kind": "phone", "role": "customer_owned"},
        "identities": {
            "anonymous_id": "anon-7f3a",
            "customer_id": "C-42",
            "email_hash": None,
            "phone_hash": None,
            "loyalty_card": None,
        },
        "location": None,
        "actor": None,
        "session_id": "sess-1",
        "consent": {"analytics": True},
        "source_system": "collector",
        "payload": copy.deepcopy(SAMPLE_PAYLOADS[event_type]),
    }
    event.update(overrides)
    return event
