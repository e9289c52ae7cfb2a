"""Call-centre channel: the telephony / contact-centre platform's call events, by webhook.

Native format: ``POST /v1/webhooks/call_centre`` with the call_centre channel's API key
(``Authorization: Bearer <key>`` or ``X-Api-Key``) and one JSON event object, or a JSON array of them::

    {"event": "call.started", "call_id": "CALL-88231", "occurred_at": "2024-11-23T10:20:00Z",
     "direction": "inbound", "medium": "call", "agent_id": "agent-jsmith", "reason": "order_status",
     "caller_number": "+447700900123", "customer_id": "C000123456"}
    {"event": "call.ended", "call_id": "CALL-88231", "occurred_at": "2024-11-23T10:25:12Z",
     "agent_id": "agent-jsmith", "outcome": "callback_scheduled", "duration_seconds": 312, "notes": "..."}

Fields: ``event`` (``call.started`` or ``call.ended``), ``call_id``, ``occurred_at`` (ISO 8601 with an
offset) are required; ``direction`` (``inbound``/``outbound``) is required for a start and ``outcome`` for an
end; ``agent_id`` is required for an end (who handled it) and optional for a start (still queued);
``medium`` is ``call`` (default), ``chat`` or ``video``; ``caller_number`` (E.164, hashed here, never
stored), ``customer_id``, ``reason``, ``duration_seconds``, ``notes`` are optional.

Mapping: ``call.started`` -> contact_started, ``call.ended`` -> contact_ended; the agent becomes the
envelope's ``actor`` (role ``agent``); ``call_id`` is the ``contact_id`` and the ``session_id``. Event ids
derive from (``call_id``, ``event``).
"""

from __future__ import annotations

import functools
from typing import Any, Final

from fastapi import APIRouter

from connectors.channels.base import ChannelAdapter, Mapped, WebhookContext
from connectors.native import Fields, each_message, identities, stable_event_id
from connectors.webhooks import keyed_json_router
from schemas.validation import Problem

__all__ = ["ADAPTER", "to_events"]

CHANNEL: Final = "call_centre"
_EVENTS: Final = ("call.started", "call.ended")
_MEDIA: Final = ("call", "chat", "video")


def to_events(document: Any, *, hash_key: bytes) -> Mapped:
    """Map one call event object (or an array of them) to Event dicts; every problem at once.

    The caller's number is replaced by its keyed hash under ``hash_key`` (``OMNICHANNEL_HASH_KEY``).
    """
    return Mapped(each_message(document, functools.partial(_one, hash_key=hash_key), "call-centre event"))


def _one(item: Any, prefix: str, problems: list[Problem], *, hash_key: bytes) -> dict[str, Any] | None:
    fields = Fields(item, prefix, problems)
    kind = fields.text("event", choices=_EVENTS)
    call_id = fields.text("call_id")
    occurred_at_ms = fields.timestamp_ms("occurred_at")
    started = kind == "call.started"
    agent_id = fields.text("agent_id", required=kind == "call.ended")
    medium = fields.text("medium", required=False, choices=_MEDIA) or "call"
    phone_hash = fields.phone_hash("caller_number", key=hash_key)
    customer_id = fields.text("customer_id", required=False)
    if started:
        payload: dict[str, Any] = {
            "contact_id": call_id,
            "medium": medium,
            "direction": fields.text("direction", choices=("inbound", "outbound")),
            "reason": fields.text("reason", required=False),
        }
    else:
        payload = {
            "contact_id": call_id,
            "medium": medium,
            "outcome": fields.text("outcome", required=kind is not None),
            "duration_seconds": fields.integer("duration_seconds", required=False, minimum=0),
            "notes": fields.text("notes", required=False),
        }
    if kind is None or call_id is None or occurred_at_ms is None:
        return None
    return {
        "event_id": stable_event_id(CHANNEL, call_id, kind),
        "event_type": "contact_started" if started else "contact_ended",
        "occurred_at_ms": occurred_at_ms,
        "channel": CHANNEL,
        "identities": identities(customer_id=customer_id, phone_hash=phone_hash),
        "actor": {"actor_id": agent_id, "role": "agent"} if agent_id else None,
        "session_id": call_id,
        "payload": payload,
    }


def router(ctx: WebhookContext) -> APIRouter:
    """``POST /v1/webhooks/call_centre``: call events, authenticated with the channel's API key."""
    return keyed_json_router(
        ctx,
        ADAPTER,
        functools.partial(to_events, hash_key=ctx.config.hash_key),
        summary="Call-centre call events",
        description=__doc__ or "",
        example=EXAMPLE,
    )


EXAMPLE: Final = {
    "event": "call.ended",
    "call_id": "CALL-88231",
    "occurred_at": "2024-11-23T10:25:12Z",
    "agent_id": "agent-jsmith",
    "outcome": "callback_scheduled",
    "duration_seconds": 312,
    "customer_id": "C000123456",
}

ADAPTER = ChannelAdapter(
    name="call_centre",
    channel=CHANNEL,
    source_system="call-centre-webhook",
    summary="Call start/end webhook with outcome and agent -> contact_started / contact_ended (actor: agent).",
    webhook=router,
)
