"""The engine's fast canonical text of an item is the domain's ``item_to_json``, byte for byte.

The text is stored in each cluster's log and decides which of two copies of an event is kept
(``streams.domain.fold.preferred``): a worker writing another text for the same item would disagree with the logs
written before it, and with other workers.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.loader import EVENT_FULLNAME, EVENT_TYPES, load
from schemas.samples import sample_event
from streams.cluster_engine import item_text
from streams.domain.fold import DueCheck, due_item, event_item, item_to_json

_KEYS = st.text(min_size=1, max_size=12)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),  # past 64 bits: orjson refuses, json is used
    st.text(max_size=20),  # any code point: controls, DEL, non-ASCII, surrogates' neighbours
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_KEYS, inner, max_size=4)),
    max_leaves=12,
)


@settings(max_examples=500, deadline=None)
@given(extra=st.dictionaries(_KEYS, _VALUES, max_size=6), at_ms=st.integers(0, 2**62))
def test_fast_text_equals_the_canonical_text(extra: dict[str, Any], at_ms: int) -> None:
    event = {**extra, "event_id": "e-1", "occurred_at_ms": at_ms}
    item = event_item(event)
    assert item_text(item) == item_to_json(item)


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
@pytest.mark.parametrize("text", ["plain", "Café crème", "line\nbreak\x7f", "\u2028 \U0001f6d2"])
def test_fast_text_equals_the_canonical_text_for_every_event_type(event_type: str, text: str) -> None:
    event = sample_event(event_type, session_id=text)
    item = event_item(event)
    assert item_text(item) == item_to_json(item)


def test_due_checks_take_the_canonical_text() -> None:
    item = due_item(DueCheck("customer:C-1", "cart_abandoned", "cart:e-1", 1_000, 2_000))
    assert item_text(item) == item_to_json(item)


def _types(schema: Any) -> set[str]:
    if isinstance(schema, str):
        return {schema}
    if isinstance(schema, list):
        return set().union(*(_types(s) for s in schema))
    found = {schema.get("type")} if isinstance(schema.get("type"), str) else _types(schema.get("type", []))
    for key in ("fields",):
        for f in schema.get(key, []):
            found |= _types(f["type"])
    for key in ("items", "values"):
        if key in schema:
            found |= _types(schema[key])
    return found


def test_decoded_events_carry_no_floats() -> None:
    """orjson and json write some floats differently: the fast text relies on events having none."""
    found = _types(load(EVENT_FULLNAME))
    assert "record" in found and "long" in found  # the walk reached the fields
    assert not found & {"float", "double"}, "an Event field is a float: item_text must then use json for it"
