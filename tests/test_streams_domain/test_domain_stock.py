"""Stock levels for click and collect (S3): validation, which level is newer, can a cart be collected."""

from __future__ import annotations

from typing import Any

import pytest

from streams.domain.cart import CartLine
from streams.domain.stock import (
    StockLevel,
    StockRuleError,
    cart_availability,
    is_newer,
    stock_level_of,
    validate_stock_event,
)


def level_event(**payload: Any) -> dict[str, Any]:
    body = {"store_id": "S1", "product_id": "SKU-1", "available": 3, "sequence": 7, **payload}
    return {"event_type": "stock_level_changed", "occurred_at_ms": payload.pop("at", 1_000), "payload": body}


def test_a_level_is_read_from_its_event() -> None:
    assert stock_level_of(level_event()) == StockLevel("S1", "SKU-1", 3, 7, 1_000)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"store_id": ""}, "store_id"),
        ({"store_id": "S{1}"}, "store_id"),  # braces would break the Redis hash tag
        ({"product_id": "bad id"}, "product_id"),
        ({"available": -1}, "available"),
        ({"sequence": True}, "sequence"),
    ],
)
def test_bad_levels_are_refused_with_the_field_named(payload: dict[str, Any], field: str) -> None:
    with pytest.raises(StockRuleError, match=field):
        validate_stock_event(level_event(**payload))


def test_other_events_pass_unchecked() -> None:
    validate_stock_event({"event_type": "page_viewed", "payload": None})


@pytest.mark.parametrize(
    ("sequence", "at", "newer"),
    [(8, 0, True), (6, 9_999, False), (7, 1_001, True), (7, 1_000, False), (7, 999, False)],
)
def test_newer_by_sequence_then_time(sequence: int, at: int, newer: bool) -> None:
    held = StockLevel("S1", "SKU-1", 3, 7, 1_000).to_dict()
    assert is_newer(StockLevel("S1", "SKU-1", 0, sequence, at), held) is newer
    assert is_newer(StockLevel("S1", "SKU-1", 0, sequence, at), None)


def _line(product: str, quantity: int) -> CartLine:
    return CartLine(product, quantity, 100, "EUR", "web", None, 1)


def test_a_cart_is_collectable_only_when_every_line_is_known_and_in_stock_in_full() -> None:
    levels = {"A": {"available": 2}, "B": {"available": 1}, "C": None}
    assert cart_availability("S1", [_line("A", 2)], levels).collectable
    answer = cart_availability("S1", [_line("A", 2), _line("B", 2), _line("C", 1)], levels)
    assert not answer.collectable
    assert [(line.product_id, line.available, line.ok) for line in answer.lines] == [
        ("A", 2, True),
        ("B", 1, False),
        ("C", None, False),
    ]
    assert not cart_availability("S1", [], levels).collectable  # nothing to collect
