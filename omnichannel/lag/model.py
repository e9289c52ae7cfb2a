"""What the lag monitor reads from the broker and what it reports: frozen values, no I/O.

Two layers:

- *readings* (:class:`ClusterReading`, :class:`GroupReading`, :class:`PartitionReading`) are what Kafka said at
  one instant: committed, end and earliest offsets, group state and member assignments, and the timestamp of
  the record each group reads next;
- the *report* (:class:`LagReport`, :class:`GroupLag`, :class:`TopicLag`, :class:`PartitionLag`) adds the
  figures and statuses the monitor derives from a reading and its sliding window. :func:`report_to_json` is
  the wire format of ``GET /v1/ops/lag``; the table and the web page are drawn from that same form.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = [
    "ClusterReading",
    "GroupLag",
    "GroupReading",
    "GroupState",
    "GroupStatus",
    "LagReport",
    "Member",
    "PartitionLag",
    "PartitionReading",
    "PartitionStatus",
    "TopicLag",
    "notfound_group_json",
    "report_to_json",
]


class PartitionStatus(StrEnum):
    """Burrow's partition statuses (see :mod:`omnichannel.lag.status` for the rules)."""

    OK = "OK"
    WARN = "WARN"
    STALL = "STALL"
    STOP = "STOP"
    REWIND = "REWIND"

    @property
    def code(self) -> int:
        """The value of ``omnichannel_consumer_partition_status``: 0 OK, 1 WARN, 2 STALL, 3 STOP, 4 REWIND."""
        return _PARTITION_CODES[self]


class GroupStatus(StrEnum):
    """Burrow's group statuses: the worst partition, with STALL, STOP and REWIND all counting as ERR."""

    OK = "OK"
    WARN = "WARN"
    ERR = "ERR"
    NOTFOUND = "NOTFOUND"

    @property
    def code(self) -> int:
        """The value of ``omnichannel_consumer_group_status``: 0 OK, 1 WARN, 2 ERR, 3 NOTFOUND."""
        return _GROUP_CODES[self]


class GroupState(StrEnum):
    """The group coordinator's view of a group, folded to what an operator acts on."""

    STABLE = "stable"
    REBALANCING = "rebalancing"
    EMPTY = "empty"
    DEAD = "dead"
    UNKNOWN = "unknown"


_PARTITION_CODES = {s: i for i, s in enumerate(PartitionStatus)}
_GROUP_CODES = {s: i for i, s in enumerate(GroupStatus)}


@dataclass(frozen=True)
class Member:
    """The live group member a partition is assigned to, as the coordinator describes it."""

    client_id: str
    consumer_id: str
    host: str

    @property
    def owner(self) -> str:
        """``client_id@host``, as the table and ``GET /v1/ops/lag`` show it."""
        return f"{self.client_id}@{self.host}"


@dataclass(frozen=True)
class PartitionReading:
    """One partition a group has committed offsets for or is assigned, as the broker reported it.

    ``committed`` is ``None`` where the group never committed; ``end`` (the high watermark) and
    ``earliest`` (the log start offset) are ``None`` when the partition could not be read, with ``error``
    saying why (e.g. the topic was deleted). ``position_timestamp`` is the Unix time (seconds) of the record
    at the group's read position, ``None`` when the group is caught up or the record could not be read.
    """

    topic: str
    partition: int
    committed: int | None
    end: int | None
    earliest: int | None
    position_timestamp: float | None = None
    member: Member | None = None
    error: str | None = None

    @property
    def owner(self) -> str | None:
        """``client_id@host`` of the member holding the partition, ``None`` when nobody does."""
        return None if self.member is None else self.member.owner


@dataclass(frozen=True)
class GroupReading:
    """One consumer group at one instant; ``exists`` is false for a group asked for by name but unknown."""

    group: str
    exists: bool
    state: GroupState
    members: int
    partitions: tuple[PartitionReading, ...] = ()
    error: str | None = None
    simple: bool = False

    def held(self) -> frozenset[tuple[str, int]]:
        """Partitions a live member owns (``owner`` set): the evidence that a consumer is still there."""
        return frozenset((p.topic, p.partition) for p in self.partitions if p.owner is not None)


@dataclass(frozen=True)
class ClusterReading:
    """Every group read in one poll, and the topics that existed then (to notice deleted ones)."""

    topics: frozenset[str]
    groups: tuple[GroupReading, ...]


@dataclass(frozen=True)
class PartitionLag:
    """Figures and status of one (group, topic, partition); see :mod:`omnichannel.lag.figures`."""

    topic: str
    partition: int
    committed: int | None
    end: int | None
    earliest: int | None
    lag: int | None
    records_lost: int
    time_lag: float | None
    status: PartitionStatus
    window_complete: bool
    reason: str
    member: Member | None = None
    error: str | None = None

    @property
    def owner(self) -> str | None:
        """``client_id@host`` of the member holding the partition, ``None`` when nobody does."""
        return None if self.member is None else self.member.owner


@dataclass(frozen=True)
class TopicLag:
    """A group's partitions of one topic: lag summed, time lag the maximum."""

    topic: str
    lag: int | None
    time_lag: float | None
    partitions: tuple[PartitionLag, ...]


@dataclass(frozen=True)
class GroupLag:
    """One group's figures, status and coordinator state; ``problems`` are plain sentences for operators."""

    group: str
    status: GroupStatus
    state: GroupState
    members: int
    lag: int | None
    time_lag: float | None
    max_lag: PartitionLag | None
    topics: tuple[TopicLag, ...] = ()
    problems: tuple[str, ...] = ()
    simple: bool = False

    def partitions(self) -> Iterator[PartitionLag]:
        """Every partition of every topic, in topic then partition order."""
        for topic in self.topics:
            yield from topic.partitions


@dataclass(frozen=True)
class LagReport:
    """The monitor's latest view. When the broker does not answer, ``broker_ok`` is false, ``error`` says
    why, and ``groups`` are the last figures read (from ``last_success_at``), kept so outputs stay useful."""

    taken_at: float
    broker_ok: bool
    bootstrap: str
    window_seconds: float
    interval_seconds: float
    groups: tuple[GroupLag, ...] = ()
    error: str | None = None
    last_success_at: float | None = None
    cluster_name: str = "local"

    def group(self, name: str) -> GroupLag | None:
        """The group called ``name``, or ``None``."""
        return next((g for g in self.groups if g.group == name), None)

    def only(self, names: set[str]) -> LagReport:
        """A copy holding only the named groups (unknown names are simply absent)."""
        return LagReport(
            taken_at=self.taken_at,
            broker_ok=self.broker_ok,
            bootstrap=self.bootstrap,
            window_seconds=self.window_seconds,
            interval_seconds=self.interval_seconds,
            groups=tuple(g for g in self.groups if g.group in names),
            error=self.error,
            last_success_at=self.last_success_at,
            cluster_name=self.cluster_name,
        )


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _partition_json(p: PartitionLag) -> dict[str, Any]:
    return {
        "partition": p.partition,
        "committed": p.committed,
        "end": p.end,
        "earliest": p.earliest,
        "lag": p.lag,
        "records_lost": p.records_lost,
        "time_lag_seconds": _round(p.time_lag),
        "status": p.status.value,
        "window_complete": p.window_complete,
        "reason": p.reason,
        "owner": p.owner,
        "error": p.error,
    }


def _group_json(g: GroupLag) -> dict[str, Any]:
    return {
        "group": g.group,
        "status": g.status.value,
        "state": g.state.value,
        "members": g.members,
        "lag": g.lag,
        "time_lag_seconds": _round(g.time_lag),
        "max_lag": None
        if g.max_lag is None
        else {"topic": g.max_lag.topic, "partition": g.max_lag.partition, "lag": g.max_lag.lag},
        "problems": list(g.problems),
        "topics": [
            {
                "topic": t.topic,
                "lag": t.lag,
                "time_lag_seconds": _round(t.time_lag),
                "partitions": [_partition_json(p) for p in t.partitions],
            }
            for t in g.topics
        ],
    }


def report_to_json(report: LagReport) -> dict[str, Any]:
    """The JSON form served by ``GET /v1/ops/lag`` (documented in docs/lag.md)."""
    return {
        "taken_at": report.taken_at,
        "taken_at_iso": _iso(report.taken_at),
        "broker": {
            "ok": report.broker_ok,
            "bootstrap": report.bootstrap,
            "error": report.error,
            "last_success_at": report.last_success_at,
            "last_success_at_iso": _iso(report.last_success_at),
        },
        "window_seconds": report.window_seconds,
        "interval_seconds": report.interval_seconds,
        "groups": [_group_json(g) for g in report.groups],
    }


def notfound_group_json(group: str, bootstrap: str) -> dict[str, Any]:
    """The JSON entry of a group asked for by name that does not exist (status NOTFOUND)."""
    return _group_json(
        GroupLag(
            group=group,
            status=GroupStatus.NOTFOUND,
            state=GroupState.DEAD,
            members=0,
            lag=None,
            time_lag=None,
            max_lag=None,
            problems=(f"group {group!r} does not exist on {bootstrap}",),
        )
    )
