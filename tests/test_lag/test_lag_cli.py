"""``omnichannel lag``: the table and JSON from a reading of its own, and from a running ``lag serve``."""

from __future__ import annotations

import json
import os
import subprocess
import sys

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
        assert unknown.exit_code == 4, unknown.output  # NOTFOUND (2 is a usage error)
        assert "NOTFOUND" in unknown.output and "does not exist" in unknown.output


def test_lag_piped_keeps_whole_topic_names(kit: KafkaKit) -> None:
    # Longer than 80 columns once the other columns are added: a terminal-width table would cut it.
    topic, group = kit.topic("channel.back_office.events.with-a-name-long-enough-to-be-cut-at-80"), kit.group("pipe")
    kit.produce(topic, 3)
    kit.commit(group, topic, {0: 1})
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env["KAFKA_BOOTSTRAP_SERVERS"] = kit.bootstrap
    done = subprocess.run(
        [sys.executable, "-m", "omnichannel.cli", "lag", "--group", group],
        env=env,
        capture_output=True,  # stdout is a pipe, as in `omnichannel lag | grep ...`
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if line.startswith(topic))
    assert row.split()[:5] == [topic, "0", "1", "3", "2"]


def test_lag_help_documents_distinct_exit_codes() -> None:
    help_text = CliRunner().invoke(cli, ["lag", "--help"]).output
    for line in ("0   every group OK or WARN", "2   usage error", "3   a group is ERR", "4   a group asked for", "75"):
        assert line in help_text
    usage = CliRunner().invoke(cli, ["lag", "--no-such-option"])
    assert usage.exit_code == 2  # usage errors only; group statuses are 3 and 4, Kafka down is 75
    bad = CliRunner().invoke(cli, ["lag", "--group-allow", "orders-("], env={"KAFKA_BOOTSTRAP_SERVERS": "x:1"})
    assert bad.exit_code == 1 and "--group-allow" in bad.output
