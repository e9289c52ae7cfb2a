"""Offset lag, retention, time lag and aggregates as pure functions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from omnichannel.lag.figures import largest_lag, max_time_lag, offset_lag, records_lost, time_lag, total_lag
from omnichannel.lag.model import PartitionLag, PartitionStatus

offsets = st.integers(0, 10**12)
maybe = st.none() | offsets


@pytest.mark.parametrize(
    ("committed", "end", "earliest", "lag", "lost"),
    [
        (None, 10, 0, None, 0),  # nothing committed: absent, not zero
        (4, None, None, None, 0),  # end unknown (topic deleted)
        (4, 10, 0, 6, 0),
        (10, 10, 0, 0, 0),
        (12, 10, 0, 0, 0),  # committed past the end is not negative lag
        (2, 10, 6, 4, 4),  # retention deleted 2..5: lag counts from the log start
        (2, 10, 10, 0, 8),  # everything unread was deleted
        (3, 10, None, 7, 0),  # log start unknown: plain end - committed
    ],
)
def test_lag_offset_lag_table(
    committed: int | None, end: int | None, earliest: int | None, lag: int | None, lost: int
) -> None:
    assert offset_lag(committed, end, earliest) == lag
    assert records_lost(committed, earliest) == lost


@given(maybe, maybe, maybe)
def test_lag_offset_lag_is_never_negative_and_absent_only_without_commit_or_end(
    committed: int | None, end: int | None, earliest: int | None
) -> None:
    lag = offset_lag(committed, end, earliest)
    assert (lag is None) == (committed is None or end is None)
    assert lag is None or lag >= 0


@given(offsets, offsets, offsets)
def test_lag_agrees_with_kafka_whenever_nothing_unread_was_deleted(a: int, b: int, c: int) -> None:
    earliest, committed, end = sorted((a, b, c))
    assert offset_lag(committed, end, earliest) == end - committed  # what kafka-consumer-groups prints


@given(offsets, offsets, offsets)
def test_lag_lost_and_remaining_add_up_to_kafkas_figure(a: int, b: int, c: int) -> None:
    committed, earliest, end = sorted((a, b, c))
    assert offset_lag(committed, end, earliest) + records_lost(committed, earliest) == end - committed  # type: ignore[operator]


def test_lag_time_lag_rules() -> None:
    assert time_lag(None, 100.0, 150.0) is None
    assert time_lag(0, 100.0, 150.0) == 0.0  # caught up, however old the last record
    assert time_lag(5, 100.0, 150.0) == 50.0
    assert time_lag(5, None, 150.0) is None  # the record could not be read
    assert time_lag(5, 160.0, 150.0) == 0.0  # a producer clock ahead of ours


def _p(partition: int, lag: int | None, seconds: float | None) -> PartitionLag:
    return PartitionLag("t", partition, None, None, None, lag, 0, seconds, PartitionStatus.OK, True, "")


def test_lag_aggregates_sum_offsets_and_take_the_max_time_lag() -> None:
    parts = [_p(0, 3, 10.0), _p(1, None, None), _p(2, 7, 4.0), _p(3, 7, 2.0)]
    assert total_lag(p.lag for p in parts) == 17
    assert total_lag([None, None]) is None
    assert max_time_lag(p.time_lag for p in parts) == 10.0
    assert max_time_lag([None]) is None
    biggest = largest_lag(parts)
    assert biggest is not None and biggest.partition == 2  # the first of equal lags
    assert largest_lag([_p(0, None, None)]) is None
