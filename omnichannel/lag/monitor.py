"""The lag monitor: polls a :class:`~omnichannel.lag.broker.LagSource`, keeps each partition's sliding window
and each group's last hour, evaluates statuses, notifies transitions, and hands out the latest report.

It never stops on a bad reading: a broker that does not answer becomes a report with ``broker_ok=False`` and
the last figures read; a group that does not exist is reported NOTFOUND; a topic deleted under a group is
named in the group's ``problems``. The clock is injected so tests can drive the window in seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from omnichannel.lag.broker import LagSource
from omnichannel.lag.errors import BrokerUnavailableError
from omnichannel.lag.figures import largest_lag, max_time_lag, offset_lag, records_lost, time_lag, total_lag
from omnichannel.lag.history import History, Point
from omnichannel.lag.model import (
    ClusterReading,
    GroupLag,
    GroupReading,
    GroupState,
    GroupStatus,
    LagReport,
    PartitionLag,
    TopicLag,
)
from omnichannel.lag.notify import LogNotifier, Notifier, transition
from omnichannel.lag.status import Sample, evaluate_group, evaluate_partition, next_sample
from omnichannel.logs import kv

__all__ = ["LagMonitor"]

log = logging.getLogger(__name__)

Clock = Callable[[], float]
_Key = tuple[str, str, int]


@dataclass
class _Track:
    """One (group, topic, partition)'s samples inside the window, and since when it is watched."""

    observed_since: float
    samples: deque[Sample] = field(default_factory=deque)


class LagMonitor:
    """Stateful core of ``omnichannel lag``; thread-safe (one poller, many readers).

    ``groups=None`` watches every consumer group on the cluster; a list watches those names only, and names
    that do not exist are reported NOTFOUND. ``window_seconds`` is the status window (see
    :mod:`omnichannel.lag.status`), ``history_seconds`` how much of each group's past the page can plot.
    ``log_outages=False`` leaves the outage log line to the caller (a one-shot reading prints it anyway).
    ``cluster_name`` names the cluster in reports (the ``cluster_name`` label, the Burrow API's cluster).
    """

    def __init__(
        self,
        source: LagSource,
        *,
        interval_seconds: float = 10.0,
        window_seconds: float = 120.0,
        history_seconds: float = 3600.0,
        groups: Sequence[str] | None = None,
        notifier: Notifier | None = None,
        clock: Clock = time.time,
        log_outages: bool = True,
        cluster_name: str = "local",
    ) -> None:
        self.source = source
        self.cluster_name = cluster_name
        self.interval_seconds = interval_seconds
        self.window_seconds = window_seconds
        self.groups = None if groups is None else tuple(groups)
        self.notifier: Notifier = notifier if notifier is not None else LogNotifier()
        self._clock = clock
        self._log_outages = log_outages
        self._lock = threading.Lock()
        self._tracks: dict[_Key, _Track] = {}
        self._history = History(history_seconds)
        self._statuses: dict[str, GroupStatus] = {}
        self._topics_seen: dict[str, set[str]] = {}
        self._deleted: dict[str, dict[str, float]] = {}
        self._latest: LagReport | None = None
        self._last_good: LagReport | None = None
        self._polls = 0
        self._failures = 0

    # -- public -------------------------------------------------------------------------------------------------

    def poll(self) -> LagReport:
        """Read the broker once, update windows, history and notifications; never raises for an outage."""
        now = self._clock()
        try:
            reading = self.source.read(self.groups)
        except BrokerUnavailableError as exc:
            return self._record_outage(now, str(exc))
        with self._lock:
            if self._latest is not None and not self._latest.broker_ok:
                self._forgive_outage(now)
        report = self._evaluate(reading, now)
        with self._lock:
            was_down = self._latest is not None and not self._latest.broker_ok
            self._latest = self._last_good = report
            self._polls += 1
            for group in report.groups:
                if group.status is not GroupStatus.NOTFOUND:
                    self._history.add(group.group, Point(now, group.lag, group.time_lag, group.status.value))
        if was_down:
            log.warning("Kafka answers again; lag figures are current", extra=kv(bootstrap=self.source.bootstrap))
        self._notify(report, now)
        return report

    def latest(self) -> LagReport | None:
        """The last report (``None`` before the first poll)."""
        with self._lock:
            return self._latest

    def history(self, groups: set[str] | None = None) -> dict[str, Any]:
        """The last hour of group figures, in the JSON form of ``GET /v1/ops/lag/history``."""
        with self._lock:
            return self._history.to_json(self._clock(), groups)

    def window(self, group: str) -> dict[tuple[str, int], tuple[float, list[Sample]]]:
        """Per (topic, partition) of ``group``: since when it is watched, and the samples in its window."""
        with self._lock:
            return {
                (topic, partition): (track.observed_since, list(track.samples))
                for (g, topic, partition), track in self._tracks.items()
                if g == group
            }

    def counters(self) -> tuple[int, int]:
        """(successful polls, failed polls) since start, for the monitor's own metrics."""
        with self._lock:
            return self._polls, self._failures

    def run(self, stop: threading.Event) -> None:
        """Poll every ``interval_seconds`` until ``stop`` is set."""
        while not stop.is_set():
            started = time.monotonic()
            try:
                self.poll()
            except Exception:  # a bug in one poll must not end monitoring: log it and poll again
                log.exception("lag poll failed unexpectedly; the monitor keeps polling")
            stop.wait(max(0.0, self.interval_seconds - (time.monotonic() - started)))

    def close(self) -> None:
        """Flush the notifier and release the broker connections."""
        self.notifier.close()
        self.source.close()

    # -- evaluation ---------------------------------------------------------------------------------------------

    def _record_outage(self, now: float, error: str) -> LagReport:
        with self._lock:
            first = self._latest is None or self._latest.broker_ok
            last = self._last_good
            self._failures += 1
            report = LagReport(
                taken_at=now,
                broker_ok=False,
                bootstrap=self.source.bootstrap,
                window_seconds=self.window_seconds,
                interval_seconds=self.interval_seconds,
                groups=() if last is None else last.groups,
                error=error,
                last_success_at=None if last is None else last.taken_at,
                cluster_name=self.cluster_name,
            )
            self._latest = report
            for group in report.groups:  # a gap in the plotted lines, not a flat segment
                self._history.add(group.group, Point(now, None, None, None))
        if first and self._log_outages:
            log.warning("Kafka does not answer; showing the last figures and retrying", extra=kv(error=error))
        else:
            log.debug("Kafka still does not answer", extra=kv(error=error))
        return report

    def _forgive_outage(self, now: float) -> None:
        """Consumers cannot commit while Kafka is down: restart every commit clock and window from ``now``, so
        an outage longer than the window does not turn healthy groups STOP the moment Kafka answers again.
        Offsets are kept, so a rewind across the outage is still seen. Caller holds the lock."""
        for track in self._tracks.values():
            track.observed_since = now
            track.samples = deque(replace(s, commit_at=max(s.commit_at, now)) for s in track.samples)

    def _evaluate(self, reading: ClusterReading, now: float) -> LagReport:
        seen_keys: set[_Key] = set()
        groups: list[GroupLag] = []
        with self._lock:
            previous = self._last_good
        for group in reading.groups:
            before = None if previous is None else previous.group(group.group)
            failure = group.error or _offsets_unreadable(group, reading.topics)
            if failure is not None and before is not None:
                # This group could not be read this time (e.g. its coordinator is still loading after a broker
                # restart, or a stopping broker's leaders no longer give offsets): keep its last figures and
                # windows, and say why they are not fresh.
                seen_keys.update((group.group, p.topic, p.partition) for p in before.partitions())
                groups.append(replace(before, problems=(f"{failure}; showing the previous reading",)))
                continue
            groups.append(self._evaluate_group(group, reading.topics, now, seen_keys))
        with self._lock:
            for key in [k for k in self._tracks if k not in seen_keys]:
                del self._tracks[key]  # the group no longer has this partition: its window starts over
        return LagReport(
            taken_at=now,
            broker_ok=True,
            bootstrap=self.source.bootstrap,
            window_seconds=self.window_seconds,
            interval_seconds=self.interval_seconds,
            groups=tuple(groups),
            last_success_at=now,
            cluster_name=self.cluster_name,
        )

    def _evaluate_group(self, group: GroupReading, topics: frozenset[str], now: float, seen: set[_Key]) -> GroupLag:
        if not group.exists:
            return GroupLag(
                group=group.group,
                status=GroupStatus.NOTFOUND,
                state=group.state,
                members=0,
                lag=None,
                time_lag=None,
                max_lag=None,
                problems=(f"group {group.group!r} does not exist on {self.source.bootstrap}",),
            )
        held = group.held()
        rebalancing = group.state is GroupState.REBALANCING
        partitions: list[PartitionLag] = []
        for p in group.partitions:
            key = (group.group, p.topic, p.partition)
            lag = None if p.error else offset_lag(p.committed, p.end, p.earliest)
            samples: list[Sample] = []
            observed_since = now
            if lag is not None and p.committed is not None:
                seen.add(key)
                with self._lock:
                    track = self._tracks.setdefault(key, _Track(observed_since=now))
                    previous = track.samples[-1] if track.samples else None
                    track.samples.append(next_sample(previous, at=now, committed=p.committed, lag=lag))
                    while track.samples and track.samples[0].at < now - self.window_seconds:
                        track.samples.popleft()
                    samples, observed_since = list(track.samples), track.observed_since
            verdict = evaluate_partition(
                samples,
                now=now,
                window_seconds=self.window_seconds,
                observed_since=observed_since,
                held=rebalancing or (p.topic, p.partition) in held,
            )
            partitions.append(
                PartitionLag(
                    topic=p.topic,
                    partition=p.partition,
                    committed=p.committed,
                    end=p.end,
                    earliest=p.earliest,
                    lag=lag,
                    records_lost=records_lost(p.committed, p.earliest),
                    time_lag=time_lag(lag, p.position_timestamp, now),
                    status=verdict.status,
                    window_complete=verdict.complete,
                    reason=p.error or verdict.reason,
                    member=p.member,
                    error=p.error,
                )
            )
        by_topic: dict[str, list[PartitionLag]] = {}
        for part in partitions:
            by_topic.setdefault(part.topic, []).append(part)
        topic_lags = tuple(
            TopicLag(name, total_lag(x.lag for x in parts), max_time_lag(x.time_lag for x in parts), tuple(parts))
            for name, parts in sorted(by_topic.items())
        )
        return GroupLag(
            group=group.group,
            status=evaluate_group(p.status for p in partitions),
            state=group.state,
            members=group.members,
            lag=total_lag(p.lag for p in partitions),
            time_lag=max_time_lag(p.time_lag for p in partitions),
            max_lag=largest_lag(partitions),
            topics=topic_lags,
            problems=self._problems(group, set(by_topic), topics, now, partitions),
            simple=group.simple,
        )

    def _problems(
        self, group: GroupReading, consumed: set[str], topics: frozenset[str], now: float, parts: list[PartitionLag]
    ) -> tuple[str, ...]:
        """Sentences for operators: read failures, and topics deleted while the group consumed them."""
        problems: list[str] = []
        if group.error:
            problems.append(group.error)
        with self._lock:
            deleted = self._deleted.setdefault(group.group, {})
            # The coordinator drops a deleted topic's offsets within seconds, so the topic can vanish from the
            # group before a poll sees it missing: remember what each group consumed to notice that too.
            for topic in self._topics_seen.get(group.group, set()) | consumed:
                if topic not in topics:
                    deleted.setdefault(topic, now)
            for topic in [t for t in deleted if t in topics]:
                del deleted[topic]  # re-created: the group's partitions of it are reported normally again
            for topic in [t for t, at in deleted.items() if at < now - self._history.span_seconds]:
                del deleted[topic]
            self._topics_seen[group.group] = {t for t in consumed if t in topics}
            for topic, at in sorted(deleted.items()):
                noticed = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))
                problems.append(f"topic {topic!r} was deleted while this group consumed it (noticed {noticed})")
        problems.extend(f"{p.topic}[{p.partition}]: {p.error}" for p in parts if p.error and p.topic not in deleted)
        return tuple(problems)

    def _notify(self, report: LagReport, now: float) -> None:
        for group in report.groups:
            if group.status is GroupStatus.NOTFOUND:
                continue
            with self._lock:
                previous = self._statuses.get(group.group, GroupStatus.OK)
                self._statuses[group.group] = group.status
            if previous is not group.status:
                log.info(
                    "consumer group status changed",
                    extra=kv(group=group.group, previous=previous.value, status=group.status.value),
                )
            change = transition(previous, group, now)
            if change is not None:
                try:
                    self.notifier.notify(change)
                except Exception:  # a notifier bug must not stop monitoring
                    log.exception("notifier failed", extra=kv(group=group.group))
        with self._lock:
            present = {g.group for g in report.groups}
            for gone in [g for g in self._statuses if g not in present]:
                del self._statuses[gone]


def _offsets_unreadable(group: GroupReading, topics: frozenset[str]) -> str | None:
    """Why none of ``group``'s partitions has figures although their topics exist (their leaders did not give
    offsets: a broker stopping or electing), or None. A deleted topic is not this: it is reported as deleted."""
    parts = group.partitions
    if parts and all(p.error is not None and p.topic in topics for p in parts):
        first = parts[0]
        return f"{first.topic}[{first.partition}]: {first.error}"
    return None
