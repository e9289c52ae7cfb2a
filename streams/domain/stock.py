"""Store stock levels for click and collect (S3): validate a level, decide which of two levels is newer,
and answer whether a cart can be collected in a store. Pure rules; the Redis shell is
:mod:`streams.journeys.stock`.

Ordering: a level replaces the one held only if it is newer by ``(sequence, occurred_at_ms)``: the stock
system's sequence first (it is the authority), the event time breaking a tie. A level that arrives late, or
twice, changes nothing; so a replay of the feed is harmless.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from streams.domain.cart import PRODUCT_ID_PATTERN, CartLine
from streams.domain.errors import DomainError

__all__ = [
    "STOCK_EVENT_TYPE",
    "STORE_ID_PATTERN",
    "CartAvailability",
    "LineAvailability",
    "StockLevel",
    "StockRuleError",
    "cart_availability",
    "is_newer",
    "stock_level_of",
    "validate_stock_event",
]

STOCK_EVENT_TYPE: Final = "stock_level_changed"

#: Store codes are used in Redis keys (as a hash tag) and URLs: the same safe alphabet as product ids.
STORE_ID_PATTERN: Final = PRODUCT_ID_PATTERN


class StockRuleError(DomainError):
    """A stock event breaks a stock rule; the message names the field and how to fix the feed."""


@dataclass(frozen=True, slots=True)
class StockLevel:
    """Units of one product available in one store, as of a sequence number of the stock system."""

    store_id: str
    product_id: str
    available: int
    sequence: int
    at_ms: int

    def to_dict(self) -> dict[str, Any]:
        """The level as stored and served (JSON-ready)."""
        return {"available": self.available, "sequence": self.sequence, "at_ms": self.at_ms}


def validate_stock_event(event: Mapping[str, Any]) -> None:
    """Check a ``stock_level_changed`` event; other event types pass unchecked.

    Raises:
        StockRuleError: a store id outside :data:`STORE_ID_PATTERN`, a product id outside
            :data:`~streams.domain.cart.PRODUCT_ID_PATTERN`, a negative level,
            sequence or time.
    """
    if event.get("event_type") != STOCK_EVENT_TYPE:
        return
    payload = event.get("payload")
    if not isinstance(payload, Mapping):
        raise StockRuleError(f"stock_level_changed.payload must be a record, got {payload!r}")
    store = payload.get("store_id")
    if not isinstance(store, str) or not STORE_ID_PATTERN.match(store):
        raise StockRuleError(
            f"stock_level_changed.payload.store_id must match {STORE_ID_PATTERN.pattern}, got {store!r}: "
            "send the store code as every channel uses it, e.g. 'S0231'"
        )
    product = payload.get("product_id")
    if not isinstance(product, str) or not PRODUCT_ID_PATTERN.match(product):
        raise StockRuleError(
            f"stock_level_changed.payload.product_id must match {PRODUCT_ID_PATTERN.pattern}, got {product!r}: "
            "send the catalogue's product id"
        )
    occurred = event.get("occurred_at_ms")
    if not isinstance(occurred, int) or isinstance(occurred, bool) or occurred < 0:
        raise StockRuleError(
            f"stock_level_changed.occurred_at_ms must be epoch milliseconds >= 0, got {occurred!r}: "
            "stamp the level with the stock system's clock"
        )
    for name in ("available", "sequence"):
        value = payload.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise StockRuleError(
                f"stock_level_changed.payload.{name} must be a whole number >= 0, got {value!r}: "
                "send the absolute level and the stock system's sequence number"
            )


def stock_level_of(event: Mapping[str, Any]) -> StockLevel:
    """The level a valid ``stock_level_changed`` event carries (see :func:`validate_stock_event`)."""
    validate_stock_event(event)
    payload = event["payload"]
    return StockLevel(
        payload["store_id"],
        payload["product_id"],
        payload["available"],
        payload["sequence"],
        event["occurred_at_ms"],
    )


def is_newer(candidate: StockLevel, held: Mapping[str, Any] | None) -> bool:
    """True if ``candidate`` replaces the level ``held`` (a :meth:`StockLevel.to_dict`, or None)."""
    if held is None:
        return True
    return (candidate.sequence, candidate.at_ms) > (int(held["sequence"]), int(held["at_ms"]))


@dataclass(frozen=True, slots=True)
class LineAvailability:
    """One cart line against a store's stock: ``available`` None when the store never reported the product."""

    product_id: str
    quantity: int
    available: int | None

    @property
    def ok(self) -> bool:
        return self.available is not None and self.available >= self.quantity


@dataclass(frozen=True, slots=True)
class CartAvailability:
    """Can these lines be collected in this store? Only if every line is known and in stock in full."""

    store_id: str
    lines: tuple[LineAvailability, ...]

    @property
    def collectable(self) -> bool:
        return bool(self.lines) and all(line.ok for line in self.lines)


def cart_availability(
    store_id: str, lines: Sequence[CartLine], levels: Mapping[str, Mapping[str, Any] | None]
) -> CartAvailability:
    """Each line of a cart against ``levels`` (product id -> stored level, or None when unknown)."""
    return CartAvailability(
        store_id,
        tuple(LineAvailability(line.product_id, line.quantity, _units(levels.get(line.product_id))) for line in lines),
    )


def _units(level: Mapping[str, Any] | None) -> int | None:
    return None if level is None else int(level["available"])
