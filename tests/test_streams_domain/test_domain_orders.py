"""Order status reaches the customer record (S3), and the record with its journeys survives storage."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from streams.domain.customer import (
    CustomerLimits,
    CustomerState,
    OrderSummary,
    apply_customer_event,
    merge_customer_states,
)
from streams.domain.journey import CartEpisode, JourneyState
from streams.state_json import customer_from_json, customer_to_json


def ev(event_type: str, payload: dict[str, Any], at: int, channel: str = "web") -> dict[str, Any]:
    return {"event_id": f"e{at}", "event_type": event_type, "occurred_at_ms": at, "channel": channel,
            "identities": {}, "payload": payload}  # fmt: skip


def placed(order_id: str, at: int, channel: str = "web") -> dict[str, Any]:
    payload = {"order_id": order_id, "total_cents": 999, "currency": "EUR", "fulfilment": "click_and_collect",
               "collect_store_id": "S1", "lines": [], "coupon_codes": []}  # fmt: skip
    return ev("order_placed", payload, at, channel)


def status(order_id: str, value: str, at: int) -> dict[str, Any]:
    return ev(
        "order_status_changed", {"order_id": order_id, "status": value, "previous_status": None}, at, "back_office"
    )


def fold(*events: dict[str, Any], limits: CustomerLimits | None = None) -> CustomerState:
    state = CustomerState("customer:C1")
    for event in events:
        state = apply_customer_event(state, event, limits or CustomerLimits())
    return state


def test_an_order_and_its_statuses_in_event_time_order() -> None:
    state = fold(
        placed("O1", 1_000),
        status("O1", "ready_for_collection", 3_000),
        status("O1", "picking", 2_000),  # late: older than the status held
        ev("order_collected", {"order_id": "O1", "store_id": "S1"}, 4_000, "store"),
    )
    assert state.recent_orders == (
        OrderSummary("O1", "collected", 4_000, "web", "click_and_collect", "S1", 999, "EUR", 1_000),
    )


def test_a_status_before_its_order_keeps_the_newer_status() -> None:
    state = fold(status("O1", "shipped", 5_000), placed("O1", 1_000))
    [order] = state.recent_orders
    assert (order.status, order.status_at_ms, order.channel, order.placed_at_ms) == ("shipped", 5_000, "web", 1_000)


def test_recent_orders_are_newest_first_and_bounded() -> None:
    state = fold(
        *(placed(f"O{n}", n) for n in range(1, 5)), status("O2", "paid", 9), limits=CustomerLimits(recent_orders=3)
    )
    assert [o.order_id for o in state.recent_orders] == ["O4", "O3", "O2"]


def test_a_merge_unites_orders_keeping_the_newer_status() -> None:
    mine = fold(placed("O1", 1_000), status("O1", "paid", 2_000))
    theirs = fold(placed("O1", 1_000), status("O1", "shipped", 3_000), placed("O2", 1_500))
    merged = merge_customer_states(mine, theirs)
    assert {o.order_id: o.status for o in merged.recent_orders} == {"O1": "shipped", "O2": "placed"}


def test_the_stored_record_round_trips_with_its_journeys_and_orders() -> None:
    state = fold(placed("O1", 1_000))
    journey = JourneyState(cart=CartEpisode("cart:e1", 5, "web", "cart", frozenset({"web"})), cross_journeys=2)
    state = replace(state, journey=journey, typology="cross_channel")
    assert customer_from_json(customer_to_json(state)) == state
    assert "journey" not in state.to_avro_dict()  # internal: not published


def test_a_record_stored_before_journeys_reads_with_empty_ones() -> None:
    stored = json.loads(customer_to_json(fold(placed("O1", 1_000))))
    del stored["recent_orders"], stored["_internal"]["journey"]
    state = customer_from_json(json.dumps(stored))
    assert (state.recent_orders, state.journey) == ((), JourneyState())
