"""Channel-mix segments (S6): what a customer's mix of channels says about how to serve them. A pure rule.

- ``fully_connected``: every interaction on a digital channel, and at least ``connected_min_channels`` of them
  (a customer who browses on the app, orders on the web and clicks SMS offers: serve them digitally);
- ``prefers_human``: more than ``human_share`` of the interactions in a store or with the call centre
  (a customer who comes back to a person: route them to one).

Both need ``min_interactions`` interactions first (too early to tell otherwise). Interactions are the record's
``channels`` counts (what the customer did; campaign sends and back-office facts do not count), so a segment
follows the mix: it comes and goes as the customer's channels change. The two are exclusive by construction
(``fully_connected`` has no human interaction at all, ``human_share`` is at least 0).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from streams.domain.errors import DomainError

__all__ = ["SEGMENTS", "Segment", "SegmentRules", "segments_of"]

Segment = Literal["fully_connected", "prefers_human"]

#: Every segment, in the order the API lists them.
SEGMENTS: Final[tuple[Segment, ...]] = ("fully_connected", "prefers_human")

#: Channel names of the event contract (``omnichannel.event.Channel``), checked here to catch typos in settings.
_KNOWN_CHANNELS: Final = frozenset(
    {"web", "mobile_app", "tablet", "store", "call_centre", "email", "sms", "push", "postal", "back_office", "other"}
)


@dataclass(frozen=True, slots=True)
class SegmentRules:
    """The thresholds of the segments (``OMNICHANNEL_SEGMENT_*`` in :class:`streams.config.ProcessorConfig`)."""

    digital_channels: frozenset[str] = frozenset({"web", "mobile_app", "tablet", "email", "sms", "push"})
    human_channels: frozenset[str] = frozenset({"store", "call_centre"})
    connected_min_channels: int = 2
    human_share: float = 0.5
    min_interactions: int = 3

    def __post_init__(self) -> None:
        unknown = sorted((self.digital_channels | self.human_channels) - _KNOWN_CHANNELS)
        if unknown:
            raise DomainError(f"unknown channels {unknown}: use channel names such as web, store, call_centre")
        both = sorted(self.digital_channels & self.human_channels)
        if both:
            raise DomainError(f"channels {both} cannot be both digital and human")
        if not self.digital_channels or not self.human_channels:
            raise DomainError("the digital and the human channel lists must each name at least one channel")
        if self.connected_min_channels < 1 or self.min_interactions < 1:
            raise DomainError("connected_min_channels and min_interactions must be at least 1")
        if not 0 <= self.human_share < 1:
            raise DomainError(f"human_share must be at least 0 and below 1, got {self.human_share}")


_DEFAULT_RULES: Final = SegmentRules()


def segments_of(interactions: Mapping[str, int], rules: SegmentRules = _DEFAULT_RULES) -> tuple[Segment, ...]:
    """The segments of a customer with ``interactions`` (channel -> count), in :data:`SEGMENTS` order."""
    used = {channel: n for channel, n in interactions.items() if n > 0}
    total = sum(used.values())
    if total < rules.min_interactions:
        return ()
    found: list[Segment] = []
    if used.keys() <= rules.digital_channels and len(used) >= rules.connected_min_channels:
        found.append("fully_connected")
    human = sum(n for channel, n in used.items() if channel in rules.human_channels)
    if human > rules.human_share * total:
        found.append("prefers_human")
    return tuple(found)
