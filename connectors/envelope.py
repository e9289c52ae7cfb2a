"""Pure envelope rules shared by every connector: partition key, filling defaults, validation.

Nothing here does I/O: the clock and the id generator are passed in, so tests pin them.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from connectors.errors import InvalidEventError
from connectors.fastcheck import Check, compile_check
from connectors.hashing import HASHED_IDENTITIES, is_identifier_hash
from connectors.ids import uuid4_text as _uuid_pool
from schemas.loader import EVENT_FULLNAME, EVENT_TYPES, load
from schemas.validation import Problem, problems

__all__ = [
    "IDENTITY_FIELDS",
    "Clock",
    "EventTimeWindow",
    "IdFactory",
    "normalise",
    "partition_key",
    "system_clock_ms",
    "uuid4_text",
    "validate_event",
]

Clock = Callable[[], int]
"""Returns the backbone's time, epoch milliseconds UTC."""
IdFactory = Callable[[], str]
"""Returns a fresh event id."""

IDENTITY_FIELDS: Final = ("anonymous_id", "customer_id", "email_hash", "phone_hash", "loyalty_card")
_OPTIONAL_ENVELOPE: Final = ("device", "location", "actor", "session_id")
_PLACEHOLDER_PAYLOAD: Final[tuple[str, dict[str, Any]]] = ("omnichannel.event.Logout", {})


@dataclass(frozen=True)
class EventTimeWindow:
    """How far an event's ``occurred_at_ms`` may lie from the time the backbone received it.

    An event from the future (a device clock years ahead, milliseconds sent as microseconds) would push idle
    expiry and follow-ups past it; one from 1970 (seconds sent as milliseconds, a zero) is as wrong. The
    defaults leave room for backfills of years-old exports and for device clocks a little ahead.
    """

    max_age_days: float = 3650.0
    max_skew_minutes: float = 60.0

    def problems(self, occurred_at_ms: int, received_at_ms: int) -> list[Problem]:
        """One ``occurred_at_ms`` problem when the time falls outside the window, else none."""
        earliest = received_at_ms - int(self.max_age_days * 86_400_000)
        latest = received_at_ms + int(self.max_skew_minutes * 60_000)
        if occurred_at_ms < earliest:
            return [
                Problem(
                    "occurred_at_ms",
                    f"{_iso(occurred_at_ms)} is more than {self.max_age_days:g} days before the time it was received "
                    f"({_iso(received_at_ms)}; OMNICHANNEL_MAX_EVENT_AGE_DAYS): send epoch milliseconds UTC",
                )
            ]
        if occurred_at_ms > latest:
            return [
                Problem(
                    "occurred_at_ms",
                    f"{_iso(occurred_at_ms)} is more than {self.max_skew_minutes:g} minutes after the time it was "
                    f"received ({_iso(received_at_ms)}; OMNICHANNEL_MAX_CLOCK_SKEW_MINUTES): check the sender's "
                    "clock and send epoch milliseconds UTC",
                )
            ]
        return []


def _iso(epoch_ms: int) -> str:
    try:
        return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):  # beyond what datetime can show
        return f"{epoch_ms} ms"


def system_clock_ms() -> int:
    """The backbone clock: wall time in epoch milliseconds UTC."""
    return time.time_ns() // 1_000_000


uuid4_text: Final[IdFactory] = _uuid_pool
"""A random UUID in text form, the default event id (from a pool filled in bulk, see :mod:`connectors.ids`)."""


def partition_key(event: Mapping[str, Any]) -> str:
    """The record key: the strongest identity the event carries.

    ``customer:<customer_id>``, else ``anonymous:<anonymous_id>``, else ``device:<device_id>``; a stock level
    is keyed ``stock:<store_id>:<product_id>`` (so one product's levels in one store stay in order); else
    ``event:<event_id>``. Kafka keeps one key's records in order on one partition, so a customer's events
    stay ordered per channel.
    """
    payload = event.get("payload") or {}
    if event.get("event_type") == "stock_level_changed" and isinstance(payload, Mapping):
        return f"stock:{payload.get('store_id')}:{payload.get('product_id')}"
    identities = event.get("identities") or {}
    if customer := identities.get("customer_id"):
        return f"customer:{customer}"
    if anonymous := identities.get("anonymous_id"):
        return f"anonymous:{anonymous}"
    device = event.get("device") or {}
    if device_id := device.get("device_id"):
        return f"device:{device_id}"
    return f"event:{event.get('event_id')}"


def normalise(
    raw: Any,
    *,
    received_at_ms: int,
    channel: str | None = None,
    source_system: str = "collector",
    new_id: IdFactory = uuid4_text,
    window: EventTimeWindow | None = None,
) -> dict[str, Any]:
    """A complete, valid Event dict from a partial one; :class:`InvalidEventError` lists every problem.

    With ``window``, an ``occurred_at_ms`` outside it (around ``received_at_ms``) is a problem too.

    Fills a missing ``event_id`` (``new_id()``), stamps ``received_at_ms`` (always: the sender's clock
    does not count), fills ``channel`` when the caller knows it, defaults ``identities`` members to null,
    ``consent`` to ``{}``, ``device``/``location``/``actor``/``session_id`` to null and ``source_system``.
    Other fields, including the payload, are left as given and validated against the contract.
    """
    if not isinstance(raw, dict):
        raise InvalidEventError([Problem("", f"expected a JSON object (an event), got {type(raw).__name__}")])
    event = dict(raw)
    if event.get("event_id") is None:
        event["event_id"] = new_id()
    event["received_at_ms"] = received_at_ms
    if event.get("channel") is None and channel is not None:
        event["channel"] = channel
    identities = event.get("identities")
    if identities is None:
        event["identities"] = dict.fromkeys(IDENTITY_FIELDS)
    elif isinstance(identities, dict):
        event["identities"] = {**dict.fromkeys(IDENTITY_FIELDS), **identities}
    if event.get("consent") is None:
        event["consent"] = {}
    if event.get("source_system") is None:
        event["source_system"] = source_system
    for name in _OPTIONAL_ENVELOPE:
        event.setdefault(name, None)
    validate_event(event)
    if window is not None and (late := window.problems(event["occurred_at_ms"], received_at_ms)):
        raise InvalidEventError(late)
    return event


def validate_event(event: Mapping[str, Any]) -> None:
    """Raise :class:`InvalidEventError` naming every field of ``event`` that breaks the Event contract.

    A compiled check answers first for the common, valid case; only an event it refuses is walked by
    :func:`schemas.validation.problems` for the reasons (and ``problems`` has the last word). ``email_hash``
    and ``phone_hash`` must be 64 lowercase hex characters (see :mod:`connectors.hashing`): a clear address
    would otherwise be stored in clear in topics and Redis key names.
    """
    hash_problems = _hash_problems(event)
    if not hash_problems and _passes_fast_check(event):
        return
    found: list[Problem] = []
    event_type = event.get("event_type")
    payload = event.get("payload")
    payload_name = EVENT_TYPES.get(event_type) if isinstance(event_type, str) else None
    if "event_type" not in event:
        found.append(Problem("event_type", "required field is missing"))
    elif not isinstance(event_type, str):
        found.append(Problem("event_type", f"expected string, got {type(event_type).__name__}"))
    elif payload_name is None:
        found.append(Problem("event_type", f"unknown event type {event_type!r}; valid: {', '.join(EVENT_TYPES)}"))
    if "payload" not in event:
        found.append(Problem("payload", "required field is missing"))
        payload_name = None
    elif not isinstance(payload, dict):
        found.append(Problem("payload", f"expected an object, got {type(payload).__name__}"))
        payload_name = None
    record = {**event, "payload": (payload_name, payload) if payload_name else _PLACEHOLDER_PAYLOAD}
    for problem in problems(record, load(EVENT_FULLNAME)):
        if payload_name or not problem.path.startswith("payload"):
            found.append(problem)
    if isinstance(event.get("event_id"), str) and not event["event_id"].strip():
        found.append(Problem("event_id", "must not be empty (omit it to get a generated UUID)"))
    found += hash_problems
    if found:
        raise InvalidEventError(found)


def _hash_problems(event: Mapping[str, Any]) -> list[Problem]:
    identities = event.get("identities")
    if type(identities) is not dict and not isinstance(identities, Mapping):  # exact type first: the hot path
        return []
    found: list[Problem] = []
    for name in HASHED_IDENTITIES:
        value = identities.get(name)
        if value is not None and isinstance(value, str) and not is_identifier_hash(value):
            found.append(
                Problem(
                    f"identities.{name}",
                    "expected 64 lowercase hex characters (the SHA-256 or HMAC-SHA-256 of the normalised identifier, "
                    "see the README's 'Security and privacy'); never send the clear value",
                )
            )
    return found


@functools.lru_cache(maxsize=1)
def _fast_checks() -> tuple[Check, Mapping[str, Check]]:
    envelope = compile_check(load(EVENT_FULLNAME), unchecked=frozenset({"payload"}))
    payloads = {event_type: compile_check(load(name)) for event_type, name in EVENT_TYPES.items()}
    return envelope, payloads


def _passes_fast_check(event: Mapping[str, Any]) -> bool:
    envelope, payloads = _fast_checks()
    event_type, event_id = event.get("event_type"), event.get("event_id")
    payload_check = payloads.get(event_type) if type(event_type) is str else None
    return (
        payload_check is not None
        and type(event_id) is str
        and bool(event_id.strip())
        and type(event) is dict
        and envelope(event)
        and payload_check(event.get("payload"))
    )
