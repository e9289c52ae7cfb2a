"""The lag figures, as pure functions of what the broker reported (no I/O, no clock).

Offset lag
    ``end - max(committed, earliest)``, never negative; ``None`` (absent, not zero) where the group has
    committed nothing. ``end`` is the high watermark, as in Kafka's own ``kafka-consumer-groups --describe``.
    *Retention rule*: when retention (or ``delete_records``) removed records the group never read
    (``committed < earliest``), lag counts from the earliest offset still in the log: those records can never
    be consumed again, so they are not backlog. They are reported separately as ``records_lost``
    (``earliest - committed``). Kafka's tool still counts them (``end - committed``); the two agree whenever
    ``committed >= earliest``.

Time lag
    How old the record at the group's read position (``max(committed, earliest)``) is: ``now - its timestamp``,
    never negative. It keeps growing while a consumer is dead even if producers are idle, and is 0 when the
    group is caught up (offset lag 0). ``None`` when nothing is committed or the record could not be read.

Aggregates
    Per topic and per group, offset lag is the sum of the known partition lags (``None`` if none is known) and
    time lag is the maximum, never a sum: the oldest unread record is how far behind the group is.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from omnichannel.lag.model import PartitionLag

__all__ = ["largest_lag", "max_time_lag", "offset_lag", "read_position", "records_lost", "time_lag", "total_lag"]

_P = TypeVar("_P", bound=PartitionLag)


def read_position(committed: int | None, earliest: int | None) -> int | None:
    """Where the group reads next: its committed offset, moved up to the log start if retention passed it."""
    if committed is None:
        return None
    return committed if earliest is None else max(committed, earliest)


def offset_lag(committed: int | None, end: int | None, earliest: int | None) -> int | None:
    """Records the group still has to read (see the module docstring for the retention rule)."""
    position = read_position(committed, earliest)
    if position is None or end is None:
        return None
    # A committed offset past the end (a hand-set offset, or a truncated log) is not negative lag.
    return max(0, end - position)


def records_lost(committed: int | None, earliest: int | None) -> int:
    """Records deleted by retention before the group read them (0 when none or unknown)."""
    if committed is None or earliest is None:
        return 0
    return max(0, earliest - committed)


def time_lag(lag: int | None, position_timestamp: float | None, now: float) -> float | None:
    """Age in seconds of the record at the read position; 0 when caught up, ``None`` when unknown."""
    if lag is None:
        return None
    if lag == 0:
        return 0.0
    if position_timestamp is None:
        return None
    # Producer clocks may run ahead of ours (CreateTime is set by the producer): clamp at 0.
    return max(0.0, now - position_timestamp)


def total_lag(lags: Iterable[int | None]) -> int | None:
    """Sum of the known lags; ``None`` when none is known (nothing committed anywhere)."""
    known = [lag for lag in lags if lag is not None]
    return sum(known) if known else None


def max_time_lag(values: Iterable[float | None]) -> float | None:
    """The largest known time lag; ``None`` when none is known."""
    known = [v for v in values if v is not None]
    return max(known) if known else None


def largest_lag(partitions: Iterable[_P]) -> _P | None:
    """The partition with the largest offset lag (the first one on ties); ``None`` if no lag is known."""
    best: _P | None = None
    for p in partitions:
        if p.lag is not None and (best is None or best.lag is None or p.lag > best.lag):
            best = p
    return best
