"""One customer's journey across channels: the events of their identity cluster that the fold gave them.

The journey is the same set of events the merge core folds into the customer (docs/stream-processing.md): the
cluster's log is folded again with the worker's rules, and an event belongs to the customer when it was
applied to the customer's profile, or to a profile the customer absorbed *before* that profile was handed
over (an anonymous phone's basket before the login). So it follows merges and operator unlinks like the
record does, and an erasure empties it like the record (earlier events, even late ones, are left out).

Each entry says where (channel, device kind, store or site), with whom (employee or agent), what (event type
and a one-line summary) and which step of a journey it belongs to: the web or app ``session_id``, and the
episode (``cart:<id>`` from the first line to the order, clearing or emptying, as the follow-ups count it;
``quote:<id>``, ``ticket:<id>``, ``contact:<id>``, ``order:<id>`` for the order's later life).

Pure: items in, entries out. The API reads the log (:mod:`api.store`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from streams.domain.cart import CART_EVENT_TYPES, Cart
from streams.domain.customer import CustomerState
from streams.domain.fold import DueCheck, FoldRules, Item, fold
from streams.domain.identity import Identifier, customer_id_from_key
from streams.domain.journey import JourneyRules, settle
from streams.domain.journey import on_event as journey_on_event

__all__ = ["JourneyEntry", "journey_of", "summary_of"]


@dataclass(frozen=True, slots=True)
class JourneyEntry:
    """One event of the customer's journey, as a person reading it needs it."""

    event_id: str
    occurred_at_ms: int
    event_type: str
    channel: str
    summary: str
    profile: str
    device_kind: str | None = None
    store_id: str | None = None
    site: str | None = None
    actor_id: str | None = None
    actor_role: str | None = None
    session_id: str | None = None
    episode: str | None = None

    @property
    def order(self) -> tuple[int, str]:
        return (self.occurred_at_ms, self.event_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "occurred_at_ms": self.occurred_at_ms,
            "event_type": self.event_type,
            "channel": self.channel,
            "device_kind": self.device_kind,
            "store_id": self.store_id,
            "site": self.site,
            "actor": None if self.actor_id is None else {"actor_id": self.actor_id, "role": self.actor_role},
            "summary": self.summary,
            "step": {"session_id": self.session_id, "episode": self.episode},
            "profile": self.profile,
        }


class _Collector:
    """Fold hooks that keep, per profile, the events applied to it, and hand them over at a merge."""

    def __init__(self, rules: JourneyRules) -> None:
        self._rules = rules
        self.held: dict[str, list[JourneyEntry]] = {}

    def new_output(self) -> None:
        return None

    def replay_output(self, out: Any) -> None:
        return None

    def on_event(
        self, key: str, event: Mapping[str, Any], before: Cart, after: Cart, customer: CustomerState, out: Any
    ) -> CustomerState:
        at_ms = int(event["occurred_at_ms"])
        if customer.erased_at_ms is not None and at_ms < customer.erased_at_ms:
            return customer  # ignored by the record: not in the journey either
        if event.get("event_type") == "erasure_requested":
            self.held[key] = []
            return customer
        identified = customer_id_from_key(key) is not None
        step = journey_on_event(customer.journey, event, before, after, identified=identified, rules=self._rules)
        episode_before = customer.journey.cart.episode_id if customer.journey.cart else None
        episode_after = step.journey.cart.episode_id if step.journey.cart else None
        self.held.setdefault(key, []).append(_entry(key, event, episode_after or episode_before))
        return replace(customer, journey=step.journey)

    def on_merge(
        self, key: str, absorbed: str, merge_id: str, cart: Cart, customer: CustomerState, out: Any
    ) -> CustomerState:
        # The absorbed profile's events up to this point are the customer's from now on; any later ones start a
        # profile of its own.
        self.held.setdefault(key, []).extend(self.held.pop(absorbed, []))
        step = settle(
            customer.journey,
            cart,
            identified=customer_id_from_key(key) is not None,
            origin_id=merge_id,
            rules=self._rules,
        )
        return replace(customer, journey=step.journey)

    def on_due(self, key: str, due: DueCheck, cart: Cart, customer: CustomerState, out: Any) -> CustomerState:
        return customer  # a due check is not something the customer did


def journey_of(
    items: Iterable[Item],
    rules: FoldRules,
    profile_key: str,
    *,
    unlinked: Collection[Identifier] = frozenset(),
) -> list[JourneyEntry]:
    """The events of a cluster's log ``items`` that are ``profile_key``'s, newest first (then by event id)."""
    collector = _Collector(JourneyRules())
    fold(items, rules, unlinked=unlinked, hooks=collector)
    return sorted(collector.held.get(profile_key, []), key=lambda e: e.order, reverse=True)


def _entry(key: str, event: Mapping[str, Any], cart_episode: str | None) -> JourneyEntry:
    event_type = str(event.get("event_type"))
    payload = _mapping(event.get("payload"))
    device, location, actor = (
        _mapping(event.get("device")),
        _mapping(event.get("location")),
        _mapping(event.get("actor")),
    )
    return JourneyEntry(
        event_id=str(event["event_id"]),
        occurred_at_ms=int(event["occurred_at_ms"]),
        event_type=event_type,
        channel=str(event.get("channel") or "other"),
        summary=summary_of(event_type, payload),
        profile=key,
        device_kind=device.get("kind"),
        store_id=location.get("store_id"),
        site=location.get("site"),
        actor_id=actor.get("actor_id"),
        actor_role=actor.get("role"),
        session_id=event.get("session_id"),
        episode=_episode(event_type, payload, cart_episode),
    )


def _episode(event_type: str, payload: Mapping[str, Any], cart_episode: str | None) -> str | None:
    if event_type in CART_EVENT_TYPES or event_type == "checkout_started":
        return cart_episode  # already "cart:<event that opened it>"
    for prefix, field in (("quote", "quote_id"), ("ticket", "ticket_id"), ("contact", "contact_id")):
        if event_type.startswith(f"{prefix}_") and payload.get(field):
            return f"{prefix}:{payload[field]}"
    if event_type in ("order_status_changed", "order_collected") and payload.get("order_id"):
        return f"order:{payload['order_id']}"
    return None


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _money(cents: object, currency: object) -> str:
    return f"{int(cents) / 100:.2f} {currency}" if isinstance(cents, int) else "?"


def summary_of(event_type: str, payload: Mapping[str, Any]) -> str:
    """One line a person reads. Free text a customer or agent wrote (notes, reviews) is left out: it may hold
    personal data, and the record's ``last_verbatim`` is where it is kept."""
    p = payload
    match event_type:
        case "cart_line_added":
            price = _money(p.get("unit_price_cents"), p.get("currency"))
            return f"added {p.get('quantity')} x {p.get('product_id')} ({price} each)"
        case "cart_line_removed":
            return f"removed {p.get('product_id')} from the cart"
        case "cart_quantity_set":
            return f"set {p.get('product_id')} to {p.get('quantity')} in the cart"
        case "cart_cleared":
            return "cleared the cart" + (f" ({p['reason']})" if p.get("reason") else "")
        case "checkout_started":
            value = p.get("cart_value_cents")
            return f"started checkout ({int(value) / 100:.2f})" if isinstance(value, int) else "started checkout"
        case "order_placed":
            how = str(p.get("fulfilment") or "delivery")
            where = f" at {p['collect_store_id']}" if p.get("collect_store_id") else ""
            codes = f", codes {', '.join(p['coupon_codes'])}" if p.get("coupon_codes") else ""
            total = _money(p.get("total_cents"), p.get("currency"))
            return f"order {p.get('order_id')} placed: {total}, {how}{where}{codes}"
        case "order_status_changed":
            return f"order {p.get('order_id')} is {p.get('status')}"
        case "order_collected":
            return f"order {p.get('order_id')} collected" + (f" at {p['store_id']}" if p.get("store_id") else "")
        case "campaign_touched":
            code = f", code {p['promo_code']}" if p.get("promo_code") else ""
            return f"{str(p.get('action')).replace('_', ' ')}: campaign {p.get('campaign_id')}{code}"
        case "coupon_redeemed":
            return f"redeemed code {p.get('code')}" + (f" on order {p['order_id']}" if p.get("order_id") else "")
        case "search_performed":
            return f"searched {p.get('query')!r}"
        case "product_viewed":
            return f"viewed {p.get('product_id')}"
        case "page_viewed":
            return f"viewed {p.get('title') or p.get('url')}"
        case "store_visited":
            return f"visited store {p.get('store_id')}"
        case "quote_started" | "quote_updated":
            verb = "started" if event_type == "quote_started" else "updated"
            step = f", step {p['step']}" if p.get("step") else ""
            return f"{verb} quote {p.get('quote_id')} ({p.get('product')}{step})"
        case "quote_submitted":
            return f"submitted quote {p.get('quote_id')} ({p.get('product')})"
        case "contact_started":
            reason = f" about {p['reason']}" if p.get("reason") else ""
            return f"{p.get('direction')} {p.get('medium')} {p.get('contact_id')} started{reason}"
        case "contact_ended":
            return f"{p.get('medium')} {p.get('contact_id')} ended: {p.get('outcome')}"
        case "ticket_opened":
            return f"ticket {p.get('ticket_id')} opened"
        case "ticket_closed":
            return f"ticket {p.get('ticket_id')} closed" + (f": {p['resolution']}" if p.get("resolution") else "")
        case "product_returned":
            return f"returned {p.get('quantity')} x {p.get('product_id')} ({p.get('return_id')})"
        case "feedback_given":
            rating = f", rated {p['rating']}" if p.get("rating") is not None else ""
            return f"gave feedback ({p.get('kind')}{rating})"
        case "loyalty_card_used":
            return "loyalty card used" + (f" ({p['points']} points)" if p.get("points") is not None else "")
        case "consent_changed":
            on = f" on {p['channel']}" if p.get("channel") else ""
            return f"{'granted' if p.get('granted') else 'withdrew'} {p.get('purpose')}{on}"
        case "login":
            return f"logged in ({p.get('method')})"
        case "logout":
            return "logged out"
        case "identify":
            return "identified"
    return event_type.replace("_", " ")
