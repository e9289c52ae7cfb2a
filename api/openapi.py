"""OpenAPI description of the read API: answer schemas, realistic examples and every error each route returns.

The customer record and the cart are the Avro output records (``omnichannel.output.CustomerState`` and
``omnichannel.output.Cart``) converted by :func:`connectors.collector.openapi.avro_components`, so the
documented shape cannot drift from what the processors store. The envelopes around them are written here.
Errors all use the collector's ``Error`` component (``{"error", "detail", "problems"}``).
"""

from __future__ import annotations

from typing import Any, Final

from connectors.collector.openapi import avro_components, error_response, ref
from schemas.topics import CHANNELS
from streams.domain.identity import IDENTIFIER_TYPES
from streams.domain.segments import SEGMENTS
from streams.domain.typology import TYPOLOGIES

__all__ = [
    "ADMIN_ERRORS",
    "READ_ERRORS",
    "STOCK_ERRORS",
    "bad_request",
    "not_found",
    "ok",
    "read_components",
]

_CUSTOMER: Final = "omnichannel.output.CustomerState"
_CART: Final = "omnichannel.output.Cart"
_INT = {"type": "integer", "format": "int64"}
_COUNTS = {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}}
_FRESHNESS = {
    "type": "object",
    "description": "Per channel, the newest event time (epoch ms) applied to this customer: how current the view is.",
    "additionalProperties": _INT,
}


def _object(title: str, description: str, properties: dict[str, Any]) -> dict[str, Any]:
    """A closed object whose properties are all required (every answer below always sends every field)."""
    return {
        "type": "object",
        "title": title,
        "description": description,
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def read_components() -> dict[str, Any]:
    """Component schemas of the read API's answers (the Avro records they embed included)."""
    identifier = _object(
        "Identifier",
        "An identifier as asked for.",
        {"type": {"type": "string", "enum": list(IDENTIFIER_TYPES)}, "value": {"type": "string"}},
    )
    product = {
        "type": "object",
        "title": "ProductAvailability",
        "description": "Stock of one product; `sequence` and `updated_at_ms` only when the store reported it.",
        "properties": {
            "product_id": {"type": "string"},
            "known": {"type": "boolean", "description": "false: the store never reported this product."},
            "available": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
            "in_stock": {"type": "boolean"},
            "sequence": _INT,
            "updated_at_ms": _INT,
        },
        "required": ["product_id", "known", "available", "in_stock"],
        "additionalProperties": False,
    }
    cell = _object(
        "AttributionCell",
        "Customers exposed on an action channel, and how many converted on a response channel with its credit.",
        {
            "action_channel": {"type": "string", "enum": list(CHANNELS)},
            "response_channel": {"type": "string", "enum": list(CHANNELS)},
            "exposed_customers": {"type": "integer", "minimum": 1},
            "converting_customers": {"type": "integer", "minimum": 0},
            "share": {"type": "number", "minimum": 0},
        },
    )
    line = _object(
        "CartLineAvailability",
        "One cart line against the store's stock; `ok`: known and in stock in full.",
        {
            "product_id": {"type": "string"},
            "quantity": {"type": "integer"},
            "available": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
            "ok": {"type": "boolean"},
        },
    )
    check = _object("Check", "One dependency's answer.", {"ok": {"type": "boolean"}, "detail": {"type": "string"}})
    return {
        **avro_components(_CUSTOMER),
        **avro_components(_CART),
        "Freshness": _FRESHNESS,
        "CustomerAnswer": _object(
            "CustomerAnswer",
            "The unified record of the profile that now holds the customer (after merges).",
            {"profile": {"type": "string"}, "customer": ref(_CUSTOMER), "freshness": ref("Freshness")},
        ),
        "CartAnswer": _object(
            "CartAnswer",
            "The current cart (an empty open cart, version 0, when the customer never had one).",
            {"profile": {"type": "string"}, "cart": ref(_CART), "freshness": ref("Freshness")},
        ),
        "Identifier": identifier,
        "IdentityAnswer": _object(
            "IdentityAnswer",
            "The profile an identifier belongs to; `customer_id` is null while that profile is not identified.",
            {
                "identifier": ref("Identifier"),
                "profile": {"type": "string"},
                "customer_id": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                "freshness": ref("Freshness"),
            },
        ),
        "AttributionCell": cell,
        "AttributionMatrix": _object(
            "AttributionMatrix",
            "Action channel x response channel; `model` and `window_days` are null until the processors ran.",
            {
                "model": {
                    "anyOf": [{"type": "string", "enum": ["last_touch", "first_touch", "linear"]}, {"type": "null"}]
                },
                "window_days": {"anyOf": [{"type": "number"}, {"type": "null"}]},
                "exposed_customers": _COUNTS,
                "responding_customers": _COUNTS,
                "cells": {"type": "array", "items": ref("AttributionCell")},
                "dropped": _COUNTS,
            },
        ),
        "Typology": _object(
            "Typology",
            "Identified customers per class, and their total.",
            {
                "counts": {
                    "type": "object",
                    "properties": {name: {"type": "integer", "minimum": 0} for name in TYPOLOGIES},
                    "required": list(TYPOLOGIES),
                    "additionalProperties": False,
                },
                "customers": {"type": "integer", "minimum": 0},
            },
        ),
        "Segments": _object(
            "Segments",
            "Identified customers per channel-mix segment, and every identified customer (the rest are in neither).",
            {
                "counts": {
                    "type": "object",
                    "properties": {name: {"type": "integer", "minimum": 0} for name in SEGMENTS},
                    "required": list(SEGMENTS),
                    "additionalProperties": False,
                },
                "customers": {"type": "integer", "minimum": 0},
            },
        ),
        "JourneyEntry": _journey_entry(),
        "Journey": _object(
            "Journey",
            "A page of the customer's journey, newest first; `next_cursor` is null on the last page.",
            {
                "profile": {"type": "string"},
                "customer_id": _NULLABLE_STRING,
                "total": {"type": "integer", "minimum": 0, "description": "Events within since/until."},
                "next_cursor": _NULLABLE_STRING,
                "events": {"type": "array", "items": ref("JourneyEntry")},
            },
        ),
        "ProductAvailability": product,
        "StoreAvailability": _object(
            "StoreAvailability",
            "Stock per product asked for, in the order asked.",
            {"store_id": {"type": "string"}, "products": {"type": "array", "items": ref("ProductAvailability")}},
        ),
        "CartLineAvailability": line,
        "CartAvailability": _object(
            "CartAvailability",
            "Whether every line of the cart can be collected in the store.",
            {
                "profile": {"type": "string"},
                "store_id": {"type": "string"},
                "collectable": {"type": "boolean"},
                "lines": {"type": "array", "items": ref("CartLineAvailability")},
                "missing": {"type": "array", "items": {"type": "string"}},
            },
        ),
        "ErasureAccepted": _object(
            "ErasureAccepted",
            "The request is stored in Kafka; the stream worker carries it out in order with the customer's events.",
            {
                "request_id": {"type": "string"},
                "status": {"type": "string", "enum": ["accepted"]},
                "status_url": {"type": "string", "description": "Where to poll the outcome (admin key)."},
            },
        ),
        "ErasureStatus": {
            "type": "object",
            "title": "ErasureStatus",
            "description": (
                "`accepted` until the worker carried the request out, then `done` (counts of what was erased) or "
                "`nothing_held` (the customer was unknown or already erased). No personal data: the subject is a "
                "SHA-256 digest of its profile key."
            ),
            "properties": {
                "request_id": {"type": "string"},
                "status": {"type": "string", "enum": ["accepted", "done", "nothing_held"]},
                "subject_sha256": {"type": "string"},
                "events_erased": {"type": "integer", "minimum": 0},
                "profiles_erased": {"type": "integer", "minimum": 0},
                "identifiers_erased": {"type": "integer", "minimum": 0},
                "completed_at_ms": _INT,
            },
            "required": ["request_id", "status"],
            "additionalProperties": False,
        },
        "Unlinked": _object(
            "Unlinked",
            "What the unlink did; `previous_profile` is null when the identifier was not linked.",
            {
                "identifier": ref("Identifier"),
                "previous_profile": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                "request_id": {"type": "string"},
            },
        ),
        "Check": check,
        "Readiness": _object(
            "Readiness",
            "Each dependency checked on its own; `ms`: how long the checks took.",
            {
                "status": {"type": "string", "enum": ["ready", "unavailable"]},
                "checks": {"type": "object", "additionalProperties": ref("Check")},
                "ms": {"type": "integer", "minimum": 0},
            },
        ),
    }


_NULLABLE_STRING: Final = {"anyOf": [{"type": "string"}, {"type": "null"}]}


def _journey_entry() -> dict[str, Any]:
    actor = _object(
        "Actor", "The employee or agent who served.", {"actor_id": {"type": "string"}, "role": {"type": "string"}}
    )
    step = _object(
        "JourneyStep",
        "`session_id` from the event; `episode`: cart:<id>, quote:<id>, ticket:<id>, contact:<id> or order:<id>.",
        {"session_id": _NULLABLE_STRING, "episode": _NULLABLE_STRING},
    )
    return _object(
        "JourneyEntry",
        "One event of the journey: where, with whom, what, and the step it belongs to.",
        {
            "event_id": {"type": "string"},
            "occurred_at_ms": _INT,
            "event_type": {"type": "string"},
            "channel": {"type": "string", "enum": list(CHANNELS)},
            "device_kind": _NULLABLE_STRING,
            "store_id": _NULLABLE_STRING,
            "site": _NULLABLE_STRING,
            "actor": {"anyOf": [actor, {"type": "null"}]},
            "summary": {"type": "string"},
            "step": step,
            "profile": {"type": "string", "description": "The profile the event was first applied to."},
        },
    )


def ok(description: str, component: str, example: Any) -> dict[str, Any]:
    """A 200 answer: JSON of ``component``, with ``example``."""
    return {"description": description, "content": {"application/json": {"schema": ref(component), "example": example}}}


def _problem(error: str, detail: str) -> dict[str, Any]:
    return {"error": error, "detail": detail, "problems": []}


def bad_request(description: str, error: str, detail: str) -> dict[int | str, dict[str, Any]]:
    """The 400 a route answers for a bad parameter."""
    return {400: error_response(description, _problem(error, detail))}


def not_found(description: str, error: str, detail: str) -> dict[int | str, dict[str, Any]]:
    """The 404 a route answers for something the backbone has no record of."""
    return {404: error_response(description, _problem(error, detail))}


_KEYS = "send `X-Api-Key: <key>` or `Authorization: Bearer <key>`"
_UNAUTHENTICATED: Final = error_response(
    "Missing or unknown API key.",
    _problem("unauthenticated", "unknown API key: reading customer data needs a read key (OMNICHANNEL_READ_KEYS)"),
)
_REDIS_DOWN: Final = {
    **error_response(
        "The customer store (Redis) did not answer: retry after `Retry-After` seconds.",
        _problem("redis_unavailable", "the customer store (Redis) is unavailable; retry after 5 s"),
    ),
    "headers": {"Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}},
}

#: Errors of a route that reads customer data (a read or admin key).
READ_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    401: _UNAUTHENTICATED,
    403: error_response(
        "A channel key: it only publishes. Read with a read key (OMNICHANNEL_READ_KEYS).",
        _problem(
            "forbidden_scope",
            "reading customer data needs a read key (OMNICHANNEL_READ_KEYS); a channel key only publishes its "
            "channel's events",
        ),
    ),
    503: _REDIS_DOWN,
}

#: Errors of a store's stock: any configured key reads it (no one's personal data), so no 403.
STOCK_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    401: error_response("Missing or unknown API key.", _problem("unauthenticated", f"missing API key: {_KEYS}")),
    503: _REDIS_DOWN,
}

#: Errors of an admin operation (an admin key).
ADMIN_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    401: error_response(
        "Missing or unknown API key.",
        _problem("unauthenticated", "unknown API key: this operation needs an admin key (OMNICHANNEL_ADMIN_KEYS)"),
    ),
    403: error_response(
        "A channel or read key: this operation needs an admin key (OMNICHANNEL_ADMIN_KEYS).",
        _problem(
            "forbidden_scope",
            "this operation needs an admin key (OMNICHANNEL_ADMIN_KEYS); a channel key only publishes its "
            "channel's events",
        ),
    ),
    503: _REDIS_DOWN,
}
