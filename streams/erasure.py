"""Right to erasure: ask for it (``POST /v1/customers/{id}/erasure``, ``omnichannel erase``) and follow it.

A request is an ``erasure_requested`` event on ``channel.back_office.events``, so it is carried out by the stream
worker in order with the subject's other events (:meth:`streams.processor.FoldStage`): the subject's events leave
its identity cluster's log, its carts and records are deleted from Redis and tombstoned on ``customer.carts`` /
``customer.state``, its identifiers are tombstoned on ``identity.links`` and put on a deny-list (SHA-256 digests)
so that no replay of the channel topics brings them back, and an ``ErasureAudit`` record without personal data
goes to ``erasure.audit``. The request's status is kept in Redis (``accepted`` -> ``done`` / ``nothing_held``)
for 30 days. See the README's "Security and privacy" for what it covers and the retention of the raw topics.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Final

from redis.asyncio import Redis

from streams.keys import Keys

__all__ = ["STATUS_TTL_S", "erasure_event", "read_status", "record_status"]

#: How long a request's status stays readable.
STATUS_TTL_S: Final = 30 * 24 * 3600


def erasure_event(customer_id: str, request_id: str | None = None, now_ms: int | None = None) -> dict[str, Any]:
    """The ``erasure_requested`` event that asks the backbone to erase ``customer_id``."""
    at = int(time.time() * 1000) if now_ms is None else now_ms
    request = request_id or f"erasure-{uuid.uuid4()}"
    return {
        "event_id": request,
        "event_type": "erasure_requested",
        "occurred_at_ms": at,
        "received_at_ms": at,
        "channel": "back_office",
        "device": None,
        "identities": {
            "anonymous_id": None,
            "customer_id": customer_id,
            "email_hash": None,
            "phone_hash": None,
            "loyalty_card": None,
        },
        "location": None,
        "actor": None,
        "session_id": None,
        "consent": {},
        "source_system": "omnichannel-erasure",
        "payload": {"request_id": request},
    }


async def record_status(redis: Redis, keys: Keys, request_id: str, status: dict[str, Any]) -> None:
    await redis.set(keys.erasure(request_id), json.dumps(status, separators=(",", ":")), ex=STATUS_TTL_S)


async def read_status(redis: Redis, keys: Keys, request_id: str) -> dict[str, Any] | None:
    raw = await redis.get(keys.erasure(request_id))
    return None if raw is None else dict(json.loads(raw))
