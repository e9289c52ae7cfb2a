"""Cart sessions as pure values: apply a cart event, merge two carts, expire an idle cart.

A cart is keyed by the canonical profile key the identity rules route an event to (``customer:C1``, or
``anonymous:A1`` before the shopper logs in). Every function here takes frozen values and returns new ones;
the Faust agent around them owns ordering, idempotence and persistence.

Cart lifecycle::

    open/expired --order_placed or cart_cleared--> closed (lines emptied)
    open --expire_if_idle--> expired (lines kept)
    any status --a line added, removed or re-set, or checkout_started on a cart with lines--> open

So a later add after an order starts a fresh open cart (a closed cart has no lines), and a shopper who comes
back to an expired cart finds its lines again (the abandoned-cart follow-up relies on that).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from itertools import pairwise
from typing import Any, Final, Literal, get_args

from streams.domain.errors import CartRuleError, DomainError

__all__ = [
    "CART_EVENT_TYPES",
    "MAX_LINE_QUANTITY",
    "PRODUCT_ID_PATTERN",
    "Cart",
    "CartLine",
    "CartStatus",
    "MergeMode",
    "apply_cart_event",
    "expire_if_idle",
    "merge_carts",
    "validate_cart_event",
]

CartStatus = Literal["open", "closed", "expired"]
_STATUSES: Final = frozenset(get_args(CartStatus))

#: Event types that act on a cart; every other event type leaves a cart unchanged.
CART_EVENT_TYPES: Final = frozenset(
    {
        "cart_line_added",
        "cart_line_removed",
        "cart_quantity_set",
        "cart_cleared",
        "checkout_started",
        "order_placed",
    }
)

#: Product ids are used in Redis keys and URLs: a short, printable, delimiter-safe alphabet.
PRODUCT_ID_PATTERN: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")

#: Line quantities are Avro ``int`` in the output Cart record: keep them within 32 bits.
MAX_LINE_QUANTITY: Final = 2**31 - 1


@dataclass(frozen=True, slots=True)
class CartLine:
    """One product in a cart, with the price and provenance of the event that last set it."""

    product_id: str
    quantity: int
    unit_price_cents: int
    currency: str
    channel: str
    device_id: str | None
    updated_at_ms: int

    def to_avro_dict(self) -> dict[str, Any]:
        """This line as an ``omnichannel.output.CartLine`` record."""
        return {
            "product_id": self.product_id,
            "quantity": self.quantity,
            "unit_price_cents": self.unit_price_cents,
            "currency": self.currency,
            "channel": self.channel,
            "device_id": self.device_id,
            "updated_at_ms": self.updated_at_ms,
        }


@dataclass(frozen=True, slots=True)
class Cart:
    """A cart session.

    ``lines`` is a tuple sorted by ``product_id`` with one line per product (the constructor sorts it and
    rejects duplicates, and a closed cart with lines). ``version`` increases by one on every change
    (0 for a cart never changed), so a store can fence stale writes. ``updated_at_ms`` is the newest
    shopper activity applied and never moves backwards.
    """

    cart_key: str
    customer_id: str | None = None
    status: CartStatus = "open"
    lines: tuple[CartLine, ...] = ()
    updated_at_ms: int = 0
    version: int = 0

    def __post_init__(self) -> None:
        if self.status not in _STATUSES:
            raise DomainError(f"Cart.status must be one of {sorted(_STATUSES)}, got {self.status!r}")
        lines = tuple(sorted(self.lines, key=lambda line: line.product_id))
        for before, after in pairwise(lines):
            if before.product_id == after.product_id:
                raise DomainError(f"Cart.lines holds product {before.product_id!r} twice: pass one line per product")
        if self.status == "closed" and lines:
            # An order empties its cart; a closed cart with lines would resurface them on the next add.
            raise DomainError("a closed Cart has no lines: pass lines=() or another status")
        object.__setattr__(self, "lines", lines)

    def line(self, product_id: str) -> CartLine | None:
        """The line for ``product_id``, or None if the cart does not hold that product."""
        for line in self.lines:
            if line.product_id == product_id:
                return line
        return None

    def to_avro_dict(self) -> dict[str, Any]:
        """This cart as an ``omnichannel.output.Cart`` record."""
        return {
            "cart_key": self.cart_key,
            "customer_id": self.customer_id,
            "status": self.status,
            "lines": [line.to_avro_dict() for line in self.lines],
            "updated_at_ms": self.updated_at_ms,
            "version": self.version,
        }


class MergeMode(StrEnum):
    """How an anonymous cart joins a customer's cart when the shopper is identified (see merge_carts)."""

    MAX = "max"
    SUM = "sum"
    KEEP_CUSTOMER = "keep_customer"
    REPLACE = "replace"


# --------------------------------------------------------------------------------------------------------
# Validation


def validate_cart_event(event: Mapping[str, Any]) -> None:
    """Check the business rules of a cart event, before any state is touched.

    Rules: ``occurred_at_ms`` is an integer; ``product_id`` matches :data:`PRODUCT_ID_PATTERN`;
    ``cart_line_added.quantity`` is at least 1; ``cart_quantity_set.quantity`` is at least 0; quantities
    stay within :data:`MAX_LINE_QUANTITY`; ``unit_price_cents`` is not negative; ``currency`` is a
    non-empty string. Events of other types pass unchecked.

    Raises:
        CartRuleError: the first rule broken; the message names the field and the fix.
    """
    event_type = event.get("event_type")
    if event_type not in CART_EVENT_TYPES:
        return
    occurred = event.get("occurred_at_ms")
    if not _is_int(occurred):
        raise CartRuleError(
            f"{event_type}.occurred_at_ms must be an integer epoch-milliseconds timestamp, got {occurred!r}: "
            "stamp the event with the device clock in ms"
        )
    payload = event.get("payload")
    if not isinstance(payload, Mapping):
        raise CartRuleError(f"{event_type}.payload must be a record, got {payload!r}: send the payload record")
    if event_type in ("cart_line_added", "cart_line_removed", "cart_quantity_set"):
        _check_product_id(event_type, payload.get("product_id"))
    if event_type == "cart_line_added":
        _check_quantity(event_type, payload.get("quantity"), minimum=1)
        _check_price(event_type, payload.get("unit_price_cents"), required=True)
        _check_currency(event_type, payload.get("currency"), required=True)
    elif event_type == "cart_quantity_set":
        _check_quantity(event_type, payload.get("quantity"), minimum=0)
        _check_price(event_type, payload.get("unit_price_cents"), required=False)
        _check_currency(event_type, payload.get("currency"), required=False)


def _is_int(value: object) -> bool:
    # bool is an int subclass; True is not a quantity.
    return isinstance(value, int) and not isinstance(value, bool)


def _check_product_id(event_type: str, value: object) -> None:
    if not isinstance(value, str) or not PRODUCT_ID_PATTERN.match(value):
        raise CartRuleError(
            f"{event_type}.payload.product_id must match {PRODUCT_ID_PATTERN.pattern}, got {value!r}: "
            "send the catalogue's product id (letters, digits, '.', '_', ':', '-'; at most 64 characters)"
        )


def _check_quantity(event_type: str, value: object, *, minimum: int) -> None:
    if not _is_int(value):
        raise CartRuleError(f"{event_type}.payload.quantity must be an integer, got {value!r}")
    assert isinstance(value, int)  # narrowed by _is_int; for mypy
    if value < minimum:
        fix = (
            "to take products out, send cart_line_removed or cart_quantity_set with quantity 0"
            if minimum == 1
            else "send 0 to remove the line"
        )
        raise CartRuleError(f"{event_type}.payload.quantity must be at least {minimum}, got {value}: {fix}")
    if value > MAX_LINE_QUANTITY:
        raise CartRuleError(
            f"{event_type}.payload.quantity must be at most {MAX_LINE_QUANTITY}, got {value}: "
            "send the quantity the shopper chose"
        )


def _check_price(event_type: str, value: object, *, required: bool) -> None:
    if value is None and not required:
        return
    if not _is_int(value):
        raise CartRuleError(f"{event_type}.payload.unit_price_cents must be an integer number of cents, got {value!r}")
    assert isinstance(value, int)
    if value < 0:
        raise CartRuleError(
            f"{event_type}.payload.unit_price_cents must not be negative, got {value}: "
            "send the unit price in cents (0 for a free item) and model discounts as coupons"
        )


def _check_currency(event_type: str, value: object, *, required: bool) -> None:
    if value is None and not required:
        return
    if not isinstance(value, str) or not value.strip():
        raise CartRuleError(
            f"{event_type}.payload.currency must be a non-empty currency code, got {value!r}: "
            "send an ISO 4217 code such as 'EUR'"
        )


# --------------------------------------------------------------------------------------------------------
# Applying events


def apply_cart_event(cart: Cart, event: Mapping[str, Any]) -> Cart:
    """Apply one decoded event to ``cart`` and return the resulting cart.

    - ``cart_line_added``: adds ``quantity`` to the product's line (creating it); the line takes its price,
      currency, channel, device and time from this event.
    - ``cart_line_removed``: drops the product's line.
    - ``cart_quantity_set``: sets the line's quantity (0 removes it); a price or currency left null keeps
      the line's own; channel, device and time come from this event.
    - ``cart_cleared``: drops every line and closes the cart (the shopper ended this cart session).
    - ``checkout_started``: lines unchanged; counts as shopper activity (``updated_at_ms``) on a cart
      with lines, and reopens an expired one.
    - ``order_placed``: drops every line and closes the cart.

    A later add to a closed cart starts a fresh open cart; a line change on an expired cart reopens it
    with its lines.
    - any other event type: the cart is returned unchanged.

    Events apply in stream order: the event being applied wins over a line's earlier values even when its
    device clock is behind (device clocks drift; the partition order is the one every replica agrees on).
    An event that changes nothing (e.g. removing a product the cart does not hold) returns ``cart`` itself,
    so ``version`` counts real changes only. ``customer_id`` and ``cart_key`` are never changed here: the
    router decides which cart an event belongs to.

    Raises:
        CartRuleError: the event breaks a rule of :func:`validate_cart_event`, a line would exceed
            :data:`MAX_LINE_QUANTITY`, or ``cart_quantity_set`` creates a line without a price or currency.
    """
    event_type = event.get("event_type")
    if event_type not in CART_EVENT_TYPES:
        return cart
    validate_cart_event(event)
    payload: Mapping[str, Any] = event["payload"]
    at_ms: int = event["occurred_at_ms"]
    lines = {line.product_id: line for line in cart.lines}

    if event_type in ("order_placed", "cart_cleared"):
        return _commit(cart, "closed", {}, at_ms)
    if event_type == "checkout_started":
        # Activity only: a checkout on an empty cart has nothing to act on.
        return _commit(cart, "open", lines, at_ms, touch=True) if lines else cart
    if event_type == "cart_line_removed":
        lines.pop(payload["product_id"], None)
    elif event_type == "cart_line_added":
        product_id = payload["product_id"]
        current = lines.get(product_id)
        quantity = payload["quantity"] + (current.quantity if current else 0)
        if quantity > MAX_LINE_QUANTITY:
            raise CartRuleError(
                f"cart_line_added.payload.quantity would take line {product_id!r} to {quantity}, above "
                f"{MAX_LINE_QUANTITY}: send cart_quantity_set with the intended quantity"
            )
        lines[product_id] = _line_from(event, product_id, quantity, payload["unit_price_cents"], payload["currency"])
    else:  # cart_quantity_set
        product_id = payload["product_id"]
        current = lines.get(product_id)
        if payload["quantity"] == 0:
            lines.pop(product_id, None)
        else:
            price = payload.get("unit_price_cents")
            currency = payload.get("currency")
            if current is None and (price is None or currency is None):
                raise CartRuleError(
                    f"cart_quantity_set.payload.unit_price_cents and .currency are required when the cart has "
                    f"no line for {product_id!r} yet, got {price!r} and {currency!r}: send both, or send "
                    "cart_line_added"
                )
            lines[product_id] = _line_from(
                event,
                product_id,
                payload["quantity"],
                price if price is not None else _known(current).unit_price_cents,
                currency if currency is not None else _known(current).currency,
            )

    if lines == {line.product_id: line for line in cart.lines}:
        return cart
    return _commit(cart, "open", lines, at_ms)


def _known(line: CartLine | None) -> CartLine:
    assert line is not None  # callers checked that a missing line comes with a price and currency
    return line


def _line_from(event: Mapping[str, Any], product_id: str, quantity: int, price: int, currency: str) -> CartLine:
    device = event.get("device")
    return CartLine(
        product_id=product_id,
        quantity=quantity,
        unit_price_cents=price,
        currency=currency,
        channel=str(event.get("channel") or "other"),
        device_id=device.get("device_id") if isinstance(device, Mapping) else None,
        updated_at_ms=event["occurred_at_ms"],
    )


def _commit(cart: Cart, status: CartStatus, lines: Mapping[str, CartLine], at_ms: int, *, touch: bool = False) -> Cart:
    """The next version of ``cart``, or ``cart`` itself when neither status nor lines differ.

    ``touch`` makes newer activity alone a change (``checkout_started``).
    """
    new_lines = tuple(sorted(lines.values(), key=lambda line: line.product_id))
    updated_at_ms = max(cart.updated_at_ms, at_ms)  # an old device clock never moves activity back
    if (status, new_lines) == (cart.status, cart.lines) and not (touch and updated_at_ms > cart.updated_at_ms):
        return cart
    return replace(cart, status=status, lines=new_lines, updated_at_ms=updated_at_ms, version=cart.version + 1)


# --------------------------------------------------------------------------------------------------------
# Merging and expiry


def merge_carts(customer: Cart, anonymous: Cart, mode: MergeMode = MergeMode.MAX) -> Cart:
    """Merge ``anonymous`` into ``customer`` when the identity rules absorb the anonymous profile.

    ``customer`` is the surviving cart: the customer's, or that of the profile that absorbed another
    customer-less profile (``Observation.absorbed``). The result keeps its ``cart_key`` and
    ``customer_id``. Lines are merged per product:

    - ``MAX`` (default): a product in both carts gets the higher quantity.
    - ``SUM``: a product in both carts gets the sum of the quantities (capped at
      :data:`MAX_LINE_QUANTITY`).
    - ``KEEP_CUSTOMER``: the customer's lines are kept as they are and the anonymous lines are dropped;
      but an empty customer cart adopts the anonymous lines.
    - ``REPLACE``: the anonymous lines replace the customer's lines.

    For ``MAX`` and ``SUM``, a product in both carts takes its price, currency, channel, device and
    ``updated_at_ms`` from the more recently updated line (higher ``updated_at_ms``; on a tie, the
    customer's line); a product in one cart only keeps that line unchanged. ``KEEP_CUSTOMER`` and
    ``REPLACE`` take whole lines from one side.

    Whatever the mode, an empty side never wipes the other: an anonymous cart without lines returns
    ``customer`` unchanged (a login from a fresh device must not empty a saved basket), and so does a
    merge whose lines equal the customer's. Otherwise the result is ``open`` (the shopper is active),
    its ``updated_at_ms`` is the later of the two, and its ``version`` is ``customer.version + 1``.
    Lines of expired carts take part (they are kept so the shopper can come back to them); closed carts
    have no lines. The caller deletes the anonymous cart afterwards.
    """
    if not anonymous.lines:
        return customer
    ours = {line.product_id: line for line in customer.lines}
    theirs = {line.product_id: line for line in anonymous.lines}
    merged: dict[str, CartLine]
    if mode is MergeMode.KEEP_CUSTOMER:
        merged = ours if ours else theirs
    elif mode is MergeMode.REPLACE:
        merged = theirs
    else:
        merged = dict(ours)
        for product_id, their in theirs.items():
            our = ours.get(product_id)
            if our is None:
                merged[product_id] = their
                continue
            newer = their if their.updated_at_ms > our.updated_at_ms else our
            if mode is MergeMode.MAX:
                quantity = max(our.quantity, their.quantity)
            else:
                quantity = min(our.quantity + their.quantity, MAX_LINE_QUANTITY)
            merged[product_id] = replace(newer, quantity=quantity)
    if merged == ours:
        return customer
    return replace(
        customer,
        status="open",
        lines=tuple(merged.values()),
        updated_at_ms=max(customer.updated_at_ms, anonymous.updated_at_ms),
        version=customer.version + 1,
    )


def expire_if_idle(cart: Cart, now_ms: int, idle_ms: int) -> Cart:
    """Mark an open cart with lines ``expired`` once ``now_ms - updated_at_ms >= idle_ms``.

    The lines are kept (the abandoned-cart follow-up reads them, and a returning shopper finds them);
    ``updated_at_ms`` stays the last shopper activity and ``version`` increases. Empty, closed, already
    expired or recently active carts are returned unchanged.

    Raises:
        DomainError: ``idle_ms`` is not positive.
    """
    if idle_ms <= 0:
        raise DomainError(f"idle_ms must be a positive number of milliseconds, got {idle_ms}: e.g. 3600000")
    if cart.status != "open" or not cart.lines or now_ms - cart.updated_at_ms < idle_ms:
        return cart
    return replace(cart, status="expired", version=cart.version + 1)
