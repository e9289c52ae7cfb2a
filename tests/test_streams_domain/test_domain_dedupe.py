"""The bounded seen-event-ids memory, against a plain reference model."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.domain import DomainError, SeenEvents


def test_seen_and_add() -> None:
    memory = SeenEvents(capacity=3)
    assert not memory.seen("e1")
    after = memory.add("e1")
    assert after.seen("e1") and not memory.seen("e1")  # frozen: add returns a new memory
    assert after.add("e1") is after  # adding a held id changes nothing


def test_oldest_id_is_forgotten_beyond_capacity() -> None:
    memory = SeenEvents(capacity=2).add("e1").add("e2").add("e3")
    assert memory.ids == ("e2", "e3")
    assert not memory.seen("e1")


def test_a_replayed_id_does_not_refresh_its_age() -> None:
    memory = SeenEvents(capacity=2).add("e1").add("e2").add("e1").add("e3")
    assert memory.ids == ("e2", "e3")


def test_constructor_trims_and_deduplicates() -> None:
    assert SeenEvents(capacity=2, ids=("a", "b", "a", "c")).ids == ("b", "c")


def test_capacity_must_be_positive() -> None:
    with pytest.raises(DomainError, match="capacity must be at least 1"):
        SeenEvents(capacity=0)


def test_equality_compares_capacity_and_ids() -> None:
    assert SeenEvents(2).add("a") == SeenEvents(2, ("a",))


@settings(max_examples=200, deadline=None)
@given(ids=st.lists(st.sampled_from([f"e{n}" for n in range(8)]), max_size=40), capacity=st.integers(1, 5))
def test_matches_a_fifo_model(ids: list[str], capacity: int) -> None:
    memory = SeenEvents(capacity=capacity)
    model: list[str] = []
    for event_id in ids:
        assert memory.seen(event_id) == (event_id in model)
        memory = memory.add(event_id)
        if event_id not in model:
            model = [*model, event_id][-capacity:]
        assert list(memory.ids) == model
