"""The live attribution matrix of a seeded dataset equals an offline computation of the same rule.

The offline model below shares no code with ``streams.domain.attribution``: plain dicts and the rule as the
issue states it (last touch within a 30-day window; an exposure whose promotion code the conversion redeemed
wins over the others; the response channel is where the conversion happened).
"""

from __future__ import annotations

import random
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from journeys_harness import Journeys, event, ids, now_ms, start_journeys, wait_ready

from omnichannel.settings import Settings

DAY_MS = 24 * 3600 * 1000
WINDOW_MS = 30 * DAY_MS
TOUCHES = [
    ("email", "email_sent"),
    ("email", "email_clicked"),
    ("sms", "sms_sent"),
    ("postal", "catalogue_mailed"),
    ("push", "push_sent"),
    ("call_centre", "agent_call"),
    ("call_centre", "outbound_call"),  # contact_started, direction outbound
]
RESPONSES = ["web", "store", "mobile_app", "call_centre"]
CODES = ["SPRING10", "VIP", "SMS5"]


@dataclass(frozen=True)
class Touch:
    customer: str
    channel: str
    action: str
    at: int
    code: str | None


@dataclass(frozen=True)
class Buy:
    customer: str
    channel: str
    kind: str
    at: int
    codes: tuple[str, ...]


def seeded(seed: int, token: str, base: int) -> tuple[list[Touch], list[Buy]]:
    rng = random.Random(seed)
    touches: list[Touch] = []
    buys: list[Buy] = []
    used: set[int] = set()

    def moment(max_days: int) -> int:
        while True:  # distinct times: ties would be broken by event id, which the model does not know
            at = base - rng.randrange(0, max_days * DAY_MS, 60_000)
            if at not in used:
                used.add(at)
                return at

    for n in range(40):
        customer = f"C-m{n}-{token}"
        mine: list[Touch] = []
        for _ in range(rng.randrange(0, 5)):
            channel, action = rng.choice(TOUCHES)
            code = rng.choice(CODES) if channel in ("sms", "email") and rng.random() < 0.5 else None
            mine.append(Touch(customer, channel, action, moment(40), code))
        touches += mine
        carried = [t.code for t in mine if t.code]
        for _ in range(rng.randrange(0, 3)):
            kind = "quote_submitted" if rng.random() < 0.15 else "order_placed"
            codes: tuple[str, ...] = ()
            if kind == "order_placed" and rng.random() < 0.6:
                # Mostly a code the customer was sent (the promo rule), sometimes one from elsewhere.
                codes = (rng.choice(carried) if carried and rng.random() < 0.8 else rng.choice(CODES),)
            buys.append(Buy(customer, rng.choice(RESPONSES), kind, moment(5), codes))
    return touches, buys


def offline_matrix(touches: list[Touch], buys: list[Buy]) -> dict[str, Any]:
    exposed: dict[str, set[str]] = defaultdict(set)
    responded: dict[str, set[str]] = defaultdict(set)
    converted: dict[tuple[str, str], set[str]] = defaultdict(set)
    overridden = too_old = 0
    for touch in touches:
        exposed[touch.channel].add(touch.customer)
    for buy in buys:
        responded[buy.channel].add(buy.customer)
        eligible = [t for t in touches if t.customer == buy.customer and buy.at - WINDOW_MS <= t.at <= buy.at]
        with_code = [t for t in eligible if t.code is not None and t.code in buy.codes]
        candidates = with_code or eligible
        if candidates:
            last = max(candidates, key=lambda t: t.at)
            converted[(last.channel, buy.channel)].add(buy.customer)
            overridden += last is not max(eligible, key=lambda t: t.at)
        too_old += any(t.customer == buy.customer and t.at < buy.at - WINDOW_MS for t in touches)
    return {
        "exposed": {c: len(s) for c, s in exposed.items()},
        "responded": {c: len(s) for c, s in responded.items()},
        "converted": {pair: len(s) for pair, s in converted.items()},
        "overridden": overridden,
        "too_old": too_old,
    }


def as_events(touches: list[Touch], buys: list[Buy]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    exposures: list[dict[str, Any]] = []
    for n, touch in enumerate(touches):
        who = ids(customer_id=touch.customer)
        payload: dict[str, Any]
        if touch.action == "outbound_call":
            payload = {"contact_id": f"CALL-{n}", "medium": "call", "direction": "outbound", "reason": "campaign"}
            exposures.append(event("contact_started", touch.channel, who, payload, touch.at))
            continue
        payload = {
            "campaign_id": f"CMP-{touch.channel}",
            "action": touch.action,
            "message_id": f"msg-{n}",
            "promo_code": touch.code,
            "url": None,
        }
        exposures.append(event("campaign_touched", touch.channel, who, payload, touch.at))
    conversions: list[dict[str, Any]] = []
    for n, buy in enumerate(buys):
        who = ids(customer_id=buy.customer)
        if buy.kind == "quote_submitted":
            conversions.append(event(buy.kind, buy.channel, who, {"quote_id": f"Q-{n}", "product": "car"}, buy.at))
            continue
        payload = {
            "order_id": f"O-{n}",
            "lines": [{"product_id": "SKU-1", "quantity": 1, "unit_price_cents": 500}],
            "total_cents": 500,
            "currency": "EUR",
            "fulfilment": "in_store" if buy.channel == "store" else "delivery",
            "collect_store_id": None,
            "coupon_codes": list(buy.codes),
        }
        conversions.append(event(buy.kind, buy.channel, who, payload, buy.at))
    return exposures, conversions


@pytest.fixture(scope="module")
def seeded_backbone(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Journeys]:
    """A namespace of its own: the matrix counts every customer of the namespace."""
    running = start_journeys(settings, Path(tmp_path_factory.mktemp("matrix")))
    try:
        wait_ready(running)
        yield running
    finally:
        running.close()


def test_the_live_matrix_of_a_seeded_dataset_matches_the_offline_computation(seeded_backbone: Journeys) -> None:
    touches, buys = seeded(20261123, uuid.uuid4().hex[:6], now_ms() - 3_600_000)
    expected = offline_matrix(touches, buys)
    # The seed exercises every part of the rule: several channels, codes beating the last touch, old touches.
    assert len(expected["converted"]) >= 5 and expected["overridden"] >= 1 and expected["too_old"] >= 1
    exposures, conversions = as_events(touches, buys)

    def matrix() -> dict[str, Any]:
        answer = seeded_backbone.get("/v1/attribution/matrix")
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    # Touches first, as campaigns precede orders; they travel on other topics than the orders, so wait until
    # every one is applied before the conversions are published.
    seeded_backbone.publish(*exposures)
    seeded_backbone.wait_for(lambda: matrix()["exposed_customers"] == expected["exposed"], "every exposure")
    seeded_backbone.publish(*conversions)
    seeded_backbone.wait_for(
        lambda: len(seeded_backbone.attributions) == len(conversions), "one attribution record per conversion"
    )
    want = {
        (action, response): expected["converted"].get((action, response), 0)
        for action in expected["exposed"]
        for response in expected["responded"]
    }

    def cells(live: dict[str, Any]) -> dict[tuple[str, str], int]:
        return {(c["action_channel"], c["response_channel"]): c["converting_customers"] for c in live["cells"]}

    # Records leave just before the sets are written: give the last batch's writes a moment.
    deadline = time.monotonic() + 10
    live = matrix()
    while cells(live) != want and time.monotonic() < deadline:
        time.sleep(0.1)
        live = matrix()

    assert live["responding_customers"] == expected["responded"]
    assert cells(live) == want
    for cell in live["cells"]:
        assert cell["share"] == cell["converting_customers"] / expected["exposed"][cell["action_channel"]]
    assert live["dropped"] == dict.fromkeys(live["dropped"], 0)
