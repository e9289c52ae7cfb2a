"""``omnichannel lag``: the table and JSON from a reading of its own, and from a running ``lag serve``."""

from __future__ import annotations

import json

from click.testing import CliRunner
from lag_harness import FakeClock, KafkaKit, lag_serve

from omnichannel.cli import cli


def test_lag_cli_prints_a_table_and_json_of_a_group(kit: KafkaKit, clock: FakeClock) -> None:
    topic, group = kit.topic("cli", partitions=2), kit.group("cli")
    kit.produce(topic, 6, partition=0, timestamp=clock.now - 90)
    kit.commit(group, topic, {0: 2, 1: 0})
    env = {"KAFKA_BOOTSTRAP_SERVERS": kit.bootstrap, "COLUMNS": "200"}

    table = CliRunner().invoke(cli, ["lag", "--group", group], env=env)
    assert table.exit_code == 0, table.output
    assert group in table.output and topic in table.output
    row = next(line for line in table.output.splitlines() if line.startswith(topic) and " 0 " in line[:40])
    assert row.split()[:5] == [topic, "0", "2", "6", "4"]  # topic, partition, committed, end, lag
    assert "Statuses need" in table.output  # one reading cannot judge STOP/STALL/WARN, and it says so

    as_json = CliRunner().invoke(cli, ["lag", "--group", group, "--json"], env=env)
    assert as_json.exit_code == 0, as_json.output
    [found] = json.loads(as_json.output)["groups"]
    assert (found["group"], found["lag"]) == (group, 4)
    assert found["time_lag_seconds"] >= 90


def test_lag_cli_asks_a_running_lag_serve(kit: KafkaKit) -> None:
    topic, group = kit.topic("cli-server"), kit.group("cli-server")
    kit.produce(topic, 3)
    kit.commit(group, topic, {0: 1})
    with lag_serve(kit.bootstrap, "--interval", "0.5", "--window", "2") as base:
        known = CliRunner().invoke(cli, ["lag", "--server", base, "--group", group, "--json"])
        assert known.exit_code == 0, known.output
        assert json.loads(known.output)["groups"][0]["lag"] == 2
        unknown = CliRunner().invoke(cli, ["lag", "--server", base, "--group", "no-such-group-at-all"])
        assert unknown.exit_code == 2, unknown.output
        assert "NOTFOUND" in unknown.output and "does not exist" in unknown.output
