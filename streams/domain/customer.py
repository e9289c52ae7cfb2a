"""The unified customer record as a pure fold over events: ``apply_customer_event(state, event) -> state``.

One :class:`CustomerState` per canonical profile key (see :mod:`streams.domain.identity`). It holds what
every channel needs to recognise and serve the customer: identities, channels used, recent searches and
viewed products, consent, experience signals (open tickets, returns, last verbatim) and per-channel
freshness. Ordering rules:

- Consent and the last verbatim follow event time: an older event never overrides a newer one.
- ``last_interaction_ms``, ``channels[...].last_seen_ms``, ``freshness`` and ``updated_at_ms`` are maxima
  of event time: a late event never moves them backwards.
- Recent lists (searches, products, returns, orders) are in the order events are applied, most recent first.
- An order's status follows event time: a status older than the one held is ignored (S3: order status
  changes reach the customer record).

``open_interactions``: what the customer was doing and has not finished (a cart, a quote, a ticket, a
contact), where and with whom, latest activity first (:mod:`streams.domain.interactions`). ``segments``:
channel-mix segments (:mod:`streams.domain.segments`), recomputed whenever the channel counts change.

``journey`` holds what the journeys processing remembers (follow-up episodes, attribution memory,
cross-channel journeys; see :mod:`streams.domain.journey`); it is internal: not part of the Avro record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from types import MappingProxyType
from typing import Any, Final

from streams.domain.errors import DomainError
from streams.domain.evolve import evolve
from streams.domain.identity import Identifier, IdentityRules, customer_id_from_key, identifiers_of
from streams.domain.interactions import OpenInteraction, interactions_after, merge_interactions
from streams.domain.journey import JourneyState, merge_journeys
from streams.domain.segments import SegmentRules, segments_of

__all__ = [
    "PASSIVE_EVENT_TYPES",
    "PASSIVE_TOUCH_ACTIONS",
    "ChannelUsage",
    "CustomerLimits",
    "CustomerState",
    "OpenInteraction",
    "OrderSummary",
    "Verbatim",
    "apply_customer_event",
    "merge_customer_states",
]

#: Event types that are facts *about* a customer produced by the back office, not something the customer
#: did: they refresh freshness but do not count as channel use or interaction.
PASSIVE_EVENT_TYPES: Final = frozenset({"order_status_changed", "stock_level_changed"})

#: Campaign actions the business performs on the customer (action channel) without a response from them.
PASSIVE_TOUCH_ACTIONS: Final = frozenset(
    {"email_sent", "email_delivered", "email_bounced", "sms_sent", "sms_delivered", "catalogue_mailed", "push_sent"}
)


@dataclass(frozen=True, slots=True)
class CustomerLimits:
    """Bounds of the customer record and the identity rules it uses to read identifiers.

    Bounded lists keep a Redis hash small and a state message under the Kafka message size.
    """

    recent_searches: int = 10
    recent_products: int = 10
    recent_returns: int = 10
    identities: int = 50
    identity_rules: IdentityRules = field(default_factory=IdentityRules)
    recent_orders: int = 10
    open_interactions: int = 5
    segments: SegmentRules = field(default_factory=SegmentRules)

    def __post_init__(self) -> None:
        for name in (
            "recent_searches",
            "recent_products",
            "recent_returns",
            "identities",
            "recent_orders",
            "open_interactions",
        ):
            if getattr(self, name) < 1:
                raise DomainError(f"CustomerLimits.{name} must be at least 1, got {getattr(self, name)}")


@dataclass(frozen=True, slots=True)
class ChannelUsage:
    """How often, and how recently, the customer acted on one channel."""

    count: int
    last_seen_ms: int


@dataclass(frozen=True, slots=True)
class Verbatim:
    """A customer's own words (review, survey answer, call note) and where they said them."""

    text: str
    channel: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class OrderSummary:
    """An order of the customer and its latest status, as the back office reported it.

    Fields other than ``order_id``, ``status`` and ``status_at_ms`` are None when the status change arrived
    before (or without) the order itself.
    """

    order_id: str
    status: str
    status_at_ms: int
    channel: str | None = None
    fulfilment: str | None = None
    collect_store_id: str | None = None
    total_cents: int | None = None
    currency: str | None = None
    placed_at_ms: int | None = None

    def to_avro_dict(self) -> dict[str, Any]:
        """This order as an ``omnichannel.output.OrderSummary`` record."""
        return {
            "order_id": self.order_id,
            "status": self.status,
            "status_at_ms": self.status_at_ms,
            "channel": self.channel,
            "fulfilment": self.fulfilment,
            "collect_store_id": self.collect_store_id,
            "total_cents": self.total_cents,
            "currency": self.currency,
            "placed_at_ms": self.placed_at_ms,
        }


def _empty_map() -> Mapping[Any, Any]:
    return MappingProxyType({})


@dataclass(frozen=True)
class CustomerState:
    """The unified record of one profile.

    ``key`` is the canonical profile key (``customer:C1``, or ``anonymous:A1`` before the customer is
    identified). ``identities`` are kept strongest type first, most recently seen first within a type;
    over the bound the weakest, oldest go first. ``consent`` is keyed by purpose, or ``purpose:channel``
    for a channel-specific choice; ``consent_at_ms`` holds the event time of each value. ``erased_at_ms`` is
    set by ``erasure_requested``: events that occurred before it are ignored, so a late event cannot bring
    erased data back.
    """

    key: str
    identities: tuple[Identifier, ...] = ()
    channels: Mapping[str, ChannelUsage] = field(default_factory=_empty_map, hash=False)
    recent_searches: tuple[str, ...] = ()
    recent_products: tuple[str, ...] = ()
    consent: Mapping[str, bool] = field(default_factory=_empty_map, hash=False)
    consent_at_ms: Mapping[str, int] = field(default_factory=_empty_map, hash=False)
    open_tickets: frozenset[str] = frozenset()
    recent_returns: tuple[str, ...] = ()
    last_verbatim: Verbatim | None = None
    last_interaction_ms: int | None = None
    last_channel: str | None = None
    freshness: Mapping[str, int] = field(default_factory=_empty_map, hash=False)
    typology: str = "unknown"  # mono-/multi-/cross-channel: set by the journeys processing (S6)
    updated_at_ms: int = 0
    erased_at_ms: int | None = None
    recent_orders: tuple[OrderSummary, ...] = ()
    open_interactions: tuple[OpenInteraction, ...] = ()
    segments: tuple[str, ...] = ()
    journey: JourneyState = field(default_factory=JourneyState, hash=False)

    def to_avro_dict(self) -> dict[str, Any]:
        """This state as an ``omnichannel.output.CustomerState`` record.

        ``customer_id`` is the customer id of a ``customer:<id>`` key, else the profile key itself (a
        profile not identified yet, e.g. ``anonymous:A1``). ``updated_at_ms`` is the newest event time
        applied, on the topic as in Redis and the read API (one meaning: replaying a backlog gives the same
        records, and it never runs ahead of ``freshness``).

        A new dict each call, built once per state (the Redis copy and the topic's record both want it); the
        values inside are shared: read them, do not change them.
        """
        return dict(self._avro_record)

    @cached_property
    def _avro_record(self) -> dict[str, Any]:
        verbatim = self.last_verbatim
        return {
            "customer_id": customer_id_from_key(self.key) or self.key,
            "identities": [{"type": i.type, "value": i.value} for i in self.identities],
            "channels": {
                channel: {"count": usage.count, "last_seen_ms": usage.last_seen_ms}
                for channel, usage in sorted(self.channels.items())
            },
            "recent_searches": list(self.recent_searches),
            "recent_products": list(self.recent_products),
            "consent": dict(sorted(self.consent.items())),
            "open_tickets": sorted(self.open_tickets),
            "recent_returns": list(self.recent_returns),
            "last_verbatim": (
                None
                if verbatim is None
                else {"text": verbatim.text, "channel": verbatim.channel, "at_ms": verbatim.at_ms}
            ),
            "last_interaction_ms": self.last_interaction_ms,
            "last_channel": self.last_channel,
            "freshness": dict(sorted(self.freshness.items())),
            "typology": self.typology,
            "updated_at_ms": self.updated_at_ms,
            "recent_orders": [order.to_avro_dict() for order in self.recent_orders],
            "open_interactions": [interaction.to_avro_dict() for interaction in self.open_interactions],
            "segments": list(self.segments),
        }


_DEFAULT_LIMITS: Final = CustomerLimits()


def apply_customer_event(
    state: CustomerState,
    event: Mapping[str, Any],
    limits: CustomerLimits = _DEFAULT_LIMITS,
    identifiers: tuple[Identifier, ...] | None = None,
) -> CustomerState:
    """Fold one decoded event into the customer record and return the new record.

    Every event: identities seen (read with ``limits.identity_rules``), ``freshness[channel]`` and
    ``updated_at_ms``; the envelope's ``consent`` map like ``consent_changed``. Events the customer did (all
    but :data:`PASSIVE_EVENT_TYPES` and campaign touches in :data:`PASSIVE_TOUCH_ACTIONS`):
    ``channels[channel]`` count and last seen, last interaction time and channel. By type:
    ``search_performed`` -> recent searches (de-duplicated case-insensitively, keeping the latest spelling);
    ``product_viewed`` -> recent products; ``consent_changed`` -> consent, only if newer than the value held
    (on a tie, a refusal wins: privacy first); ``ticket_opened`` / ``ticket_closed`` -> open tickets;
    ``product_returned`` -> recent returns; ``feedback_given`` and ``contact_ended`` with notes -> last
    verbatim, if not older than the one held; ``order_placed`` / ``order_status_changed`` /
    ``order_collected`` -> recent orders (status ``placed`` / as reported / ``collected``, each only if not
    older than the status held); ``erasure_requested`` -> an empty record for the same key that ignores
    events older than the request. Open interactions: ``cart_line_added`` / ``cart_quantity_set`` /
    ``checkout_started`` open or continue the cart, ``cart_line_removed`` continues an open one,
    ``order_placed`` / ``cart_cleared`` end it; ``quote_started`` / ``quote_updated`` -> ``quote_submitted``,
    ``ticket_opened`` -> ``ticket_closed``, ``contact_started`` -> ``contact_ended`` (by id). A cart emptied
    line by line is ended by the journeys processing, which sees the cart. Segments follow the channel counts.

    ``identifiers``: the event's ``identifiers_of(event, limits.identity_rules)`` when the caller has them already.
    """
    at_ms: int = event["occurred_at_ms"]
    if state.erased_at_ms is not None and at_ms < state.erased_at_ms:
        return state
    event_type = event.get("event_type")
    if event_type == "erasure_requested":
        return CustomerState(key=state.key, updated_at_ms=max(state.updated_at_ms, at_ms), erased_at_ms=at_ms)

    channel = str(event.get("channel") or "other")
    raw_payload = event.get("payload")
    payload: Mapping[str, Any] = raw_payload if isinstance(raw_payload, Mapping) else {}
    changes: dict[str, Any] = {
        "identities": _merge_identities(
            state.identities,
            identifiers_of(event, limits.identity_rules) if identifiers is None else identifiers,
            limits,
        ),
        "freshness": _with(state.freshness, channel, max(state.freshness.get(channel, at_ms), at_ms)),
        "updated_at_ms": max(state.updated_at_ms, at_ms),
    }

    if _is_interaction(event_type, payload):
        usage = state.channels.get(channel)
        changes["channels"] = _with(
            state.channels,
            channel,
            ChannelUsage(
                count=(usage.count if usage else 0) + 1,
                last_seen_ms=max(usage.last_seen_ms, at_ms) if usage else at_ms,
            ),
        )
        if state.last_interaction_ms is None or at_ms >= state.last_interaction_ms:
            changes["last_interaction_ms"] = at_ms
            changes["last_channel"] = channel
        changes["segments"] = _segments(changes["channels"], limits)

    interactions = interactions_after(state.open_interactions, event, event_type, payload, channel, at_ms)
    if interactions is not state.open_interactions:
        changes["open_interactions"] = interactions[: limits.open_interactions]

    consent_map = event.get("consent")
    if isinstance(consent_map, Mapping) and consent_map:
        # The envelope's consent is what the channel knew when the event happened: same rule as consent_changed.
        held = state  # nothing above changes consent
        for purpose in sorted(consent_map):
            found = _consent_changes(held, {"purpose": purpose, "granted": consent_map[purpose]}, at_ms)
            if found:
                held = evolve(held, **found)
                changes.update(found)

    if event_type == "search_performed":
        query = str(payload.get("query") or "").strip()
        if query:
            changes["recent_searches"] = _push_recent(
                state.recent_searches, query, limits.recent_searches, key=str.casefold
            )
    elif event_type == "product_viewed":
        product_id = payload.get("product_id")
        if isinstance(product_id, str) and product_id:
            changes["recent_products"] = _push_recent(state.recent_products, product_id, limits.recent_products)
    elif event_type == "consent_changed":
        changes.update(_consent_changes(state, payload, at_ms))
    elif event_type == "ticket_opened":
        changes["open_tickets"] = state.open_tickets | {str(payload["ticket_id"])}
    elif event_type == "ticket_closed":
        changes["open_tickets"] = state.open_tickets - {str(payload["ticket_id"])}
    elif event_type == "product_returned":
        changes["recent_returns"] = _push_recent(state.recent_returns, str(payload["return_id"]), limits.recent_returns)
    elif event_type == "feedback_given" or (event_type == "contact_ended" and payload.get("notes")):
        # A call's notes are a verbatim too: what the customer told the agent (S8).
        text = payload["text"] if event_type == "feedback_given" else payload["notes"]
        current = state.last_verbatim
        if current is None or at_ms >= current.at_ms:
            changes["last_verbatim"] = Verbatim(text=str(text), channel=channel, at_ms=at_ms)
    elif event_type in _ORDER_EVENT_TYPES and payload.get("order_id"):
        changes["recent_orders"] = _order_changes(state.recent_orders, event_type, payload, channel, at_ms, limits)

    return evolve(state, **changes)


_ORDER_EVENT_TYPES: Final = frozenset({"order_placed", "order_status_changed", "order_collected"})


def _segments(channels: Mapping[str, ChannelUsage], limits: CustomerLimits) -> tuple[str, ...]:
    return segments_of({channel: usage.count for channel, usage in channels.items()}, limits.segments)


def _order_changes(
    orders: tuple[OrderSummary, ...],
    event_type: str,
    payload: Mapping[str, Any],
    channel: str,
    at_ms: int,
    limits: CustomerLimits,
) -> tuple[OrderSummary, ...]:
    order_id = str(payload["order_id"])
    held = next((o for o in orders if o.order_id == order_id), None)
    if event_type == "order_placed":
        total = payload.get("total_cents")
        order = OrderSummary(
            order_id,
            "placed",
            at_ms,
            channel=channel,
            fulfilment=str(payload.get("fulfilment") or "delivery"),
            collect_store_id=payload.get("collect_store_id"),
            total_cents=int(total) if total is not None else None,
            currency=payload.get("currency"),
            placed_at_ms=at_ms,
        )
        if held is not None and held.status_at_ms > at_ms:  # its status moved on before the order arrived
            order = replace(order, status=held.status, status_at_ms=held.status_at_ms)
    else:
        status = "collected" if event_type == "order_collected" else str(payload.get("status") or "unknown")
        if held is not None and held.status_at_ms > at_ms:
            return orders
        order = replace(held, status=status, status_at_ms=at_ms) if held else OrderSummary(order_id, status, at_ms)
    if held is not None:
        # A known order keeps its place; only a new one goes to the front.
        return tuple(order if o.order_id == order_id else o for o in orders)
    return (order, *orders)[: limits.recent_orders]


def _is_interaction(event_type: object, payload: Mapping[str, Any]) -> bool:
    if event_type in PASSIVE_EVENT_TYPES:
        return False
    return not (event_type == "campaign_touched" and payload.get("action") in PASSIVE_TOUCH_ACTIONS)


def _with(mapping: Mapping[str, Any], key: str, value: Any) -> Mapping[str, Any]:
    return MappingProxyType({**mapping, key: value})


def _push_recent(items: tuple[str, ...], item: str, limit: int, *, key: Callable[[str], str] = str) -> tuple[str, ...]:
    """``item`` first, any earlier occurrence (compared by ``key``) removed, at most ``limit`` long."""
    marker = key(item)
    return (item, *(i for i in items if key(i) != marker))[:limit]


def _merge_identities(
    held: tuple[Identifier, ...], seen: Iterable[Identifier], limits: CustomerLimits
) -> tuple[Identifier, ...]:
    seen = tuple(seen)
    if not seen:
        return held
    fresh = seen + tuple(i for i in held if i not in seen)
    rules = limits.identity_rules
    # sorted() is stable: within a type, the order stays most recently seen first.
    return tuple(sorted(fresh, key=lambda i: rules.rank(i.type)))[: limits.identities]


def _consent_changes(state: CustomerState, payload: Mapping[str, Any], at_ms: int) -> dict[str, Any]:
    purpose = str(payload["purpose"])
    channel = payload.get("channel")
    key = f"{purpose}:{channel}" if channel else purpose
    granted = bool(payload["granted"])
    held_at = state.consent_at_ms.get(key)
    if held_at is not None and not _consent_wins(granted, at_ms, state.consent[key], held_at):
        return {}
    return {
        "consent": _with(state.consent, key, granted),
        "consent_at_ms": _with(state.consent_at_ms, key, at_ms),
    }


def _consent_wins(granted: bool, at_ms: int, held: bool, held_at_ms: int) -> bool:
    """True if a consent value given at ``at_ms`` replaces the one held: newer wins, a tie tightens."""
    if at_ms != held_at_ms:
        return at_ms > held_at_ms
    # Same millisecond from two channels: we cannot tell which came last, so privacy wins.
    return held and not granted


def merge_customer_states(
    customer: CustomerState, absorbed: CustomerState, limits: CustomerLimits = _DEFAULT_LIMITS
) -> CustomerState:
    """Fold the record of an absorbed profile (see ``Observation.absorbed``) into the customer's record.

    The result keeps ``customer.key``, ``typology`` and ``erased_at_ms``; journeys merge by
    :func:`~streams.domain.journey.merge_journeys`; recent orders are united (on one order id, the entry
    with the newer status wins); open interactions are united (one per kind and id, the later activity
    wins) and segments recomputed from the united channels. Identities, open tickets and
    channels are united (usage counts add up, last seen is the later); ``freshness``, ``updated_at_ms``
    and the last interaction take the later value; consent per key follows the same rule as events
    (newer wins, a tie tightens); the last verbatim is the newer one. Recent lists put the items of the
    more recently updated record first (the customer's on a tie), then de-duplicate and bound them.
    On any other tie the customer's value is kept.
    """
    newer, older = (absorbed, customer) if absorbed.updated_at_ms > customer.updated_at_ms else (customer, absorbed)
    channels = dict(customer.channels)
    for channel, usage in absorbed.channels.items():
        held = channels.get(channel)
        channels[channel] = (
            usage
            if held is None
            else ChannelUsage(held.count + usage.count, max(held.last_seen_ms, usage.last_seen_ms))
        )
    freshness = dict(customer.freshness)
    for channel, at_ms in absorbed.freshness.items():
        freshness[channel] = max(freshness.get(channel, at_ms), at_ms)
    consent = dict(customer.consent)
    consent_at = dict(customer.consent_at_ms)
    for key, granted in absorbed.consent.items():
        at_ms = absorbed.consent_at_ms.get(key, 0)
        if key not in consent or _consent_wins(granted, at_ms, consent[key], consent_at.get(key, 0)):
            consent[key], consent_at[key] = granted, at_ms
    verbatim = customer.last_verbatim
    if absorbed.last_verbatim is not None and (verbatim is None or absorbed.last_verbatim.at_ms > verbatim.at_ms):
        verbatim = absorbed.last_verbatim
    last_ms, last_channel = customer.last_interaction_ms, customer.last_channel
    if absorbed.last_interaction_ms is not None and (last_ms is None or absorbed.last_interaction_ms > last_ms):
        last_ms, last_channel = absorbed.last_interaction_ms, absorbed.last_channel
    return replace(
        customer,
        identities=_merge_identities(older.identities, newer.identities, limits),
        channels=MappingProxyType(channels),
        recent_searches=_merge_recent(
            newer.recent_searches, older.recent_searches, limits.recent_searches, key=str.casefold
        ),
        recent_products=_merge_recent(newer.recent_products, older.recent_products, limits.recent_products),
        consent=MappingProxyType(consent),
        consent_at_ms=MappingProxyType(consent_at),
        open_tickets=customer.open_tickets | absorbed.open_tickets,
        recent_returns=_merge_recent(newer.recent_returns, older.recent_returns, limits.recent_returns),
        last_verbatim=verbatim,
        last_interaction_ms=last_ms,
        last_channel=last_channel,
        freshness=MappingProxyType(freshness),
        updated_at_ms=max(customer.updated_at_ms, absorbed.updated_at_ms),
        recent_orders=_merge_orders(newer.recent_orders, older.recent_orders, limits.recent_orders),
        open_interactions=merge_interactions(
            customer.open_interactions, absorbed.open_interactions, limits.open_interactions
        ),
        segments=_segments(channels, limits),
        journey=merge_journeys(customer.journey, absorbed.journey),
    )


def _merge_orders(
    first: tuple[OrderSummary, ...], then: tuple[OrderSummary, ...], limit: int
) -> tuple[OrderSummary, ...]:
    kept: dict[str, OrderSummary] = {}
    for order in (*first, *then):
        held = kept.get(order.order_id)
        if held is None or order.status_at_ms > held.status_at_ms:
            kept[order.order_id] = order
    return tuple(kept.values())[:limit]


def _merge_recent(
    first: tuple[str, ...], then: tuple[str, ...], limit: int, *, key: Callable[[str], str] = str
) -> tuple[str, ...]:
    kept: dict[str, str] = {}
    for item in (*first, *then):
        kept.setdefault(key(item), item)
    return tuple(kept.values())[:limit]
