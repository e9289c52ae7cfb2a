"""A bounded memory of applied event ids: the second line of defence against applying an event twice.

The first line is the (partition, offset) fence: each state write records the source offset it covers and
a replayed or stale write is a no-op (see the Faust field notes: at-least-once delivery replays up to one
commit interval after a crash or rebalance). That fence cannot see a producer retry or a connector
re-sending the same event under a new offset; :class:`SeenEvents`, kept with the state it protects and
keyed by ``event_id``, catches those. It is bounded by count, so it only catches duplicates that arrive
within the last ``capacity`` events of its key: size it for the replay window of the channel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Self

from streams.domain.errors import DomainError

__all__ = ["SeenEvents"]


@dataclass(frozen=True, slots=True)
class SeenEvents:
    """The last ``capacity`` distinct event ids applied, oldest first in ``ids``.

    Adding an id beyond the capacity forgets the oldest one. Adding an id already held changes nothing
    (its age is that of its first sighting, so a stream of replays cannot keep an id alive forever).
    """

    capacity: int = 10_000
    ids: tuple[str, ...] = ()
    _index: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.capacity < 1:
            raise DomainError(f"SeenEvents.capacity must be at least 1, got {self.capacity}: e.g. 10000")
        ids = tuple(dict.fromkeys(self.ids))[-self.capacity :]
        object.__setattr__(self, "ids", ids)
        object.__setattr__(self, "_index", frozenset(ids))

    def seen(self, event_id: str) -> bool:
        """True if ``event_id`` is among the ids held."""
        return event_id in self._index

    def add(self, event_id: str) -> Self:
        """A memory that also holds ``event_id`` (the oldest id is forgotten when over capacity)."""
        if event_id in self._index:
            return self
        # __post_init__ trims to the capacity, dropping the oldest.
        return type(self)(capacity=self.capacity, ids=(*self.ids, event_id))
