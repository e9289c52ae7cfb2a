"""evolve(): the fold's fast copy of its big frozen records behaves like dataclasses.replace."""

from __future__ import annotations

import dataclasses

import pytest

from streams.domain.cart import Cart
from streams.domain.customer import CustomerState
from streams.domain.evolve import evolve
from streams.domain.journey import JourneyState


def test_evolve_equals_replace_and_leaves_the_original_alone() -> None:
    state = CustomerState(key="customer:C1", updated_at_ms=5, recent_products=("P1",))
    changed = evolve(state, updated_at_ms=9, last_channel="web")
    assert changed == dataclasses.replace(state, updated_at_ms=9, last_channel="web")
    assert (state.updated_at_ms, state.last_channel) == (5, None)
    assert hash(evolve(JourneyState(), clock_ms=3)) == hash(dataclasses.replace(JourneyState(), clock_ms=3))
    with pytest.raises(dataclasses.FrozenInstanceError):
        changed.updated_at_ms = 1  # type: ignore[misc]  # still frozen


def test_evolve_refuses_unknown_fields_and_records_it_cannot_copy_safely() -> None:
    with pytest.raises(TypeError, match="no field"):
        evolve(CustomerState(key="customer:C1"), updated_at=1)
    with pytest.raises(TypeError, match=r"dataclasses\.replace"):
        evolve(Cart(cart_key="customer:C1", customer_id="C1"), version=2)  # slots and validation: replace() only


def test_a_copy_never_carries_the_record_derived_from_the_old_fields() -> None:
    state = CustomerState(key="customer:C1", updated_at_ms=5, recent_products=("P1",))
    assert state.to_avro_dict()["recent_products"] == ["P1"]  # derived once and kept on the state
    changed = evolve(state, recent_products=("P2", "P1"), updated_at_ms=9)
    assert changed.to_avro_dict()["recent_products"] == ["P2", "P1"]
    assert changed.to_avro_dict()["updated_at_ms"] == 9
    assert state.to_avro_dict()["recent_products"] == ["P1"]
    first = changed.to_avro_dict()
    first["customer_id"] = "someone else"  # a caller's own dict: the next call is not affected
    assert changed.to_avro_dict()["customer_id"] == "C1"
