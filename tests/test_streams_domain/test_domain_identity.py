"""Identity resolution rules: identifiers read from events, the graph decisions of observe(), and invariants."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.domain import (
    DEFAULT_BLOCKED_VALUES,
    Identifier,
    IdentityGraph,
    IdentityRuleError,
    IdentityRules,
    Link,
    Observation,
    customer_id_from_key,
    identifiers_of,
    observe,
    profile_key_of,
    release,
)
from streams.domain.identity import settled_owner

RULES = IdentityRules()
IDENTITY_FIELDS = ("anonymous_id", "customer_id", "email_hash", "phone_hash", "loyalty_card")


def event(
    device_id: str | None = None, role: str | None = "customer_owned", **identities: str | None
) -> dict[str, Any]:
    device = None if device_id is None else {"device_id": device_id, "kind": None, "role": role}
    return {
        "event_id": "e-1",
        "event_type": "page_viewed",
        "occurred_at_ms": 1_000,
        "channel": "web",
        "device": device,
        "identities": {name: identities.get(name) for name in IDENTITY_FIELDS},
        "payload": {"url": "/", "title": None, "referrer": None},
    }


def ids(**values: str) -> tuple[Identifier, ...]:
    return tuple(Identifier(t, v) for t, v in values.items())  # type: ignore[arg-type]


def cust(v: str) -> Identifier:
    return Identifier("customer_id", v)


def anon(v: str) -> Identifier:
    return Identifier("anonymous_id", v)


def dev(v: str) -> Identifier:
    return Identifier("device_id", v)


def email(v: str) -> Identifier:
    return Identifier("email_hash", v)


def card(v: str) -> Identifier:
    return Identifier("loyalty_card", v)


def run(*events: Iterable[Identifier], rules: IdentityRules = RULES) -> list[Observation]:
    graph = IdentityGraph()
    observations = []
    for n, identifiers in enumerate(events):
        observation = observe(graph, identifiers, rules, f"e{n}", 1_000 * n)
        graph = observation.graph
        observations.append(observation)
    return observations


def profiles(graph: IdentityGraph) -> dict[str, set[Identifier]]:
    return {key: set(members) for key, members in graph.profiles.items()}


# --------------------------------------------------------------------------------------------------------
# identifiers_of


def test_identifiers_come_strongest_first() -> None:
    ev = event(
        "D1",
        anonymous_id="A1",
        customer_id="C1",
        email_hash="E1",
        phone_hash="H1",
        loyalty_card="L1",
    )
    assert identifiers_of(ev, RULES) == (
        cust("C1"),
        card("L1"),
        email("E1"),
        Identifier("phone_hash", "H1"),
        anon("A1"),
        dev("D1"),
    )


BLOCKED_FORMS = [
    "",
    "   ",
    "null",
    "NULL",
    " None ",
    "undefined",
    "Anonymous",
    "unknown",
    "0",
    "000",
    "00000000-0000-0000-0000-000000000000",
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",  # sha256("")
]


@pytest.mark.parametrize("value", BLOCKED_FORMS)
def test_blocked_values_are_not_identifiers(value: str) -> None:
    ev = event(value, customer_id=value, anonymous_id=value, email_hash=value, phone_hash=value, loyalty_card=value)
    assert identifiers_of(ev, RULES) == ()


@pytest.mark.parametrize("value", ["0a", "C0", "null1", "10", "00000000-0000-0000-0000-000000000001"])
def test_lookalikes_of_blocked_values_are_identifiers(value: str) -> None:
    assert identifiers_of(event(customer_id=value), RULES) == (cust(value),)


def test_values_are_stripped() -> None:
    assert identifiers_of(event(" D1 ", customer_id=" C1\t"), RULES) == (cust("C1"), dev("D1"))


@pytest.mark.parametrize(
    ("role", "linked"),
    [("customer_owned", True), (None, True), ("staff_operated", False), ("shared", False)],
)
def test_only_customer_owned_devices_are_identifiers(role: str | None, linked: bool) -> None:
    ev = event("D1", role=role, customer_id="C1")
    assert (dev("D1") in identifiers_of(ev, RULES)) is linked
    assert cust("C1") in identifiers_of(ev, RULES)  # the customer is still identified on a staff device


def test_rules_choose_types_blocked_values_and_device_roles() -> None:
    rules = IdentityRules(
        blocked_values=frozenset({" Guest "}),
        block_all_zero=False,
        strength_order=("customer_id", "anonymous_id", "device_id"),
        linkable_device_roles=frozenset({"customer_owned", "shared"}),
    )
    ev = event("D1", role="shared", customer_id="guest", anonymous_id="000", email_hash="E1")
    assert identifiers_of(ev, rules) == (anon("000"), dev("D1"))
    assert rules.blocked_values == {"guest"}
    assert "null" not in rules.blocked_values  # a custom list replaces the defaults


def test_default_blocked_values_cover_the_documented_placeholders() -> None:
    assert {"", "null", "none", "undefined", "anonymous", "unknown", "0"} <= DEFAULT_BLOCKED_VALUES


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_per_profile": {"customer_id": 2}}, r"max_per_profile\['customer_id'\] must be 1"),
        ({"max_per_profile": {"loyalty_card": 0}}, "counts >= 1"),
        ({"strength_order": ("customer_id", "customer_id")}, "distinct types"),
        ({"strength_order": ("customer_id", "twitter")}, "distinct types"),
        ({"strength_order": ("anonymous_id",)}, "must include 'customer_id'"),
        ({"movable_types": frozenset({"customer_id"})}, "must not include 'customer_id'"),
    ],
)
def test_rules_reject_bad_configuration(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(IdentityRuleError, match=message):
        IdentityRules(**kwargs)


def test_customer_cap_is_implied() -> None:
    assert IdentityRules(max_per_profile={"loyalty_card": 1}).max_per_profile == {"customer_id": 1, "loyalty_card": 1}


def test_profile_keys() -> None:
    assert profile_key_of(cust("C1")) == "customer:C1"
    assert profile_key_of(anon("A1")) == "anonymous:A1"
    assert profile_key_of(dev("D1")) == "device:D1"
    assert customer_id_from_key("customer:C1") == "C1"
    assert customer_id_from_key("anonymous:A1") is None


# --------------------------------------------------------------------------------------------------------
# observe: scenarios


def test_first_anonymous_event_founds_a_profile() -> None:
    (obs,) = run([anon("A1"), dev("D1")])
    assert obs.key == "anonymous:A1"
    assert profiles(obs.graph) == {"anonymous:A1": {anon("A1"), dev("D1")}}
    assert obs.links == (Link("merge", dev("D1"), "anonymous:A1", None, "seen_together", "e0", 0),)
    assert obs.absorbed == ()


def test_login_absorbs_the_anonymous_profile_and_reports_it() -> None:
    _, login, later = run([anon("A1"), dev("D1")], [cust("C1"), anon("A1"), dev("D1")], [anon("A1")])
    assert login.key == "customer:C1"
    assert login.absorbed == ("anonymous:A1",)
    assert profiles(login.graph) == {"customer:C1": {cust("C1"), anon("A1"), dev("D1")}}
    assert login.links == (
        Link("merge", anon("A1"), "customer:C1", "anonymous:A1", "profile_absorbed", "e1", 1_000),
        Link("merge", dev("D1"), "customer:C1", "anonymous:A1", "profile_absorbed", "e1", 1_000),
    )
    assert later.key == "customer:C1"  # anonymous-only events now belong to the customer
    assert later.graph is login.graph and later.links == ()


def test_shared_family_tablet_follows_the_latest_login() -> None:
    tablet = [anon("AT"), dev("DT")]
    first, second, after = run([cust("C1"), *tablet], [cust("C2"), *tablet], tablet)
    assert first.key == "customer:C1"
    assert second.key == "customer:C2"
    assert second.absorbed == ()  # C1's profile (and cart) stays with C1
    assert second.links == (
        Link("unmerge", anon("AT"), "customer:C1", None, "switched_customer", "e1", 1_000),
        Link("merge", anon("AT"), "customer:C2", "customer:C1", "switched_customer", "e1", 1_000),
        Link("unmerge", dev("DT"), "customer:C1", None, "switched_customer", "e1", 1_000),
        Link("merge", dev("DT"), "customer:C2", "customer:C1", "switched_customer", "e1", 1_000),
    )
    assert profiles(second.graph) == {"customer:C1": {cust("C1")}, "customer:C2": {cust("C2"), *tablet}}
    assert after.key == "customer:C2"


def test_two_customers_are_never_merged_and_person_identifiers_stay_with_the_first() -> None:
    _, second = run([cust("C1"), email("E1"), card("L1")], [cust("C2"), email("E1"), card("L1"), anon("A2")])
    assert second.key == "customer:C2"
    assert profiles(second.graph) == {
        "customer:C1": {cust("C1"), email("E1"), card("L1")},
        "customer:C2": {cust("C2"), anon("A2")},
    }
    assert [link.identifier for link in second.links] == [anon("A2")]


def test_an_event_with_two_customer_ids_links_only_the_first() -> None:
    (obs,) = run([cust("C1"), cust("C2"), anon("A1")])
    assert obs.key == "customer:C1"
    assert profiles(obs.graph) == {"customer:C1": {cust("C1"), anon("A1")}}


def test_an_anonymous_event_touching_two_customers_changes_nothing() -> None:
    _, second, ambiguous = run([cust("C1"), dev("D1")], [cust("C2"), anon("A2")], [anon("A2"), dev("D1"), email("E9")])
    assert ambiguous.key == "customer:C2"  # profile of the strongest identifier (anonymous_id > device_id)
    assert ambiguous.graph is second.graph
    assert (ambiguous.links, ambiguous.absorbed) == ((), ())


def test_anonymous_profiles_seen_together_are_merged_under_the_strongest() -> None:
    _, _, joined = run([dev("D1")], [anon("A2")], [dev("D1"), anon("A2")])
    assert joined.key == "anonymous:A2"
    assert joined.absorbed == ("device:D1",)
    assert profiles(joined.graph) == {"anonymous:A2": {anon("A2"), dev("D1")}}


def test_a_new_anonymous_id_on_a_customers_device_joins_the_customer() -> None:
    _, obs = run([cust("C1"), dev("D1")], [anon("A9"), dev("D1")])
    assert obs.key == "customer:C1"
    assert obs.links == (Link("merge", anon("A9"), "customer:C1", None, "seen_together", "e1", 1_000),)


def test_phone_profile_is_absorbed_through_a_shared_email_hash() -> None:
    # S1: an anonymous phone session known by an e-mail hash (from a campaign link), then a login on the tablet.
    _, login = run([anon("AP"), dev("DP"), email("E1")], [cust("C1"), anon("AT"), dev("DT"), email("E1")])
    assert login.key == "customer:C1"
    assert login.absorbed == ("email:E1",)  # keyed by its strongest identifier when it was founded
    assert login.graph.profile_of(dev("DP")) == "customer:C1"


def test_caps_refuse_extra_identifiers() -> None:
    rules = IdentityRules(max_per_profile={"loyalty_card": 1})
    _, _, absorbed, extra = run(
        [cust("C1"), card("L1")],
        [email("E2"), card("L2")],
        [cust("C1"), email("E2")],
        [cust("C1"), card("L3")],
        rules=rules,
    )
    assert absorbed.absorbed == ("loyalty:L2",)
    assert Link("unmerge", card("L2"), "loyalty:L2", None, "cap_exceeded", "e2", 2_000) in absorbed.links
    assert profiles(absorbed.graph) == {"customer:C1": {cust("C1"), card("L1"), email("E2")}}
    assert extra.graph is absorbed.graph and extra.links == ()


def test_a_login_matched_only_by_a_device_keeps_the_person_level_identifiers_apart() -> None:
    # Family tablet: X saves a basket there with X's e-mail, then Y logs in on the tablet.
    _, _, y_login, x_login = run(
        [anon("AT"), dev("DT")],
        [anon("AT"), dev("DT"), email("EX")],
        [cust("Y"), anon("AT"), dev("DT")],
        [cust("X"), email("EX")],
    )
    assert y_login.key == "customer:Y" and y_login.absorbed == ("anonymous:AT",)  # the tablet's activity follows Y
    assert y_login.graph.profile_of(email("EX")) == "email:EX"  # X's e-mail is not Y's
    assert Link("merge", email("EX"), "email:EX", "anonymous:AT", "kept_apart", "e2", 2_000) in y_login.links
    assert x_login.absorbed == ("email:EX",) and x_login.graph.profile_of(email("EX")) == "customer:X"


def test_a_device_used_by_a_person_level_profile_moves_alone() -> None:
    _, login = run([card("L2"), anon("A2")], [cust("C1"), anon("A2")])
    assert login.absorbed == ()
    assert profiles(login.graph) == {"customer:C1": {cust("C1"), anon("A2")}, "loyalty:L2": {card("L2")}}


def test_a_logout_unlinks_the_device_and_its_anonymous_id_from_the_customer() -> None:
    graph = run([cust("X"), anon("AT"), dev("DT")])[0].graph
    out = release(graph, [cust("X"), anon("AT"), dev("DT")], RULES, "bye", 5)
    assert out.key == "customer:X"
    assert profiles(out.graph) == {"customer:X": {cust("X")}}
    assert {(link.action, link.reason) for link in out.links} == {("unmerge", "logout")}
    after = observe(out.graph, [anon("AT"), dev("DT")], RULES, "next", 6)
    assert after.key == "anonymous:AT"  # the next person's activity is not X's


def test_no_usable_identifier_means_no_key() -> None:
    graph = IdentityGraph()
    assert observe(graph, (), RULES, "e", 0) == Observation(graph, None, (), ())
    assert observe(graph, [cust("null"), anon(" "), dev("0000")], RULES, "e", 0).key is None


def test_observe_drops_blocked_and_padded_values_it_is_given() -> None:
    (obs,) = run([cust("undefined"), anon("A1"), email("NULL"), anon(" A2")])
    assert profiles(obs.graph) == {"anonymous:A1": {anon("A1")}}


def test_graph_accessors() -> None:
    (obs,) = run([cust("C1"), anon("A1")])
    assert obs.graph.customer_of("customer:C1") == "C1"
    assert obs.graph.customer_of("anonymous:A1") is None
    assert obs.graph.members("nope") == frozenset()
    assert obs.graph.profile_of(anon("A1")) == "customer:C1"


# --------------------------------------------------------------------------------------------------------
# observe: properties over any sequence

CUSTOMER_DEVICES = ["D1", "D2", "D3"]
STAFF_DEVICES = ["S1", "S2"]
JUNK = ["", "null", " UNDEFINED ", "0", "00000000-0000-0000-0000-000000000000", "unknown"]


def _maybe(values: list[str]) -> st.SearchStrategy[str | None]:
    return st.one_of(st.none(), st.sampled_from(values + JUNK))


event_strategy = st.one_of(
    st.builds(
        lambda device, customer, anonymous, mail, loyalty: event(
            device,
            "customer_owned",
            customer_id=customer,
            anonymous_id=anonymous,
            email_hash=mail,
            loyalty_card=loyalty,
        ),
        st.one_of(st.none(), st.sampled_from(CUSTOMER_DEVICES)),
        _maybe(["C1", "C2", "C3"]),
        _maybe(["A1", "A2", "A3", "A4"]),
        _maybe(["E1", "E2"]),
        _maybe(["L1", "L2"]),
    ),
    st.builds(
        lambda device, role, customer, anonymous: event(device, role, customer_id=customer, anonymous_id=anonymous),
        st.sampled_from(STAFF_DEVICES),
        st.sampled_from(["staff_operated", "shared"]),
        _maybe(["C1", "C2", "C3"]),
        _maybe(["A1", "A5"]),
    ),
)
rules_strategy = st.sampled_from([RULES, IdentityRules(max_per_profile={"loyalty_card": 1, "email_hash": 1})])


def check_graph(graph: IdentityGraph, rules: IdentityRules) -> None:
    for key, members in graph.profiles.items():
        assert members, f"empty profile {key}"
        for member in members:
            assert graph.owners[member] == key
            assert not rules.is_blocked(member.value)
            assert member.value not in STAFF_DEVICES
        customers = [m.value for m in members if m.type == "customer_id"]
        assert len(customers) <= 1, f"two customers in {key}: {customers}"
        assert (key == f"customer:{customers[0]}") if customers else not key.startswith("customer:")
        for identifier_type, cap in rules.max_per_profile.items():
            assert sum(1 for m in members if m.type == identifier_type) <= cap
    assert sum(len(m) for m in graph.profiles.values()) == len(graph.owners)


@settings(max_examples=200, deadline=None)
@given(events=st.lists(event_strategy, max_size=25), rules=rules_strategy)
def test_graph_invariants_hold_for_any_sequence(events: list[dict[str, Any]], rules: IdentityRules) -> None:
    graph = IdentityGraph()
    for n, ev in enumerate(events):
        found = identifiers_of(ev, rules)
        before = graph
        obs = observe(graph, found, rules, f"e{n}", n)
        graph = obs.graph
        check_graph(graph, rules)
        if not found:
            assert obs == Observation(before, None, (), ())
            continue
        assert obs.key in graph.profiles
        customer = next((i.value for i in found if i.type == "customer_id"), None)
        if customer is not None:
            assert obs.key == f"customer:{customer}"
        for key in obs.absorbed:
            assert key in before.profiles and key not in graph.profiles
            assert before.customer_of(key) is None
        for link in obs.links:
            assert (link.event_id, link.at_ms) == (f"e{n}", n)
            if link.action == "merge":
                assert graph.owners[link.identifier] == link.profile_key
        # Observing the same identifiers again is a no-op: replays cannot churn the graph.
        again = observe(graph, found, rules, "replay", n)
        assert again.graph is graph and again.key == obs.key and again.links == () and again.absorbed == ()


@settings(max_examples=200, deadline=None)
@given(events=st.lists(event_strategy, max_size=25), rules=rules_strategy)
def test_an_event_whose_identifiers_one_profile_owns_already_changes_nothing(
    events: list[dict[str, Any]], rules: IdentityRules
) -> None:
    # The fold skips observe() when settled_owner() names a profile: observe must agree, in any graph.
    graph = IdentityGraph()
    for n, ev in enumerate(events):
        found = identifiers_of(ev, rules)
        settled = settled_owner(graph.owners, found)
        obs = observe(graph, found, rules, f"e{n}", n)
        if settled is not None:
            assert obs == Observation(graph, settled, (), ())
        else:  # not settled: an unknown identifier, or two profiles' (observe may or may not change the graph)
            assert (
                not found
                or any(graph.owners.get(i) != graph.owners.get(found[0]) for i in found)
                or (found[0] not in graph.owners)
            )
        graph = obs.graph


def test_a_repeated_event_is_settled_and_a_new_identifier_is_not() -> None:
    graph = observe(IdentityGraph(), identifiers_of(event("D1", customer_id="C1"), RULES), RULES, "e1", 1).graph
    assert settled_owner(graph.owners, identifiers_of(event("D1", customer_id="C1"), RULES)) == "customer:C1"
    assert settled_owner(graph.owners, identifiers_of(event("D1"), RULES)) == "customer:C1"
    assert settled_owner(graph.owners, identifiers_of(event("D1", anonymous_id="A9"), RULES)) is None
    assert settled_owner(graph.owners, identifiers_of(event("D2"), RULES)) is None
    assert settled_owner(graph.owners, ()) is None


@settings(max_examples=200, deadline=None)
@given(events=st.lists(event_strategy, max_size=25))
def test_a_customer_id_once_linked_never_leaves_its_profile(events: list[dict[str, Any]]) -> None:
    graph = IdentityGraph()
    seen_customers: set[str] = set()
    for n, ev in enumerate(events):
        graph = observe(graph, identifiers_of(ev, RULES), RULES, f"e{n}", n).graph
        seen_customers |= {m.value for m in graph.owners if m.type == "customer_id"}
        for customer in seen_customers:
            assert graph.profile_of(cust(customer)) == f"customer:{customer}"


def test_founder_of_inverts_profile_key_of() -> None:
    from streams.domain.identity import founder_of

    for identifier in (
        Identifier("anonymous_id", "A1"),
        Identifier("customer_id", "C:1"),
        Identifier("device_id", "d"),
    ):
        assert founder_of(profile_key_of(identifier)) == identifier
    assert founder_of("no-colon") is None
    assert founder_of("martian:x") is None
