"""The merge core's rules, scenario by scenario: each is a journey a user relies on (issue 11's points 1-5).

Every scenario is checked in *every* delivery order of its events (all permutations), with duplicates: the
fold sorts by event time, so the order Kafka delivered them in must never show.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from streams.domain.cart import MergeMode
from streams.domain.fold import FoldResult, FoldRules, ProfileState, event_item, fold
from streams.domain.identity import Identifier

RULES = FoldRules()
IDENTITY_FIELDS = ("anonymous_id", "customer_id", "email_hash", "phone_hash", "loyalty_card")
E_X = "a" * 64
E_Y = "b" * 64


def ev(
    event_id: str,
    event_type: str,
    at: int,
    payload: dict[str, Any] | None = None,
    *,
    device: str | None = None,
    role: str = "customer_owned",
    channel: str = "mobile_app",
    **ids: str,
) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "event_type": event_type,
        "occurred_at_ms": at,
        "received_at_ms": at + 5,
        "channel": channel,
        "device": None if device is None else {"device_id": device, "kind": "tablet", "role": role},
        "identities": {name: ids.get(name) for name in IDENTITY_FIELDS},
        "location": None,
        "actor": None,
        "session_id": None,
        "consent": {},
        "source_system": "test",
        "payload": payload or {},
    }


def add(event_id: str, at: int, product: str, qty: int, **kw: Any) -> dict[str, Any]:
    payload = {"product_id": product, "quantity": qty, "unit_price_cents": 100, "currency": "EUR"}
    return ev(event_id, "cart_line_added", at, payload, **kw)


def remove(event_id: str, at: int, product: str, **kw: Any) -> dict[str, Any]:
    return ev(event_id, "cart_line_removed", at, {"product_id": product}, **kw)


def lines(state: ProfileState | None) -> dict[str, int]:
    if state is None or state.cart is None:
        return {}
    return {line.product_id: line.quantity for line in state.cart.lines}


def in_every_order(events: list[dict[str, Any]], rules: FoldRules = RULES) -> FoldResult:
    """Fold ``events`` in every delivery order (plus one with every event twice); all must agree."""
    results = []
    for order in itertools.permutations(events):
        results.append(fold([event_item(e) for e in order], rules))
    doubled = [event_item(e) for e in events] * 2
    results.append(fold({i.item_id: i for i in doubled}.values(), rules))
    first = results[0]
    for other in results[1:]:
        assert {k: (lines(v), v.merged_into) for k, v in other.profiles.items()} == {
            k: (lines(v), v.merged_into) for k, v in first.profiles.items()
        }
        assert other.graph.owners == first.graph.owners
    return first


def test_a_removal_on_the_phone_after_the_login_on_the_tablet_is_never_lost() -> None:
    # Point 1: phone adds A x1, B x2, saves the basket with an e-mail; the tablet logs in as C with that
    # e-mail and adds D; the phone removes B.
    phone = {"anonymous_id": "AP", "device": "phone-1"}
    tablet = {"customer_id": "C", "device": "tablet-1"}
    result = in_every_order(
        [
            add("e1", 1_000, "A", 1, **phone),
            add("e2", 2_000, "B", 2, **phone),
            ev("e3", "identify", 3_000, {"traits": {}}, email_hash=E_X, **phone),
            ev("e4", "login", 4_000, {"method": "password"}, email_hash=E_X, **tablet),
            add("e5", 5_000, "D", 1, **tablet),
            remove("e6", 6_000, "B", **phone),
        ]
    )
    assert lines(result.profiles["customer:C"]) == {"A": 1, "D": 1}
    assert result.profiles["anonymous:AP"].merged_into == "customer:C"


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        (MergeMode.MAX, {"A": 3, "B": 1}),
        (MergeMode.SUM, {"A": 4, "B": 1}),
        (MergeMode.KEEP_CUSTOMER, {"A": 3}),
        (MergeMode.REPLACE, {"A": 1, "B": 1}),
    ],
)
def test_the_merge_rule_applies_at_the_login_whatever_the_delivery_order(
    mode: MergeMode, expected: dict[str, int]
) -> None:
    rules = FoldRules(merge_mode=mode)
    result = in_every_order(
        [
            add("c1", 1_000, "A", 3, customer_id="C", device="desktop"),
            add("a1", 1_500, "A", 1, anonymous_id="AP", device="phone"),
            add("a2", 1_600, "B", 1, anonymous_id="AP", device="phone"),
            ev("l1", "login", 2_000, {"method": "password"}, customer_id="C", anonymous_id="AP", device="phone"),
        ],
        rules,
    )
    assert lines(result.profiles["customer:C"]) == expected


def test_retries_with_the_original_event_ids_after_a_login_are_no_ops() -> None:
    # Point 2: the phone's events re-sent after the login, with their ids.
    first = [
        add("e1", 1_000, "A", 1, anonymous_id="AP"),
        add("e2", 2_000, "B", 2, anonymous_id="AP"),
        ev("e3", "login", 3_000, {"method": "password"}, customer_id="C", anonymous_id="AP"),
        remove("e4", 4_000, "B", customer_id="C", anonymous_id="AP"),
    ]
    once = fold([event_item(e) for e in first], RULES)
    retried = [*first, dict(first[0], received_at_ms=9000), dict(first[1], received_at_ms=9001)]
    items = {}
    for event in retried:
        items.setdefault(event["event_id"], event_item(event))  # the log is keyed by event id
    twice = fold(items.values(), RULES)
    assert lines(twice.profiles["customer:C"]) == lines(once.profiles["customer:C"]) == {"A": 1}
    record = twice.profiles["customer:C"].customer
    assert record is not None and record.channels["mobile_app"].count == 4


def test_a_family_tablet_never_gives_one_persons_email_to_another() -> None:
    # Point 3: X saves a basket on the family tablet with X's e-mail; Y logs in there; X logs in on a phone
    # with the same e-mail and then unsubscribes by e-mail.
    tablet = {"anonymous_id": "AT", "device": "tablet-fam"}
    result = in_every_order(
        [
            add("t1", 1_000, "A", 1, **tablet),
            ev("t2", "identify", 2_000, {"traits": {}}, email_hash=E_X, **tablet),
            ev("t3", "login", 3_000, {"method": "password"}, customer_id="Y", **tablet),
            ev("p1", "login", 4_000, {"method": "password"}, customer_id="X", email_hash=E_X, device="phone-x"),
            ev(
                "m1",
                "consent_changed",
                5_000,
                {"purpose": "marketing", "channel": "email", "granted": False},
                channel="email",
                email_hash=E_X,
            ),
        ]
    )
    assert result.graph.profile_of(Identifier("email_hash", E_X)) == "customer:X"
    x, y = result.profiles["customer:X"].customer, result.profiles["customer:Y"].customer
    assert x is not None and y is not None
    assert x.consent == {"marketing:email": False}  # X's opt-out is on X's record
    assert "marketing:email" not in y.consent
    assert Identifier("email_hash", E_X) not in y.identities
    assert lines(result.profiles["customer:Y"]) == {"A": 1}  # the tablet's anonymous basket followed the login


def test_after_a_logout_the_next_persons_activity_is_not_the_customers() -> None:
    # Point 4.
    tablet = {"anonymous_id": "AT", "device": "tablet-shared"}
    result = in_every_order(
        [
            ev("l1", "login", 1_000, {"method": "password"}, customer_id="X", **tablet),
            add("x1", 2_000, "A", 1, customer_id="X", **tablet),
            ev("o1", "logout", 3_000, {}, customer_id="X", **tablet),
            add("n1", 4_000, "B", 5, **tablet),
        ]
    )
    assert lines(result.profiles["customer:X"]) == {"A": 1}
    assert lines(result.profiles["anonymous:AT"]) == {"B": 5}
    assert result.profiles["anonymous:AT"].merged_into is None
    x = result.profiles["customer:X"].customer
    assert x is not None and x.channels["mobile_app"].count == 3  # login, add, logout; not the next person's add


def test_a_staff_app_never_links_the_customers_it_serves() -> None:
    # Point 5: a seller's tablet whose app also sends its own anonymous id.
    staff = {"anonymous_id": "STAFF-APP", "device": "till-3", "role": "staff_operated", "channel": "pos"}
    result = in_every_order(
        [
            add("s1", 1_000, "A", 1, loyalty_card="L1", **staff),
            add("s2", 2_000, "B", 1, **staff),  # between two card scans: nobody's
            add("s3", 3_000, "C", 1, loyalty_card="L2", **staff),
        ]
    )
    assert lines(result.profiles["loyalty:L1"]) == {"A": 1}
    assert lines(result.profiles["loyalty:L2"]) == {"C": 1}
    assert result.routes == {} and "anonymous:STAFF-APP" not in result.profiles
    for key in ("loyalty:L1", "loyalty:L2"):
        record = result.profiles[key].customer
        assert record is not None and Identifier("anonymous_id", "STAFF-APP") not in record.identities


def test_an_unlinked_identifier_splits_both_profiles_back_to_their_own_events() -> None:
    wrong = [
        add("a1", 1_000, "A", 1, anonymous_id="AP"),
        ev("i1", "identify", 1_500, {"traits": {}}, anonymous_id="AP", email_hash=E_Y),
        ev("l1", "login", 2_000, {"method": "password"}, customer_id="C", email_hash=E_Y),
        add("c1", 3_000, "B", 1, customer_id="C"),
    ]
    merged = fold([event_item(e) for e in wrong], RULES)
    assert lines(merged.profiles["customer:C"]) == {"A": 1, "B": 1}
    split = fold([event_item(e) for e in wrong], RULES, unlinked={Identifier("email_hash", E_Y)})
    assert lines(split.profiles["customer:C"]) == {"B": 1}
    assert lines(split.profiles["anonymous:AP"]) == {"A": 1}
    assert split.profiles["anonymous:AP"].merged_into is None


def test_a_payload_that_does_not_fit_its_event_type_is_rejected_and_the_rest_goes_on() -> None:
    # Valid for the contract (the payload is a union), wrong for its type: a ticket_opened carrying a Login.
    wrong = ev("w1", "ticket_opened", 2_000, {"method": "password"}, customer_id="C")
    result = fold(
        [
            event_item(e)
            for e in (add("a1", 1_000, "A", 1, customer_id="C"), wrong, add("a2", 3_000, "B", 1, customer_id="C"))
        ],
        RULES,
        emit={"w1"},
    )
    assert "does not fit event_type 'ticket_opened'" in result.rejected["w1"]
    assert lines(result.profiles["customer:C"]) == {"A": 1, "B": 1}
    record = result.profiles["customer:C"].customer
    assert record is not None and record.open_tickets == frozenset()


class _Recorder:
    """Fold hooks that note, per item, which collector its decisions went to."""

    def new_output(self) -> dict[str, list[str]]:
        return {"records": [], "effects": []}

    def replay_output(self, out: dict[str, list[str]]) -> dict[str, list[str]]:
        return {"records": [], "effects": out["effects"]}

    def on_event(self, key: str, event: Any, before: Any, after: Any, customer: Any, out: Any) -> Any:
        out["records"].append(event["event_id"])
        out["effects"].append(f"{event['event_id']}@{key}")
        return customer

    def on_merge(self, key: str, absorbed: str, merge_id: str, cart: Any, customer: Any, out: Any) -> Any:
        return customer

    def on_due(self, key: str, due: Any, cart: Any, customer: Any, out: Any) -> Any:
        return customer


def test_a_refold_sends_records_once_but_applies_every_effect_again_in_order() -> None:
    # A touch processed while its phone was unknown, then a login with the same time that sorts before it:
    # folded again, the touch lands on the customer; its (idempotent) effects must say so, its records not repeat.
    touch = ev("t-2", "page_viewed", 1_000, {"url": "u", "title": None, "referrer": None}, phone_hash=E_X)
    login = ev("t-1", "login", 1_000, {"method": "password"}, customer_id="C", phone_hash=E_X)
    hooks = _Recorder()
    out = hooks.new_output()
    fold([event_item(touch), event_item(login)], RULES, hooks=hooks, emit={"t-1"}, out=out)
    assert out["records"] == ["t-1"]
    assert out["effects"] == ["t-1@customer:C", "t-2@customer:C"]
