"""Back-office channel: orders, order status and stock levels from the order-management and stock systems.

Native format: one JSON message per event, received by webhook (``POST /v1/webhooks/back_office`` with
the back_office channel's API key; one object or an array) or as a JSON-lines feed file
(``omnichannel import back-office FILE``, resumable). Three message types::

    {"type": "order.placed", "message_id": "OMS-1001", "occurred_at": "2024-11-23T10:20:00Z",
     "source": "order-management",
     "order": {"order_id": "ORD-77", "customer_id": "C-42", "currency": "EUR", "total_cents": 9998,
               "fulfilment": "click_and_collect", "collect_store_id": "S0231", "coupon_codes": ["SMS10"],
               "lines": [{"sku": "SKU-1001", "quantity": 2, "unit_price_cents": 4999}]}}
    {"type": "order.status_changed", "message_id": "OMS-1002", "occurred_at": "...", "order_id": "ORD-77",
     "customer_id": "C-42", "status": "ready_for_collection", "previous_status": "picking"}
    {"type": "stock.level_changed", "message_id": "STK-9001", "occurred_at": "...", "store_id": "S0231",
     "sku": "SKU-1001", "available": 14, "sequence": 9001}

``type``, ``message_id`` (unique per message, stable across re-sends) and ``occurred_at`` (ISO 8601 with an
offset) are required; ``source`` names the sending system (default ``back-office``).

Mapping: -> order_placed / order_status_changed / stock_level_changed on channel ``back_office``, with the
sending system as ``actor`` (role ``system``); a stock level carries its store as ``location`` and no
identities. Event ids derive from ``message_id``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from fastapi import APIRouter

from connectors.channels.base import ChannelAdapter, FileFormat, Mapped, WebhookContext
from connectors.errors import InvalidEventError
from connectors.native import Fields, each_message, identities, stable_event_id
from connectors.webhooks import keyed_json_router
from schemas.validation import Problem

__all__ = ["ADAPTER", "to_event", "to_events"]

CHANNEL: Final = "back_office"
_TYPES: Final = ("order.placed", "order.status_changed", "stock.level_changed")
_FULFILMENT: Final = ("delivery", "click_and_collect", "in_store")


def to_event(message: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Map one back-office message to an Event dict; :class:`InvalidEventError` lists every problem."""
    problems: list[Problem] = []
    event = _one(message, prefix, problems)
    if problems or event is None:
        raise InvalidEventError(problems, what="back-office message")
    return event


def to_events(document: Any) -> Mapped:
    """Map one message or a JSON array of messages (the webhook body)."""
    return Mapped(each_message(document, _one, "back-office message"))


def _one(message: Any, prefix: str, problems: list[Problem]) -> dict[str, Any] | None:
    fields = Fields(message, prefix, problems)
    kind = fields.text("type", choices=_TYPES)
    message_id = fields.text("message_id")
    occurred_at_ms = fields.timestamp_ms("occurred_at")
    source = fields.text("source", required=False) or "back-office"
    customer_id: str | None = None
    location: dict[str, Any] | None = None
    if kind == "order.placed":
        event_type, payload, customer_id = "order_placed", *_order(fields)
    elif kind == "order.status_changed":
        event_type = "order_status_changed"
        customer_id = fields.text("customer_id", required=False)
        payload = {
            "order_id": fields.text("order_id"),
            "status": fields.text("status"),
            "previous_status": fields.text("previous_status", required=False),
        }
    elif kind == "stock.level_changed":
        event_type = "stock_level_changed"
        store_id = fields.text("store_id")
        payload = {
            "store_id": store_id,
            "product_id": fields.text("sku"),
            "available": fields.integer("available", minimum=0),
            "sequence": fields.integer("sequence", minimum=0),
        }
        location = {"store_id": store_id, "site": None}
    else:
        return None
    if message_id is None or occurred_at_ms is None:
        return None
    return {
        "event_id": stable_event_id(CHANNEL, message_id),
        "event_type": event_type,
        "occurred_at_ms": occurred_at_ms,
        "channel": CHANNEL,
        "identities": identities(customer_id=customer_id),
        "location": location,
        "actor": {"actor_id": source, "role": "system"},
        "payload": payload,
    }


def _order(fields: Fields) -> tuple[dict[str, Any], str | None]:
    order = fields.nested("order")
    if order is None:
        return {}, None
    raw_lines = order.data.get("lines")
    lines: list[dict[str, Any]] = []
    if not isinstance(raw_lines, list) or not raw_lines:
        order.problems.append(Problem(f"{order.prefix}lines", "expected a non-empty list of order lines"))
    else:
        for index, raw in enumerate(raw_lines):
            line = Fields(raw, f"{order.prefix}lines[{index}].", order.problems)
            lines.append(
                {
                    "product_id": line.text("sku"),
                    "quantity": line.integer("quantity", minimum=1),
                    "unit_price_cents": line.integer("unit_price_cents", minimum=0),
                }
            )
    coupons = order.data.get("coupon_codes") or []
    if not isinstance(coupons, list) or not all(isinstance(c, str) for c in coupons):
        order.problems.append(Problem(f"{order.prefix}coupon_codes", "expected a list of codes"))
        coupons = []
    payload = {
        "order_id": order.text("order_id"),
        "lines": lines,
        "total_cents": order.integer("total_cents", minimum=0),
        "currency": order.text("currency"),
        "fulfilment": order.text("fulfilment", required=False, choices=_FULFILMENT) or "delivery",
        "collect_store_id": order.text("collect_store_id", required=False),
        "coupon_codes": coupons,
    }
    return payload, order.text("customer_id", required=False)


def router(ctx: WebhookContext) -> APIRouter:
    """``POST /v1/webhooks/back_office``: order and stock messages, with the channel's API key."""
    return keyed_json_router(
        ctx,
        ADAPTER,
        to_events,
        summary="Back-office orders, order status and stock levels",
        description=__doc__ or "",
        example=EXAMPLE,
    )


EXAMPLE: Final = {
    "type": "stock.level_changed",
    "message_id": "STK-9001",
    "occurred_at": "2024-11-23T10:20:00Z",
    "source": "stock-system",
    "store_id": "S0231",
    "sku": "SKU-1001",
    "available": 14,
    "sequence": 9001,
}

ADAPTER = ChannelAdapter(
    name="back_office",
    channel=CHANNEL,
    source_system="back-office",
    summary="Orders, order status and stock levels (webhook and JSON-lines feed).",
    webhook=router,
    file_format=FileFormat(to_event=to_event, formats=("jsonl",), description="one message per line"),
)
