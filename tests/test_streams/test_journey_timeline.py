"""Which events are a customer's journey (pure): the ones the merge core gave them, whatever identifier they came
with, in every delivery order; with a place, an actor, a summary and the step they belong to."""

from __future__ import annotations

import itertools
from typing import Any

from streams.domain.fold import FoldRules, event_item
from streams.domain.identity import Identifier
from streams.journeys.timeline import journey_of, summary_of

RULES = FoldRules()
IDENTITY_FIELDS = ("anonymous_id", "customer_id", "email_hash", "phone_hash", "loyalty_card")
PHONE = "f" * 64


def ev(event_id: str, event_type: str, at: int, payload: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    device = kw.pop("device", None)
    return {
        "event_id": event_id,
        "event_type": event_type,
        "occurred_at_ms": at,
        "received_at_ms": at,
        "channel": kw.pop("channel", "mobile_app"),
        "device": None if device is None else {"device_id": device, "kind": "tablet", "role": "customer_owned"},
        "identities": {name: kw.get(name) for name in IDENTITY_FIELDS},
        "location": kw.get("location"),
        "actor": kw.get("actor"),
        "session_id": kw.get("session_id"),
        "consent": {},
        "source_system": "test",
        "payload": payload or {},
    }


def add(event_id: str, at: int, product: str, **kw: Any) -> dict[str, Any]:
    payload = {"product_id": product, "quantity": 1, "unit_price_cents": 1999, "currency": "EUR"}
    return ev(event_id, "cart_line_added", at, payload, **kw)


def ids(events: list[dict[str, Any]], profile: str, **kw: Any) -> list[str]:
    """The journey's event ids, checked equal in every delivery order."""
    answers = {
        tuple(e.event_id for e in journey_of([event_item(e) for e in order], RULES, profile, **kw))
        for order in itertools.permutations(events)
    }
    assert len(answers) == 1, answers
    return list(answers.pop())


def test_the_anonymous_basket_before_the_login_is_the_customers_the_next_persons_after_the_logout_is_not() -> None:
    tablet = {"anonymous_id": "AT", "device": "family-tablet"}
    events = [
        add("a1", 1_000, "A", **tablet),
        ev("l1", "login", 2_000, {"method": "password"}, customer_id="X", **tablet),
        ev("o1", "logout", 3_000, {}, customer_id="X", **tablet),
        add("n1", 4_000, "B", **tablet),
    ]
    assert ids(events, "customer:X") == ["o1", "l1", "a1"]
    assert ids(events, "anonymous:AT") == ["n1"]


def test_an_sms_to_a_phone_number_joins_the_journey_once_the_number_is_the_customers() -> None:
    events = [
        ev(
            "s1",
            "campaign_touched",
            1_000,
            {"campaign_id": "K", "action": "sms_clicked"},
            channel="sms",
            phone_hash=PHONE,
        ),
        ev("w1", "login", 2_000, {"method": "password"}, channel="web", customer_id="C1", phone_hash=PHONE),
    ]
    assert ids(events, "customer:C1") == ["w1", "s1"]


def test_an_unlinked_identifier_takes_its_events_out_of_the_journey() -> None:
    events = [
        add("a1", 1_000, "A", anonymous_id="P", email_hash="e" * 64),
        ev("l1", "login", 2_000, {"method": "password"}, channel="web", customer_id="C1", email_hash="e" * 64),
    ]
    assert ids(events, "customer:C1") == ["l1", "a1"]
    unlinked = frozenset({Identifier("email_hash", "e" * 64)})
    assert ids(events, "customer:C1", unlinked=unlinked) == ["l1"]


def test_erasure_empties_the_journey_even_of_late_events() -> None:
    events = [
        add("a1", 1_000, "A", customer_id="C1"),
        ev("x1", "erasure_requested", 2_000, {"request_id": "R"}, customer_id="C1"),
        add("a2", 3_000, "B", customer_id="C1"),
    ]
    assert ids(events, "customer:C1") == ["a2"]


def test_each_entry_has_its_place_actor_summary_and_step() -> None:
    store = {"location": {"store_id": "S1", "site": None}, "actor": {"actor_id": "E7", "role": "employee"}}
    events = [
        add("a1", 1_000, "A", channel="tablet", customer_id="C1", session_id="s-9", **store),
        add("a2", 1_500, "B", channel="web", customer_id="C1"),
        ev(
            "o1",
            "order_placed",
            2_000,
            {
                "order_id": "O1",
                "lines": [],
                "total_cents": 3998,
                "currency": "EUR",
                "fulfilment": "click_and_collect",
                "collect_store_id": "S1",
                "coupon_codes": ["SPRING10"],
            },
            channel="web",
            customer_id="C1",
        ),
        add("a3", 3_000, "C", channel="web", customer_id="C1"),
        ev(
            "c1",
            "order_collected",
            4_000,
            {"order_id": "O1", "store_id": "S1"},
            channel="store",
            customer_id="C1",
            **store,
        ),
    ]
    entries = journey_of([event_item(e) for e in events], RULES, "customer:C1")
    by_id = {e.event_id: e for e in entries}
    first = by_id["a1"]
    assert (first.channel, first.device_kind, first.store_id, first.actor_id, first.actor_role) == (
        "tablet",
        None,
        "S1",
        "E7",
        "employee",
    )
    assert first.summary == "added 1 x A (19.99 EUR each)"
    assert (first.session_id, first.episode) == ("s-9", "cart:a1")
    assert by_id["a2"].episode == by_id["o1"].episode == "cart:a1"  # the order closes the episode it belongs to
    assert by_id["a3"].episode == "cart:a3"  # a new one
    assert by_id["o1"].summary == "order O1 placed: 39.98 EUR, click_and_collect at S1, codes SPRING10"
    assert (by_id["c1"].episode, by_id["c1"].summary) == ("order:O1", "order O1 collected at S1")
    assert [e.event_id for e in entries] == ["c1", "a3", "o1", "a2", "a1"]


def test_free_text_stays_out_of_summaries() -> None:
    notes = summary_of(
        "contact_ended", {"contact_id": "K1", "medium": "call", "outcome": "resolved", "notes": "secret"}
    )
    feedback = summary_of("feedback_given", {"kind": "review", "text": "secret", "rating": 4})
    assert "secret" not in notes + feedback
    assert summary_of("brand_new_type", {}) == "brand new type"
