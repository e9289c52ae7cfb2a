"""The compiled fast check is never more lenient than schemas.validation.problems (the contract's own walk)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.envelope import validate_event
from connectors.errors import InvalidEventError
from connectors.fastcheck import compile_check
from schemas.loader import EVENT_FULLNAME, EVENT_TYPES, load, payload_record_name
from schemas.samples import sample_event
from schemas.validation import problems

SCALARS = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=8)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
ENVELOPE_FIELDS = [
    "event_id",
    "event_type",
    "occurred_at_ms",
    "received_at_ms",
    "channel",
    "device",
    "identities",
    "location",
    "actor",
    "session_id",
    "consent",
    "source_system",
    "payload",
    "extra",
]


@st.composite
def mutated_events(draw: st.DrawFn) -> dict[str, Any]:
    event = copy.deepcopy(sample_event(draw(st.sampled_from(sorted(EVENT_TYPES)))))
    for _ in range(draw(st.integers(0, 3))):
        payload = event.get("payload")
        target = payload if draw(st.booleans()) and isinstance(payload, dict) else event
        names = ENVELOPE_FIELDS if target is event else [*target.keys(), "unknown_field"]
        name = draw(st.sampled_from(names))
        if draw(st.booleans()):
            target.pop(name, None)
        else:
            target[name] = draw(VALUES)
    return event


def _contract_problems(event: dict[str, Any]) -> list[Any]:
    event_type = event.get("event_type")
    if not isinstance(event_type, str) or event_type not in EVENT_TYPES or not isinstance(event.get("payload"), dict):
        return ["event_type or payload"]
    return problems({**event, "payload": (payload_record_name(event_type), event["payload"])}, load(EVENT_FULLNAME))


@given(mutated_events())
@settings(max_examples=400, deadline=None, database=None)
def test_an_event_accepted_by_validate_event_has_no_contract_problem(event: dict[str, Any]) -> None:
    rejected: InvalidEventError | None = None
    try:
        validate_event(event)
    except InvalidEventError as error:
        rejected = error
    if rejected is None:
        assert _contract_problems(event) == [], "the fast check let through what the contract refuses"
    else:
        assert rejected.problems, "a rejection always names its problems"


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_every_sample_passes_the_fast_check(event_type: str) -> None:
    check = compile_check(load(EVENT_TYPES[event_type]))
    assert check(sample_event(event_type)["payload"])


@pytest.mark.parametrize(
    ("schema", "good", "bad"),
    [
        ("int", [0, 2**31 - 1], [2**31, True, 1.0, "1"]),
        ("long", [2**63 - 1, -(2**63)], [2**63, False]),
        ("double", [1, 1.5], [True, "1"]),
        (["null", "string"], [None, "x"], [1]),
        ({"type": "map", "values": "boolean"}, [{}, {"a": True}], [{"a": 1}, []]),
        ({"type": "array", "items": "int"}, [[], [1]], [[1.0], {}]),
        ({"type": "enum", "name": "E", "symbols": ["a"]}, ["a"], ["b", ["a"]]),
    ],
)
def test_the_fast_check_of_each_avro_type(schema: Any, good: list[Any], bad: list[Any]) -> None:
    check = compile_check(schema)
    assert all(check(v) for v in good)
    assert not any(check(v) for v in bad)


@st.composite
def mutated_payloads(draw: st.DrawFn) -> tuple[str, Any]:
    event_type = draw(st.sampled_from(sorted(EVENT_TYPES)))
    payload: Any = copy.deepcopy(sample_event(event_type)["payload"])
    for _ in range(draw(st.integers(0, 3))):
        target = payload
        while isinstance(target, dict) and target and draw(st.booleans()):  # sometimes a nested record
            inner = [value for value in target.values() if isinstance(value, dict)]
            if not inner:
                break
            target = draw(st.sampled_from(inner))
        if not isinstance(target, dict):
            break
        name = draw(st.sampled_from([*target.keys(), "unknown_field"]))
        if draw(st.booleans()):
            target.pop(name, None)
        else:
            target[name] = draw(VALUES)
    return event_type, payload


@given(mutated_payloads())
@settings(max_examples=600, deadline=None, database=None)
def test_the_fast_check_agrees_with_the_contract_both_ways(case: tuple[str, Any]) -> None:
    """Not only never more lenient: a valid payload is never sent the slow way either (every record type)."""
    event_type, payload = case
    schema = load(EVENT_TYPES[event_type])
    assert compile_check(schema)(payload) == (problems(payload, schema) == [])


def test_a_named_type_used_twice_and_a_recursive_record() -> None:
    node = {
        "type": "record",
        "name": "Node",
        "fields": [
            {"name": "label", "type": {"type": "enum", "name": "Label", "symbols": ["a", "b"]}},
            {"name": "other", "type": ["null", "Label"], "default": None},
            {"name": "children", "type": {"type": "array", "items": "Node"}, "default": []},
        ],
    }
    check = compile_check(node)
    assert check({"label": "a", "other": "b", "children": [{"label": "b", "children": []}]})
    assert not check({"label": "a", "children": [{"label": "c"}]})  # an unknown symbol two levels down
    assert not check({"label": "a", "other": "c"})
    assert not check({"label": "a", "extra": 1})  # a field the record does not have
    assert not check({"other": "a"})  # the required field missing
