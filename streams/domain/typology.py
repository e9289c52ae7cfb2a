"""Channel typology (S6): is a customer mono-, multi- or cross-channel? A pure classification.

- ``unknown``: no channel used yet (only things done *to* the customer, such as campaign sends);
- ``mono_channel``: every interaction on one channel;
- ``multi_channel``: several channels, but each journey stayed within one;
- ``cross_channel``: at least one journey spanned channels (a cart filled on one channel and ordered on
  another, a quote started on the web and submitted through the call centre, a web order collected in store).

A customer who once went cross-channel stays so: the classification describes how they have shopped, and a
later mono-channel order does not undo an earlier cross-channel one.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Final, Literal

__all__ = ["TYPOLOGIES", "Typology", "classify"]

Typology = Literal["unknown", "mono_channel", "multi_channel", "cross_channel"]

#: Every class, in the order the API lists them.
TYPOLOGIES: Final[tuple[Typology, ...]] = ("mono_channel", "multi_channel", "cross_channel", "unknown")


def classify(channels_used: Collection[str], cross_journeys: int) -> Typology:
    """The class of a customer who used ``channels_used`` and completed ``cross_journeys`` cross-channel journeys."""
    if cross_journeys > 0:
        return "cross_channel"
    if not channels_used:
        return "unknown"
    return "mono_channel" if len(channels_used) == 1 else "multi_channel"
