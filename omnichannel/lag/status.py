"""Partition and group status with Burrow-compatible semantics, as pure functions over a sliding window.

The window
    Every poll the monitor records one :class:`Sample` per (group, topic, partition): when it read it, the
    committed offset, the offset lag, and ``commit_at``, the time that committed offset was committed. Kafka's
    admin API (OffsetFetch) does not expose commit timestamps, so ``commit_at`` is *the time the monitor first
    saw the committed offset take its current value* (:func:`next_sample`); a source that knows the broker's
    commit time may pass it instead and the rules are unchanged. The window is the samples read in the last
    ``W`` seconds (``window_seconds``). It is *complete* once the monitor has watched the partition for at
    least ``W`` seconds (``observed_since <= now - W``). WARN needs a complete window; STOP and STALL need the
    offset unchanged for longer than ``W``, which monitor-observed commit times cannot show sooner either; so
    a partition watched for less than ``W`` can only be OK or REWIND. After a Kafka outage the monitor
    restarts the commit clocks and windows (nobody can commit while Kafka is down): the outage itself is
    reported as such, not as every group stopping at once.

Partition rules, evaluated in this order (the first that matches wins; ``last`` is the newest sample):

1. OK when nothing is committed (no lag to judge; the figures show lag as absent).
2. OK when the lag was 0 in any sample of the window, the newest included (Burrow's rule 1: a consumer that
   caught up at some point in the window is healthy).
3. REWIND when the committed offset went down between two consecutive samples of the window.
4. STOP when ``now - last.commit_at > W`` and no live consumer holds the partition: no commit for longer
   than the window while there is lag, and nobody is there to commit.
5. STALL when ``now - last.commit_at > W`` and a live consumer holds the partition: it is there (polling,
   heartbeating) but its committed offset has not moved for the whole window while there is lag.
6. WARN when the window is complete, holds at least two samples, the lag never went down from one sample to
   the next and the newest lag is larger than the oldest: the consumer is moving but falling behind.
7. OK otherwise.

"Holds the partition" means a member of the group has it in its assignment (``describe_consumer_groups``)
or the group is rebalancing (assignments are in flux, which is itself a sign of live members).

Differences from Burrow, and why
    Burrow reads every commit from ``__consumer_offsets``, so it sees a live consumer re-committing the same
    offset (STALL) apart from a consumer that stopped committing (STOP). The admin API shows only the latest
    committed offset, so here group membership tells the two apart: STOP = no progress and nobody holding the
    partition; STALL = no progress while a member holds it. Burrow also warns when the lag stays flat while
    offsets advance; polling samples a steady consumer at arbitrary phases, so a flat lag is mostly sampling
    noise and WARN here needs the lag to have grown over the window.

Group rules (:func:`evaluate_group`)
    NOTFOUND when the group does not exist; else ERR when any partition is STALL, STOP or REWIND; else WARN
    when any partition is WARN; else OK. The coordinator's state (stable, rebalancing, empty, dead) is
    reported beside the status, not folded into it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise

from omnichannel.lag.model import GroupStatus, PartitionStatus

__all__ = ["Evaluation", "Sample", "evaluate_group", "evaluate_partition", "next_sample"]

_ERRORS = frozenset({PartitionStatus.STALL, PartitionStatus.STOP, PartitionStatus.REWIND})


@dataclass(frozen=True)
class Sample:
    """One poll's view of a partition: read at ``at``; ``commit_at`` as defined in the module docstring."""

    at: float
    committed: int
    lag: int
    commit_at: float


@dataclass(frozen=True)
class Evaluation:
    """A partition's status, whether its window was complete, and a sentence saying why."""

    status: PartitionStatus
    complete: bool
    reason: str


def next_sample(
    previous: Sample | None, *, at: float, committed: int, lag: int, broker_commit_at: float | None = None
) -> Sample:
    """The sample for a new reading: ``commit_at`` carries over while the committed offset is unchanged.

    ``broker_commit_at`` is the commit's own timestamp when the source knows it; otherwise the first time
    the monitor saw this offset value stands in for it.
    """
    if broker_commit_at is not None:
        commit_at = broker_commit_at
    elif previous is not None and previous.committed == committed:
        commit_at = previous.commit_at
    else:
        commit_at = at
    return Sample(at=at, committed=committed, lag=lag, commit_at=commit_at)


def evaluate_partition(
    samples: Sequence[Sample],
    *,
    now: float,
    window_seconds: float,
    observed_since: float,
    held: bool,
) -> Evaluation:
    """Apply the partition rules of the module docstring to the samples read in the last ``window_seconds``.

    ``samples`` are in reading order and may include older ones (they are ignored); an empty sequence means
    nothing is committed. ``held`` says whether a live member holds the partition.
    """
    complete = observed_since <= now - window_seconds
    window = [s for s in samples if s.at >= now - window_seconds]
    if not window:
        return Evaluation(PartitionStatus.OK, complete, "nothing committed")
    last = window[-1]
    if any(s.lag == 0 for s in window):
        why = "caught up" if last.lag == 0 else "caught up within the window"
        return Evaluation(PartitionStatus.OK, complete, why)
    for before, after in pairwise(window):
        if after.committed < before.committed:
            return Evaluation(
                PartitionStatus.REWIND,
                complete,
                f"committed offset went back from {before.committed} to {after.committed}",
            )
    idle = now - last.commit_at
    if idle > window_seconds:
        if not held:
            return Evaluation(
                PartitionStatus.STOP,
                complete,
                f"no commit for {_span(idle)} (window {window_seconds:g}s), lag {last.lag}, no consumer holds it",
            )
        return Evaluation(
            PartitionStatus.STALL,
            complete,
            f"a consumer holds it but its offset has not moved for {_span(idle)}, lag {last.lag}",
        )
    if (
        complete
        and len(window) >= 2
        and all(after.lag >= before.lag for before, after in pairwise(window))
        and last.lag > window[0].lag
    ):
        return Evaluation(
            PartitionStatus.WARN, complete, f"lag grew from {window[0].lag} to {last.lag} over the window"
        )
    if not complete:
        return Evaluation(PartitionStatus.OK, complete, "window not yet complete")
    return Evaluation(PartitionStatus.OK, complete, "consuming")


def _span(seconds: float) -> str:
    return f"{seconds:.1f}s" if seconds < 60 else f"{seconds / 60:.1f}min"


def evaluate_group(statuses: Iterable[PartitionStatus], *, exists: bool = True) -> GroupStatus:
    """NOTFOUND, else ERR if any partition is STALL/STOP/REWIND, else WARN if any is WARN, else OK."""
    if not exists:
        return GroupStatus.NOTFOUND
    worst = GroupStatus.OK
    for status in statuses:
        if status in _ERRORS:
            return GroupStatus.ERR
        if status is PartitionStatus.WARN:
            worst = GroupStatus.WARN
    return worst
