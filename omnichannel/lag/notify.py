"""The notifier hook: a webhook (``OMNICHANNEL_LAG_WEBHOOK_URL``) or, without one, a structured log line.

It fires when a group *leaves* OK (to WARN or ERR) and when it *returns* to OK; changes between WARN and
ERR are logged at INFO only, so an alert channel gets exactly one "down" and one "up" per incident.

Webhook body (``POST``, ``application/json``)::

    {"event": "group_left_ok" | "group_returned_ok", "group": "...", "status": "ERR", "previous": "OK",
     "state": "empty", "lag": 120, "time_lag_seconds": 42.5, "at": 1700000000.0, "at_iso": "...",
     "partitions": [{"topic": "...", "partition": 0, "status": "STOP", "lag": 120, "reason": "..."}]}
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import httpx

from omnichannel.lag.model import GroupLag, GroupState, GroupStatus, PartitionStatus
from omnichannel.logs import kv

__all__ = ["GroupTransition", "LogNotifier", "Notifier", "WebhookNotifier", "transition"]

log = logging.getLogger(__name__)

Event = Literal["group_left_ok", "group_returned_ok"]


@dataclass(frozen=True)
class GroupTransition:
    """A group's status crossing the OK boundary, with the partitions that explain it."""

    event: Event
    group: str
    status: GroupStatus
    previous: GroupStatus
    state: GroupState
    lag: int | None
    time_lag: float | None
    at: float
    partitions: tuple[dict[str, Any], ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        """The webhook body (see the module docstring)."""
        return {
            "event": self.event,
            "group": self.group,
            "status": self.status.value,
            "previous": self.previous.value,
            "state": self.state.value,
            "lag": self.lag,
            "time_lag_seconds": None if self.time_lag is None else round(self.time_lag, 3),
            "at": self.at,
            "at_iso": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.at)),
            "partitions": list(self.partitions),
        }


def transition(previous: GroupStatus, current: GroupLag, at: float) -> GroupTransition | None:
    """The notification due when a group goes from ``previous`` to ``current.status``, if any.

    NOTFOUND is no health status (the group is gone or was never there): it neither leaves nor returns.
    """
    unhealthy = {GroupStatus.WARN, GroupStatus.ERR}
    if previous is GroupStatus.OK and current.status in unhealthy:
        event: Event = "group_left_ok"
    elif previous in unhealthy and current.status is GroupStatus.OK:
        event = "group_returned_ok"
    else:
        return None
    bad = tuple(
        {"topic": p.topic, "partition": p.partition, "status": p.status.value, "lag": p.lag, "reason": p.reason}
        for p in current.partitions()
        if p.status is not PartitionStatus.OK
    )
    return GroupTransition(
        event, current.group, current.status, previous, current.state, current.lag, current.time_lag, at, bad
    )


class Notifier(Protocol):
    """Receives group transitions; must not block the poll loop for long nor raise."""

    def notify(self, change: GroupTransition) -> None:
        """Deliver one transition."""
        ...

    def close(self) -> None:
        """Deliver what is pending and stop."""
        ...


class LogNotifier:
    """Writes one structured WARNING line per transition (visible at the default, quiet log level)."""

    def notify(self, change: GroupTransition) -> None:
        """Log the transition with its group, statuses and the partitions that caused it."""
        message = "consumer group left OK" if change.event == "group_left_ok" else "consumer group returned to OK"
        reasons = "; ".join(f"{p['topic']}[{p['partition']}] {p['status']}: {p['reason']}" for p in change.partitions)
        log.warning(
            message,
            extra=kv(
                event=change.event,
                group=change.group,
                status=change.status.value,
                previous=change.previous.value,
                state=change.state.value,
                lag=change.lag,
                time_lag_seconds=None if change.time_lag is None else round(change.time_lag, 3),
                partitions=reasons or "-",
            ),
        )

    def close(self) -> None:
        """Nothing is buffered."""


class WebhookNotifier:
    """POSTs each transition as JSON to ``url`` from a background thread, so a slow endpoint never delays
    polling. A failed delivery is retried ``retries`` times with a short back-off, then written as a log line
    by :class:`LogNotifier` so the event is never lost silently."""

    def __init__(self, url: str, *, timeout: float = 5.0, retries: int = 2, backoff: float = 1.0) -> None:
        self.url = url
        self._timeout = timeout
        self._retries = retries
        self._backoff = backoff
        self._fallback = LogNotifier()
        self._queue: queue.Queue[GroupTransition | None] = queue.Queue()
        self._thread = threading.Thread(target=self._deliver_all, name="lag-webhook", daemon=True)
        self._thread.start()

    def notify(self, change: GroupTransition) -> None:
        """Queue one transition for delivery."""
        self._queue.put(change)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far was delivered (or given up); True if it was in time."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.02)
        return not self._queue.unfinished_tasks

    def close(self) -> None:
        """Deliver what is queued, then stop the thread."""
        self._queue.put(None)
        self._thread.join(timeout=self._timeout * (self._retries + 1) + 5)

    def _deliver_all(self) -> None:
        with httpx.Client(timeout=self._timeout) as client:
            while True:
                change = self._queue.get()
                try:
                    if change is None:
                        return
                    self._deliver(client, change)
                finally:
                    self._queue.task_done()

    def _deliver(self, client: httpx.Client, change: GroupTransition) -> None:
        for attempt in range(self._retries + 1):
            try:
                response = client.post(self.url, json=change.to_json())
                if response.status_code < 400:
                    log.info("webhook delivered", extra=kv(event=change.event, group=change.group))
                    return
                problem = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            log.warning("webhook delivery failed", extra=kv(url=self.url, attempt=attempt + 1, error=problem))
            if attempt < self._retries:
                time.sleep(self._backoff * (attempt + 1))
        self._fallback.notify(change)
