"""Batch imports into the real Kafka: POS CSV and JSON lines, back-office feeds, resuming without duplicates."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from confluent_kafka import Consumer, TopicPartition

from connectors.channels import load_adapter
from connectors.envelope import EventTimeWindow
from connectors.errors import ImportLineError, ImportPositionError, PublishUnavailableError
from connectors.importer import import_file
from connectors.native import stable_event_id
from connectors.publisher import Publisher
from omnichannel.cli import cli
from omnichannel.settings import Settings
from omnichannel.stack import StackInfo
from schemas.codec import AvroCodec
from schemas.loader import EVENT_FULLNAME
from schemas.publish import register_all
from schemas.registry import ConfluentSchemaRegistry
from schemas.topics import catalogue_for, channel_topic

ReadBack = Callable[..., list[tuple[str, dict[str, Any], int]]]
POS = load_adapter("pos")
HEADER = (
    "type,txn_id,timestamp,store_id,till_id,employee_id,customer_id,loyalty_card,items,total_cents,currency,"
    "order_id,product_id,quantity,points"
)


def _csv_line(n: int, kind: str = "sale") -> str:
    extra = {
        "sale": "SKU-1:2:4999;SKU-7:1:1299,11297,EUR,,,,",
        "return": ",,,T-1,SKU-1,1,",
        "collection": ",,,ORD-77,,,",
        "loyalty": ",,,,,,120",
    }[kind]
    card = "6330-0012" if kind == "loyalty" else ""
    return f"{kind},T-{n},2024-11-23T10:{n % 60:02d}:00+01:00,S0231,till-3,E10442,C-{n % 3},{card},{extra}"


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def _import(path: Path, publisher: Publisher, position: Path, **options: Any) -> Any:
    return import_file(path, adapter=POS, publish=publisher.publish, position_file=position, **options)


def test_a_pos_csv_file_is_imported_and_read_back(
    tmp_path: Path, publisher: Publisher, topic_for: Callable[[str], str], read_back: ReadBack
) -> None:
    kinds = ["sale", "return", "collection", "loyalty", "sale"]
    path = _write(tmp_path / "till.csv", [HEADER, *(_csv_line(n, kind) for n, kind in enumerate(kinds, 1))])
    position = tmp_path / "state" / "pos.json"
    seen: list[tuple[int, int]] = []
    report = _import(path, publisher, position, batch_size=2, progress=lambda done, total: seen.append((done, total)))
    assert (report.published, report.first_line, report.last_line) == (5, 2, 6)
    assert [total for _, total in seen] == [2, 4, 5], "the position advances once per acknowledged batch"
    records = read_back(topic_for("store"), 5)
    types = [event["event_type"] for _, event, _ in records]
    assert types == ["order_placed", "product_returned", "order_collected", "loyalty_card_used", "order_placed"]
    _, sale, _ = records[0]
    assert sale["source_system"] == "pos-import"
    assert sale["event_id"] == stable_event_id("store", "S0231", "T-1", "sale")
    assert json.loads(position.read_text())["line"] == 6


def test_a_rerun_imports_only_lines_added_since(
    tmp_path: Path, publisher: Publisher, topic_for: Callable[[str], str], read_back: ReadBack
) -> None:
    lines = [HEADER, *(_csv_line(n) for n in range(1, 4))]
    path = _write(tmp_path / "till.csv", lines)
    position = tmp_path / "pos.json"
    assert _import(path, publisher, position).published == 3
    assert _import(path, publisher, position).published == 0, "nothing new: nothing published"
    _write(path, [*lines, _csv_line(4), _csv_line(5)])
    report = _import(path, publisher, position)
    assert (report.published, report.first_line, report.published_total) == (2, 5, 5)
    marker = _write(tmp_path / "marker.csv", [HEADER, _csv_line(99)])
    _import(marker, publisher, tmp_path / "marker.json")
    ids = [event["payload"]["order_id"] for _, event, _ in read_back(topic_for("store"), 6)]
    assert ids == ["T-1", "T-2", "T-3", "T-4", "T-5", "T-99"], "each line exactly once"


def test_an_invalid_line_stops_the_import_and_the_fixed_file_resumes_without_duplicates(
    tmp_path: Path, publisher: Publisher, topic_for: Callable[[str], str], read_back: ReadBack
) -> None:
    good = [
        {
            "type": "sale",
            "txn_id": f"J-{n}",
            "timestamp": "2024-11-23T10:20:00Z",
            "store_id": "S1",
            "till_id": "till-1",
            "items": [{"sku": "SKU-1", "quantity": 1, "unit_price_cents": 100}],
            "total_cents": 100,
            "currency": "EUR",
        }
        for n in range(1, 7)
    ]
    broken = {**good[3], "total_cents": "a lot"}
    path = tmp_path / "till.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in [*good[:3], broken, *good[4:]]) + b"\n")
    position = tmp_path / "pos.json"
    with pytest.raises(ImportLineError) as caught:
        _import(path, publisher, position, batch_size=2)
    assert caught.value.line == 4
    assert "total_cents" in str(caught.value) and "resume from line 4" in str(caught.value)
    assert json.loads(position.read_text())["line"] == 3, "lines before the bad one are stored and recorded"
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in good) + b"\n")
    report = _import(path, publisher, position, batch_size=2)
    assert (report.first_line, report.published, report.published_total) == (4, 3, 6)
    ids = [event["payload"]["order_id"] for _, event, _ in read_back(topic_for("store"), 6)]
    assert ids == [f"J-{n}" for n in range(1, 7)]


def test_invalid_lines_can_be_skipped_and_reported(tmp_path: Path, publisher: Publisher) -> None:
    path = _write(tmp_path / "till.csv", [HEADER, _csv_line(1), "sale,T-2,noon,S1,till-1", "", _csv_line(3)])
    report = _import(path, publisher, tmp_path / "pos.json", skip_invalid=True)
    assert report.published == 2
    assert [r.line for r in report.rejected] == [3]
    assert "columns" in str(report.rejected[0].problems[0])


def test_kafka_down_leaves_the_position_and_a_rerun_publishes_everything_once(
    tmp_path: Path,
    publisher: Publisher,
    dead_publisher: Publisher,
    topic_for: Callable[[str], str],
    read_back: ReadBack,
) -> None:
    path = _write(tmp_path / "till.csv", [HEADER, *(_csv_line(n) for n in range(1, 4))])
    position = tmp_path / "pos.json"
    with pytest.raises(PublishUnavailableError, match="re-run the same command to resume from line 2"):
        _import(path, dead_publisher, position)
    assert not position.exists()
    assert _import(path, publisher, position).published == 3
    marker = _write(tmp_path / "marker.csv", [HEADER, _csv_line(99)])
    _import(marker, publisher, tmp_path / "marker.json")
    ids = [event["payload"]["order_id"] for _, event, _ in read_back(topic_for("store"), 4)]
    assert ids == ["T-1", "T-2", "T-3", "T-99"]


def test_a_replaced_file_is_refused_unless_restarted(tmp_path: Path, publisher: Publisher) -> None:
    path = _write(tmp_path / "till.csv", [HEADER, _csv_line(1), _csv_line(2)])
    position = tmp_path / "pos.json"
    _import(path, publisher, position)
    _write(path, [HEADER, _csv_line(7)])
    with pytest.raises(ImportPositionError, match="--restart"):
        _import(path, publisher, position)
    assert _import(path, publisher, position, restart=True).published == 1


def test_a_back_office_feed_is_imported(
    tmp_path: Path, publisher: Publisher, topic_for: Callable[[str], str], read_back: ReadBack
) -> None:
    messages = [
        {
            "type": "stock.level_changed",
            "message_id": f"STK-{n}",
            "occurred_at": "2024-11-23T11:00:00Z",
            "store_id": "S0231",
            "sku": "SKU-1",
            "available": n,
            "sequence": n,
        }
        for n in range(3)
    ]
    path = tmp_path / "feed.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(m) for m in messages))
    report = import_file(
        path, adapter=load_adapter("back_office"), publish=publisher.publish, position_file=tmp_path / "bo.json"
    )
    assert report.published == 3
    records = read_back(topic_for("back_office"), 3)
    assert [e["payload"]["available"] for _, e, _ in records] == [0, 1, 2]
    # One product's levels in one store share a key, so they stay in order on one partition.
    assert {key for key, _, _ in records} == {"stock:S0231:SKU-1"}


def test_the_cli_imports_with_a_position_next_to_the_state(
    tmp_path: Path, stack: StackInfo, codec: AvroCodec, unique: Callable[[str], str], registered: Settings
) -> None:
    tag = unique("cli")
    path = _write(tmp_path / "till.csv", [HEADER, *(_csv_line(n).replace(f"T-{n}", f"{tag}-{n}") for n in range(3))])
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": stack.kafka.address,
        "SCHEMA_REGISTRY_URL": stack.registry.address,
        "REDIS_URL": stack.redis.address,
        "OMNICHANNEL_STATE_DIR": str(tmp_path / "state"),
    }
    topic = Settings.from_env({**os.environ, **env}).topic(channel_topic("store"))  # as the CLI sees it
    consumer = Consumer({"bootstrap.servers": stack.kafka.address, "group.id": unique("cli-read")})
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        starts = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in (metadata.partitions if metadata.error is None else {})
        }
        result = CliRunner().invoke(cli, ["import", "pos", str(path)], env=env)
        assert result.exit_code == 0, result.output
        assert "3 events published from lines 2-4" in result.output
        assert list((tmp_path / "state" / "imports").glob("pos-till.csv-*.json"))
        again = CliRunner().invoke(cli, ["import", "pos", str(path)], env=env)
        assert "0 events published" in again.output
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions  # created by the import if new
        consumer.assign([TopicPartition(topic, p, starts.get(p, 0)) for p in partitions])
        found: list[str] = []
        for _ in range(100):
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                event = AvroCodec(codec.registry).decode(message.value(), EVENT_FULLNAME)
                if event["payload"].get("order_id", "").startswith(tag):
                    found.append(event["payload"]["order_id"])
            if len(found) == 3:
                break
        assert sorted(found) == [f"{tag}-{n}" for n in range(3)]
    finally:
        consumer.close()
    bad = CliRunner().invoke(cli, ["import", "pos", str(_write(tmp_path / "bad.csv", [HEADER, "sale,X"]))], env=env)
    assert bad.exit_code == 1
    assert "line 2" in bad.output and "--skip-invalid" in bad.output


_FAULTS_NAMESPACE = "import-faults"


@pytest.fixture(scope="module")
def faults_namespace(stack: StackInfo) -> str:
    """The namespace of the CLI fault tests, its contract registered (`omnichannel schemas register`)."""
    register_all(ConfluentSchemaRegistry(stack.registry.address), catalogue_for(_FAULTS_NAMESPACE))
    return _FAULTS_NAMESPACE


def _cli_env(stack: StackInfo, tmp_path: Path, namespace: str) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": stack.kafka.address,
        "SCHEMA_REGISTRY_URL": stack.registry.address,
        "REDIS_URL": stack.redis.address,
        "OMNICHANNEL_STATE_DIR": str(tmp_path / "state"),
        "OMNICHANNEL_NAMESPACE": namespace,
    }


_LATIN1_LINE = _csv_line(2).replace("S0231", "Sé0231").encode("latin-1")
_HUGE_FIELD_LINE = _csv_line(2).replace("E10442", "E" + "x" * 140_000).encode()


@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [(_LATIN1_LINE, "not UTF-8 text (byte 0xe9 at column"), (_HUGE_FIELD_LINE, "a field is longer than 128 KiB")],
    ids=["latin-1", "field-over-128KiB"],
)
@pytest.mark.parametrize("skip", [False, True], ids=["stop", "skip-invalid"])
def test_undecodable_lines_end_with_a_message_naming_the_line(
    tmp_path: Path, stack: StackInfo, faults_namespace: str, bad_line: bytes, reason: str, skip: bool
) -> None:
    path = tmp_path / "till.csv"
    path.write_bytes(b"\n".join([HEADER.encode(), _csv_line(1).encode(), bad_line, _csv_line(3).encode()]) + b"\n")
    args = ["import", "pos", str(path), *(["--skip-invalid"] if skip else [])]
    result = CliRunner().invoke(cli, args, env=_cli_env(stack, tmp_path, faults_namespace))
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert reason in result.output
    if skip:
        assert result.exit_code == 0, result.output
        assert "line 3 skipped" in result.output and "2 events published" in result.output
    else:
        assert result.exit_code == 1
        assert "invalid line 3" in result.output and "resume from line 3" in result.output


@pytest.mark.parametrize("skip", [False, True], ids=["stop", "skip-invalid"])
def test_a_header_that_is_not_utf8_is_refused_as_line_1(tmp_path: Path, publisher: Publisher, skip: bool) -> None:
    path = tmp_path / "till.csv"
    path.write_bytes(HEADER.replace("points", "pöints").encode("latin-1") + b"\n" + _csv_line(1).encode() + b"\n")
    with pytest.raises(ImportLineError, match=r"line 1: .*not UTF-8 text.*nothing was imported") as caught:
        _import(path, publisher, tmp_path / "pos.json", skip_invalid=skip)
    assert caught.value.line == 1


def test_lines_dated_outside_the_window_are_refused_naming_occurred_at_ms(tmp_path: Path, publisher: Publisher) -> None:
    future = _csv_line(3).replace("2024-11-23", "3000-11-23")
    path = _write(
        tmp_path / "till.csv", [HEADER, _csv_line(1), _csv_line(2).replace("2024-11-23", "1970-01-02"), future]
    )
    report = _import(
        path,
        publisher,
        tmp_path / "pos.json",
        skip_invalid=True,
        clock=lambda: 1_764_000_000_000,
        window=EventTimeWindow(max_age_days=3650, max_skew_minutes=60),
    )
    assert report.published == 1
    assert [(r.line, [p.path for p in r.problems]) for r in report.rejected] == [
        (3, ["occurred_at_ms"]),
        (4, ["occurred_at_ms"]),
    ]
    assert "OMNICHANNEL_MAX_EVENT_AGE_DAYS" in str(report.rejected[0].problems[0])
