"""Realistic answers of the read API, shown in its OpenAPI document (a test validates each against its schema)."""

from __future__ import annotations

from typing import Any, Final

__all__ = [
    "ATTRIBUTION",
    "CART",
    "CART_AVAILABILITY",
    "CART_STREAM",
    "CUSTOMER",
    "ERASURE_ACCEPTED",
    "ERASURE_DONE",
    "IDENTITY",
    "JOURNEY",
    "READINESS",
    "SEGMENTS",
    "STORE_AVAILABILITY",
    "TYPOLOGY",
    "UNLINKED",
]

_EMAIL_HASH: Final = "5d41402abc4b2a76b9719d911017c592ae7c2f5b1d2c8f6a3e4b5c6d7e8f9a0b"
_FRESHNESS: Final = {"mobile_app": 1732357200000, "store": 1732443600000, "web": 1732360800000}

_CART_RECORD: Final = {
    "cart_key": "customer:C000123456",
    "customer_id": "C000123456",
    "status": "open",
    "lines": [
        {
            "product_id": "SKU-LAMP",
            "quantity": 1,
            "unit_price_cents": 4999,
            "currency": "EUR",
            "channel": "mobile_app",
            "device_id": "phone-8d2f",
            "updated_at_ms": 1732357200000,
        },
        {
            "product_id": "SKU-CHAIR",
            "quantity": 2,
            "unit_price_cents": 12900,
            "currency": "EUR",
            "channel": "tablet",
            "device_id": "tablet-store-0231-04",
            "updated_at_ms": 1732443600000,
        },
    ],
    "updated_at_ms": 1732443600000,
    "version": 7,
}

CUSTOMER: Final[dict[str, Any]] = {
    "profile": "customer:C000123456",
    "customer": {
        "customer_id": "C000123456",
        "identities": [
            {"type": "customer_id", "value": "C000123456"},
            {"type": "email_hash", "value": _EMAIL_HASH},
            {"type": "anonymous_id", "value": "anon-7f3a"},
        ],
        "channels": {
            "mobile_app": {"count": 12, "last_seen_ms": 1732357200000},
            "store": {"count": 1, "last_seen_ms": 1732443600000},
        },
        "recent_searches": ["floor lamp", "armchair"],
        "recent_products": ["SKU-LAMP", "SKU-CHAIR"],
        "consent": {"marketing_email": True, "marketing_sms": False},
        "open_tickets": ["T-20241123-0042"],
        "recent_returns": [],
        "last_verbatim": {"text": "Great advice in the store.", "channel": "store", "at_ms": 1732443600000},
        "last_interaction_ms": 1732443600000,
        "last_channel": "store",
        "freshness": _FRESHNESS,
        "typology": "cross_channel",
        "updated_at_ms": 1732443600000,
        "recent_orders": [
            {
                "order_id": "O-889211",
                "status": "ready_for_collection",
                "status_at_ms": 1732447200000,
                "channel": "web",
                "fulfilment": "click_and_collect",
                "collect_store_id": "S0231",
                "total_cents": 30799,
                "currency": "EUR",
                "placed_at_ms": 1732360800000,
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
                "started_at_ms": 1732440000000,
                "last_at_ms": 1732443600000,
            }
        ],
        "segments": ["prefers_human"],
    },
    "freshness": _FRESHNESS,
}

CART: Final[dict[str, Any]] = {"profile": "customer:C000123456", "cart": _CART_RECORD, "freshness": _FRESHNESS}

IDENTITY: Final[dict[str, Any]] = {
    "identifier": {"type": "anonymous_id", "value": "anon-7f3a"},
    "profile": "customer:C000123456",
    "customer_id": "C000123456",
    "freshness": _FRESHNESS,
}

#: Server-sent events: a first ``cart`` event with the current cart, then one per change.
CART_STREAM: Final = (
    'event: cart\r\ndata: {"profile": "customer:C000123456", "cart": {"cart_key": "customer:C000123456", '
    '"customer_id": "C000123456", "status": "open", "lines": [], "updated_at_ms": 0, "version": 0}}\r\n\r\n'
)

ATTRIBUTION: Final[dict[str, Any]] = {
    "model": "last_touch",
    "window_days": 7.0,
    "exposed_customers": {"email": 1200, "sms": 300},
    "responding_customers": {"web": 180, "store": 95},
    "cells": [
        {
            "action_channel": "email",
            "response_channel": "web",
            "exposed_customers": 1200,
            "converting_customers": 150,
            "share": 0.125,
        },
        {
            "action_channel": "email",
            "response_channel": "store",
            "exposed_customers": 1200,
            "converting_customers": 60,
            "share": 0.05,
        },
    ],
    "dropped": {
        "exposure_unidentified_after_window": 12,
        "conversion_unidentified_after_window": 3,
        "exposure_overflow": 0,
        "conversion_overflow": 0,
    },
}

TYPOLOGY: Final[dict[str, Any]] = {
    "counts": {"mono_channel": 5400, "multi_channel": 2100, "cross_channel": 1350, "unknown": 150},
    "customers": 9000,
}

SEGMENTS: Final[dict[str, Any]] = {"counts": {"fully_connected": 1840, "prefers_human": 612}, "customers": 9000}

#: A click-and-collect journey (newest first): an SMS code, a web order, the collection at the till.
JOURNEY: Final[dict[str, Any]] = {
    "profile": "customer:C000123456",
    "customer_id": "C000123456",
    "total": 5,
    "next_cursor": "1732360500000:7d0c5b7e-2f0e-4c43-9d1e-5a0f3f6e1c11",
    "events": [
        {
            "event_id": "c1f4a1d2-6a51-4f7e-9a57-0d1c2b3a4e5f",
            "occurred_at_ms": 1732447200000,
            "event_type": "order_collected",
            "channel": "store",
            "device_kind": "pos_till",
            "store_id": "S0231",
            "site": None,
            "actor": {"actor_id": "E10442", "role": "employee"},
            "summary": "order O-889211 collected at S0231",
            "step": {"session_id": None, "episode": "order:O-889211"},
            "profile": "customer:C000123456",
        },
        {
            "event_id": "9a27c0de-3b1f-4c55-8e21-77aa01b2c3d4",
            "occurred_at_ms": 1732360800000,
            "event_type": "order_placed",
            "channel": "web",
            "device_kind": "desktop_browser",
            "store_id": None,
            "site": "shop.example.com",
            "actor": None,
            "summary": "order O-889211 placed: 307.99 EUR, click_and_collect at S0231, codes SPRING10",
            "step": {"session_id": "web-s-981", "episode": "cart:4e1b2c3d-aaaa-4bbb-8ccc-000000000001"},
            "profile": "customer:C000123456",
        },
        {
            "event_id": "7d0c5b7e-2f0e-4c43-9d1e-5a0f3f6e1c11",
            "occurred_at_ms": 1732360500000,
            "event_type": "campaign_touched",
            "channel": "sms",
            "device_kind": None,
            "store_id": None,
            "site": None,
            "actor": None,
            "summary": "sms clicked: campaign CMP-SPRING, code SPRING10",
            "step": {"session_id": None, "episode": None},
            "profile": "phone:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        },
    ],
}

STORE_AVAILABILITY: Final[dict[str, Any]] = {
    "store_id": "S0231",
    "products": [
        {
            "product_id": "SKU-LAMP",
            "known": True,
            "available": 4,
            "in_stock": True,
            "sequence": 1207,
            "updated_at_ms": 1732440000000,
        },
        {"product_id": "SKU-RUG", "known": False, "available": None, "in_stock": False},
    ],
}

CART_AVAILABILITY: Final[dict[str, Any]] = {
    "profile": "customer:C000123456",
    "store_id": "S0231",
    "collectable": False,
    "lines": [
        {"product_id": "SKU-LAMP", "quantity": 1, "available": 4, "ok": True},
        {"product_id": "SKU-CHAIR", "quantity": 2, "available": 1, "ok": False},
    ],
    "missing": ["SKU-CHAIR"],
}

UNLINKED: Final[dict[str, Any]] = {
    "identifier": {"type": "email_hash", "value": _EMAIL_HASH},
    "previous_profile": "customer:C000123456",
    "request_id": "unlink:3f1c0b1e-5a43-4c1e-9a57-2b3f9c1d7e20",
}

ERASURE_ACCEPTED: Final[dict[str, Any]] = {
    "request_id": "erasure-6f0e2a44-1c55-4b7e-8a0e-3d2b7f9a1c10",
    "status": "accepted",
    "status_url": "/v1/erasures/erasure-6f0e2a44-1c55-4b7e-8a0e-3d2b7f9a1c10",
}

ERASURE_DONE: Final[dict[str, Any]] = {
    "request_id": "erasure-6f0e2a44-1c55-4b7e-8a0e-3d2b7f9a1c10",
    "status": "done",
    "subject_sha256": "5b0d0ae3a52a1f3bd2b24ec2d1a7d7f3a3c5e8f2e1f0c9b8a7d6e5f4c3b2a190",
    "events_erased": 42,
    "profiles_erased": 2,
    "identifiers_erased": 5,
    "completed_at_ms": 1764000123456,
}

READINESS: Final[dict[str, Any]] = {
    "status": "ready",
    "checks": {
        "kafka": {"ok": True, "detail": "answers"},
        "registry": {"ok": True, "detail": "answers"},
        "redis": {"ok": True, "detail": "answers"},
    },
    "ms": 4,
}
