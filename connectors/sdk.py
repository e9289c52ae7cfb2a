"""A small Python SDK for server-side apps: track events to the collector, batched, with retries.

::

    from connectors.sdk import Tracker

    with Tracker("https://collector.example", api_key="...", channel="web") as tracker:
        tracker.add_to_cart("SKU-1001", 2, 4999, "EUR", customer_id="C-42")
        tracker.track("search_performed", {"query": "reading lamp"}, anonymous_id="anon-7f3a")
    # leaving the block flushes: every event is stored in Kafka, or an error says which were not

Events are checked against the contract when tracked (:class:`~connectors.errors.InvalidEventError` at
the call site), get their ``event_id`` at once (so retries never duplicate), and are sent in batches of
``batch_size`` or every ``flush_interval_s`` by a background thread. A 503 or a network error is retried
with exponential back-off, honouring ``Retry-After``; events the collector rejects are reported by the next
:meth:`Tracker.flush` (or ``on_error`` for background sends) and not retried.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Final

import httpx
import orjson

from connectors.envelope import IDENTITY_FIELDS, system_clock_ms, uuid4_text, validate_event
from connectors.errors import (
    AuthenticationError,
    DeliveryError,
    EventsRejectedError,
    InvalidEventError,
    QueueFullError,
    TrackerError,
)
from omnichannel.logs import kv
from schemas.validation import Problem

__all__ = [
    "AuthenticationError",
    "DeliveryError",
    "EventsRejectedError",
    "InvalidEventError",
    "QueueFullError",
    "Tracker",
    "TrackerError",
]

log = logging.getLogger(__name__)

_RETRY_STATUSES: Final = frozenset({429, 500, 502, 503, 504})


class Tracker:
    """Sends one channel's events to the collector (thread-safe; one per app is enough).

    ``anonymous_id``/``customer_id``/``device`` are defaults for every event; each call can override them.
    ``transport`` replaces httpx's network transport (tests); ``sleep`` and ``clock_ms`` are injectable.
    """

    def __init__(
        self,
        url: str,
        api_key: str,
        channel: str,
        *,
        anonymous_id: str | None = None,
        customer_id: str | None = None,
        device: Mapping[str, Any] | None = None,
        source_system: str = "python-sdk",
        batch_size: int = 100,
        flush_interval_s: float = 1.0,
        max_queue: int = 10_000,
        max_retries: int = 5,
        backoff_base_s: float = 0.25,
        backoff_max_s: float = 30.0,
        timeout_s: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        clock_ms: Callable[[], int] = system_clock_ms,
        sleep: Callable[[float], None] = time.sleep,
        on_error: Callable[[TrackerError], None] | None = None,
    ) -> None:
        self.channel = channel
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.max_queue = max_queue
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self._defaults = {"anonymous_id": anonymous_id, "customer_id": customer_id}
        self._device = dict(device) if device else None
        self._source_system = source_system
        self._clock_ms = clock_ms
        self._sleep = sleep
        self._on_error = on_error
        self._client = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
            timeout=timeout_s,
            transport=transport,
        )
        self._queue: deque[dict[str, Any]] = deque()
        self._errors: list[TrackerError] = []
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._sending = threading.Lock()
        self._closed = False
        self._worker = threading.Thread(target=self._run, name="tracker-sender", daemon=True)
        self._worker.start()

    # -- tracking ---------------------------------------------------------------------------------------

    def track(
        self,
        event_type: str,
        payload: Mapping[str, Any] | None = None,
        *,
        customer_id: str | None = None,
        anonymous_id: str | None = None,
        email_hash: str | None = None,
        phone_hash: str | None = None,
        loyalty_card: str | None = None,
        occurred_at_ms: int | None = None,
        event_id: str | None = None,
        session_id: str | None = None,
        device: Mapping[str, Any] | None = None,
        location: Mapping[str, Any] | None = None,
        actor: Mapping[str, Any] | None = None,
        consent: Mapping[str, bool] | None = None,
    ) -> str:
        """Queue one event and return its id; :class:`InvalidEventError` at once if it breaks the contract."""
        identities = {
            "anonymous_id": anonymous_id or self._defaults["anonymous_id"],
            "customer_id": customer_id or self._defaults["customer_id"],
            "email_hash": email_hash,
            "phone_hash": phone_hash,
            "loyalty_card": loyalty_card,
        }
        event: dict[str, Any] = {
            "event_id": event_id or uuid4_text(),
            "event_type": event_type,
            "occurred_at_ms": self._clock_ms() if occurred_at_ms is None else occurred_at_ms,
            "channel": self.channel,
            "device": dict(device) if device else self._device,
            "identities": {name: identities[name] for name in IDENTITY_FIELDS},
            "location": dict(location) if location else None,
            "actor": dict(actor) if actor else None,
            "session_id": session_id,
            "consent": dict(consent or {}),
            "source_system": self._source_system,
            "payload": dict(payload or {}),
        }
        validate_event({**event, "received_at_ms": 0})  # the collector stamps the real one
        with self._lock:
            if self._closed:
                raise TrackerError("the tracker is closed")
            if len(self._queue) >= self.max_queue:
                raise QueueFullError(f"{len(self._queue)} events are waiting for the collector (max_queue)")
            self._queue.append(event)
            if len(self._queue) >= self.batch_size:
                self._wake.notify()
        return str(event["event_id"])

    def identify(self, customer_id: str | None = None, traits: Mapping[str, str] | None = None, **ids: Any) -> str:
        """The channel learned who the customer is (``identify``): identifiers in ``ids``, ``traits`` as text."""
        return self.track("identify", {"traits": dict(traits or {})}, customer_id=customer_id, **ids)

    def add_to_cart(self, product_id: str, quantity: int, unit_price_cents: int, currency: str, **ids: Any) -> str:
        """``quantity`` units added to the cart line of ``product_id`` (``cart_line_added``)."""
        payload = {"product_id": product_id, "quantity": quantity, "unit_price_cents": unit_price_cents}
        return self.track("cart_line_added", {**payload, "currency": currency}, **ids)

    def remove_from_cart(self, product_id: str, **ids: Any) -> str:
        """The cart line of ``product_id`` removed (``cart_line_removed``)."""
        return self.track("cart_line_removed", {"product_id": product_id}, **ids)

    def set_quantity(
        self,
        product_id: str,
        quantity: int,
        unit_price_cents: int | None = None,
        currency: str | None = None,
        **ids: Any,
    ) -> str:
        """The cart line of ``product_id`` set to ``quantity`` units; 0 removes it (``cart_quantity_set``)."""
        payload = {"product_id": product_id, "quantity": quantity, "unit_price_cents": unit_price_cents}
        return self.track("cart_quantity_set", {**payload, "currency": currency}, **ids)

    # -- delivery ---------------------------------------------------------------------------------------

    def flush(self) -> None:
        """Send every queued event now and raise what went wrong since the last flush (typed errors)."""
        self._send_queued()
        with self._lock:
            errors, self._errors = self._errors, []
        if errors:
            raise _merge(errors)

    @property
    def queued(self) -> int:
        """Events waiting to be sent."""
        return len(self._queue)

    def close(self) -> None:
        """Flush (raising undelivered events' errors), stop the sender thread and close the connection."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._wake.notify()
        self._worker.join()
        try:
            self.flush()
        finally:
            self._client.close()

    def __enter__(self) -> Tracker:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
            return
        try:  # already failing: deliver what we can without hiding the original exception
            self.close()
        except TrackerError as error:
            log.warning("tracker closed with undelivered events", extra=kv(error=str(error)))

    def _run(self) -> None:
        while True:
            with self._lock:
                self._wake.wait_for(lambda: self._closed or len(self._queue) >= self.batch_size, self.flush_interval_s)
                if self._closed:
                    return
            try:
                self._send_queued(background=True)
            except Exception:  # the sender must survive anything; errors are kept for flush()
                log.exception("tracker background send failed")

    def _send_queued(self, background: bool = False) -> None:
        with self._sending:
            while True:
                with self._lock:
                    batch = [self._queue.popleft() for _ in range(min(self.batch_size, len(self._queue)))]
                if not batch:
                    return
                error = self._deliver(batch)
                if error is not None:
                    with self._lock:
                        self._errors.append(error)
                    if background and self._on_error is not None:
                        self._on_error(error)

    def _deliver(self, batch: list[dict[str, Any]]) -> TrackerError | None:
        """Send one batch until stored or rejected; retry what the collector could not store."""
        pending = batch
        rejected: dict[str, list[Problem]] = {}
        for attempt in range(self.max_retries + 1):
            wait: float | None = None
            try:
                response = self._client.post("/v1/events", content=orjson.dumps({"events": pending}))
            except httpx.TransportError as exc:
                wait, reason = self._backoff(attempt), f"the collector is unreachable: {exc}"
            else:
                status = response.status_code
                body = _json(response)
                if status in (401, 403):
                    return AuthenticationError(f"the collector refused the key ({status}): {body.get('detail')}")
                if status == 413 and len(pending) > 1:  # the collector's limits are lower than batch_size
                    half = len(pending) // 2
                    errors = [e for e in (self._deliver(pending[:half]), self._deliver(pending[half:])) if e]
                    return _merge(errors) if errors else None
                retry: list[dict[str, Any]] = []
                for result in body.get("results", []) if isinstance(body.get("results"), list) else []:
                    event = pending[int(result.get("index", 0))]
                    if result.get("status") == "rejected":
                        found = [Problem(p.get("path", ""), p.get("reason", "")) for p in result.get("problems", [])]
                        rejected[str(event["event_id"])] = found
                    elif result.get("status") != "accepted":
                        retry.append(event)
                if "results" not in body:
                    if status not in _RETRY_STATUSES:
                        return TrackerError(f"the collector answered {status}: {body.get('detail', response.text)}")
                    retry = pending
                if not retry:
                    return EventsRejectedError(rejected) if rejected else None
                pending = retry
                wait = _retry_after(response) or self._backoff(attempt)
                reason = f"the collector answered {status}: {body.get('detail', '')}"
            if attempt < self.max_retries:
                log.info("retrying events", extra=kv(events=len(pending), wait_s=wait, reason=reason))
                self._sleep(min(wait, self.backoff_max_s))
        ids = [str(e["event_id"]) for e in pending]
        return DeliveryError(f"{len(ids)} event(s) undelivered after {self.max_retries} retries: {reason}", ids)

    def _backoff(self, attempt: int) -> float:
        # Exponential with full jitter: many app instances retrying after an outage do not stampede together.
        return random.uniform(0, min(self.backoff_max_s, self.backoff_base_s * 2**attempt))  # noqa: S311


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    return float(value) if value.strip().isdigit() else None


def _merge(errors: list[TrackerError]) -> TrackerError:
    """One error for a flush: authentication first (nothing will work), then undelivered, then rejected."""
    for kind in (AuthenticationError, DeliveryError):
        found = [e for e in errors if isinstance(e, kind)]
        if found:
            if kind is DeliveryError:
                ids = [i for e in found if isinstance(e, DeliveryError) for i in e.event_ids]
                return DeliveryError(str(found[0]), ids)
            return found[0]
    rejected = {k: v for e in errors if isinstance(e, EventsRejectedError) for k, v in e.rejected.items()}
    if rejected:
        return EventsRejectedError(rejected)
    return errors[0]
