"""Journeys of one profile (S6, S7, attribution memory): episodes, due checks, consent, typology, merges.

A small driver folds events the way the state stage does (cart first, then the journey with the cart before
and after), so the tests read as journeys.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.domain.attribution import AttributionRules
from streams.domain.cart import Cart, apply_cart_event
from streams.domain.errors import DomainError
from streams.domain.journey import (
    ABANDONED_CART,
    ATTRIBUTION_EXPIRY,
    QUOTE_FOLLOW_UP,
    Due,
    JourneyRules,
    JourneyState,
    JourneyStep,
    channel_consent,
    journey_from_dict,
    journey_to_dict,
    merge_journeys,
    on_due,
    on_event,
    pending_dues,
    settle,
)
from streams.domain.typology import classify

RULES = JourneyRules(cart_quiet_ms=1_000, quote_quiet_ms=2_000, max_late_ms=10_000)
DAY = 24 * 3600 * 1000


def ev(
    event_type: str, payload: dict[str, Any], at: int, channel: str = "web", eid: str | None = None
) -> dict[str, Any]:
    return {
        "event_id": eid or f"{event_type}-{at}-{channel}",
        "event_type": event_type,
        "occurred_at_ms": at,
        "channel": channel,
        "payload": payload,
    }


def add(product: str, at: int, channel: str = "web") -> dict[str, Any]:
    return ev(
        "cart_line_added",
        {"product_id": product, "quantity": 1, "unit_price_cents": 100, "currency": "EUR"},
        at,
        channel,
    )


def order(at: int, channel: str = "web", **payload: Any) -> dict[str, Any]:
    return ev(
        "order_placed", {"order_id": f"O{at}", "fulfilment": "delivery", "coupon_codes": [], **payload}, at, channel
    )


def quote(kind: str, at: int, step: str | None = None, channel: str = "web", **fields: str) -> dict[str, Any]:
    return ev(kind, {"quote_id": "Q1", "product": "home_insurance", "step": step, "fields": fields}, at, channel)


def touch(channel: str, action: str, at: int, code: str | None = None) -> dict[str, Any]:
    payload = {"campaign_id": "K", "action": action, "message_id": f"m{at}", "promo_code": code, "url": None}
    return ev("campaign_touched", payload, at, channel)


class Profile:
    """A profile's cart and journey, folded event by event like the state stage does."""

    def __init__(self, key: str = "customer:C1", rules: JourneyRules = RULES) -> None:
        self.key, self.rules = key, rules
        self.cart = Cart(cart_key=key)
        self.journey = JourneyState()
        self.steps: list[JourneyStep] = []

    @property
    def identified(self) -> bool:
        return self.key.startswith("customer:")

    def apply(self, *events: dict[str, Any]) -> Profile:
        for event in events:
            before = self.cart
            self.cart = apply_cart_event(before, event)
            step = on_event(self.journey, event, before, self.cart, identified=self.identified, rules=self.rules)
            self.journey = step.journey
            self.steps.append(step)
        return self

    def due(self, kind: str, episode: str, due_ms: int, fired_at: int | None = None, **consent: bool) -> JourneyStep:
        check = Due(kind, episode, due_ms, due_ms if fired_at is None else fired_at)
        step = on_due(
            self.journey, check, self.cart, consent, profile_key=self.key, identified=self.identified, rules=self.rules
        )
        self.journey = step.journey
        return step

    def dues(self) -> dict[tuple[str, str], int]:
        return pending_dues(self.journey, identified=self.identified, rules=self.rules)


# --------------------------------------------------------------------------------------------------------
# Abandoned carts


def test_a_cart_episode_is_due_a_quiet_period_after_its_latest_activity() -> None:
    profile = Profile().apply(add("A", 1_000), add("B", 1_500, "mobile_app"))
    assert profile.dues() == {(ABANDONED_CART, "cart:cart_line_added-1000-web"): 2_500}
    episode = profile.journey.cart
    assert episode is not None
    assert (episode.last_channel, episode.last_step) == ("mobile_app", "cart")
    assert episode.channels == {"web", "mobile_app"}
    profile.apply(ev("checkout_started", {"cart_value_cents": None}, 1_800))
    assert profile.dues() == {(ABANDONED_CART, "cart:cart_line_added-1000-web"): 2_800}
    assert profile.journey.cart is not None and profile.journey.cart.last_step == "checkout"


def test_a_due_cart_fires_once_to_the_preferred_consented_channel() -> None:
    profile = Profile().apply(add("A", 1_000))
    [(kind, episode)] = profile.dues()
    assert profile.due(kind, episode, 1_999, marketing_email=True).note == "rescheduled by later activity"
    step = profile.due(kind, episode, 2_000, marketing=True)
    assert step.follow_up is not None
    assert step.follow_up.action_channel == "email"  # first of the preferred channels the customer allows
    assert step.follow_up.trigger_id == f"customer:C1/abandoned_cart/{episode}"
    assert [line.product_id for line in step.follow_up.cart_lines] == ["A"]
    assert step.follow_up.quiet_since_ms == 1_000
    assert profile.dues() == {}
    assert profile.due(kind, episode, 2_000, marketing=True).note == "already fired"


def test_new_activity_after_the_timer_claimed_the_check_moves_it() -> None:
    profile = Profile().apply(add("A", 1_000))
    [(kind, episode)] = profile.dues()
    profile.apply(add("B", 1_900))  # arrives after the claim at 2_000 was sent
    assert profile.due(kind, episode, 2_000, marketing=True).note == "rescheduled by later activity"
    assert profile.due(kind, episode, 2_900, marketing=True).follow_up is not None


@pytest.mark.parametrize(
    ("consent", "channel"),
    [
        ({}, None),  # unknown is not consent: reminders are marketing
        ({"marketing_sms": True}, "sms"),
        ({"marketing": True, "marketing_email": False}, "sms"),
        ({"marketing:email": True, "marketing_email": False}, None),  # specific choices disagree: refusal wins
        ({"marketing": False, "marketing:sms": True}, "sms"),
    ],
)
def test_cart_follow_ups_go_only_where_consent_allows(consent: dict[str, bool], channel: str | None) -> None:
    profile = Profile().apply(add("A", 1_000))
    [(kind, episode)] = profile.dues()
    step = profile.due(kind, episode, 2_000, **consent)
    if channel is None:
        assert step.follow_up is None and step.suppressed == (("no_consent", episode),)
    else:
        assert step.follow_up is not None and step.follow_up.action_channel == channel
    assert profile.dues() == {}  # spent either way: no second attempt in this episode


def test_an_order_closes_the_episode_and_a_new_cart_opens_another() -> None:
    profile = Profile().apply(add("A", 1_000), order(1_200))
    assert profile.dues() == {} and profile.journey.cart is None
    profile.apply(add("B", 5_000))
    assert profile.dues() == {(ABANDONED_CART, "cart:cart_line_added-5000-web"): 6_000}


def test_a_check_long_past_its_due_time_is_suppressed_as_stale() -> None:
    profile = Profile().apply(add("A", 1_000))
    [(kind, episode)] = profile.dues()
    step = profile.due(kind, episode, 2_000, fired_at=2_000 + 10_001, marketing=True)
    assert step.follow_up is None and step.suppressed == (("stale", episode),)


def test_journey_rules_are_checked() -> None:
    with pytest.raises(DomainError, match="cart_channels"):
        JourneyRules(cart_channels=("web",))
    with pytest.raises(DomainError, match="cart_quiet_ms"):
        JourneyRules(cart_quiet_ms=0)


# --------------------------------------------------------------------------------------------------------
# Quotes


def test_a_quote_follow_up_resumes_where_the_prospect_stopped() -> None:
    profile = Profile().apply(
        quote("quote_started", 1_000, "property", rooms="4", postcode="N1"),
        quote("quote_updated", 3_000, "cover", "mobile_app", rooms="5"),
        quote("quote_updated", 2_000, "late", cover="full", rooms="3"),  # late: fills gaps only
    )
    assert profile.dues() == {(QUOTE_FOLLOW_UP, "quote:Q1"): 5_000}
    step = profile.due(QUOTE_FOLLOW_UP, "quote:Q1", 5_000)
    assert step.follow_up is not None
    follow_up = step.follow_up
    assert (follow_up.action_channel, follow_up.last_step, follow_up.last_channel) == (
        "call_centre",
        "cover",
        "mobile_app",
    )
    assert dict(follow_up.quote_fields) == {"rooms": "5", "postcode": "N1", "cover": "full"}
    assert (follow_up.quote_id, follow_up.quote_product) == ("Q1", "home_insurance")
    profile.apply(quote("quote_updated", 9_000, "price"))
    assert profile.dues() == {}  # fired once for this quote, however it goes on


def test_a_submitted_quote_cancels_and_an_explicit_refusal_suppresses() -> None:
    submitted = Profile().apply(quote("quote_started", 1_000), ev("quote_submitted", {"quote_id": "Q1"}, 1_500))
    assert submitted.dues() == {}
    refused = Profile().apply(quote("quote_started", 1_000))
    step = refused.due(QUOTE_FOLLOW_UP, "quote:Q1", 3_000, **{"marketing:call_centre": False})
    assert step.suppressed == (("no_consent", "quote:Q1"),)
    # With nothing said about calls, the prospect who asked for a quote is called back.
    assert Profile().apply(quote("quote_started", 1_000)).due(QUOTE_FOLLOW_UP, "quote:Q1", 3_000).follow_up


# --------------------------------------------------------------------------------------------------------
# Cross-channel journeys and typology (S6)


def test_journeys_that_span_channels_are_counted() -> None:
    profile = Profile().apply(add("A", 1_000, "tablet"), order(2_000, "web"))
    assert profile.steps[-1].cross_journey and profile.journey.cross_journeys == 1
    same = Profile().apply(add("A", 1_000), order(2_000, "web"))
    assert same.journey.cross_journeys == 0
    collected = Profile().apply(
        order(1_000, "web", fulfilment="click_and_collect", order_id="CC1"),
        ev("order_collected", {"order_id": "CC1", "store_id": "S1"}, 5_000, "store"),
        ev("order_collected", {"order_id": "CC1", "store_id": "S1"}, 6_000, "store"),  # counted once
    )
    assert collected.journey.cross_journeys == 1
    submitted = Profile().apply(
        quote("quote_started", 1_000), ev("quote_submitted", {"quote_id": "Q1"}, 2_000, "call_centre")
    )
    assert submitted.journey.cross_journeys == 1


@pytest.mark.parametrize(
    ("channels", "cross", "expected"),
    [
        ((), 0, "unknown"),
        (("web",), 0, "mono_channel"),
        (("web", "store"), 0, "multi_channel"),
        (("web",), 1, "cross_channel"),
    ],
)
def test_classify(channels: tuple[str, ...], cross: int, expected: str) -> None:
    assert classify(channels, cross) == expected


# --------------------------------------------------------------------------------------------------------
# Attribution memory


def test_an_identified_customer_counts_exposures_and_attributes_at_once() -> None:
    profile = Profile().apply(touch("sms", "sms_sent", 1_000, code="SMS10"), touch("email", "email_sent", 2_000))
    assert profile.steps[0].exposed_channels == {"sms"} and profile.steps[1].exposed_channels == {"email"}
    profile.apply(order(3_000, "web", coupon_codes=["sms10"]))
    [attribution] = profile.steps[-1].attributions
    assert [c.action_channel for c in attribution.credits] == ["sms"]
    assert profile.journey.pending == ()


def test_a_coupon_redeemed_before_its_order_event_counts_for_the_order() -> None:
    profile = Profile().apply(
        touch("sms", "sms_sent", 1_000, code="VIP"),
        touch("email", "email_sent", 2_000),
        ev("coupon_redeemed", {"code": "vip", "order_id": "O3000"}, 2_500),
        order(3_000, "web"),
    )
    assert [c.action_channel for c in profile.steps[-1].attributions[0].credits] == ["sms"]
    assert dict(profile.journey.coupons) == {}


def test_an_unknown_profile_keeps_items_pending_and_drops_them_after_the_window() -> None:
    rules = replace(RULES, attribution=AttributionRules(window_ms=10_000))
    lone = Profile("phone:abc", rules).apply(touch("sms", "sms_sent", 1_000))
    assert lone.steps[0].exposed_channels == frozenset()
    assert lone.dues() == {(ATTRIBUTION_EXPIRY, "pending"): 11_000}
    step = lone.due(ATTRIBUTION_EXPIRY, "pending", 11_000)
    assert step.dropped == (("exposure_unidentified_after_window", "campaign_touched-1000-sms"),)
    assert lone.dues() == {}

    # A touch a pending conversion can use waits for that conversion's window, then both go.
    buyer = Profile("phone:abc", rules).apply(touch("sms", "sms_sent", 1_000), order(4_000, "store"))
    assert len(buyer.journey.pending) == 1
    assert buyer.dues() == {(ATTRIBUTION_EXPIRY, "pending"): 14_000}
    step = buyer.due(ATTRIBUTION_EXPIRY, "pending", 14_000)
    assert sorted(step.dropped) == [
        ("conversion_unidentified_after_window", "order_placed-4000-store"),
        ("exposure_unidentified_after_window", "campaign_touched-1000-sms"),
    ]
    assert buyer.dues() == {} and buyer.journey == replace(JourneyState(), clock_ms=14_000)


def test_once_merged_into_a_customer_pending_items_are_counted_and_attributed() -> None:
    unknown = Profile("phone:abc").apply(touch("sms", "sms_sent", 1_000), order(4_000, "web"))
    customer = Profile().apply(touch("email", "email_sent", 500))
    merged = merge_journeys(customer.journey, unknown.journey)
    step = settle(merged, Cart(cart_key="customer:C1"), identified=True, origin_id="t1", rules=RULES)
    assert step.exposed_channels == {"sms"}  # the e-mail was counted already
    [attribution] = step.attributions
    assert [c.action_channel for c in attribution.credits] == ["sms"]
    assert step.journey.pending == () and all(e.counted for e in step.journey.exposures)


def test_a_merge_keeps_the_surviving_cart_episode_and_unites_its_channels() -> None:
    phone = Profile("anonymous:A1").apply(add("A", 1_000, "mobile_app"))
    tablet = Profile().apply(add("B", 2_000, "tablet"))
    merged = merge_journeys(tablet.journey, phone.journey)
    assert merged.cart is not None and tablet.journey.cart is not None
    assert merged.cart.episode_id == tablet.journey.cart.episode_id
    assert merged.cart.channels == {"mobile_app", "tablet"}
    adopted = merge_journeys(JourneyState(), phone.journey)
    assert adopted.cart == phone.journey.cart


# --------------------------------------------------------------------------------------------------------
# Properties: merges and the stored form

CHANNELS = ["web", "tablet", "mobile_app", "store"]
any_event = st.one_of(
    st.builds(add, st.sampled_from(["A", "B"]), st.integers(0, 40 * DAY), st.sampled_from(CHANNELS)),
    st.builds(order, st.integers(0, 40 * DAY), st.sampled_from(CHANNELS)),
    st.builds(touch, st.sampled_from(["sms", "email", "postal"]), st.just("sms_sent"), st.integers(0, 40 * DAY)),
    st.builds(
        lambda at, ch: quote("quote_started", at, channel=ch), st.integers(0, 40 * DAY), st.sampled_from(CHANNELS)
    ),
)


@settings(max_examples=200, deadline=None)
@given(events=st.lists(any_event, max_size=12))
def test_the_stored_form_round_trips(events: list[dict[str, Any]]) -> None:
    journey = Profile("anonymous:A1").apply(*events).journey
    assert journey_from_dict(journey_to_dict(journey)) == journey
    assert journey_from_dict(None) == JourneyState()


@settings(max_examples=300, deadline=None)
@given(
    touches=st.lists(
        st.tuples(st.sampled_from(["sms", "email", "postal"]), st.integers(0, 40 * DAY), st.booleans()), max_size=8
    ),
    delays=st.lists(st.integers(0, 40 * DAY), max_size=4),
)
def test_an_unknown_profile_attributes_or_drops_each_conversion_once_as_the_customer_would(
    touches: list[tuple[str, int, bool]], delays: list[int]
) -> None:
    # Touches seen by the customer or by an unknown profile (True) that also sees the conversions, later than
    # every touch and in time order; then the customer absorbs the unknown profile. Each conversion is either
    # dropped (the window passed before the identity resolved) or attributed once, with the credits the
    # customer would have given had it seen everything itself.
    exposure_events = [touch(channel, "sms_sent", at) for channel, at, _ in touches]
    latest = max((at for _, at, _ in touches), default=0)
    conversions = [order(latest + delay, "web") for delay in sorted(set(delays))]
    reference = Profile().apply(*exposure_events, *conversions)
    expected = {a.conversion.event_id: a.credits for s in reference.steps for a in s.attributions}
    mine, theirs = Profile(), Profile("phone:abc")
    for event, (_, _, unknown) in zip(exposure_events, touches, strict=True):
        (theirs if unknown else mine).apply(event)
    theirs.apply(*conversions)
    final = settle(merge_journeys(mine.journey, theirs.journey), mine.cart, identified=True, origin_id="t", rules=RULES)

    dropped = [event_id for s in theirs.steps for reason, event_id in s.dropped if reason.startswith("conversion")]
    attributed = {a.conversion.event_id: a.credits for a in final.attributions}
    assert sorted([*dropped, *attributed]) == sorted(e["event_id"] for e in conversions)
    for event_id, credits in attributed.items():
        assert credits == expected[event_id]
    assert final.journey.pending == ()


@settings(max_examples=200, deadline=None)
@given(a=st.lists(any_event, max_size=8), b=st.lists(any_event, max_size=8))
def test_merging_sums_cross_journeys_and_keeps_one_cart_episode(
    a: list[dict[str, Any]], b: list[dict[str, Any]]
) -> None:
    mine, theirs = Profile().apply(*a).journey, Profile("anonymous:A1").apply(*b).journey
    merged = merge_journeys(mine, theirs)
    assert merged.cross_journeys == mine.cross_journeys + theirs.cross_journeys
    assert merged.cart == (None if mine.cart is None and theirs.cart is None else merged.cart)
    if mine.cart is not None:
        assert merged.cart is not None and merged.cart.episode_id == mine.cart.episode_id
    assert {e.touch_id for e in merged.exposures} == {e.touch_id for e in (*mine.exposures, *theirs.exposures)}
    assert merge_journeys(mine, JourneyState()).exposures == mine.exposures
    assert channel_consent({}, "sms") is None
