"""The status rules as a pure function: a table of windows with their expected status, and properties."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from omnichannel.lag.model import GroupStatus, PartitionStatus
from omnichannel.lag.status import Sample, evaluate_group, evaluate_partition, next_sample

W = 10.0
OK, WARN, STALL, STOP, REWIND = (
    PartitionStatus.OK,
    PartitionStatus.WARN,
    PartitionStatus.STALL,
    PartitionStatus.STOP,
    PartitionStatus.REWIND,
)


def window(*points: tuple[float, int, int]) -> list[Sample]:
    """Samples from (at, committed, lag), with ``commit_at`` derived as the monitor does."""
    samples: list[Sample] = []
    for at, committed, lag in points:
        samples.append(next_sample(samples[-1] if samples else None, at=at, committed=committed, lag=lag))
    return samples


# (why, samples, held, expected); evaluated at now=100 with W=10, watched since the first sample unless the
# case says otherwise in SINCE.
CASES: list[tuple[str, list[Sample], bool, PartitionStatus]] = [
    ("nothing committed", [], False, OK),
    ("caught up now", window((90, 5, 3), (95, 8, 0)), False, OK),
    ("caught up earlier in the window", window((92, 5, 0), (96, 5, 4), (100, 5, 9)), False, OK),
    ("zero lag before the window does not count", window((80, 5, 0), (92, 5, 4), (100, 5, 9)), False, STOP),
    ("offset went back", window((92, 50, 10), (96, 30, 30), (100, 31, 29)), True, REWIND),
    ("rewind is judged before an incomplete window", window((99, 50, 1), (100, 40, 11)), True, REWIND),
    ("no commit for longer than the window, nobody there", window((85, 5, 5), (95, 5, 5), (100, 5, 5)), False, STOP),
    ("no commit for longer than the window, member there", window((85, 5, 5), (95, 5, 5), (100, 5, 5)), True, STALL),
    ("no commit for exactly the window is not longer", window((90, 5, 5), (95, 5, 5), (100, 5, 5)), False, OK),
    ("lag growing while moving", window((88, 1, 4), (92, 2, 6), (96, 3, 6), (100, 4, 9)), False, WARN),
    ("lag flat while moving is not growing", window((88, 1, 4), (92, 2, 4), (96, 3, 4), (100, 4, 4)), False, OK),
    ("lag went down once", window((88, 1, 4), (92, 2, 8), (96, 6, 5), (100, 7, 9)), False, OK),
    ("growing but the window is not complete", window((95, 1, 4), (100, 2, 9)), False, OK),
    ("a single sample in the window cannot grow", window((85, 1, 4), (100, 2, 9))[1:], False, OK),
]


SINCE = {"a single sample in the window cannot grow": 85.0}


@pytest.mark.parametrize(("why", "samples", "held", "expected"), CASES, ids=[c[0] for c in CASES])
def test_lag_partition_rules_table(why: str, samples: list[Sample], held: bool, expected: PartitionStatus) -> None:
    since = SINCE.get(why, samples[0].at if samples else 100.0)
    verdict = evaluate_partition(samples, now=100.0, window_seconds=W, observed_since=since, held=held)
    assert verdict.status is expected, f"{why}: {verdict.reason}"
    assert verdict.reason


def test_lag_commit_time_carries_over_only_while_the_offset_is_unchanged() -> None:
    a = next_sample(None, at=10, committed=5, lag=1)
    b = next_sample(a, at=20, committed=5, lag=3)
    c = next_sample(b, at=30, committed=6, lag=2)
    d = next_sample(c, at=40, committed=6, lag=2, broker_commit_at=35)
    assert (a.commit_at, b.commit_at, c.commit_at, d.commit_at) == (10, 10, 30, 35)


@pytest.mark.parametrize(
    ("statuses", "exists", "expected"),
    [
        ([], True, GroupStatus.OK),
        ([OK, OK], True, GroupStatus.OK),
        ([OK, WARN], True, GroupStatus.WARN),
        ([WARN, STALL], True, GroupStatus.ERR),
        ([STOP], True, GroupStatus.ERR),
        ([OK, REWIND, WARN], True, GroupStatus.ERR),
        ([OK], False, GroupStatus.NOTFOUND),
    ],
)
def test_lag_group_rules_table(statuses: list[PartitionStatus], exists: bool, expected: GroupStatus) -> None:
    assert evaluate_group(statuses, exists=exists) is expected


# -- properties -------------------------------------------------------------------------------------------------


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[Sample], float, float, bool]:
    """Readings at increasing times with arbitrary offsets and lags, then an evaluation time after them."""
    count = draw(st.integers(1, 12))
    at = draw(st.floats(0, 1000))
    points = []
    for _ in range(count):
        at += draw(st.floats(0.1, 6))
        points.append((at, draw(st.integers(0, 30)), draw(st.integers(0, 30))))
    now = at + draw(st.floats(0, 15))
    window_seconds = draw(st.sampled_from([3.0, 5.0, 10.0, 30.0]))
    return window(*points), now, window_seconds, draw(st.booleans())


def _evaluate(samples: Sequence[Sample], now: float, w: float, held: bool) -> PartitionStatus:
    return evaluate_partition(samples, now=now, window_seconds=w, observed_since=samples[0].at, held=held).status


@given(histories())
def test_lag_zero_lag_in_the_window_is_always_ok(history: tuple[list[Sample], float, float, bool]) -> None:
    samples, now, w, held = history
    if any(s.lag == 0 for s in samples if s.at >= now - w):
        assert _evaluate(samples, now, w, held) is OK


@given(histories())
def test_lag_membership_only_chooses_between_stop_and_stall(history: tuple[list[Sample], float, float, bool]) -> None:
    samples, now, w, _held = history
    alone, owned = _evaluate(samples, now, w, False), _evaluate(samples, now, w, True)
    assert alone is not STALL and owned is not STOP
    assert (alone is STOP) == (owned is STALL)
    if alone is not STOP:
        assert alone is owned


@given(histories(), st.floats(-1e6, 1e6))
def test_lag_status_does_not_depend_on_the_clock_origin(
    history: tuple[list[Sample], float, float, bool], shift: float
) -> None:
    samples, now, w, held = history
    moved = [Sample(s.at + shift, s.committed, s.lag, s.commit_at + shift) for s in samples]
    # Shifting float timestamps can flip comparisons that are exact ties; compare away from ties only.
    idle = now - samples[-1].commit_at
    if abs(idle - w) > 1e-6 and all(abs(s.at - (now - w)) > 1e-6 for s in samples):
        assert _evaluate(samples, now, w, held) is _evaluate(moved, now + shift, w, held)


@given(histories())
def test_lag_an_incomplete_window_raises_nothing_but_rewind(history: tuple[list[Sample], float, float, bool]) -> None:
    samples, now, w, held = history
    verdict = evaluate_partition(samples, now=now, window_seconds=w, observed_since=samples[0].at, held=held)
    if not verdict.complete:
        assert verdict.status in (OK, REWIND)


@given(histories())
def test_lag_offsets_never_going_back_are_never_rewind(history: tuple[list[Sample], float, float, bool]) -> None:
    samples, now, w, held = history
    ordered = window(*sorted(((s.at, s.committed, s.lag) for s in samples), key=lambda p: p[0]))
    rising = window(*[(s.at, i, s.lag) for i, s in enumerate(ordered)])
    assert _evaluate(rising, now, w, held) is not REWIND


@given(st.lists(st.sampled_from(list(PartitionStatus)), max_size=12), st.randoms())
def test_lag_group_status_is_the_worst_partition(statuses: list[PartitionStatus], rnd: object) -> None:
    expected = (
        GroupStatus.ERR
        if {STALL, STOP, REWIND} & set(statuses)
        else GroupStatus.WARN
        if WARN in statuses
        else GroupStatus.OK
    )
    assert evaluate_group(statuses) is expected
    assert evaluate_group([*statuses, OK]) is expected  # a healthy partition never changes the verdict
    shuffled = list(statuses)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert evaluate_group(shuffled) is expected
