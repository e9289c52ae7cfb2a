"""The last hour of each group's lag, kept in memory by the monitor process for the web page."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

__all__ = ["History", "Point"]


@dataclass(frozen=True)
class Point:
    """One poll's group figures; ``None`` figures mark a gap (broker down, group unreadable)."""

    at: float
    lag: int | None
    time_lag: float | None
    status: str | None


class History:
    """Per-group points of the last ``span_seconds``; older points are dropped as new ones arrive.

    Memory is bounded by span / poll interval points per group (360 at the defaults); groups whose newest
    point has aged out are forgotten entirely.
    """

    def __init__(self, span_seconds: float = 3600.0) -> None:
        self.span_seconds = span_seconds
        self._points: dict[str, deque[Point]] = {}

    def add(self, group: str, point: Point) -> None:
        """Append a point to a group's series and drop what is older than the span."""
        series = self._points.setdefault(group, deque())
        series.append(point)
        self._trim(point.at)

    def groups(self) -> list[str]:
        """Groups with at least one point, sorted."""
        return sorted(self._points)

    def series(self, group: str) -> list[Point]:
        """A copy of one group's points, oldest first."""
        return list(self._points.get(group, ()))

    def to_json(self, now: float, groups: set[str] | None = None) -> dict[str, Any]:
        """The form served by ``GET /v1/ops/lag/history``: column arrays per group, oldest first."""
        self._trim(now)
        chosen = [g for g in self.groups() if groups is None or g in groups]
        return {
            "now": now,
            "span_seconds": self.span_seconds,
            "groups": {
                g: {
                    "t": [p.at for p in self._points[g]],
                    "lag": [p.lag for p in self._points[g]],
                    "time_lag_seconds": [None if p.time_lag is None else round(p.time_lag, 3) for p in self._points[g]],
                    "status": [p.status for p in self._points[g]],
                }
                for g in chosen
            },
        }

    def _trim(self, now: float) -> None:
        horizon = now - self.span_seconds
        for group in list(self._points):
            series = self._points[group]
            while series and series[0].at < horizon:
                series.popleft()
            if not series:
                del self._points[group]
