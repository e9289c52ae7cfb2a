"""Attribution rules (S5): exposures and conversions read from events, and how a conversion's credit is split."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.domain.attribution import (
    AttributionModel,
    AttributionRules,
    Conversion,
    Exposure,
    action_channel_of,
    add_exposure,
    attribute,
    conversion_of,
    exposure_of,
)
from streams.domain.errors import DomainError

DAY = 24 * 3600 * 1000
RULES = AttributionRules(window_ms=30 * DAY)


def touch(action: str, at: int = 1_000, *, message: str | None = "m1", code: str | None = None) -> dict[str, Any]:
    payload = {"campaign_id": "K1", "action": action, "message_id": message, "promo_code": code, "url": None}
    return {"event_id": f"t-{action}-{at}", "event_type": "campaign_touched", "occurred_at_ms": at, "channel": "other",
            "payload": payload}  # fmt: skip


def exposure(channel: str, at: int, *, code: str | None = None, name: str | None = None) -> Exposure:
    event_id = name or f"{channel}-{at}"
    return Exposure(f"event:{event_id}", event_id, channel, "K1", code, at)


def conversion(at: int, channel: str = "web", codes: frozenset[str] = frozenset()) -> Conversion:
    return Conversion(f"o-{at}", "order_placed", channel, at, codes)


@pytest.mark.parametrize(
    ("action", "channel"),
    [
        ("email_sent", "email"),
        ("email_clicked", "email"),
        ("sms_delivered", "sms"),
        ("catalogue_mailed", "postal"),
        ("push_opened", "push"),
        ("agent_call", "call_centre"),
        ("email_bounced", None),  # reached nobody
        ("sms_inbound", None),  # the customer talking, not a touch
    ],
)
def test_action_channel_of_a_campaign_touch(action: str, channel: str | None) -> None:
    assert action_channel_of(touch(action)) == channel


def test_an_outbound_call_is_an_exposure_and_an_inbound_one_is_not() -> None:
    def contact(direction: str) -> dict[str, Any]:
        payload = {"contact_id": "CALL-1", "medium": "call", "direction": direction, "reason": None}
        return {"event_id": "c1", "event_type": "contact_started", "occurred_at_ms": 5, "channel": "call_centre",
                "payload": payload}  # fmt: skip

    assert exposure_of(contact("outbound")) == Exposure("contact:CALL-1", "c1", "call_centre", None, None, 5)
    assert exposure_of(contact("inbound")) is None


def test_lifecycle_events_of_one_message_are_one_exposure_at_the_earliest_sighting() -> None:
    sent, clicked = exposure_of(touch("sms_sent", 2_000, code=" SMS10 ")), exposure_of(touch("sms_clicked", 5_000))
    assert sent is not None and clicked is not None
    assert sent.promo_code == "sms10"  # codes compare trimmed and case-folded
    held = add_exposure((), clicked, 10)
    held = add_exposure(held, sent, 10)
    assert [(e.event_id, e.at_ms) for e in held] == [(sent.event_id, 2_000)]
    assert add_exposure(held, clicked, 10) is held


def test_a_conversion_carries_its_codes_and_order() -> None:
    payload = {"order_id": "O1", "coupon_codes": ["Spring10", " "], "fulfilment": "delivery"}
    event = {"event_id": "o1", "event_type": "order_placed", "occurred_at_ms": 9, "channel": "web", "payload": payload}
    assert conversion_of(event, ["VIP"]) == Conversion(
        "o1", "order_placed", "web", 9, frozenset({"spring10", "vip"}), "O1"
    )
    assert conversion_of({**event, "event_type": "order_collected"}) is None


def test_last_touch_within_the_window() -> None:
    old, email, sms = exposure("postal", 0), exposure("email", 10 * DAY), exposure("sms", 20 * DAY)
    late = exposure("push", 40 * DAY)  # after the conversion
    credits = attribute(conversion(35 * DAY), (old, email, sms, late), RULES)
    assert [(c.action_channel, c.weight) for c in credits] == [("sms", 1.0)]
    assert attribute(conversion(45 * DAY), (old,), RULES) == ()  # outside the window: unattributed


def test_a_redeemed_code_credits_the_touch_that_carried_it_whatever_the_model() -> None:
    sms, email = exposure("sms", 1_000, code="sms10"), exposure("email", 2_000)
    for model in AttributionModel:
        credits = attribute(conversion(3_000, codes=frozenset({"sms10"})), (sms, email), AttributionRules(model=model))
        assert [c.action_channel for c in credits] == ["sms"]


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (AttributionModel.LAST_TOUCH, [("push", 1.0)]),
        (AttributionModel.FIRST_TOUCH, [("postal", 1.0)]),
        (AttributionModel.LINEAR, [("postal", 1 / 3), ("email", 1 / 3), ("push", 1 / 3)]),
    ],
)
def test_models(model: AttributionModel, expected: list[tuple[str, float]]) -> None:
    touches = (exposure("email", 2_000), exposure("push", 3_000), exposure("postal", 1_000))
    credits = attribute(conversion(4_000), touches, AttributionRules(model=model))
    assert [c.action_channel for c in credits] == [channel for channel, _ in expected]
    assert [c.weight for c in credits] == pytest.approx([weight for _, weight in expected])


def test_rules_are_checked() -> None:
    with pytest.raises(DomainError, match="window_ms"):
        AttributionRules(window_ms=0)
    with pytest.raises(DomainError, match="max_exposures"):
        AttributionRules(max_exposures=0)


exposures = st.lists(
    st.builds(
        exposure,
        st.sampled_from(["email", "sms", "postal", "push"]),
        st.integers(0, 60 * DAY),
        code=st.sampled_from([None, "a", "b"]),
        name=st.uuids().map(str),
    ),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(
    touches=exposures,
    at=st.integers(0, 60 * DAY),
    codes=st.frozensets(st.sampled_from(["a", "b", "c"])),
    model=st.sampled_from(list(AttributionModel)),
    data=st.data(),
)
def test_credits_qualify_sum_to_one_and_ignore_input_order(
    touches: list[Exposure], at: int, codes: frozenset[str], model: AttributionModel, data: st.DataObject
) -> None:
    rules = AttributionRules(window_ms=30 * DAY, model=model)
    credits = attribute(conversion(at, codes=codes), touches, rules)
    shuffled = data.draw(st.permutations(touches))
    assert attribute(conversion(at, codes=codes), shuffled, rules) == credits
    qualifying = {e.event_id: e for e in touches if at - 30 * DAY <= e.at_ms <= at}
    assert bool(credits) == bool(qualifying)
    if credits:
        assert sum(c.weight for c in credits) == pytest.approx(1.0)
        assert all(c.touch_event_id in qualifying for c in credits)
        carried = [e for e in qualifying.values() if e.promo_code in codes]
        if carried:
            assert {qualifying[c.touch_event_id].promo_code for c in credits} <= codes
