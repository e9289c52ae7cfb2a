"""Action-to-response attribution as pure rules: which campaign touches get the credit for a conversion (S5).

Vocabulary:

- an **exposure** is a touch the business made on the customer through an *action channel*: a campaign
  message (``campaign_touched``: e-mail, SMS, postal catalogue, push, an agent's campaign call) or an agent's
  outbound contact (``contact_started`` with ``direction='outbound'``);
- a **conversion** is what the customer then did on a *response channel*: an order on any channel
  (``order_placed``; a store purchase is an order on ``store``) or a submitted quote (``quote_submitted``).

Rules (see :func:`attribute`):

1. Only exposures at or before the conversion, and at most ``window_ms`` before it, qualify.
2. A conversion that redeems a promotion code carried by qualifying exposures credits those exposures only
   (an SMS code redeemed on the web credits the SMS, whatever the model says about other touches).
3. The model then splits the credit: ``last_touch`` (default) gives it all to the latest qualifying exposure,
   ``first_touch`` to the earliest, ``linear`` in equal parts to every one.
4. The response channel is where the conversion happened: a web order collected in store credits the web
   (``order_collected`` is not a conversion).

Exposures of one message are one exposure: the lifecycle events of a message (sent, delivered, opened,
clicked) share a ``touch_id`` (campaign and provider message id) and the earliest one stands for it, so a
message that was opened does not weigh more than one that was not. A bounced e-mail reached nobody and an
inbound SMS is the customer talking: neither is an exposure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Final

from streams.domain.errors import DomainError

__all__ = [
    "CONVERSION_EVENT_TYPES",
    "AttributionModel",
    "AttributionRules",
    "Conversion",
    "Credit",
    "Exposure",
    "action_channel_of",
    "add_exposure",
    "attribute",
    "conversion_of",
    "exposure_of",
]

#: Event types that are conversions (a response on the event's channel).
CONVERSION_EVENT_TYPES: Final = frozenset({"order_placed", "quote_submitted"})

#: Campaign actions that expose the customer, and the action channel (a Channel symbol) of each.
#: The printed catalogue travels by post: its channel symbol is ``postal``.
_TOUCH_CHANNELS: Final[Mapping[str, str]] = {
    "email_sent": "email",
    "email_delivered": "email",
    "email_opened": "email",
    "email_clicked": "email",
    "sms_sent": "sms",
    "sms_delivered": "sms",
    "sms_clicked": "sms",
    "catalogue_mailed": "postal",
    "push_sent": "push",
    "push_opened": "push",
    "agent_call": "call_centre",
}


class AttributionModel(StrEnum):
    """How the credit of one conversion is split across its qualifying exposures."""

    LAST_TOUCH = "last_touch"
    FIRST_TOUCH = "first_touch"
    LINEAR = "linear"


@dataclass(frozen=True, slots=True)
class AttributionRules:
    """Window and model of attribution, and the bounds of what a customer record keeps for it.

    ``max_exposures`` bounds the exposures kept per customer (the newest are kept); ``max_pending`` bounds
    the conversions of a profile not identified yet that wait for its identity.
    """

    window_ms: int = 30 * 24 * 3600 * 1000
    model: AttributionModel = AttributionModel.LAST_TOUCH
    max_exposures: int = 50
    max_pending: int = 20

    def __post_init__(self) -> None:
        if self.window_ms <= 0:
            raise DomainError(f"AttributionRules.window_ms must be positive, got {self.window_ms}: e.g. 30 days")
        for name in ("max_exposures", "max_pending"):
            if getattr(self, name) < 1:
                raise DomainError(f"AttributionRules.{name} must be at least 1, got {getattr(self, name)}")


@dataclass(frozen=True, slots=True)
class Exposure:
    """One touch on an action channel. ``counted``: already in the live matrix under a customer id."""

    touch_id: str
    event_id: str
    channel: str
    campaign_id: str | None
    promo_code: str | None
    at_ms: int
    counted: bool = False


@dataclass(frozen=True, slots=True)
class Conversion:
    """One conversion on a response channel, with the promotion codes it redeemed (case-folded)."""

    event_id: str
    kind: str
    channel: str
    at_ms: int
    codes: frozenset[str] = frozenset()
    order_id: str | None = None


@dataclass(frozen=True, slots=True)
class Credit:
    """The share of one conversion credited to one exposure."""

    action_channel: str
    campaign_id: str | None
    touch_event_id: str
    weight: float


def _payload(event: Mapping[str, Any]) -> Mapping[str, Any]:
    payload = event.get("payload")
    return payload if isinstance(payload, Mapping) else {}


def action_channel_of(event: Mapping[str, Any]) -> str | None:
    """The action channel an event exposes the customer on, or None when it is no exposure."""
    payload = _payload(event)
    event_type = event.get("event_type")
    if event_type == "campaign_touched":
        return _TOUCH_CHANNELS.get(str(payload.get("action")))
    if event_type == "contact_started" and payload.get("direction") == "outbound":
        return str(event.get("channel") or "other")
    return None


def exposure_of(event: Mapping[str, Any]) -> Exposure | None:
    """The exposure an event stands for (see the module docstring), or None."""
    channel = action_channel_of(event)
    if channel is None:
        return None
    payload = _payload(event)
    event_id = str(event["event_id"])
    if event.get("event_type") == "contact_started":
        return Exposure(f"contact:{payload.get('contact_id')}", event_id, channel, None, None, event["occurred_at_ms"])
    campaign = payload.get("campaign_id")
    message = payload.get("message_id")
    code = payload.get("promo_code")
    touch_id = f"message:{campaign}:{message}" if message else f"event:{event_id}"
    return Exposure(
        touch_id,
        event_id,
        channel,
        str(campaign) if campaign else None,
        str(code).strip().casefold() if code and str(code).strip() else None,
        event["occurred_at_ms"],
    )


def conversion_of(event: Mapping[str, Any], extra_codes: Iterable[str] = ()) -> Conversion | None:
    """The conversion an event stands for, or None. ``extra_codes``: codes redeemed for it by other events."""
    event_type = event.get("event_type")
    if event_type not in CONVERSION_EVENT_TYPES:
        return None
    payload = _payload(event)
    raw_codes = payload.get("coupon_codes") if event_type == "order_placed" else ()
    codes = {str(c).strip().casefold() for c in (*(raw_codes or ()), *extra_codes) if c and str(c).strip()}
    order_id = payload.get("order_id") if event_type == "order_placed" else None
    return Conversion(
        str(event["event_id"]),
        str(event_type),
        str(event.get("channel") or "other"),
        event["occurred_at_ms"],
        frozenset(codes),
        str(order_id) if order_id else None,
    )


def add_exposure(exposures: tuple[Exposure, ...], exposure: Exposure, limit: int) -> tuple[Exposure, ...]:
    """Exposures oldest first with ``exposure`` added: one per ``touch_id`` (the earliest), the newest ``limit``.

    Adding an exposure already held (same touch, not earlier) returns ``exposures`` itself; an earlier
    sighting of a held touch replaces it, keeping its ``counted`` mark.
    """
    held = next((e for e in exposures if e.touch_id == exposure.touch_id), None)
    if held is not None:
        if (exposure.at_ms, exposure.event_id) >= (held.at_ms, held.event_id):
            return exposures
        exposure = replace(exposure, counted=held.counted)
    kept = [e for e in exposures if e.touch_id != exposure.touch_id] + [exposure]
    return tuple(sorted(kept, key=_order))[-limit:]


def _order(exposure: Exposure) -> tuple[int, str]:
    return (exposure.at_ms, exposure.event_id)


def attribute(conversion: Conversion, exposures: Sequence[Exposure], rules: AttributionRules) -> tuple[Credit, ...]:
    """The credits of ``conversion`` over ``exposures`` under ``rules`` (rules 1-3 of the module docstring).

    Credits are oldest first and their weights sum to 1.0; empty when no exposure qualifies. The result
    does not depend on the order of ``exposures`` (ties in time are broken by event id).
    """
    eligible = sorted(
        (e for e in exposures if conversion.at_ms - rules.window_ms <= e.at_ms <= conversion.at_ms), key=_order
    )
    carried = [e for e in eligible if e.promo_code is not None and e.promo_code in conversion.codes]
    candidates = carried or eligible
    if not candidates:
        return ()
    if rules.model is AttributionModel.LAST_TOUCH:
        chosen = [candidates[-1]]
    elif rules.model is AttributionModel.FIRST_TOUCH:
        chosen = [candidates[0]]
    else:
        chosen = candidates
    share = 1.0 / len(chosen)
    credits = [Credit(e.channel, e.campaign_id, e.event_id, share) for e in chosen]
    # Floating-point shares of 1/n need not add up to exactly 1.0: the last credit takes the remainder.
    credits[-1] = replace(credits[-1], weight=1.0 - share * (len(chosen) - 1))
    return tuple(credits)
