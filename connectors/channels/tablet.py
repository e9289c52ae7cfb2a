"""Tablet app channel: the tablet app (customer-owned, or a staff clienteling tablet: see ``device.role``).

It speaks the collector's own JSON.

Native format: the Event itself (``EventInput`` in the collector's OpenAPI), sent to ``POST /v1/events``
with a tablet key, directly or through :mod:`connectors.sdk`. The mapping is therefore the envelope's
normalisation (fill the id, stamp the receive time, default the optional fields), e.g.::

    {"event_type": "product_viewed", "occurred_at_ms": 1732357200000,
     "device": {"device_id": "a1b2c3", "kind": "ipad", "role": "customer_owned"},
     "identities": {"anonymous_id": "anon-7f3a"}, "payload": {"product_id": "SKU-1001"}}
"""

from __future__ import annotations

from typing import Any

from connectors.channels.base import ChannelAdapter
from connectors.envelope import IdFactory, normalise, uuid4_text

__all__ = ["ADAPTER", "to_event"]

CHANNEL = "tablet"


def to_event(raw: Any, *, received_at_ms: int, new_id: IdFactory = uuid4_text) -> dict[str, Any]:
    """The complete Event for one tablet event in the collector's JSON (see ``normalise``)."""
    return normalise(raw, received_at_ms=received_at_ms, channel=CHANNEL, new_id=new_id)


ADAPTER = ChannelAdapter(
    name="tablet",
    channel=CHANNEL,
    source_system="collector",
    summary="Tablet app events in the collector's JSON at POST /v1/events (or through the Python SDK).",
)
