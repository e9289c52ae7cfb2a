"""Open interaction hand-over: the record says what the customer started and has not finished, where and with
whom, so the next person serving them (a call-centre agent, another seller) picks up where another stopped."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import load_schema

from streams.domain.customer import (
    CustomerLimits,
    CustomerState,
    OpenInteraction,
    apply_customer_event,
    merge_customer_states,
)
from streams.domain.fold import FoldRules, event_item, fold
from streams.state_json import customer_from_json, customer_to_json

AVRO_DIR = Path(__file__).resolve().parents[2] / "schemas" / "avro"
IDENTITY_FIELDS = ("anonymous_id", "customer_id", "email_hash", "phone_hash", "loyalty_card")
SELLER = {"actor_id": "E-B", "role": "employee"}
AGENT = {"actor_id": "agent-b2", "role": "agent"}
IN_STORE = {"store_id": "S-C", "site": None}


def ev(
    event_type: str,
    at: int,
    payload: dict[str, Any] | None = None,
    *,
    channel: str = "web",
    actor: dict[str, str] | None = None,
    location: dict[str, Any] | None = None,
    **ids: str,
) -> dict[str, Any]:
    return {
        "event_id": f"e-{at}",
        "event_type": event_type,
        "occurred_at_ms": at,
        "received_at_ms": at + 3,
        "channel": channel,
        "device": None,
        "identities": {name: ids.get(name, "C1" if name == "customer_id" else None) for name in IDENTITY_FIELDS},
        "location": location,
        "actor": actor,
        "session_id": None,
        "consent": {},
        "source_system": "test",
        "payload": payload or {},
    }


def add(at: int, **kw: Any) -> dict[str, Any]:
    payload = {"product_id": "SKU-1", "quantity": 1, "unit_price_cents": 100, "currency": "EUR"}
    return ev("cart_line_added", at, payload, **kw)


def quote(event_type: str, at: int, step: str | None = None, **kw: Any) -> dict[str, Any]:
    return ev(event_type, at, {"quote_id": "Q1", "product": "kitchen_design", "step": step, "fields": {}}, **kw)


def contact(event_type: str, at: int, **kw: Any) -> dict[str, Any]:
    payload = {"contact_id": "CALL-1", "medium": "call", "direction": "inbound", "reason": "kitchen"}
    if event_type == "contact_ended":
        payload = {"contact_id": "CALL-1", "medium": "call", "outcome": "resolved"}
    return ev(event_type, at, payload, **kw)


def order(at: int, **kw: Any) -> dict[str, Any]:
    payload = {"order_id": "O1", "lines": [], "total_cents": 100, "currency": "EUR", "fulfilment": "delivery"}
    return ev("order_placed", at, payload, **kw)


def run(
    *events: dict[str, Any], state: CustomerState | None = None, limits: CustomerLimits | None = None
) -> CustomerState:
    state = state or CustomerState("customer:C1")
    for e in events:
        state = apply_customer_event(state, e, limits or CustomerLimits())
    return state


def test_a_sellers_tablet_cart_in_store_is_in_the_record_with_place_and_seller() -> None:
    state = run(add(1_000, channel="tablet", actor=SELLER, location=IN_STORE))
    assert state.open_interactions == (
        OpenInteraction("cart", None, "tablet", 1_000, 1_000, store_id="S-C", actor_id="E-B", actor_role="employee"),
    )


def test_the_latest_activity_says_where_it_stopped_and_the_first_since_when() -> None:
    state = run(
        quote("quote_started", 1_000, "room", channel="tablet", actor=SELLER, location=IN_STORE),
        quote("quote_updated", 2_000, "layout", channel="call_centre", actor=AGENT),
    )
    (held,) = state.open_interactions
    assert (held.kind, held.ref, held.channel, held.actor_id, held.store_id) == (
        "quote",
        "Q1",
        "call_centre",
        "agent-b2",
        None,
    )
    assert (held.started_at_ms, held.last_at_ms, held.detail) == (1_000, 2_000, "kitchen_design, step layout")


def test_an_agents_own_call_does_not_hide_the_store_cart_and_ending_it_reveals_the_cart_alone() -> None:
    state = run(
        add(1_000, channel="store", actor=SELLER, location=IN_STORE),
        contact("contact_started", 2_000, channel="call_centre", actor=AGENT),
    )
    assert [(i.kind, i.channel, i.actor_id) for i in state.open_interactions] == [
        ("contact", "call_centre", "agent-b2"),
        ("cart", "store", "E-B"),
    ]
    assert state.open_interactions[0].detail == "call, inbound, kitchen"
    ended = run(contact("contact_ended", 3_000, channel="call_centre", actor=AGENT), state=state)
    assert [(i.kind, i.actor_id) for i in ended.open_interactions] == [("cart", "E-B")]


def test_completion_ends_each_kind() -> None:
    opened = run(
        add(1_000),
        quote("quote_started", 1_100),
        ev("ticket_opened", 1_200, {"ticket_id": "T1", "subject": "late delivery"}),
        contact("contact_started", 1_300),
    )
    assert {i.kind for i in opened.open_interactions} == {"cart", "quote", "ticket", "contact"}
    assert next(i for i in opened.open_interactions if i.kind == "ticket").detail == "late delivery"
    done = run(
        order(2_000, channel="store"),
        ev("quote_submitted", 2_100, {"quote_id": "Q1", "product": "kitchen_design"}),
        ev("ticket_closed", 2_200, {"ticket_id": "T1", "resolution": None}),
        contact("contact_ended", 2_300),
        state=opened,
    )
    assert done.open_interactions == ()


def test_another_quote_or_ticket_id_does_not_end_the_open_one() -> None:
    state = run(
        quote("quote_started", 1_000),
        ev("quote_submitted", 2_000, {"quote_id": "Q2", "product": "kitchen_design"}),
        ev("cart_cleared", 2_100, {"reason": None}),
    )
    assert [(i.kind, i.ref) for i in state.open_interactions] == [("quote", "Q1")]


def test_a_removal_from_no_cart_opens_nothing_and_an_id_less_quote_is_not_shown() -> None:
    state = run(ev("cart_line_removed", 1_000, {"product_id": "SKU-1"}), ev("quote_started", 1_100, {}))
    assert state.open_interactions == ()


def test_open_interactions_are_bounded_latest_activity_first() -> None:
    tickets = [ev("ticket_opened", 1_000 + n, {"ticket_id": f"T{n}", "subject": None}) for n in range(4)]
    state = run(*tickets, limits=CustomerLimits(open_interactions=3))
    assert [i.ref for i in state.open_interactions] == ["T3", "T2", "T1"]


def test_erasure_forgets_open_interactions() -> None:
    state = run(add(1_000, actor=SELLER), ev("erasure_requested", 2_000, {"request_id": "X"}))
    assert state.open_interactions == ()


def test_merging_hands_the_anonymous_cart_over_as_one_cart_interaction() -> None:
    customer = run(add(1_000, channel="web"), quote("quote_started", 1_500))
    anonymous = run(add(2_000, channel="tablet", actor=SELLER, location=IN_STORE), state=CustomerState("anonymous:A1"))
    merged = merge_customer_states(customer, anonymous)
    assert [(i.kind, i.channel, i.actor_id, i.started_at_ms) for i in merged.open_interactions] == [
        ("cart", "tablet", "E-B", 1_000),
        ("quote", "web", None, 1_500),
    ]


def test_the_fold_carries_a_store_cart_into_the_customer_who_logs_in_on_the_sellers_tablet() -> None:
    events = [
        add(1_000, channel="tablet", actor=SELLER, location=IN_STORE, customer_id="", anonymous_id="A-9"),
        ev(
            "login",
            2_000,
            {"method": "loyalty_card"},
            channel="tablet",
            actor=SELLER,
            location=IN_STORE,
            customer_id="C9",
            anonymous_id="A-9",
        ),
    ]
    result = fold([event_item(e) for e in events], FoldRules())
    record = result.profiles["customer:C9"].customer
    assert record is not None
    assert [(i.kind, i.store_id, i.actor_id) for i in record.open_interactions] == [("cart", "S-C", "E-B")]


def test_the_record_keeps_open_interactions_through_redis_json_and_avro() -> None:
    state = run(quote("quote_started", 1_000, "room", channel="tablet", actor=SELLER, location=IN_STORE))
    assert customer_from_json(customer_to_json(state)) == state
    schema = load_schema(str(AVRO_DIR / "omnichannel.output.CustomerState.avsc"))
    record = state.to_avro_dict()
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schema, record)
    buffer.seek(0)
    assert fastavro.schemaless_reader(buffer, schema) == record
    assert record["open_interactions"][0]["actor_id"] == "E-B"
