"""The pure Avro backward-compatibility checker and the released-versions check."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from schemas import evolution, loader
from schemas.compat import Incompatibility, check_backward, check_backward_transitive
from schemas.errors import CompatibilityError

EVENT = "omnichannel.event.Event"


def record(*fields: dict[str, Any], name: str = "Order", **extra: Any) -> dict[str, Any]:
    return {"type": "record", "name": name, "namespace": "test", "fields": list(fields), **extra}


def field(name: str, type_: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **extra}


def enum(*symbols: str, **extra: Any) -> dict[str, Any]:
    return {"type": "enum", "name": "Status", "namespace": "test", "symbols": list(symbols), **extra}


BASE = record(field("id", "string"), field("quantity", "int"))

# (case id, reader = new schema, writer = old schema, expected incompatible paths)
CASES: list[tuple[str, Any, Any, list[str]]] = [
    ("identical", BASE, BASE, []),
    (
        "optional field with null default added",
        record(field("id", "string"), field("quantity", "int"), field("note", ["null", "string"], default=None)),
        BASE,
        [],
    ),
    (
        "field with a plain default added",
        record(field("id", "string"), field("quantity", "int"), field("gift", "boolean", default=False)),
        BASE,
        [],
    ),
    (
        "required field without default added",
        record(field("id", "string"), field("quantity", "int"), field("gift", "boolean")),
        BASE,
        ["Order.gift"],
    ),
    ("field removed", record(field("id", "string")), BASE, []),
    (
        "field renamed with an alias",
        record(field("id", "string"), field("units", "int", aliases=["quantity"])),
        BASE,
        [],
    ),
    ("field renamed without alias", record(field("id", "string"), field("units", "int")), BASE, ["Order.units"]),
    ("int promoted to long", record(field("id", "string"), field("quantity", "long")), BASE, []),
    ("int promoted to double", record(field("id", "string"), field("quantity", "double")), BASE, []),
    (
        "long narrowed to int",
        record(field("id", "string"), field("quantity", "int")),
        record(field("id", "string"), field("quantity", "long")),
        ["Order.quantity"],
    ),
    ("int to string", record(field("id", "string"), field("quantity", "string")), BASE, ["Order.quantity"]),
    ("string to bytes", record(field("id", "bytes"), field("quantity", "int")), BASE, []),
    ("bytes to string", BASE, record(field("id", "bytes"), field("quantity", "int")), []),
    ("float to double", "double", "float", []),
    ("double to float", "float", "double", ["<root>"]),
    ("logical type ignored", {"type": "long", "logicalType": "timestamp-millis"}, "long", []),
    ("enum symbol added", enum("open", "closed", "expired"), enum("open", "closed"), []),
    ("enum symbol removed", enum("open"), enum("open", "closed"), ["Status"]),
    ("enum symbol removed, reader has a default", enum("open", default="open"), enum("open", "closed"), []),
    ("enum renamed", {**enum("open"), "name": "State"}, enum("open"), ["State"]),
    ("enum renamed with alias", {**enum("open"), "name": "State", "aliases": ["Status"]}, enum("open"), []),
    ("union widened", ["null", "string", "long"], ["null", "string"], []),
    ("union narrowed", ["null", "string"], ["null", "string", "long"], ["<root>[long]"]),
    ("union branch promoted", ["null", "long"], ["null", "int"], []),
    ("plain type made nullable", ["null", "string"], "string", []),
    ("nullable made plain", "string", ["null", "string"], ["<root>[null]"]),
    ("plain type read by a union without it", ["null", "boolean"], "string", ["<root>"]),
    ("array items promoted", {"type": "array", "items": "long"}, {"type": "array", "items": "int"}, []),
    ("array items narrowed", {"type": "array", "items": "int"}, {"type": "array", "items": "long"}, ["<root>[]"]),
    ("map values narrowed", {"type": "map", "values": "int"}, {"type": "map", "values": "long"}, ["<root>{}"]),
    ("array became map", {"type": "map", "values": "int"}, {"type": "array", "items": "int"}, ["<root>"]),
    (
        "fixed size changed",
        {"type": "fixed", "name": "Hash", "size": 16},
        {"type": "fixed", "name": "Hash", "size": 32},
        ["Hash"],
    ),
    (
        "fixed unchanged",
        {"type": "fixed", "name": "Hash", "size": 16},
        {"type": "fixed", "name": "Hash", "size": 16},
        [],
    ),
    ("record renamed", record(field("id", "string"), name="Purchase"), BASE, ["Purchase"]),
    ("record renamed with alias", record(field("id", "string"), name="Purchase", aliases=["test.Order"]), BASE, []),
    (
        "nested record gains a required field",
        record(field("line", record(field("sku", "string"), field("qty", "int"), name="Line"))),
        record(field("line", record(field("sku", "string"), name="Line"))),
        ["Order.line.qty"],
    ),
    (
        "record branch of a union gains a required field",
        record(
            field(
                "payload", [record(field("a", "int"), name="A"), record(field("b", "int"), field("c", "int"), name="B")]
            )
        ),
        record(field("payload", [record(field("a", "int"), name="A"), record(field("b", "int"), name="B")])),
        ["Order.payload[B].c"],
    ),
    (
        "record branch removed from a union",
        record(field("payload", [record(field("a", "int"), name="A")])),
        record(field("payload", [record(field("a", "int"), name="A"), record(field("b", "int"), name="B")])),
        ["Order.payload[B]"],
    ),
    (
        "record branch added to a union",
        record(field("payload", [record(field("a", "int"), name="A"), record(field("b", "int"), name="B")])),
        record(field("payload", [record(field("a", "int"), name="A")])),
        [],
    ),
    (
        "named type referenced by name twice",
        record(field("a", enum("x", "y")), field("b", "test.Status")),
        record(field("a", enum("x", "y", "z")), field("b", "Status")),
        ["Order.a"],
    ),
]


@pytest.mark.parametrize(("reader", "writer", "expected"), [case[1:] for case in CASES], ids=[c[0] for c in CASES])
def test_check_backward(reader: Any, writer: Any, expected: list[str]) -> None:
    problems = check_backward(reader, writer)
    assert [problem.path for problem in problems] == expected, problems
    for problem in problems:
        assert problem.message and problem.against == ""


def test_required_field_message_says_what_to_do() -> None:
    new = record(field("id", "string"), field("quantity", "int"), field("gift", "boolean"))
    [problem] = check_backward(new, BASE)
    assert problem == Incompatibility(problem.path, problem.message)
    assert "'gift' was added without a default" in problem.message
    assert "default" in problem.message and "optional" in problem.message


def test_removed_enum_symbol_message_names_the_symbol() -> None:
    [problem] = check_backward(enum("open"), enum("open", "closed"))
    assert "'closed'" in problem.message and "default" in problem.message


def test_narrowing_message_lists_the_promotions() -> None:
    [problem] = check_backward("int", "long")
    assert "long to int" in problem.message and "int->long" in problem.message


def test_recursive_types_terminate_and_are_checked() -> None:
    node = record(field("value", "int"), field("next", ["null", "Node"], default=None), name="Node")
    wider = copy.deepcopy(node)
    wider["fields"][0]["type"] = "long"
    assert check_backward(wider, node) == []
    assert [problem.path for problem in check_backward(node, wider)] == ["Node.value"]


def test_accepts_json_text_and_fastavro_parsed_schemas() -> None:
    assert check_backward(loader.canonical_json(EVENT), loader.load(EVENT)) == []
    assert check_backward(json.dumps(BASE), BASE) == []


@pytest.mark.parametrize("bad", ["{not json", '{"type": "record", "name": "R"}', '"nosuch.Type"'])
def test_invalid_schema_is_a_compatibility_error(bad: str) -> None:
    with pytest.raises(CompatibilityError):
        check_backward(bad, BASE)


def test_transitive_checks_every_earlier_version_and_labels_them() -> None:
    v1 = record(field("id", "string"))
    v2 = record(field("id", "string"), field("note", ["null", "string"], default=None))
    v3 = record(field("id", "string"), field("note", "string"))  # note no longer optional, no default
    problems = check_backward_transitive(v3, [v1, v2], labels=["v1", "v2"])
    assert [(problem.path, problem.against) for problem in problems] == [
        ("Order.note", "v1"),
        ("Order.note[null]", "v2"),
    ]
    assert str(problems[0]).endswith("(against v1)")
    assert [p.against for p in check_backward_transitive(v3, [v1])] == ["earlier[0]"]
    assert check_backward_transitive(v2, [v1, v2]) == []
    with pytest.raises(CompatibilityError):
        check_backward_transitive(v2, [v1], labels=["v1", "v2"])


# --------------------------------------------------------------------------- the real contract


def test_current_schemas_pass_check_released() -> None:
    results = evolution.check_released()
    assert set(results) >= set(evolution.subjects())
    assert {subject: problems for subject, problems in results.items() if problems} == {}


def test_released_versions_are_oldest_first_json_texts() -> None:
    versions = evolution.released_versions(EVENT)
    assert versions
    assert json.loads(versions[0])["name"] == EVENT
    assert evolution.released_versions("omnichannel.event.NeverReleased") == []


def _event_with(edit: Any) -> dict[str, Any]:
    event = json.loads(loader.canonical_json(EVENT))
    edit({item["name"]: item for item in event["fields"]}, event)
    return event


def _payload(fields: dict[str, Any], short: str) -> dict[str, Any]:
    return next(p for p in fields["payload"]["type"] if isinstance(p, dict) and p["name"].endswith(f".{short}"))


def test_new_required_payload_field_breaks_the_released_event() -> None:
    def edit(fields: dict[str, Any], _event: dict[str, Any]) -> None:
        _payload(fields, "CartLineAdded")["fields"].append({"name": "gift_wrap", "type": "boolean"})

    problems = check_backward_transitive(_event_with(edit), evolution.released_versions(EVENT), labels=["v1"])
    assert [(p.path, p.against) for p in problems] == [("Event.payload[CartLineAdded].gift_wrap", "v1")]
    assert "without a default" in problems[0].message


def test_optional_payload_field_and_new_payload_record_are_accepted() -> None:
    def edit(fields: dict[str, Any], _event: dict[str, Any]) -> None:
        _payload(fields, "CartLineAdded")["fields"].append(
            {"name": "gift_wrap", "type": ["null", "boolean"], "default": None, "doc": "Gift wrap; null: not asked."}
        )
        fields["payload"]["type"].append(
            {"type": "record", "name": "omnichannel.event.WishlistAdded", "doc": "x", "fields": []}
        )

    assert check_backward_transitive(_event_with(edit), evolution.released_versions(EVENT)) == []


def test_breaking_edits_of_the_event_are_located() -> None:
    def edit(fields: dict[str, Any], _event: dict[str, Any]) -> None:
        fields["payload"]["type"] = [p for p in fields["payload"]["type"] if not p["name"].endswith(".StoreVisited")]
        _payload(fields, "OrderPlaced")["fields"][1]["type"]["items"]["fields"][1]["type"] = "string"  # quantity
        fields["occurred_at_ms"]["type"] = "int"
        # Channel has an enum default: dropping a symbol is readable (old 'tablet' reads as 'other').
        fields["channel"]["type"]["symbols"].remove("tablet")

    paths = [p.path for p in check_backward(_event_with(edit), loader.canonical_json(EVENT))]
    assert paths == [
        "Event.occurred_at_ms",
        "Event.payload[OrderPlaced].lines[].quantity",
        "Event.payload[StoreVisited]",
    ]


def test_check_released_reports_a_breaking_working_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    def edit(fields: dict[str, Any], _event: dict[str, Any]) -> None:
        fields["source_system"]["type"] = "int"

    broken = json.dumps(_event_with(edit))
    real = evolution.canonical_json
    monkeypatch.setattr(evolution, "canonical_json", lambda name: broken if name == EVENT else real(name))
    results = evolution.check_released()
    assert [(p.path, p.against) for p in results[EVENT]] == [("Event.source_system", "v1")]
    assert all(problems == [] for name, problems in results.items() if name != EVENT)
