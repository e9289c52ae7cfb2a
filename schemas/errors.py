"""Errors raised by the schema package (loading the event contract and checking its evolution)."""

from __future__ import annotations

from omnichannel.errors import OmnichannelError

__all__ = [
    "CompatibilityError",
    "DecodeError",
    "EncodeError",
    "RegistryError",
    "SchemaError",
    "SchemaNotRegisteredError",
    "UnknownEventTypeError",
]


class SchemaError(OmnichannelError):
    """A schema file is missing or malformed, or a schema name is unknown."""


class UnknownEventTypeError(SchemaError, LookupError):
    """An ``event_type`` names no payload record of the Event schema; the message lists the valid ones."""


class CompatibilityError(SchemaError):
    """A schema cannot be analysed for compatibility (invalid JSON or Avro), or a release would break readers."""


class EncodeError(SchemaError, ValueError):
    """A record does not match its schema; ``field`` is the dotted path of the offending field."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class DecodeError(SchemaError):
    """Bytes that are not Confluent-framed Avro of a known schema; ``raw`` keeps them for the dead-letter path."""

    def __init__(self, message: str, *, raw: bytes, schema_id: int | None = None) -> None:
        super().__init__(message)
        self.raw = raw
        self.schema_id = schema_id


class RegistryError(SchemaError):
    """The Schema Registry refused or could not be reached; the message says which call and why."""


class SchemaNotRegisteredError(RegistryError):
    """A producer's schema is not registered under its subject: producers look ids up, they never register.

    ``subject`` is the subject looked up. The fix is a deployment step, ``omnichannel schemas register``.
    """

    def __init__(self, message: str, *, subject: str) -> None:
        super().__init__(message)
        self.subject = subject
