"""Cart rules: each event type, each merge mode, each validation error, expiry, and the Avro output shape."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import fastavro
import pytest
from fastavro.schema import load_schema
from fastavro.validation import validate
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.domain import (
    MAX_LINE_QUANTITY,
    Cart,
    CartLine,
    CartRuleError,
    DomainError,
    MergeMode,
    apply_cart_event,
    expire_if_idle,
    merge_carts,
    validate_cart_event,
)

AVRO_DIR = Path(__file__).resolve().parents[2] / "schemas" / "avro"
IDENTITY_FIELDS = ("anonymous_id", "customer_id", "email_hash", "phone_hash", "loyalty_card")


def event(
    event_type: str,
    payload: dict[str, Any],
    *,
    at: int = 2_000,
    channel: str = "tablet",
    device_id: str | None = "D2",
    role: str = "customer_owned",
    event_id: str = "e-1",
    **identities: str | None,
) -> dict[str, Any]:
    """A decoded omnichannel.event.Event, every field present as the Avro decoder returns it."""
    return {
        "event_id": event_id,
        "event_type": event_type,
        "occurred_at_ms": at,
        "received_at_ms": at + 7,
        "channel": channel,
        "device": None if device_id is None else {"device_id": device_id, "kind": None, "role": role},
        "identities": {name: identities.get(name) for name in IDENTITY_FIELDS},
        "location": None,
        "actor": None,
        "session_id": None,
        "consent": {},
        "source_system": "test",
        "payload": payload,
    }


def added(product_id: str = "P2", quantity: int = 1, price: int = 150, currency: str = "EUR", **kw: Any) -> Any:
    payload = {"product_id": product_id, "quantity": quantity, "unit_price_cents": price, "currency": currency}
    return event("cart_line_added", payload, **kw)


def quantity_set(
    product_id: str = "P1", quantity: int = 7, price: int | None = None, currency: str | None = None, **kw: Any
) -> Any:
    payload = {"product_id": product_id, "quantity": quantity, "unit_price_cents": price, "currency": currency}
    return event("cart_quantity_set", payload, **kw)


def removed(product_id: str = "P1", **kw: Any) -> Any:
    return event("cart_line_removed", {"product_id": product_id}, **kw)


def cleared(**kw: Any) -> Any:
    return event("cart_cleared", {"reason": None}, **kw)


def checkout(**kw: Any) -> Any:
    return event("checkout_started", {"cart_value_cents": None}, **kw)


def order(**kw: Any) -> Any:
    payload = {
        "order_id": "O1",
        "lines": [{"product_id": "P1", "quantity": 2, "unit_price_cents": 100}],
        "total_cents": 200,
        "currency": "EUR",
        "fulfilment": "delivery",
        "collect_store_id": None,
        "coupon_codes": [],
    }
    return event("order_placed", payload, **kw)


def line(
    product_id: str,
    quantity: int,
    price: int = 100,
    at: int = 1_000,
    *,
    currency: str = "EUR",
    channel: str = "web",
    device_id: str | None = "D1",
) -> CartLine:
    return CartLine(product_id, quantity, price, currency, channel, device_id, at)


P1 = line("P1", 2)
OPEN = Cart("customer:C1", "C1", "open", (P1,), updated_at_ms=1_000, version=1)
EMPTY = Cart("customer:C1", "C1")
CLOSED = Cart("customer:C1", "C1", "closed", (), updated_at_ms=1_000, version=3)
EXPIRED = Cart("customer:C1", "C1", "expired", (P1,), updated_at_ms=1_000, version=2)


def summary(cart: Cart) -> tuple[str, dict[str, tuple[Any, ...]], int, int]:
    lines = {
        x.product_id: (x.quantity, x.unit_price_cents, x.currency, x.channel, x.device_id, x.updated_at_ms)
        for x in cart.lines
    }
    return cart.status, lines, cart.updated_at_ms, cart.version


P1_ROW = (2, 100, "EUR", "web", "D1", 1_000)

# (start, event, expected summary); None means "returns the very same cart object".
APPLY_CASES: dict[str, tuple[Cart, dict[str, Any], Any]] = {
    "add new product": (
        OPEN,
        added("P2", 1, 150),
        ("open", {"P1": P1_ROW, "P2": (1, 150, "EUR", "tablet", "D2", 2_000)}, 2_000, 2),
    ),
    "add to a line: quantities add, price and provenance from the event": (
        OPEN,
        added("P1", 3, 120, "GBP"),
        ("open", {"P1": (5, 120, "GBP", "tablet", "D2", 2_000)}, 2_000, 2),
    ),
    "add with a device clock behind: applied, cart time does not go back": (
        OPEN,
        added("P1", 1, 90, at=500),
        ("open", {"P1": (3, 90, "EUR", "tablet", "D2", 500)}, 1_000, 2),
    ),
    "add without a device": (
        EMPTY,
        added("P9", 1, 0, device_id=None),
        ("open", {"P9": (1, 0, "EUR", "tablet", None, 2_000)}, 2_000, 1),
    ),
    "remove a line": (OPEN, removed("P1"), ("open", {}, 2_000, 2)),
    "remove a product not in the cart": (OPEN, removed("P7"), None),
    "set quantity keeps the line's price when none is sent": (
        OPEN,
        quantity_set("P1", 7),
        ("open", {"P1": (7, 100, "EUR", "tablet", "D2", 2_000)}, 2_000, 2),
    ),
    "set quantity with a new price": (
        OPEN,
        quantity_set("P1", 1, 80, "EUR"),
        ("open", {"P1": (1, 80, "EUR", "tablet", "D2", 2_000)}, 2_000, 2),
    ),
    "set quantity creates a line": (
        OPEN,
        quantity_set("P3", 4, 300, "EUR"),
        ("open", {"P1": P1_ROW, "P3": (4, 300, "EUR", "tablet", "D2", 2_000)}, 2_000, 2),
    ),
    "set quantity 0 removes the line": (OPEN, quantity_set("P1", 0), ("open", {}, 2_000, 2)),
    "set quantity 0 on a product not in the cart": (OPEN, quantity_set("P4", 0), None),
    "clear closes the cart": (OPEN, cleared(), ("closed", {}, 2_000, 2)),
    "clear an empty open cart closes it": (EMPTY, cleared(), ("closed", {}, 2_000, 1)),
    "clear a closed cart": (CLOSED, cleared(at=5_000), None),
    "checkout is activity only": (OPEN, checkout(), ("open", {"P1": P1_ROW}, 2_000, 2)),
    "checkout older than the cart's activity": (OPEN, checkout(at=900), None),
    "checkout on an empty cart": (EMPTY, checkout(), None),
    "checkout reopens an expired cart": (EXPIRED, checkout(at=900), ("open", {"P1": P1_ROW}, 1_000, 3)),
    "order closes and empties the cart": (OPEN, order(), ("closed", {}, 2_000, 2)),
    "order on a closed cart": (CLOSED, order(at=9_000), None),
    "order on an expired cart": (EXPIRED, order(), ("closed", {}, 2_000, 3)),
    "add after an order opens a fresh cart": (
        CLOSED,
        added("P5", 2, 500),
        ("open", {"P5": (2, 500, "EUR", "tablet", "D2", 2_000)}, 2_000, 4),
    ),
    "set quantity 0 on a closed cart": (CLOSED, quantity_set("P1", 0), None),
    "add to an expired cart reopens it with its lines": (
        EXPIRED,
        added("P1", 1, 100),
        ("open", {"P1": (3, 100, "EUR", "tablet", "D2", 2_000)}, 2_000, 3),
    ),
    "remove from an expired cart reopens it": (EXPIRED, removed("P1"), ("open", {}, 2_000, 3)),
    "remove a product an expired cart does not hold": (EXPIRED, removed("P8"), None),
    "page view is not a cart event": (OPEN, event("page_viewed", {"url": "/", "title": None, "referrer": None}), None),
    "login is not a cart event": (OPEN, event("login", {"method": None}), None),
}


@pytest.mark.parametrize(("start", "ev", "expected"), APPLY_CASES.values(), ids=APPLY_CASES.keys())
def test_apply_cart_event(start: Cart, ev: dict[str, Any], expected: Any) -> None:
    result = apply_cart_event(start, ev)
    if expected is None:
        assert result is start
    else:
        assert summary(result) == expected
        assert (result.cart_key, result.customer_id) == (start.cart_key, start.customer_id)


def test_set_quantity_on_a_new_line_needs_a_price_and_currency() -> None:
    with pytest.raises(CartRuleError, match=r"unit_price_cents and \.currency are required.*'P3'"):
        apply_cart_event(OPEN, quantity_set("P3", 2))
    with pytest.raises(CartRuleError, match="required"):
        apply_cart_event(OPEN, quantity_set("P3", 2, 100, None))


def test_add_beyond_the_avro_int_range_is_refused() -> None:
    cart = Cart("k", lines=(line("P1", MAX_LINE_QUANTITY),))
    with pytest.raises(CartRuleError, match="cart_quantity_set with the intended quantity"):
        apply_cart_event(cart, added("P1", 1))


# --------------------------------------------------------------------------------------------------------
# Validation

VALIDATION_CASES: dict[str, tuple[dict[str, Any], str]] = {
    "zero added quantity": (added(quantity=0), r"cart_line_added\.payload\.quantity must be at least 1.*removed"),
    "negative added quantity": (added(quantity=-2), r"cart_line_added\.payload\.quantity must be at least 1"),
    "added quantity not an int": (added(quantity=True), r"payload\.quantity must be an integer"),
    "added quantity too large": (added(quantity=2**31), r"payload\.quantity must be at most"),
    "negative set quantity": (
        quantity_set(quantity=-1),
        r"cart_quantity_set\.payload\.quantity must be at least 0.*send 0 to remove",
    ),
    "negative added price": (added(price=-1), r"cart_line_added\.payload\.unit_price_cents must not be negative"),
    "negative set price": (
        quantity_set(price=-5, currency="EUR"),
        r"cart_quantity_set\.payload\.unit_price_cents must not be negative",
    ),
    "price not an int": (added(price=1.5), r"unit_price_cents must be an integer number of cents"),  # type: ignore[arg-type]
    "empty currency": (added(currency=" "), r"currency must be a non-empty currency code.*'EUR'"),
    "blank product id": (added(product_id=""), r"cart_line_added\.payload\.product_id must match"),
    "product id with a space": (removed("P 1"), r"cart_line_removed\.payload\.product_id must match"),
    "product id starting with a dash": (quantity_set("-P1"), r"cart_quantity_set\.payload\.product_id must match"),
    "product id of 65 characters": (added(product_id="P" * 65), r"at most 64 characters"),
    "product id missing": (event("cart_line_removed", {}), r"product_id must match.*got None"),
    "payload missing": (event("cart_cleared", None), r"cart_cleared\.payload must be a record"),  # type: ignore[arg-type]
    "time missing": ({**cleared(), "occurred_at_ms": None}, r"occurred_at_ms must be an integer"),
}


@pytest.mark.parametrize(("ev", "message"), VALIDATION_CASES.values(), ids=VALIDATION_CASES.keys())
def test_validation_errors(ev: dict[str, Any], message: str) -> None:
    with pytest.raises(CartRuleError, match=message):
        validate_cart_event(ev)
    with pytest.raises(CartRuleError, match=message):
        apply_cart_event(OPEN, ev)


@pytest.mark.parametrize(
    "ev",
    [
        added(product_id="SKU-10042", quantity=1, price=0),
        added(product_id="a" * 64),
        added(product_id="cat:shoes.v2_red"),
        quantity_set(quantity=0),
        quantity_set(price=None, currency=None),
        removed(),
        cleared(),
        checkout(),
        order(),
        event("page_viewed", {}),  # other types are not checked
    ],
)
def test_valid_events_pass(ev: dict[str, Any]) -> None:
    validate_cart_event(ev)


def test_cart_rule_error_is_an_omnichannel_error() -> None:
    from omnichannel.errors import OmnichannelError

    assert issubclass(CartRuleError, DomainError)
    assert issubclass(DomainError, OmnichannelError)


# --------------------------------------------------------------------------------------------------------
# Merge modes

CUSTOMER = Cart(
    "customer:C1",
    "C1",
    "open",
    (line("P1", 2, 100, 1_000), line("P2", 1, 200, 3_000, channel="web")),
    updated_at_ms=3_000,
    version=4,
)
ANONYMOUS = Cart(
    "anonymous:A1",
    None,
    "open",
    (
        line("P1", 5, 90, 2_000, channel="mobile_app", device_id="PH"),
        line("P2", 3, 210, 2_500, channel="mobile_app", device_id="PH"),
        line("P3", 1, 50, 1_500, channel="mobile_app", device_id="PH"),
    ),
    updated_at_ms=2_500,
    version=9,
)
C_P1 = (2, 100, "EUR", "web", "D1", 1_000)
C_P2 = (1, 200, "EUR", "web", "D1", 3_000)
A_P1 = (5, 90, "EUR", "mobile_app", "PH", 2_000)
A_P2 = (3, 210, "EUR", "mobile_app", "PH", 2_500)
A_P3 = (1, 50, "EUR", "mobile_app", "PH", 1_500)

MERGE_CASES: dict[MergeMode, Any] = {
    # P1: anonymous line newer -> its price/provenance; P2: customer line newer -> its price/provenance.
    MergeMode.MAX: ("open", {"P1": A_P1, "P2": (3, *C_P2[1:]), "P3": A_P3}, 3_000, 5),
    MergeMode.SUM: ("open", {"P1": (7, *A_P1[1:]), "P2": (4, *C_P2[1:]), "P3": A_P3}, 3_000, 5),
    MergeMode.KEEP_CUSTOMER: None,
    MergeMode.REPLACE: ("open", {"P1": A_P1, "P2": A_P2, "P3": A_P3}, 3_000, 5),
}


@pytest.mark.parametrize(("mode", "expected"), MERGE_CASES.items(), ids=[m.value for m in MERGE_CASES])
def test_merge_modes(mode: MergeMode, expected: Any) -> None:
    result = merge_carts(CUSTOMER, ANONYMOUS, mode)
    if expected is None:
        assert result is CUSTOMER
    else:
        assert summary(result) == expected
        assert (result.cart_key, result.customer_id) == ("customer:C1", "C1")


def test_merge_default_mode_is_max() -> None:
    assert merge_carts(CUSTOMER, ANONYMOUS) == merge_carts(CUSTOMER, ANONYMOUS, MergeMode.MAX)


@pytest.mark.parametrize("mode", list(MergeMode))
def test_an_empty_anonymous_cart_never_wipes_the_customer_cart(mode: MergeMode) -> None:
    for anonymous in (Cart("anonymous:A1"), Cart("anonymous:A1", status="closed", updated_at_ms=9_999)):
        assert merge_carts(CUSTOMER, anonymous, mode) is CUSTOMER


@pytest.mark.parametrize("mode", list(MergeMode))
@pytest.mark.parametrize("customer", [EMPTY, CLOSED], ids=["empty", "closed"])
def test_an_empty_customer_cart_adopts_the_anonymous_lines(mode: MergeMode, customer: Cart) -> None:
    result = merge_carts(customer, ANONYMOUS, mode)
    assert summary(result) == (
        "open",
        {"P1": A_P1, "P2": A_P2, "P3": A_P3},
        max(customer.updated_at_ms, 2_500),
        customer.version + 1,
    )
    assert result.cart_key == customer.cart_key


@pytest.mark.parametrize("mode", [MergeMode.MAX, MergeMode.SUM])
def test_merge_tie_on_time_keeps_the_customer_provenance(mode: MergeMode) -> None:
    customer = Cart("customer:C1", "C1", lines=(line("P1", 1, 100, 5_000, channel="web"),), updated_at_ms=5_000)
    anonymous = Cart("anonymous:A1", lines=(line("P1", 1, 999, 5_000, channel="sms"),), updated_at_ms=5_000)
    merged = merge_carts(customer, anonymous, mode).lines[0]
    assert (merged.unit_price_cents, merged.channel) == (100, "web")


def test_merge_into_an_expired_cart_reopens_it() -> None:
    result = merge_carts(EXPIRED, ANONYMOUS, MergeMode.MAX)
    assert result.status == "open"
    assert summary(result)[1] == {"P1": A_P1, "P2": A_P2, "P3": A_P3}


def test_keep_customer_on_an_expired_cart_keeps_it_expired() -> None:
    assert merge_carts(EXPIRED, ANONYMOUS, MergeMode.KEEP_CUSTOMER) is EXPIRED


def test_sum_is_capped_at_the_avro_int_range() -> None:
    big = Cart("customer:C1", lines=(line("P1", MAX_LINE_QUANTITY - 1),))
    assert merge_carts(big, big, MergeMode.SUM).lines[0].quantity == MAX_LINE_QUANTITY


line_strategy = st.builds(
    line,
    st.sampled_from(["P1", "P2", "P3", "P4"]),
    st.integers(1, 9),
    st.integers(0, 500),
    st.integers(0, 5_000),
)
cart_strategy = st.builds(
    lambda lines, version: Cart("k", lines=tuple({x.product_id: x for x in lines}.values()), version=version),
    st.lists(line_strategy, max_size=4),
    st.integers(0, 5),
)


@settings(max_examples=200, deadline=None)
@given(customer=cart_strategy, anonymous=cart_strategy, mode=st.sampled_from(list(MergeMode)))
def test_merge_properties(customer: Cart, anonymous: Cart, mode: MergeMode) -> None:
    result = merge_carts(customer, anonymous, mode)
    ours = {x.product_id: x for x in customer.lines}
    theirs = {x.product_id: x for x in anonymous.lines}
    got = {x.product_id: x for x in result.lines}
    assert result.version in (customer.version, customer.version + 1)
    assert (result.version == customer.version) == (result is customer)
    if mode is not MergeMode.SUM:  # merging a cart with itself changes nothing (SUM doubles, by design)
        assert merge_carts(customer, customer, mode) is customer
    if not theirs:
        assert result is customer
        return
    if mode in (MergeMode.MAX, MergeMode.SUM):
        assert set(got) == set(ours) | set(theirs)
        for product_id, merged in got.items():
            quantities = [c.quantity for c in (ours.get(product_id), theirs.get(product_id)) if c]
            assert merged.quantity == (max(quantities) if mode is MergeMode.MAX else sum(quantities))
            assert merged.updated_at_ms == max(
                c.updated_at_ms for c in (ours.get(product_id), theirs.get(product_id)) if c
            )
    elif mode is MergeMode.REPLACE:
        assert got == theirs
    else:
        assert got == (ours or theirs)


# --------------------------------------------------------------------------------------------------------
# Expiry


@pytest.mark.parametrize(
    ("cart", "now", "expired"),
    [
        (OPEN, 1_000 + 999, False),
        (OPEN, 1_000 + 1_000, True),  # idle exactly idle_ms: expired
        (OPEN, 50_000, True),
        (EMPTY, 50_000, False),  # nothing to abandon
        (CLOSED, 50_000, False),
        (EXPIRED, 50_000, False),  # already expired: unchanged
    ],
)
def test_expire_if_idle(cart: Cart, now: int, expired: bool) -> None:
    result = expire_if_idle(cart, now, 1_000)
    if expired:
        assert (result.status, result.lines, result.updated_at_ms) == ("expired", cart.lines, cart.updated_at_ms)
        assert result.version == cart.version + 1
    else:
        assert result is cart


def test_expire_needs_a_positive_idle_time() -> None:
    with pytest.raises(DomainError, match="idle_ms must be a positive"):
        expire_if_idle(OPEN, 0, 0)


# --------------------------------------------------------------------------------------------------------
# Cart value invariants and output shape


def test_lines_are_sorted_by_product_id() -> None:
    cart = Cart("k", lines=(line("P3", 1), line("P1", 1), line("P2", 1)))
    assert [x.product_id for x in cart.lines] == ["P1", "P2", "P3"]
    assert cart.line("P2") == line("P2", 1)
    assert cart.line("P9") is None


def test_cart_rejects_duplicate_lines_bad_status_and_a_closed_cart_with_lines() -> None:
    with pytest.raises(DomainError, match="twice"):
        Cart("k", lines=(line("P1", 1), line("P1", 2)))
    with pytest.raises(DomainError, match="status must be one of"):
        Cart("k", status="lost")  # type: ignore[arg-type]
    with pytest.raises(DomainError, match="closed Cart has no lines"):
        Cart("k", status="closed", lines=(P1,))


def test_cart_is_frozen() -> None:
    with pytest.raises(AttributeError):
        OPEN.version = 9  # type: ignore[misc]


def _output_schema(name: str) -> Any:
    return load_schema(str(AVRO_DIR / f"omnichannel.output.{name}.avsc"))


@pytest.mark.parametrize("cart", [OPEN, EMPTY, CLOSED, EXPIRED, merge_carts(CUSTOMER, ANONYMOUS)])
def test_to_avro_dict_matches_the_output_cart_record(cart: Cart) -> None:
    schema = _output_schema("Cart")
    record = cart.to_avro_dict()
    assert validate(record, schema, raise_errors=True)
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schema, record)
    buffer.seek(0)
    assert fastavro.schemaless_reader(buffer, schema) == record
    assert record["lines"] == [x.to_avro_dict() for x in cart.lines]


def _record_name(event_type: str) -> str:
    return "omnichannel.event." + "".join(part.title() for part in event_type.split("_"))


@pytest.mark.parametrize("ev", [added(), quantity_set(), removed(), cleared(), checkout(), order()])
def test_test_events_have_the_decoded_avro_shape(ev: dict[str, Any]) -> None:
    # The builders above must produce exactly what the Avro decoder hands a processor.
    schema = load_schema(str(AVRO_DIR / "omnichannel.event.Event.avsc"))
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schema, {**ev, "payload": (_record_name(ev["event_type"]), ev["payload"])})
    buffer.seek(0)
    assert fastavro.schemaless_reader(buffer, schema) == ev
