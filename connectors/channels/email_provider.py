"""E-mail channel: an e-mail service provider's event webhook (delivered, opened, clicked, bounced...).

Native format (modelled on common providers' event webhooks): ``POST /v1/webhooks/email`` with a JSON
array of event objects, signed with the channel's secret (``OMNICHANNEL_WEBHOOK_SECRETS=email=...``)::

    X-Email-Timestamp: 1732357200                       # epoch seconds, within the tolerance (300 s)
    X-Email-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>." + raw body)>

    [{"event": "click", "event_id": "evt-9f2c", "timestamp": 1732357200, "message_id": "msg-123",
      "recipient_sha256": "<sha256 of the trimmed, lower-cased address>", "campaign_id": "CMP-SPRING",
      "url": "https://shop.example/lamps?utm_source=email", "promo_code": "SPRING10", "customer_id": "C-42"}]

Fields: ``event`` (required, see below), ``event_id`` (required: the provider's unique id of this event,
stable across its retries), ``timestamp`` (required, epoch seconds), ``message_id`` (required),
``recipient_sha256`` or ``email`` (a clear address is hashed here and never stored), ``campaign_id``,
``url`` (clicks), ``promo_code``, ``customer_id`` (custom arguments the sender attached).

Mapping: ``processed`` -> campaign_touched ``email_sent``; ``delivered`` -> ``email_delivered``; ``open`` ->
``email_opened``; ``click`` -> ``email_clicked`` (with ``url``); ``bounce`` and ``dropped`` ->
``email_bounced``; ``unsubscribe`` and ``spamreport`` -> consent_changed (``marketing_email`` refused).
``deferred`` (a retry in progress), unknown events and campaign events without ``campaign_id``
(transactional mail) are ignored and listed as such. Event ids derive from the provider's ``event_id``.
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import Response

from connectors.channels.base import ChannelAdapter, Mapped, WebhookContext
from connectors.errors import InvalidEventError
from connectors.http import parse_json
from connectors.native import Fields, identities, stable_event_id
from connectors.webhooks import accept, limit_items, map_native, read_signed, webhook_responses
from schemas.validation import Problem

__all__ = ["ADAPTER", "SIGNATURE_HEADER", "TIMESTAMP_HEADER", "to_events"]

CHANNEL: Final = "email"
SIGNATURE_HEADER: Final = "X-Email-Signature"
TIMESTAMP_HEADER: Final = "X-Email-Timestamp"

_TOUCH_ACTIONS: Final = {
    "processed": "email_sent",
    "delivered": "email_delivered",
    "open": "email_opened",
    "click": "email_clicked",
    "bounce": "email_bounced",
    "dropped": "email_bounced",
}
_CONSENT_REFUSED: Final = frozenset({"unsubscribe", "spamreport"})
_WHAT: Final = "e-mail webhook payload"


def to_events(document: Any, *, hash_key: bytes) -> Mapped:
    """Map the provider's JSON array to Event dicts (without ``received_at_ms``); every problem at once.

    A clear ``email`` is replaced by its keyed hash under ``hash_key`` (``OMNICHANNEL_HASH_KEY``).
    """
    if not isinstance(document, list):
        raise InvalidEventError(
            [Problem("", f"expected a JSON array of events, got {type(document).__name__}")], what=_WHAT
        )
    events: list[dict[str, Any]] = []
    ignored: list[Problem] = []
    problems: list[Problem] = []
    for index, item in enumerate(document):
        fields = Fields(item, f"[{index}].", problems)
        kind = fields.text("event")
        provider_id = fields.text("event_id")
        occurred_at_ms = fields.timestamp_ms("timestamp", unit="epoch_s")
        message_id = fields.text("message_id")
        email_hash = fields.email_hash("recipient_sha256", "email", key=hash_key)
        customer_id = fields.text("customer_id", required=False)
        campaign_id = fields.text("campaign_id", required=False)
        url = fields.text("url", required=kind == "click")
        promo_code = fields.text("promo_code", required=False)
        if kind is None or provider_id is None or occurred_at_ms is None or message_id is None:
            continue
        envelope: dict[str, Any] = {
            "event_id": stable_event_id(CHANNEL, provider_id),
            "occurred_at_ms": occurred_at_ms,
            "channel": CHANNEL,
            "identities": identities(customer_id=customer_id, email_hash=email_hash),
            "session_id": None,
        }
        if kind in _CONSENT_REFUSED:
            payload = {"purpose": "marketing_email", "channel": CHANNEL, "granted": False}
            events.append({**envelope, "event_type": "consent_changed", "payload": payload})
        elif kind in _TOUCH_ACTIONS and campaign_id is None:
            ignored.append(Problem(f"[{index}]", "no campaign_id: a transactional message is not a campaign touch"))
        elif kind in _TOUCH_ACTIONS:
            payload = {
                "campaign_id": campaign_id,
                "action": _TOUCH_ACTIONS[kind],
                "message_id": message_id,
                "promo_code": promo_code,
                "url": url if kind == "click" else None,
            }
            events.append({**envelope, "event_type": "campaign_touched", "payload": payload})
        else:
            reason = "a delivery retry in progress" if kind == "deferred" else "not tracked by the backbone"
            ignored.append(Problem(f"[{index}]", f"event {kind!r}: {reason}"))
    if problems:
        raise InvalidEventError(problems, what=_WHAT)
    return Mapped(events, ignored)


def router(ctx: WebhookContext) -> APIRouter:
    """``POST /v1/webhooks/email``: signed provider events."""
    routes = APIRouter()

    @routes.post(
        "",
        status_code=202,
        summary="E-mail provider events (signed)",
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
                    "application/json": {"schema": {"type": "array", "items": {"type": "object"}}, "example": EXAMPLE}
                },
            },
        },
    )
    async def email_events(request: Request) -> Response:
        body, _ = await read_signed(request, ctx, CHANNEL, SIGNATURE_HEADER, TIMESTAMP_HEADER)
        document = parse_json(body)
        limit_items(document, ctx)
        return await accept(ctx, ADAPTER, map_native(to_events, document, hash_key=ctx.config.hash_key))

    return routes


EXAMPLE: Final = [
    {
        "event": "click",
        "event_id": "evt-9f2c",
        "timestamp": 1732357200,
        "message_id": "msg-123",
        "recipient_sha256": "5f4dcc3b5aa765d61d8327deb882cf99" * 2,
        "campaign_id": "CMP-SPRING",
        "url": "https://shop.example/lamps?utm_source=email",
        "promo_code": "SPRING10",
        "customer_id": "C-42",
    }
]

ADAPTER = ChannelAdapter(
    name="email_provider",
    channel=CHANNEL,
    source_system="email-webhook",
    summary="E-mail provider event webhook (HMAC-SHA256 signed) -> campaign_touched / consent_changed.",
    webhook=router,
)
