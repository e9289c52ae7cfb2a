"""Errors raised by the channel connectors (collector, adapters, importer, SDK).

Each derives from :class:`omnichannel.errors.OmnichannelError`; messages say what was wrong and what to do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from omnichannel.errors import OmnichannelError
from schemas.validation import Problem

__all__ = [
    "AuthenticationError",
    "ConnectorError",
    "DeliveryError",
    "EventsRejectedError",
    "ImportLineError",
    "ImportPositionError",
    "InvalidEventError",
    "PublishError",
    "PublishUnavailableError",
    "QueueFullError",
    "SignatureError",
    "TrackerError",
]


class ConnectorError(OmnichannelError):
    """Root of the connectors' errors."""


class InvalidEventError(ConnectorError, ValueError):
    """An event (or a channel's native payload) does not match the contract.

    ``problems`` lists every mismatch as ``Problem(path, reason)``; ``path`` is the dotted field path
    (``payload.quantity``, ``[2].timestamp`` for a native payload's third item).
    """

    def __init__(self, problems: Sequence[Problem], *, what: str = "event") -> None:
        self.problems = list(problems)
        detail = "; ".join(str(p) for p in self.problems) or "no detail"
        super().__init__(f"invalid {what}: {detail}")


class PublishError(ConnectorError):
    """Kafka refused a record for a reason retrying will not fix (e.g. record too large, not authorised)."""


class PublishUnavailableError(PublishError):
    """Kafka (or the Schema Registry) did not acknowledge in time: nothing can be reported as published.

    Safe to retry with the same event ids; consumers deduplicate on ``event_id``.
    """


class SignatureError(ConnectorError):
    """A webhook's signature is missing, malformed, wrong, or its timestamp is outside the tolerance."""


class ImportPositionError(ConnectorError):
    """The saved position of a batch import does not fit the file (the file was replaced or truncated)."""


class ImportLineError(InvalidEventError):
    """A line of a batch file is invalid; ``line`` is its 1-based number. Lines before it are published."""

    def __init__(self, line: int, problems: Sequence[Problem], *, hint: str = "") -> None:
        super().__init__(problems, what=f"line {line}")
        self.line = line
        if hint:
            self.args = (f"{self.args[0]}. {hint}",)


class TrackerError(ConnectorError):
    """Raised by :class:`connectors.sdk.Tracker` when events could not be delivered."""


class AuthenticationError(TrackerError):
    """The collector refused the tracker's API key (401) or its channel (403): fix the configuration."""


class EventsRejectedError(TrackerError):
    """The collector rejected events as invalid; ``rejected`` maps each event id to its problems."""

    def __init__(self, rejected: Mapping[str, Sequence[Problem]]) -> None:
        self.rejected = {event_id: list(found) for event_id, found in rejected.items()}
        first_id, first = next(iter(self.rejected.items()))
        detail = "; ".join(str(p) for p in first)
        super().__init__(f"{len(self.rejected)} event(s) rejected by the collector, e.g. {first_id}: {detail}")


class DeliveryError(TrackerError):
    """Events still undelivered after every retry (collector or Kafka down); ``event_ids`` says which."""

    def __init__(self, message: str, event_ids: Sequence[str]) -> None:
        super().__init__(message)
        self.event_ids = list(event_ids)


class QueueFullError(TrackerError):
    """The tracker's queue is full (the collector is slower than the app): flush, or raise ``max_queue``."""
