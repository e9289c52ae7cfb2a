"""The customer record: each event type it reads, ordering rules, bounds, erasure, merging and the Avro shape."""

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
    ChannelUsage,
    CustomerLimits,
    CustomerState,
    DomainError,
    Identifier,
    Verbatim,
    apply_customer_event,
    merge_customer_states,
)

AVRO_DIR = Path(__file__).resolve().parents[2] / "schemas" / "avro"
IDENTITY_FIELDS = ("anonymous_id", "customer_id", "email_hash", "phone_hash", "loyalty_card")
START = CustomerState("customer:C1")


def event(
    event_type: str,
    payload: dict[str, Any] | None = None,
    *,
    at: int = 1_000,
    channel: str = "web",
    device_id: str | None = None,
    role: str = "customer_owned",
    **identities: str | None,
) -> dict[str, Any]:
    return {
        "event_id": f"e-{at}",
        "event_type": event_type,
        "occurred_at_ms": at,
        "received_at_ms": at + 3,
        "channel": channel,
        "device": None if device_id is None else {"device_id": device_id, "kind": None, "role": role},
        "identities": {name: identities.get(name) for name in IDENTITY_FIELDS},
        "location": None,
        "actor": None,
        "session_id": None,
        "consent": {},
        "source_system": "test",
        "payload": payload or {},
    }


def fold(*events: dict[str, Any], state: CustomerState = START, limits: CustomerLimits | None = None) -> CustomerState:
    for ev in events:
        state = apply_customer_event(state, ev) if limits is None else apply_customer_event(state, ev, limits)
    return state


def search(query: str, at: int = 1_000, **kw: Any) -> dict[str, Any]:
    return event("search_performed", {"query": query, "results_count": None}, at=at, **kw)


def viewed(product_id: str, at: int = 1_000, **kw: Any) -> dict[str, Any]:
    return event("product_viewed", {"product_id": product_id, "category": None, "unit_price_cents": None}, at=at, **kw)


def consent(purpose: str, granted: bool, at: int, channel: str | None = None) -> dict[str, Any]:
    return event("consent_changed", {"purpose": purpose, "channel": channel, "granted": granted}, at=at)


def touched(action: str, at: int = 1_000, channel: str = "email") -> dict[str, Any]:
    payload = {"campaign_id": "K1", "action": action, "message_id": None, "promo_code": None, "url": None}
    return event("campaign_touched", payload, at=at, channel=channel)


def feedback(text: str, at: int, channel: str = "call_centre") -> dict[str, Any]:
    payload = {"feedback_id": f"F{at}", "kind": "call_note", "text": text, "rating": None}
    return event("feedback_given", payload, at=at, channel=channel)


def returned(return_id: str, at: int = 1_000) -> dict[str, Any]:
    payload = {"return_id": return_id, "order_id": None, "product_id": "P1", "quantity": 1, "reason": None}
    return event("product_returned", payload, at=at, channel="store")


# --------------------------------------------------------------------------------------------------------
# Identities


def test_identities_seen_strongest_first_most_recent_first_and_bounded() -> None:
    limits = CustomerLimits(identities=4)
    state = fold(
        event("page_viewed", anonymous_id="A1", device_id="D1"),
        event("page_viewed", anonymous_id="A2", email_hash="null"),  # placeholder: not an identity
        event("login", customer_id="C1", anonymous_id="A3", device_id="TILL", role="staff_operated"),
        limits=limits,
    )
    assert state.identities == (
        Identifier("customer_id", "C1"),
        Identifier("anonymous_id", "A2"),
        Identifier("anonymous_id", "A1"),
        Identifier("device_id", "D1"),
    )  # neither the staff till's device id nor the anonymous id its app carries is the shopper's


# --------------------------------------------------------------------------------------------------------
# Channels, last interaction, freshness


def test_channel_usage_counts_and_last_seen_never_moves_back() -> None:
    state = fold(
        search("a", 5_000, channel="web"), search("b", 3_000, channel="web"), viewed("P1", 4_000, channel="tablet")
    )
    assert state.channels == {"web": ChannelUsage(2, 5_000), "tablet": ChannelUsage(1, 4_000)}
    assert (state.last_interaction_ms, state.last_channel) == (5_000, "web")
    assert state.freshness == {"web": 5_000, "tablet": 4_000}
    assert state.updated_at_ms == 5_000


@pytest.mark.parametrize(
    "ev",
    [
        touched("email_sent"),
        touched("sms_delivered", channel="sms"),
        touched("catalogue_mailed", channel="postal"),
        event("order_status_changed", {"order_id": "O1", "status": "shipped", "previous_status": None}),
    ],
    ids=["email_sent", "sms_delivered", "catalogue_mailed", "order_status_changed"],
)
def test_things_done_to_the_customer_are_not_interactions(ev: dict[str, Any]) -> None:
    state = apply_customer_event(START, ev)
    assert state.channels == {}
    assert (state.last_interaction_ms, state.last_channel) == (None, None)
    assert state.freshness == {ev["channel"]: 1_000}  # but the channel's data is fresher


@pytest.mark.parametrize("action", ["email_clicked", "email_opened", "sms_inbound", "push_opened", "agent_call"])
def test_customer_responses_are_interactions(action: str) -> None:
    state = apply_customer_event(START, touched(action))
    assert state.channels == {"email": ChannelUsage(1, 1_000)}
    assert state.last_channel == "email"


def test_older_event_never_moves_freshness_or_last_interaction_back() -> None:
    state = fold(
        viewed("P1", 9_000, channel="store"), viewed("P2", 2_000, channel="store"), viewed("P3", 1_000, channel="web")
    )
    assert state.freshness == {"store": 9_000, "web": 1_000}
    assert (state.last_interaction_ms, state.last_channel) == (9_000, "store")
    assert state.recent_products == ("P3", "P2", "P1")  # recent lists follow application order


def test_missing_channel_counts_as_other() -> None:
    ev = {**viewed("P1"), "channel": None}
    assert apply_customer_event(START, ev).freshness == {"other": 1_000}


# --------------------------------------------------------------------------------------------------------
# Recent searches and products


def test_recent_searches_are_most_recent_first_deduplicated_and_bounded() -> None:
    limits = CustomerLimits(recent_searches=3)
    state = fold(
        search("boots"),
        search("red shoes"),
        search("  "),  # blank: ignored
        search("scarf"),
        search("Red Shoes"),  # same search, latest spelling kept
        search("hat"),
        limits=limits,
    )
    assert state.recent_searches == ("hat", "Red Shoes", "scarf")


def test_recent_products_default_bound_is_ten() -> None:
    state = fold(*(viewed(f"P{n}") for n in range(12)), viewed("P5"))
    assert state.recent_products == ("P5", "P11", "P10", "P9", "P8", "P7", "P6", "P4", "P3", "P2")


# --------------------------------------------------------------------------------------------------------
# Consent

CONSENT_CASES: dict[str, tuple[list[dict[str, Any]], dict[str, bool]]] = {
    "granted": ([consent("marketing_email", True, 1_000)], {"marketing_email": True}),
    "newer refusal wins": (
        [consent("marketing_email", True, 1_000), consent("marketing_email", False, 2_000)],
        {"marketing_email": False},
    ),
    "older event does not override": (
        [consent("marketing_email", False, 2_000), consent("marketing_email", True, 1_000)],
        {"marketing_email": False},
    ),
    "tie: refusal wins whatever the order": (
        [consent("marketing_email", False, 1_000), consent("marketing_email", True, 1_000)],
        {"marketing_email": False},
    ),
    "tie: refusal tightens a grant": (
        [consent("marketing_email", True, 1_000), consent("marketing_email", False, 1_000)],
        {"marketing_email": False},
    ),
    "per channel": (
        [consent("marketing", True, 1_000), consent("marketing", False, 2_000, channel="sms")],
        {"marketing": True, "marketing:sms": False},
    ),
}


@pytest.mark.parametrize(("events", "expected"), CONSENT_CASES.values(), ids=CONSENT_CASES.keys())
def test_consent(events: list[dict[str, Any]], expected: dict[str, bool]) -> None:
    assert fold(*events).consent == expected


def test_the_envelope_consent_map_updates_the_record_newest_first() -> None:
    granted = apply_customer_event(START, {**viewed("P1", at=1_000), "consent": {"marketing": True}})
    assert granted.consent == {"marketing": True}
    revoked = apply_customer_event(granted, consent("marketing", False, at=2_000))
    stale = apply_customer_event(revoked, {**viewed("P2", at=1_500), "consent": {"marketing": True}})
    assert stale.consent == {"marketing": False}  # an older snapshot never re-grants a newer refusal


def test_call_notes_become_the_last_verbatim() -> None:
    payload = {"contact_id": "CALL-5", "medium": "call", "outcome": "resolved", "duration_seconds": 3, "notes": "late"}
    state = apply_customer_event(START, event("contact_ended", payload, at=5_000, channel="call_centre"))
    assert state.last_verbatim is not None
    assert (state.last_verbatim.text, state.last_verbatim.channel) == ("late", "call_centre")


# --------------------------------------------------------------------------------------------------------
# Experience signals (S8)


def test_open_tickets() -> None:
    state = fold(
        event("ticket_opened", {"ticket_id": "T1", "subject": None}),
        event("ticket_opened", {"ticket_id": "T2", "subject": "late"}),
        event("ticket_closed", {"ticket_id": "T1", "resolution": None}),
        event("ticket_closed", {"ticket_id": "T9", "resolution": None}),
    )
    assert state.open_tickets == {"T2"}


def test_recent_returns_bounded() -> None:
    state = fold(*(returned(f"R{n}") for n in range(4)), limits=CustomerLimits(recent_returns=2))
    assert state.recent_returns == ("R3", "R2")


def test_last_verbatim_is_the_newest_with_its_channel() -> None:
    state = fold(feedback("great", 2_000, "web"), feedback("older note", 1_000), feedback("same time, later", 2_000))
    assert state.last_verbatim == Verbatim("same time, later", "call_centre", 2_000)


def test_typology_is_a_placeholder() -> None:
    assert fold(viewed("P1")).typology == "unknown"


@pytest.mark.parametrize(
    "event_type",
    ["login", "logout", "page_viewed", "store_visited", "quote_started", "loyalty_card_used", "coupon_redeemed"],
)
def test_other_events_only_touch_identity_channels_and_freshness(event_type: str) -> None:
    state = apply_customer_event(START, event(event_type, {}, at=7_000, channel="store"))
    assert state == CustomerState(
        "customer:C1",
        channels={"store": ChannelUsage(1, 7_000)},
        last_interaction_ms=7_000,
        last_channel="store",
        freshness={"store": 7_000},
        updated_at_ms=7_000,
    )


# --------------------------------------------------------------------------------------------------------
# Erasure (S10)


def test_erasure_empties_the_record_and_ignores_older_late_events() -> None:
    state = fold(
        search("boots", 1_000), feedback("call me", 2_000), event("erasure_requested", {"request_id": "X"}, at=3_000)
    )
    assert state == CustomerState("customer:C1", updated_at_ms=3_000, erased_at_ms=3_000)
    late = apply_customer_event(state, search("boots", 2_500))
    assert late is state
    after = apply_customer_event(state, search("hat", 4_000))
    assert after.recent_searches == ("hat",)


# --------------------------------------------------------------------------------------------------------
# Merging an absorbed profile's record (S1: same searches and products on the next device)


def test_merge_customer_states() -> None:
    customer = fold(
        search("boots", 1_000, channel="web"),
        consent("marketing", True, 1_000),
        event("ticket_opened", {"ticket_id": "T1", "subject": None}, at=1_000),
        state=CustomerState("customer:C1"),
    )
    anonymous = fold(
        search("hat", 2_000, channel="mobile_app", anonymous_id="A1"),
        search("Boots", 2_500, channel="mobile_app"),
        viewed("P1", 2_600, channel="mobile_app"),
        consent("marketing", False, 2_000),
        feedback("nice app", 2_700, channel="mobile_app"),
        state=CustomerState("anonymous:A1"),
    )
    merged = merge_customer_states(customer, anonymous)
    assert merged.key == "customer:C1"
    assert merged.recent_searches == ("Boots", "hat")  # the anonymous record is newer: its items first
    assert merged.recent_products == ("P1",)
    assert merged.consent == {"marketing": False}
    assert merged.open_tickets == {"T1"}
    assert merged.identities == (Identifier("anonymous_id", "A1"),)
    # The consent builder uses the web channel: 3 web events on the customer's side, 1 on the anonymous side.
    assert merged.channels == {"web": ChannelUsage(4, 2_000), "mobile_app": ChannelUsage(4, 2_700)}
    assert merged.freshness == {"web": 2_000, "mobile_app": 2_700}
    assert (merged.last_interaction_ms, merged.last_channel) == (2_700, "mobile_app")
    assert merged.last_verbatim == Verbatim("nice app", "mobile_app", 2_700)
    assert merged.updated_at_ms == 2_700
    assert merge_customer_states(customer, CustomerState("anonymous:A9")) == customer


# --------------------------------------------------------------------------------------------------------
# Limits and output shape


def test_limits_must_be_positive() -> None:
    with pytest.raises(DomainError, match="recent_searches must be at least 1"):
        CustomerLimits(recent_searches=0)


def _avro_round_trip(record: dict[str, Any]) -> dict[str, Any]:
    schema = load_schema(str(AVRO_DIR / "omnichannel.output.CustomerState.avsc"))
    assert validate(record, schema, raise_errors=True)
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schema, record)
    buffer.seek(0)
    result: dict[str, Any] = fastavro.schemaless_reader(buffer, schema)  # type: ignore[assignment]
    return result


def test_to_avro_dict_matches_the_output_customer_state_record() -> None:
    state = fold(
        event("login", customer_id="C1", anonymous_id="A1", device_id="D1"),
        search("boots"),
        viewed("P1"),
        consent("marketing", True, 1_000, channel="sms"),
        event("ticket_opened", {"ticket_id": "T1", "subject": None}),
        returned("R1"),
        feedback("thanks", 1_500),
    )
    record = state.to_avro_dict()
    assert _avro_round_trip(record) == record
    assert record["customer_id"] == "C1"
    assert record["identities"][0] == {"type": "customer_id", "value": "C1"}
    assert record["last_verbatim"] == {"text": "thanks", "channel": "call_centre", "at_ms": 1_500}
    assert record["consent"] == {"marketing:sms": True}
    assert record["updated_at_ms"] == max(record["freshness"].values()), "the newest event time, not a clock"


def test_to_avro_dict_of_an_empty_anonymous_profile() -> None:
    record = CustomerState("anonymous:A1").to_avro_dict()
    assert _avro_round_trip(record) == record
    assert record["customer_id"] == "anonymous:A1"  # not identified yet: the profile key stands in


# --------------------------------------------------------------------------------------------------------
# Properties

any_event = st.one_of(
    st.builds(search, st.sampled_from(["a", "A", "b", "c", "d", " "]), st.integers(0, 5_000)),
    st.builds(viewed, st.sampled_from(["P1", "P2", "P3", "P4"]), st.integers(0, 5_000)),
    st.builds(
        consent, st.sampled_from(["email", "sms"]), st.booleans(), st.integers(0, 50), st.sampled_from([None, "web"])
    ),
    st.builds(returned, st.sampled_from(["R1", "R2", "R3", "R4"]), st.integers(0, 5_000)),
    st.builds(feedback, st.sampled_from(["x", "y"]), st.integers(0, 5_000)),
    st.builds(touched, st.sampled_from(["email_sent", "email_clicked"]), st.integers(0, 5_000)),
)
channel_strategy = st.sampled_from(["web", "store", "tablet"])


@settings(max_examples=200, deadline=None)
@given(events=st.lists(st.tuples(any_event, channel_strategy), max_size=20), data=st.data())
def test_time_ordered_fields_do_not_depend_on_arrival_order(events: list[tuple[Any, str]], data: st.DataObject) -> None:
    stamped = [{**ev, "channel": ev["channel"] if ev["event_type"] == "campaign_touched" else ch} for ev, ch in events]
    shuffled = data.draw(st.permutations(stamped))
    one, other = fold(*stamped), fold(*shuffled)
    assert one.consent == other.consent
    assert one.freshness == other.freshness
    assert one.channels == other.channels
    assert one.last_interaction_ms == other.last_interaction_ms
    assert one.updated_at_ms == other.updated_at_ms
    assert (one.last_verbatim is None) == (other.last_verbatim is None)
    if one.last_verbatim and other.last_verbatim:
        assert one.last_verbatim.at_ms == other.last_verbatim.at_ms


@settings(max_examples=200, deadline=None)
@given(events=st.lists(any_event, max_size=30), bound=st.integers(1, 4))
def test_recent_lists_are_bounded_and_unique(events: list[dict[str, Any]], bound: int) -> None:
    limits = CustomerLimits(recent_searches=bound, recent_products=bound, recent_returns=bound)
    state = fold(*events, limits=limits)
    for items, key in (
        (state.recent_searches, str.casefold),
        (state.recent_products, str),
        (state.recent_returns, str),
    ):
        assert len(items) <= bound
        assert len({key(i) for i in items}) == len(items)
    products = [ev["payload"]["product_id"] for ev in events if ev["event_type"] == "product_viewed"]
    if products:
        assert state.recent_products[0] == products[-1]
