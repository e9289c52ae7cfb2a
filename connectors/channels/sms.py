"""SMS channel: an SMS provider's status and inbound-message callbacks (form-encoded, HMAC signed).

Native format (modelled on common SMS APIs' status callbacks): ``POST /v1/webhooks/sms`` with
``Content-Type: application/x-www-form-urlencoded``, one callback per request, signed with the channel's
secret (``OMNICHANNEL_WEBHOOK_SECRETS=sms=...``) over the raw body::

    X-Sms-Timestamp: 1732357200                         # epoch seconds, within the tolerance (300 s)
    X-Sms-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>." + raw body)>

    MessageSid=SM123&MessageStatus=delivered&To=%2B447700900123&From=%2B447700900000
        &CampaignId=SPRING-SMS&PromoCode=SMS10&CustomerId=C-42

Fields: ``MessageSid`` (required), ``MessageStatus`` (required: ``sent``, ``delivered``, ``clicked``,
``received`` for an inbound message; ``queued``, ``sending``, ``undelivered``, ``failed`` are ignored),
``To`` / ``From`` (E.164; the customer's number is hashed here, never stored), ``Body`` (inbound text, read
only for opt-out keywords, never stored), ``ClickedUrl`` (for ``clicked``), ``CampaignId``, ``PromoCode``,
``CustomerId`` (parameters the sender attached), ``EventTime`` (ISO 8601; default: the signed timestamp).

Mapping: ``sent`` / ``delivered`` / ``clicked`` -> campaign_touched ``sms_sent`` / ``sms_delivered`` /
``sms_clicked`` (needs ``CampaignId``, else ignored); ``received`` -> consent_changed ``marketing_sms``
refused for STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, granted for START, UNSTOP; any other inbound
text -> campaign_touched ``sms_inbound`` under ``CampaignId``, or the pseudo-campaign ``sms-inbound`` when
the provider could not tell which campaign the customer answered. Event ids derive from
(``MessageSid``, ``MessageStatus``), so a provider's retry is deduplicated downstream.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import Response

from connectors.channels.base import ChannelAdapter, Mapped, WebhookContext
from connectors.errors import InvalidEventError
from connectors.http import HttpError
from connectors.native import Fields, identities, stable_event_id
from connectors.webhooks import accept, map_native, read_signed, webhook_responses
from schemas.validation import Problem

__all__ = ["ADAPTER", "INBOUND_CAMPAIGN", "SIGNATURE_HEADER", "TIMESTAMP_HEADER", "parse_form", "to_events"]

CHANNEL: Final = "sms"
SIGNATURE_HEADER: Final = "X-Sms-Signature"
TIMESTAMP_HEADER: Final = "X-Sms-Timestamp"
#: campaign_id of an inbound SMS the provider could not tie to a campaign.
INBOUND_CAMPAIGN: Final = "sms-inbound"

_OUTBOUND: Final = {"sent": "sms_sent", "delivered": "sms_delivered", "clicked": "sms_clicked"}
_IGNORED: Final = frozenset({"queued", "accepted", "sending", "undelivered", "failed", "scheduled", "canceled"})
_STATUSES: Final = (*_OUTBOUND, "received", *sorted(_IGNORED))
_OPT_OUT: Final = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
_OPT_IN: Final = frozenset({"START", "UNSTOP"})


def parse_form(body: bytes) -> dict[str, str]:
    """The form fields of an ``application/x-www-form-urlencoded`` body; 400 when it is not one."""
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body)))
    except (UnicodeDecodeError, ValueError) as exc:
        raise HttpError(400, "malformed_form", f"the body is not application/x-www-form-urlencoded: {exc}") from exc


def to_events(form: Mapping[str, str], *, signed_at_s: int, hash_key: bytes) -> Mapped:
    """Map one callback's form fields to Event dicts (without ``received_at_ms``); every problem at once.

    The customer's number is replaced by its keyed hash under ``hash_key`` (``OMNICHANNEL_HASH_KEY``).
    """
    fields = Fields(form)
    sid = fields.text("MessageSid")
    status = fields.text("MessageStatus", choices=_STATUSES)
    inbound = status == "received"
    phone_hash = fields.phone_hash("From" if inbound else "To", key=hash_key, required=True)
    occurred_at_ms = fields.timestamp_ms("EventTime", required=False) or signed_at_s * 1000
    campaign_id = fields.text("CampaignId", required=False)
    url = fields.text("ClickedUrl", required=status == "clicked")
    body = (fields.text("Body", required=False) or "").strip().upper()
    envelope: dict[str, Any] = {
        "event_id": stable_event_id(CHANNEL, sid, status),
        "occurred_at_ms": occurred_at_ms,
        "channel": CHANNEL,
        "identities": identities(customer_id=fields.text("CustomerId", required=False), phone_hash=phone_hash),
        "session_id": None,
    }
    touch = {"message_id": sid, "promo_code": fields.text("PromoCode", required=False), "url": None}
    if fields.problems:
        raise InvalidEventError(fields.problems, what="SMS callback")
    if status in _IGNORED:
        return Mapped([], [Problem("MessageStatus", f"status {status!r} is not tracked")])
    if inbound and (body in _OPT_OUT or body in _OPT_IN):
        payload = {"purpose": "marketing_sms", "channel": CHANNEL, "granted": body in _OPT_IN}
        return Mapped([{**envelope, "event_type": "consent_changed", "payload": payload}])
    if inbound:
        payload = {**touch, "campaign_id": campaign_id or INBOUND_CAMPAIGN, "action": "sms_inbound"}
        return Mapped([{**envelope, "event_type": "campaign_touched", "payload": payload}])
    if campaign_id is None:
        return Mapped([], [Problem("CampaignId", "missing: a message outside a campaign is not a campaign touch")])
    payload = {**touch, "campaign_id": campaign_id, "action": _OUTBOUND[str(status)], "url": url}
    return Mapped([{**envelope, "event_type": "campaign_touched", "payload": payload}])


def router(ctx: WebhookContext) -> APIRouter:
    """``POST /v1/webhooks/sms``: signed, form-encoded provider callbacks."""
    routes = APIRouter()

    @routes.post(
        "",
        status_code=202,
        summary="SMS provider status and inbound callbacks (form-encoded, signed)",
        description=__doc__,
        response_class=Response,
        responses=webhook_responses(
            f"Missing, malformed or wrong {SIGNATURE_HEADER} / {TIMESTAMP_HEADER}.", signed=True
        ),
        openapi_extra={
            "security": [],  # signed with the channel's webhook secret (HMAC), not an API key
            "requestBody": {
                "required": True,
                "content": {
                    "application/x-www-form-urlencoded": {
                        "schema": {
                            "type": "object",
                            "properties": {name: {"type": "string"} for name in EXAMPLE},
                            "required": ["MessageSid", "MessageStatus"],
                        },
                        "example": EXAMPLE,
                    }
                },
            },
        },
    )
    async def sms_callback(request: Request) -> Response:
        body, signed_at_s = await read_signed(request, ctx, CHANNEL, SIGNATURE_HEADER, TIMESTAMP_HEADER)
        return await accept(
            ctx, ADAPTER, map_native(to_events, parse_form(body), signed_at_s=signed_at_s, hash_key=ctx.config.hash_key)
        )

    return routes


EXAMPLE: Final = {
    "MessageSid": "SM123",
    "MessageStatus": "delivered",
    "To": "+447700900123",
    "From": "+447700900000",
    "CampaignId": "SPRING-SMS",
    "PromoCode": "SMS10",
    "CustomerId": "C-42",
}

ADAPTER = ChannelAdapter(
    name="sms",
    channel=CHANNEL,
    source_system="sms-webhook",
    summary="SMS provider status/inbound callbacks (form-encoded, HMAC-SHA256 signed) -> campaign_touched sms_*.",
    webhook=router,
)
