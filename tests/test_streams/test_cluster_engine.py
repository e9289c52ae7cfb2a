"""The merge core under every delivery: partitions, interleavings, batch cuts, duplicates, crashes and races.

Hypothesis generates a few shoppers' events (anonymous phones, logins with e-mails, logouts on a shared tablet,
a staff till, retries with the same event id), spreads them over simulated partitions, and consumes them in a
random schedule: which partition next, how many records per batch, a worker that dies before its commit or
after it (before the offset commit, so the batch is replayed), and a second worker committing between another
worker's read and its commit. Whatever the schedule, the carts, records, absorptions and identity index left
in the store must equal one sequential fold over the distinct events in event-time order.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass, field, replace
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.cluster_engine import ClusterEngine, ClusterOutcome, NewItem, StoredProfile, _settled
from streams.domain.cart import Cart, CartLine, MergeMode
from streams.domain.customer import CustomerState
from streams.domain.fold import (
    FoldRules,
    Item,
    ProfileState,
    event_item,
    fold,
    ident,
    item_to_json,
    parse_ident,
    preferred,
)
from streams.domain.identity import identifiers_of, profile_key_of
from streams.testing import CrashError, MemoryClusterStore

IDENTITY_FIELDS = ("anonymous_id", "customer_id", "email_hash", "phone_hash", "loyalty_card")
EMAILS = ("1" * 64, "2" * 64)
PARTITIONS = 3

# (identities, device, role): who could be sending
SENDERS = [
    ({"anonymous_id": "A1"}, "phone-1", "customer_owned"),
    ({"anonymous_id": "A2"}, "phone-2", "customer_owned"),
    ({"anonymous_id": "AT"}, "tablet", "customer_owned"),  # a family tablet
    ({"customer_id": "C1"}, "tablet", "customer_owned"),
    ({"customer_id": "C2"}, "tablet", "customer_owned"),
    ({"customer_id": "C1", "anonymous_id": "A1"}, "phone-1", "customer_owned"),
    ({"customer_id": "C2", "email_hash": EMAILS[1]}, "desk-2", "customer_owned"),
    ({"customer_id": "C1", "email_hash": EMAILS[0]}, None, "customer_owned"),
    ({"anonymous_id": "A1", "email_hash": EMAILS[0]}, "phone-1", "customer_owned"),
    ({"anonymous_id": "A2", "email_hash": EMAILS[1]}, "phone-2", "customer_owned"),
    ({"email_hash": EMAILS[0]}, None, "customer_owned"),  # an e-mail click
    ({"anonymous_id": "STAFF", "loyalty_card": "L1"}, "till", "staff_operated"),
    ({"anonymous_id": "STAFF", "customer_id": "C2"}, "till", "staff_operated"),
]
KINDS = ["add", "add", "remove", "set", "login", "logout", "identify", "order", "consent"]


def make_event(n: int, kind: str, sender: int, product: str, qty: int, at: int) -> dict[str, Any]:
    ids, device, role = SENDERS[sender]
    event_type, payload = {
        "add": (
            "cart_line_added",
            {"product_id": product, "quantity": qty, "unit_price_cents": 100, "currency": "EUR"},
        ),
        "remove": ("cart_line_removed", {"product_id": product}),
        "set": (
            "cart_quantity_set",
            {"product_id": product, "quantity": qty - 1, "unit_price_cents": 100, "currency": "EUR"},
        ),
        "login": ("login", {"method": "password"}),
        "logout": ("logout", {}),
        "identify": ("identify", {"traits": {}}),
        "order": (
            "order_placed",
            {
                "order_id": f"O{n}",
                "lines": [],
                "total_cents": 100,
                "currency": "EUR",
                "fulfilment": "delivery",
                "collect_store_id": None,
                "coupon_codes": [],
            },
        ),
        "consent": ("consent_changed", {"purpose": "marketing", "channel": "email", "granted": qty % 2 == 0}),
    }[kind]
    return {
        "event_id": f"e{n:03d}",
        "event_type": event_type,
        "occurred_at_ms": at,
        "received_at_ms": at + 7,
        "channel": "mobile_app",
        "device": None if device is None else {"device_id": device, "kind": "phone", "role": role},
        "identities": {name: ids.get(name) for name in IDENTITY_FIELDS},
        "location": None,
        "actor": None,
        "session_id": None,
        "consent": {},
        "source_system": "test",
        "payload": payload,
    }


events_strategy = st.lists(
    st.tuples(
        st.sampled_from(KINDS),
        st.integers(0, len(SENDERS) - 1),
        st.sampled_from(["P1", "P2", "P3"]),
        st.integers(1, 3),
        st.integers(0, 30).map(lambda t: 1_000 * t),
    ),
    min_size=1,
    max_size=24,
)


@dataclass
class Record:
    event: dict[str, Any]


@dataclass
class Partition:
    records: list[Record] = field(default_factory=list)
    committed: int = 0


def new_item(event: dict[str, Any], rules: FoldRules) -> NewItem | None:
    ids = tuple(ident(i) for i in identifiers_of(event, rules.identity))
    return NewItem(event_item(event), ids) if ids else None


def reference(events: list[dict[str, Any]], rules: FoldRules) -> dict[str, ProfileState]:
    """One sequential fold over the distinct events (the copy of an id every worker prefers)."""
    return _reference(events, rules).profiles


def reference_graph_owners(events: list[dict[str, Any]], rules: FoldRules) -> dict[Any, str]:
    return dict(_reference(events, rules).graph.owners)


def _reference(events: list[dict[str, Any]], rules: FoldRules) -> Any:
    chosen: dict[str, tuple[Item, str]] = {}
    for event in events:
        if not identifiers_of(event, rules.identity):
            continue
        item = event_item(event)
        pair = (item, item_to_json(item))
        chosen[item.item_id] = preferred(chosen[item.item_id], pair) if item.item_id in chosen else pair
    return fold([pair[0] for pair in chosen.values()], rules)


def view(state: StoredProfile | ProfileState | None) -> Any:
    if state is None:
        return None
    cart = None if state.cart is None else (state.cart.status, state.cart.lines, state.cart.updated_at_ms)
    customer = None if state.customer is None else state.customer.to_avro_dict()
    return (cart, customer, state.merged_into)


def publish(topic: dict[str, str | None], outcomes: list[ClusterOutcome]) -> None:
    """What subscribers of identity.links learn from one batch: its records, then the corrections."""
    for outcome in outcomes:
        for link in outcome.result.links:
            topic[ident(link.identifier)] = link.profile_key if link.action == "merge" else None
        for identifier, (_said, now) in outcome.relinks.items():
            topic[identifier] = now


async def consume(
    partitions: list[Partition],
    schedule: list[tuple[int, int, str, bool]],
    rules: FoldRules,
    topic: dict[str, str | None] | None = None,
) -> MemoryClusterStore:
    """``topic``: filled with the last identity.links record of each identifier (a batch whose worker died
    after its commit lost its records: the worst case, a crash before the sends)."""
    store = MemoryClusterStore()
    engine = ClusterEngine(store, rules)
    topic = {} if topic is None else topic

    async def step(p: int, size: int) -> tuple[int, list[NewItem]]:
        part = partitions[p]
        batch = part.records[part.committed : part.committed + size]
        items = [i for r in batch if (i := new_item(r.event, rules)) is not None]
        return len(batch), items

    for p, size, crash, race in schedule:
        taken, items = await step(p, size)
        if not taken:
            continue
        if race:
            other = (p + 1) % PARTITIONS

            async def rival(other: int = other) -> None:
                rival_taken, rival_items = await step(other, 2)
                publish(topic, (await engine.apply(rival_items))[0])
                partitions[other].committed += rival_taken

            store.before_commit = rival
        if crash == "before_commit":
            store.fail_commit = lambda: True
            with contextlib.suppress(CrashError):
                await engine.apply(items)
            store.fail_commit = None
            store.before_commit = None
            continue  # nothing committed, offsets not committed: the batch comes again
        outcomes, _ = await engine.apply(items)
        store.before_commit = None
        if crash == "after_commit":
            continue  # state committed, records and offsets not: the batch is replayed
        publish(topic, outcomes)
        partitions[p].committed += taken
    for part in partitions:  # the worker comes back and drains everything
        while part.committed < len(part.records):
            batch = part.records[part.committed : part.committed + 5]
            publish(topic, (await engine.apply([i for r in batch if (i := new_item(r.event, rules)) is not None]))[0])
            part.committed += len(batch)
    return store


#: CI runs 150 schedules; before changing the core, run many more: OMNICHANNEL_PROPERTY_EXAMPLES=5000 pytest ...
EXAMPLES = int(os.environ.get("OMNICHANNEL_PROPERTY_EXAMPLES", "150"))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    spec=events_strategy,
    data=st.data(),
    mode=st.sampled_from(list(MergeMode)),
)
def test_any_delivery_equals_one_sequential_fold(spec: list[Any], data: st.DataObject, mode: MergeMode) -> None:
    rules = FoldRules(merge_mode=mode)
    events = [make_event(n, *args) for n, args in enumerate(spec)]
    copies = list(events)
    for duplicate in data.draw(st.lists(st.sampled_from(events), max_size=6), label="duplicates"):
        # A client that re-sends an event under its id with other content (a later clock): every worker must
        # keep the same copy, whichever arrives first.
        shift = data.draw(st.sampled_from([0, 0, 1_500, 4_000]), label="re-sent with another time")
        copies.append(dict(duplicate, occurred_at_ms=duplicate["occurred_at_ms"] + shift) if shift else duplicate)
    partitions = [Partition() for _ in range(PARTITIONS)]
    for event in copies:
        partitions[data.draw(st.integers(0, PARTITIONS - 1), label="partition")].records.append(Record(event))
    schedule = data.draw(
        st.lists(
            st.tuples(
                st.integers(0, PARTITIONS - 1),
                st.integers(1, 6),
                st.sampled_from(["none", "none", "before_commit", "after_commit"]),
                st.booleans(),
            ),
            max_size=30,
        ),
        label="schedule",
    )
    topic: dict[str, str | None] = {}
    store = asyncio.run(consume(partitions, schedule, rules, topic))

    expected = reference(copies, rules)
    assert set(store.profiles) == set(expected)
    for key, state in expected.items():
        assert view(store.profiles[key]) == view(state), key
    owners = {
        ident(i): k
        for i, k in fold(
            [event_item(e) for e in {e["event_id"]: e for e in events}.values()], rules
        ).graph.owners.items()
    }
    assert store.owners == owners
    # Subscribers of identity.links: each identifier's last record names where it is (none: in the profile it
    # founded, never linked), whatever the delivery.
    for identifier in set(owners) | set(topic):
        said, owner = topic.get(identifier), owners.get(identifier)
        assert said == owner or (said is None and owner == profile_key_of(parse_ident(identifier))), identifier


def test_a_late_login_on_the_family_tablet_does_not_leave_its_link_as_the_last_word() -> None:
    """C2 logs in on the tablet after C1 did, but C1's login arrives last: the re-fold keeps the tablet C2's,
    and the late login's own record ("the tablet is C1's") is followed by one that says so."""
    rules = FoldRules()
    store = MemoryClusterStore()
    engine = ClusterEngine(store, rules)
    c1_login = make_event(1, "login", 3, "P1", 1, 1_000)  # C1 on the tablet
    c2_login = make_event(2, "login", 4, "P1", 1, 2_000)  # C2 on the tablet, later

    async def run() -> dict[str, str | None]:
        topic: dict[str, str | None] = {}
        for event in (c2_login, c1_login):  # delivered in the other order
            item = new_item(event, rules)
            assert item is not None
            outcomes, _ = await engine.apply([item])
            publish(topic, outcomes)
            if event is c2_login:
                assert not outcomes[0].relinks  # in order, a batch's own records are the last word
        late = outcomes[0]
        assert late.whole
        assert any(ident(link.identifier) == "device_id:tablet" for link in late.result.links)
        return topic

    topic = asyncio.run(run())
    assert store.owners["device_id:tablet"] == "customer:C2"
    assert topic["device_id:tablet"] == "customer:C2"


def test_a_stale_worker_never_overwrites_a_newer_commit() -> None:
    rules = FoldRules()
    store = MemoryClusterStore()
    engine = ClusterEngine(store, rules)
    first = make_event(1, "add", 3, "P1", 2, 1_000)
    second = make_event(2, "add", 3, "P2", 1, 2_000)

    async def run() -> None:
        async def rival() -> None:
            item = new_item(second, rules)
            assert item is not None
            await engine.apply([item])

        store.before_commit = rival
        item = new_item(first, rules)
        assert item is not None
        await engine.apply([item])  # its first commit is refused (the rival committed): it folds again

    asyncio.run(run())
    cart = store.profiles["customer:C1"].cart
    assert cart is not None and {line.product_id: line.quantity for line in cart.lines} == {"P1": 2, "P2": 1}
    assert store.commits == 2


def test_an_erasure_removes_the_subject_and_keeps_whoever_shared_a_device() -> None:
    rules = FoldRules()
    store = MemoryClusterStore()
    engine = ClusterEngine(store, rules)
    z_phone = make_event(1, "add", 8, "P1", 1, 1_000)  # A1 + e-mail 1 on phone-1
    z_login = make_event(2, "login", 7, "P1", 1, 2_000)  # C1 + e-mail 1
    z_tablet = make_event(3, "add", 3, "P2", 1, 3_000)  # C1 on the family tablet
    y_tablet = make_event(4, "add", 4, "P3", 2, 4_000)  # C2 on the family tablet

    async def run() -> None:
        await engine.apply([i for e in (z_phone, z_login, z_tablet, y_tablet) if (i := new_item(e, rules))])
        erasure, _ = await engine.erase("customer:C1")
        assert erasure.profiles >= {"customer:C1"} and erasure.events == 3
        assert "tablet" not in " ".join(erasure.identifiers)  # the tablet is C2's too: not erased
        replayed = [i for e in (z_phone, z_login) if (i := new_item(e, rules))]
        assert await engine.denied({x for i in replayed for x in i.identifiers}) == {
            "customer_id:C1",
            "anonymous_id:A1",
            "device_id:phone-1",
            f"email_hash:{EMAILS[0]}",
        }

    asyncio.run(run())
    assert "customer:C1" not in store.profiles and "customer_id:C1" not in store.index
    cart = store.profiles["customer:C2"].cart
    assert cart is not None and {line.product_id: line.quantity for line in cart.lines} == {"P3": 2}
    assert not any("C1" in text or EMAILS[0] in text for log in store.item_logs.values() for text in log.values())


def test_a_cart_is_written_again_only_when_it_changed() -> None:
    """Live cart readers fence on the version and are pushed every cart write: a product view (the record
    changes, the cart does not) must leave the cart as published, version included."""
    rules = FoldRules()
    store = MemoryClusterStore()
    engine = ClusterEngine(store, rules)
    add = make_event(1, "add", 3, "P1", 2, 1_000)
    consent = make_event(2, "consent", 3, "P1", 2, 2_000)  # C1 again: the record changes, the cart does not
    more = make_event(3, "add", 3, "P2", 1, 3_000)

    async def run() -> None:
        outcomes = []
        for event in (add, consent, more):
            item = new_item(event, rules)
            assert item is not None
            found, _ = await engine.apply([item])
            outcomes.append(found[0])
        added, consented, added_more = outcomes
        assert "customer:C1" in consented.changed  # the record changed ...
        cart_after_add = added.derived["customer:C1"].cart
        assert consented.derived["customer:C1"].cart is cart_after_add  # ... the cart is kept as it was
        later = added_more.derived["customer:C1"].cart
        assert cart_after_add is not None and later is not None and later.version > cart_after_add.version

    asyncio.run(run())


def test_parts_equal_to_what_was_held_are_its_own_objects() -> None:
    """The commit's writes and the output records tell a changed cart or record by identity: a part equal to
    the held one must be the held object (or an unchanged record would be written and sent again), a changed
    one must not be (or a change would be lost)."""
    line = CartLine("P1", 1, 100, "EUR", "web", None, 1)
    cart = Cart("cart-1", "C1", lines=(line,), updated_at_ms=1, version=3)
    held = StoredProfile(cart, CustomerState("customer:C1", updated_at_ms=1))
    same_record = CustomerState("customer:C1", updated_at_ms=1)  # equal to the held one, another object
    new_record = CustomerState("customer:C1", updated_at_ms=2)

    cart_only = _settled(StoredProfile(replace(cart, lines=(), version=4), same_record), held)
    assert cart_only.customer is held.customer
    assert cart_only.cart is not None and cart_only.cart is not cart and cart_only.cart.lines == ()

    record_only = _settled(StoredProfile(replace(cart, version=1), new_record), held)  # a re-fold counted 1
    assert record_only.cart is cart and record_only.customer is new_record

    assert _settled(StoredProfile(replace(cart, version=9), same_record), held) is held
    assert _settled(StoredProfile(cart, same_record), None).customer is same_record

    fewer_counted = _settled(StoredProfile(replace(cart, lines=(), version=1), new_record), held)
    assert fewer_counted.cart is not None and fewer_counted.cart.version == 4  # readers fence on it: it rises
