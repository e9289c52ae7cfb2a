"""Burrow's read-only HTTP API (``/v3/kafka/...``) drawn from the monitor's report: pure JSON builders.

Burrow dashboards, alert scripts and its Telegraf input read these shapes; field names and nesting follow
Burrow 1.x (``core/internal/httpserver`` and ``core/protocol/evaluator.go``):

* every body is an envelope ``{"error": bool, "message": str, ..., "request": {"url": path, "host": server}}``;
* ``GET /v3/kafka/{cluster}/consumer/{group}/lag`` (every partition) and ``.../status`` (only those not OK)
  return ``status``: ``cluster, group, status, complete, partitions, partition_count, maxlag, totallag``, each
  partition ``topic, partition, owner, client_id, status, start, end, current_lag, complete`` with ``start``
  and ``end`` the oldest and newest sample of the window as ``{offset, timestamp, observedAt, lag}`` (ms).

Where this monitor's data differs from Burrow's: ``timestamp`` is when the monitor first saw the committed
offset (the admin API has no commit times; see docs/lag.md), ``observedAt`` when the sample was read;
``complete`` is the share of the window watched (1.0 once the window is full) and, for a group, the share of
its partitions whose window is full; partitions where the group committed nothing are counted in
``partition_count`` but not listed (Burrow has no offsets to show for them either).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omnichannel.lag.model import GroupLag, GroupStatus, LagReport, PartitionLag, PartitionStatus
from omnichannel.lag.status import Sample

__all__ = ["Window", "cluster_detail", "cluster_list", "consumer_list", "consumer_status", "error_body"]

#: Per (topic, partition): since when it is watched, and its samples (``LagMonitor.window``).
Window = Mapping[tuple[str, int], tuple[float, list[Sample]]]


def _request(path: str, host: str) -> dict[str, str]:
    return {"url": path, "host": host}


def error_body(message: str, path: str, host: str) -> dict[str, Any]:
    """Burrow's error envelope (``error: true``)."""
    return {"error": True, "message": message, "request": _request(path, host)}


def cluster_list(report: LagReport, path: str, host: str) -> dict[str, Any]:
    """``GET /v3/kafka``: the one cluster this monitor watches."""
    return {
        "error": False,
        "message": "cluster list returned",
        "clusters": [report.cluster_name],
        "request": _request(path, host),
    }


def cluster_detail(report: LagReport, client_id: str, path: str, host: str) -> dict[str, Any]:
    """``GET /v3/kafka/{cluster}``: the cluster module's settings, as Burrow describes its own."""
    refresh = round(report.interval_seconds)
    return {
        "error": False,
        "message": "cluster module detail returned",
        "module": {
            "class-name": "kafka",
            "servers": [s.strip() for s in report.bootstrap.split(",") if s.strip()],
            "client-profile": {
                "name": "default",
                "client-id": client_id,
                "kafka-version": "",
                "tls": None,
                "sasl": None,
            },
            "topic-refresh": refresh,
            "offset-refresh": refresh,
        },
        "request": _request(path, host),
    }


def consumer_list(report: LagReport, path: str, host: str) -> dict[str, Any]:
    """``GET /v3/kafka/{cluster}/consumer``: the groups watched (unknown names asked for are left out)."""
    groups = sorted(g.group for g in report.groups if g.status is not GroupStatus.NOTFOUND)
    return {"error": False, "message": "consumer list returned", "consumers": groups, "request": _request(path, host)}


def consumer_status(
    report: LagReport, group: str, window: Window, path: str, host: str, *, show_all: bool
) -> tuple[int, dict[str, Any]]:
    """``.../consumer/{group}/lag`` (``show_all``) or ``.../status``: (HTTP status, body); 404 for NOTFOUND."""
    found = report.group(group)
    if found is None or found.status is GroupStatus.NOTFOUND:
        status: dict[str, Any] = {
            "cluster": report.cluster_name,
            "group": group,
            "status": GroupStatus.NOTFOUND.value,
            "complete": 1.0,
            "partitions": [],
            "partition_count": 0,
            "maxlag": None,
            "totallag": 0,
        }
        code = 404
    else:
        status, code = _group_status(report, found, window, show_all), 200
    body = {"error": False, "message": "consumer status returned", "status": status, "request": _request(path, host)}
    return code, body


def _group_status(report: LagReport, group: GroupLag, window: Window, show_all: bool) -> dict[str, Any]:
    every = list(group.partitions())
    listed = [_partition(report, p, window) for p in every if p.committed is not None]
    maxlag = max(listed, key=lambda p: p["current_lag"], default=None)
    complete = sum(1 for p in listed if p["complete"] >= 1.0) / len(listed) if listed else 1.0
    shown = listed if show_all else [p for p in listed if p["status"] != PartitionStatus.OK.value]
    return {
        "cluster": report.cluster_name,
        "group": group.group,
        "status": group.status.value,
        "complete": round(complete, 3),
        "partitions": shown,
        "partition_count": len(every),
        "maxlag": maxlag,
        "totallag": sum(p["current_lag"] for p in listed),
    }


def _offset(committed: int, commit_at: float, at: float, lag: int | None) -> dict[str, Any]:
    return {"offset": committed, "timestamp": int(commit_at * 1000), "observedAt": int(at * 1000), "lag": lag}


def _partition(report: LagReport, p: PartitionLag, window: Window) -> dict[str, Any]:
    assert p.committed is not None
    observed_since, samples = window.get((p.topic, p.partition), (report.taken_at, []))
    if samples:
        first, last = samples[0], samples[-1]
        start = _offset(first.committed, first.commit_at, first.at, first.lag)
        end = _offset(last.committed, last.commit_at, last.at, last.lag)
    else:  # read once (or the window restarted): start and end are the one reading
        start = end = _offset(p.committed, report.taken_at, report.taken_at, p.lag)
    span = report.window_seconds
    watched = 1.0 if p.window_complete or span <= 0 else min(1.0, (report.taken_at - observed_since) / span)
    member = p.member
    return {
        "topic": p.topic,
        "partition": p.partition,
        "owner": "" if member is None else member.host,
        "client_id": "" if member is None else member.client_id,
        "status": p.status.value,
        "start": start,
        "end": end,
        "current_lag": p.lag or 0,
        "complete": round(max(0.0, watched), 3),
    }
