"""Readings that come back without figures: the monitor keeps a group's last figures and says why.

Pure logic: the readings are scripted (a broker that is stopping answers metadata while its partition leaders
no longer give offsets: the race the broker-outage test on the real broker runs into now and then).
"""

from __future__ import annotations

from collections.abc import Sequence

from omnichannel.lag.model import ClusterReading, GroupReading, GroupState, PartitionReading
from omnichannel.lag.monitor import LagMonitor

GROUP = "orders"
TOPIC = "channel.web.events"


class ScriptedSource:
    """Hands out the readings it was given, one per poll."""

    bootstrap = "scripted:9092"

    def __init__(self, readings: Sequence[ClusterReading]) -> None:
        self._readings = list(readings)

    def read(self, groups: Sequence[str] | None = None) -> ClusterReading:
        return self._readings.pop(0)

    def close(self) -> None:
        return None


def reading(part: PartitionReading, topics: frozenset[str] = frozenset({TOPIC})) -> ClusterReading:
    return ClusterReading(topics, (GroupReading(GROUP, True, GroupState.EMPTY, 0, (part,)),))


def test_a_group_whose_offsets_could_not_be_read_keeps_its_last_figures_labelled_stale() -> None:
    good = reading(PartitionReading(TOPIC, 0, committed=5, end=8, earliest=0))
    unreadable = reading(
        PartitionReading(TOPIC, 0, committed=5, end=None, earliest=None, error="offsets unavailable: NOT_LEADER")
    )
    monitor = LagMonitor(ScriptedSource([good, unreadable]), groups=[GROUP], clock=lambda: 1_000.0)
    assert monitor.poll().group(GROUP).lag == 3  # type: ignore[union-attr]
    stale = monitor.poll().group(GROUP)
    assert stale is not None and stale.lag == 3
    assert stale.problems == (f"{TOPIC}[0]: offsets unavailable: NOT_LEADER; showing the previous reading",)


def test_a_deleted_topic_is_not_taken_for_a_passing_failure() -> None:
    good = reading(PartitionReading(TOPIC, 0, committed=5, end=8, earliest=0))
    gone = reading(
        PartitionReading(TOPIC, 0, committed=5, end=None, earliest=None, error="topic does not exist (deleted?)"),
        topics=frozenset(),
    )
    monitor = LagMonitor(ScriptedSource([good, gone]), groups=[GROUP], clock=lambda: 1_000.0)
    monitor.poll()
    after = monitor.poll().group(GROUP)
    assert after is not None and after.lag is None
    assert any("was deleted" in p for p in after.problems), after.problems
