"""The records the processors read and write, independent of Faust (so the batch logic is testable)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Incoming", "Outgoing"]


@dataclass(frozen=True)
class Incoming:
    """One consumed Kafka record."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp_s: float | None = None  # the record's Kafka timestamp (Unix seconds), for latency metrics

    def header(self, name: str) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


@dataclass(frozen=True)
class Outgoing:
    """A record to produce: ``topic`` is a catalogue name (the namespace is added when sending).

    ``value`` None is a tombstone: a compacted topic then forgets the key.
    """

    topic: str
    key: str
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
