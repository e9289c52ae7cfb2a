"""Resolving a batch event by event on local subgraphs decides exactly what the whole graph would."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.domain.fold import _Graph
from streams.domain.identity import Identifier, IdentityGraph, IdentityRules, observe

RULES = IdentityRules()
identifier = st.builds(
    Identifier,
    st.sampled_from(["customer_id", "anonymous_id", "email_hash", "device_id", "loyalty_card"]),
    st.sampled_from(["1", "2", "3", "4"]),
)
events = st.lists(st.lists(identifier, min_size=1, max_size=4).map(tuple), min_size=1, max_size=40)


@settings(max_examples=300, deadline=None)
@given(events)
def test_local_subgraphs_match_the_whole_graph(batch: list[tuple[Identifier, ...]]) -> None:
    whole = IdentityGraph()
    working = _Graph()
    for n, ids in enumerate(batch):
        expected = observe(whole, ids, RULES, f"e{n}", n)
        whole = expected.graph
        local = working.around(ids)
        got = observe(local, ids, RULES, f"e{n}", n)
        if got.graph is not local:
            working.replace(local, got.graph)
        assert (got.key, got.links, got.absorbed) == (expected.key, expected.links, expected.absorbed)
    frozen = working.freeze()
    assert dict(frozen.owners) == dict(whole.owners)
    assert dict(frozen.profiles) == dict(whole.profiles)
