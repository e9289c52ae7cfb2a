"""Store channel: point-of-sale exports (CSV or JSON lines), imported with ``omnichannel import pos FILE``.

Live tills send the collector's own JSON to ``POST /v1/events`` with a store key; end-of-day or offline
till exports are files of one record per line, in CSV (with a header line) or JSON lines, same fields::

    type,txn_id,timestamp,store_id,till_id,employee_id,customer_id,loyalty_card,items,total_cents,currency,coupons
    sale,T-0231-000981,2024-11-23T10:20:00+01:00,S0231,till-0231-03,E10442,C-42,,SKU-1001:2:4999;SKU-7:1:1299,11297,EUR,SMS10

Fields: ``type`` (``sale``, ``return``, ``collection``, ``loyalty``), ``txn_id`` (the till's transaction
number, unique per store), ``timestamp`` (ISO 8601 with an offset), ``store_id``, ``till_id`` are required;
``employee_id``, ``customer_id``, ``loyalty_card`` are optional. Per type:

* ``sale`` -> order_placed (``in_store``; the order id is the txn id): ``items`` as ``sku:quantity:unit
  price cents`` joined by ``;`` (JSON lines may give a list of ``{"sku", "quantity", "unit_price_cents"}``),
  ``total_cents``, ``currency``, optional ``coupons`` (``;``-separated, or a list);
* ``return`` -> product_returned: ``product_id``, ``quantity``, optional ``order_id``, ``reason``;
* ``collection`` -> order_collected (a click-and-collect order handed over): ``order_id``;
* ``loyalty`` -> loyalty_card_used: ``loyalty_card``, optional ``points``.

The till is the ``device`` (``pos_till``, staff-operated), the employee the ``actor`` and the store the
``location``. Event ids derive from (store, txn id, type), so a re-imported line is deduplicated downstream.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from connectors.channels.base import ChannelAdapter, FileFormat
from connectors.errors import InvalidEventError
from connectors.native import Fields, identities, stable_event_id
from schemas.validation import Problem

__all__ = ["ADAPTER", "CSV_COLUMNS", "to_event"]

CHANNEL: Final = "store"
_TYPES: Final = ("sale", "return", "collection", "loyalty")
#: Columns a CSV export may have (in any order); unused ones may be left empty.
CSV_COLUMNS: Final = (
    "type",
    "txn_id",
    "timestamp",
    "store_id",
    "till_id",
    "employee_id",
    "customer_id",
    "loyalty_card",
    "items",
    "total_cents",
    "currency",
    "coupons",
    "order_id",
    "product_id",
    "quantity",
    "reason",
    "points",
)


def to_event(record: Mapping[str, Any]) -> dict[str, Any]:
    """Map one POS record (a CSV row or a JSON object) to an Event dict; every problem at once."""
    fields = Fields(record)
    kind = fields.text("type", choices=_TYPES)
    txn_id = fields.text("txn_id")
    occurred_at_ms = fields.timestamp_ms("timestamp")
    store_id = fields.text("store_id")
    till_id = fields.text("till_id")
    employee_id = fields.text("employee_id", required=False)
    loyalty_card = fields.text("loyalty_card", required=kind == "loyalty")
    event_type, payload = _payload(kind, txn_id, store_id, loyalty_card, fields)
    if fields.problems:
        raise InvalidEventError(fields.problems, what="POS record")
    return {
        "event_id": stable_event_id(CHANNEL, store_id, txn_id, kind),
        "event_type": event_type,
        "occurred_at_ms": occurred_at_ms,
        "channel": CHANNEL,
        "device": {"device_id": till_id, "kind": "pos_till", "role": "staff_operated"},
        "identities": identities(customer_id=fields.text("customer_id", required=False), loyalty_card=loyalty_card),
        "location": {"store_id": store_id, "site": None},
        "actor": {"actor_id": employee_id, "role": "employee"} if employee_id else None,
        "session_id": None,
        "payload": payload,
    }


def _payload(
    kind: str | None, txn_id: str | None, store_id: str | None, loyalty_card: str | None, fields: Fields
) -> tuple[str, dict[str, Any]]:
    if kind == "sale":
        return "order_placed", {
            "order_id": txn_id,
            "lines": _items(fields),
            "total_cents": fields.integer("total_cents", minimum=0),
            "currency": fields.text("currency"),
            "fulfilment": "in_store",
            "collect_store_id": None,
            "coupon_codes": _codes(fields.data.get("coupons")),
        }
    if kind == "return":
        return "product_returned", {
            "return_id": txn_id,
            "order_id": fields.text("order_id", required=False),
            "product_id": fields.text("product_id"),
            "quantity": fields.integer("quantity", minimum=1),
            "reason": fields.text("reason", required=False),
        }
    if kind == "collection":
        return "order_collected", {"order_id": fields.text("order_id"), "store_id": store_id}
    if kind == "loyalty":
        return "loyalty_card_used", {"card_id": loyalty_card, "points": fields.integer("points", required=False)}
    return "unknown", {}


def _items(fields: Fields) -> list[dict[str, Any]]:
    raw = fields.data.get("items")
    if isinstance(raw, str):
        raw = [_compact_item(part) for part in raw.split(";") if part.strip()]
    if not isinstance(raw, list) or not raw:
        fields.problems.append(Problem("items", "expected at least one item: sku:quantity:unit_price_cents;..."))
        return []
    lines = []
    for index, item in enumerate(raw):
        line = Fields(item, f"items[{index}].", fields.problems)
        lines.append(
            {
                "product_id": line.text("sku"),
                "quantity": line.integer("quantity", minimum=1),
                "unit_price_cents": line.integer("unit_price_cents", minimum=0),
            }
        )
    return lines


def _compact_item(text: str) -> dict[str, str] | str:
    parts = text.strip().split(":")
    if len(parts) != 3:
        return text  # reported by Fields as "expected an object"
    sku, quantity, price = parts
    return {"sku": sku, "quantity": quantity, "unit_price_cents": price}


def _codes(raw: Any) -> list[str]:
    if isinstance(raw, list):
        return [str(code) for code in raw if str(code).strip()]
    if isinstance(raw, str):
        return [code.strip() for code in raw.split(";") if code.strip()]
    return []


ADAPTER = ChannelAdapter(
    name="pos",
    channel=CHANNEL,
    source_system="pos-import",
    summary="Point-of-sale exports (CSV, JSON lines) via `omnichannel import pos`; live tills use POST /v1/events.",
    file_format=FileFormat(to_event=to_event, formats=("csv", "jsonl"), description="one till record per line"),
)
