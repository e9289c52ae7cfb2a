"""Channel-mix segments: `fully_connected` and `prefers_human` follow the customer's mix as it changes."""

from __future__ import annotations

from typing import Any

import pytest

from omnichannel.errors import ConfigError
from streams.config import ProcessorConfig
from streams.domain.customer import CustomerLimits, CustomerState, apply_customer_event, merge_customer_states
from streams.domain.errors import DomainError
from streams.domain.segments import SegmentRules, segments_of

IDENTITY_FIELDS = ("anonymous_id", "customer_id", "email_hash", "phone_hash", "loyalty_card")


def ev(channel: str, at: int, event_type: str = "page_viewed") -> dict[str, Any]:
    return {
        "event_id": f"e-{at}",
        "event_type": event_type,
        "occurred_at_ms": at,
        "channel": channel,
        "identities": {name: "C1" if name == "customer_id" else None for name in IDENTITY_FIELDS},
        "payload": {"url": "https://x", "title": None, "referrer": None},
    }


def run(channels: list[str], state: CustomerState | None = None, limits: CustomerLimits | None = None) -> CustomerState:
    state = state or CustomerState("customer:C1")
    start = state.updated_at_ms
    for n, channel in enumerate(channels, 1):
        state = apply_customer_event(state, ev(channel, start + n), limits or CustomerLimits())
    return state


@pytest.mark.parametrize(
    ("mix", "expected"),
    [
        ({}, ()),
        ({"web": 1, "mobile_app": 1}, ()),  # too few interactions to tell
        ({"web": 5}, ()),  # digital, but one channel
        ({"web": 2, "mobile_app": 1}, ("fully_connected",)),
        ({"web": 2, "sms": 1, "email": 4}, ("fully_connected",)),
        ({"web": 2, "mobile_app": 1, "store": 1}, ()),  # one visit to a person: no longer digital only
        ({"store": 2, "web": 1}, ("prefers_human",)),
        ({"store": 1, "call_centre": 1, "web": 1}, ("prefers_human",)),
        ({"store": 2, "web": 2}, ()),  # half is not most
        ({"postal": 3, "web": 1}, ()),  # neither digital only nor human
    ],
)
def test_the_rules(mix: dict[str, int], expected: tuple[str, ...]) -> None:
    assert segments_of(mix) == expected


def test_segments_move_as_the_mix_changes() -> None:
    state = run(["web", "mobile_app", "web"])
    assert state.segments == ("fully_connected",)
    state = run(["store"], state)
    assert state.segments == ()
    state = run(["store", "call_centre", "store"], state)
    assert state.segments == ("prefers_human",)  # 4 of 7 with a person
    state = run(["web", "web"], state)
    assert state.segments == ()  # 4 of 9
    assert state.to_avro_dict()["segments"] == []


def test_campaign_sends_do_not_count_but_the_customers_clicks_do() -> None:
    state = run(["web", "web"])
    sent = {**ev("sms", 10, "campaign_touched"), "payload": {"campaign_id": "K", "action": "sms_sent"}}
    state = apply_customer_event(state, sent)
    assert state.segments == ()
    clicked = {**ev("sms", 11, "campaign_touched"), "payload": {"campaign_id": "K", "action": "sms_clicked"}}
    assert apply_customer_event(state, clicked).segments == ("fully_connected",)


def test_a_merge_recomputes_the_segments_from_both_mixes() -> None:
    customer = run(["web", "mobile_app", "web"])
    absorbed = run(["store", "store", "store", "store"], CustomerState("anonymous:A1"))
    merged = merge_customer_states(customer, absorbed)
    assert (customer.segments, absorbed.segments, merged.segments) == (
        ("fully_connected",),
        ("prefers_human",),
        ("prefers_human",),
    )


def test_thresholds_come_from_the_environment() -> None:
    config = ProcessorConfig.from_env(
        {
            "OMNICHANNEL_SEGMENT_HUMAN_CHANNELS": "store, call_centre, tablet",
            "OMNICHANNEL_SEGMENT_DIGITAL_CHANNELS": "web,mobile_app",
            "OMNICHANNEL_SEGMENT_HUMAN_SHARE": "0.25",
            "OMNICHANNEL_SEGMENT_MIN_INTERACTIONS": "1",
            "OMNICHANNEL_SEGMENT_CONNECTED_MIN_CHANNELS": "3",
        }
    )
    rules = config.fold_rules.customer_limits.segments
    assert rules == SegmentRules(
        digital_channels=frozenset({"web", "mobile_app"}),
        human_channels=frozenset({"store", "call_centre", "tablet"}),
        connected_min_channels=3,
        human_share=0.25,
        min_interactions=1,
    )
    assert run(["tablet", "web", "web"], limits=config.customer_limits).segments == ("prefers_human",)
    assert run(["web", "mobile_app"], limits=config.customer_limits).segments == ()


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("OMNICHANNEL_SEGMENT_HUMAN_SHARE", "most", "fraction"),
        ("OMNICHANNEL_SEGMENT_HUMAN_SHARE", "1", "fraction"),
        ("OMNICHANNEL_SEGMENT_MIN_INTERACTIONS", "0", "positive whole number"),
        ("OMNICHANNEL_SEGMENT_HUMAN_CHANNELS", "shop", "unknown channels ['shop']"),
        ("OMNICHANNEL_SEGMENT_HUMAN_CHANNELS", "store,web", "both digital and human"),
    ],
)
def test_a_malformed_threshold_stops_the_worker_naming_the_variable(name: str, value: str, says: str) -> None:
    with pytest.raises(ConfigError, match=name) as caught:
        ProcessorConfig.from_env({name: value})
    assert says in str(caught.value)


def test_rules_are_checked_in_the_domain_too() -> None:
    with pytest.raises(DomainError, match="human_share"):
        SegmentRules(human_share=1.5)
