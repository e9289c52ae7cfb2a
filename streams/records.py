"""The records the processors read and write, independent of Faust (so the batch logic is testable)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["COMMAND_HEADER", "Command", "Incoming", "Outgoing"]

#: Header marking a record of ``events.by_customer`` as a processor command instead of an Avro event.
COMMAND_HEADER = "omnichannel-command"


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
    """A record to produce: ``topic`` is a catalogue name (the namespace is added when sending)."""

    topic: str
    key: str
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True)
class Command:
    """A message between processor partitions: how a merge moves state without cross-partition reads.

    ``handover`` (sent to the absorbed profile's key): give your cart and record to ``target``.
    ``transfer`` (sent to ``target``): merge this cart and record into yours.
    ``id`` is deterministic, so a re-sent command is recognised and applied once.
    """

    kind: str
    id: str
    target: str
    source: str
    body: dict[str, Any] = field(default_factory=dict)

    def to_outgoing(self, topic: str) -> Outgoing:
        key = self.source if self.kind == "handover" else self.target
        value = json.dumps(
            {"kind": self.kind, "id": self.id, "target": self.target, "source": self.source, "body": self.body}
        ).encode()
        return Outgoing(topic, key, value, ((COMMAND_HEADER, self.kind.encode()),))

    @classmethod
    def from_bytes(cls, data: bytes) -> Command:
        raw = json.loads(data)
        return cls(raw["kind"], raw["id"], raw["target"], raw["source"], raw.get("body") or {})
