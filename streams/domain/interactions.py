"""Open interactions: what a customer started and has not finished (a cart, a quote, a ticket, a contact).

The customer record keeps them (:class:`streams.domain.customer.CustomerState.open_interactions`) so whoever
serves the customer next, a call-centre agent or another seller, picks up where another stopped: each says
where it stopped (channel, store or site), with whom (the employee or agent of the event's ``actor``), what
it is about, and since when. Pure functions of events, like the rest of the record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, Final

__all__ = ["ENDED_BY", "OPENED_BY", "OpenInteraction", "interactions_after", "merge_interactions"]


@dataclass(frozen=True, slots=True)
class OpenInteraction:
    """Something the customer started and has not finished, as it stood at its latest activity.

    ``kind``: ``cart`` (one per profile: ``ref`` is None), ``quote``, ``ticket`` or ``contact`` (``ref`` is the
    quote, ticket or contact id). ``channel``, ``store_id`` / ``site`` (the event's location) and
    ``actor_id`` / ``actor_role`` (the employee or agent serving, from the event's ``actor``; None when the
    customer acted alone) are those of the latest activity: where it stopped. ``detail`` says what it is about
    (quote product and step, ticket subject, contact medium and reason).
    """

    kind: str
    ref: str | None
    channel: str
    started_at_ms: int
    last_at_ms: int
    store_id: str | None = None
    site: str | None = None
    actor_id: str | None = None
    actor_role: str | None = None
    detail: str | None = None

    def to_avro_dict(self) -> dict[str, Any]:
        """This interaction as an ``omnichannel.output.OpenInteraction`` record."""
        return {
            "kind": self.kind,
            "ref": self.ref,
            "channel": self.channel,
            "store_id": self.store_id,
            "site": self.site,
            "actor_id": self.actor_id,
            "actor_role": self.actor_role,
            "detail": self.detail,
            "started_at_ms": self.started_at_ms,
            "last_at_ms": self.last_at_ms,
        }


#: Event type -> (interaction kind, payload field naming it; None for the profile's one cart) it opens or continues.
OPENED_BY: Final[Mapping[str, tuple[str, str | None]]] = MappingProxyType(
    {
        "cart_line_added": ("cart", None),
        "cart_quantity_set": ("cart", None),
        "checkout_started": ("cart", None),
        "quote_started": ("quote", "quote_id"),
        "quote_updated": ("quote", "quote_id"),
        "ticket_opened": ("ticket", "ticket_id"),
        "contact_started": ("contact", "contact_id"),
    }
)
#: Activity on an interaction already open, that does not open one (removing from an empty cart is no cart).
_CONTINUES: Final[Mapping[str, tuple[str, str | None]]] = MappingProxyType({"cart_line_removed": ("cart", None)})
#: Event type -> (interaction kind, payload field naming it) it completes.
ENDED_BY: Final[Mapping[str, tuple[str, str | None]]] = MappingProxyType(
    {
        "order_placed": ("cart", None),
        "cart_cleared": ("cart", None),
        "quote_submitted": ("quote", "quote_id"),
        "ticket_closed": ("ticket", "ticket_id"),
        "contact_ended": ("contact", "contact_id"),
    }
)


def interactions_after(
    held: tuple[OpenInteraction, ...],
    event: Mapping[str, Any],
    event_type: object,
    payload: Mapping[str, Any],
    channel: str,
    at_ms: int,
) -> tuple[OpenInteraction, ...]:
    """``held`` after ``event`` (the same tuple when the event is about no interaction); latest activity first.

    Events of :data:`OPENED_BY` open or continue an interaction (the latest activity gives channel, place,
    actor and detail; the earliest the start), ``cart_line_removed`` continues an open cart, events of
    :data:`ENDED_BY` end the one they name. An interaction whose id is missing is not shown: nothing could end it.
    """
    if not isinstance(event_type, str):
        return held
    if event_type in ENDED_BY:
        kind, field_name = ENDED_BY[event_type]
        ref = _ref(payload, field_name)
        kept = tuple(i for i in held if not (i.kind == kind and i.ref == ref and i.started_at_ms <= at_ms))
        return held if len(kept) == len(held) else kept
    opens = OPENED_BY.get(event_type)
    kind_ref = opens or _CONTINUES.get(event_type)
    if kind_ref is None:
        return held
    kind, field_name = kind_ref
    ref = _ref(payload, field_name)
    if field_name is not None and ref is None:
        return held  # an interaction with no id cannot be ended: better not shown than shown forever
    current = next((i for i in held if i.kind == kind and i.ref == ref), None)
    if current is None and opens is None:
        return held
    location = _mapping(event.get("location"))
    actor = _mapping(event.get("actor"))
    now = OpenInteraction(
        kind=kind,
        ref=ref,
        channel=channel,
        started_at_ms=at_ms,
        last_at_ms=at_ms,
        store_id=location.get("store_id"),
        site=location.get("site"),
        actor_id=actor.get("actor_id"),
        actor_role=actor.get("role"),
        detail=_detail(event_type, payload),
    )
    if current is not None:
        if at_ms < current.last_at_ms:  # a late event: it may only move the start earlier
            now = replace(current, started_at_ms=min(current.started_at_ms, at_ms))
        else:
            now = replace(now, started_at_ms=min(current.started_at_ms, at_ms), detail=now.detail or current.detail)
    rest = tuple(i for i in held if i is not current)
    return tuple(sorted((now, *rest), key=lambda i: -i.last_at_ms))


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _ref(payload: Mapping[str, Any], field_name: str | None) -> str | None:
    value = payload.get(field_name) if field_name is not None else None
    return str(value) if value else None


def _detail(event_type: str, payload: Mapping[str, Any]) -> str | None:
    """What the interaction is about, in a few words a person reads (None: nothing to add)."""
    if event_type in ("quote_started", "quote_updated"):
        step = payload.get("step")
        return f"{payload.get('product')}, step {step}" if step else str(payload.get("product"))
    if event_type == "ticket_opened":
        subject = payload.get("subject")
        return str(subject) if subject else None
    if event_type == "contact_started":
        reason = payload.get("reason")
        words = [str(payload.get("medium")), str(payload.get("direction"))]
        return ", ".join([*words, str(reason)] if reason else words)
    if event_type == "checkout_started":
        return "checkout"
    return None


def merge_interactions(
    customer: tuple[OpenInteraction, ...], absorbed: tuple[OpenInteraction, ...], limit: int
) -> tuple[OpenInteraction, ...]:
    """The open interactions of two merged records, latest activity first, at most ``limit``.

    One entry per (kind, ref): the absorbed cart is handed over, so two cart entries become one, started at the
    earlier start, as it stood at the later activity.
    """
    kept: dict[tuple[str, str | None], OpenInteraction] = {}
    for interaction in (*customer, *absorbed):
        key = (interaction.kind, interaction.ref)
        held = kept.get(key)
        if held is None:
            kept[key] = interaction
            continue
        newer = interaction if interaction.last_at_ms > held.last_at_ms else held
        kept[key] = replace(newer, started_at_ms=min(held.started_at_ms, interaction.started_at_ms))
    return tuple(sorted(kept.values(), key=lambda i: -i.last_at_ms))[:limit]
