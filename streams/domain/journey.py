"""The journeys of one profile as pure state: follow-up episodes (S7), attribution memory (S5) and
cross-channel journeys (S6). Kept inside the customer record, so it is fenced, moved at merges and erased
with it.

Follow-up episodes
    A *cart episode* opens when the profile's cart gets lines and closes when it has none again (order placed,
    cart cleared, every line removed, or the cart handed over at a merge). A *quote episode* is one
    ``quote_id`` from ``quote_started``/``quote_updated`` to ``quote_submitted``. An open episode is due for a
    follow-up ``quiet`` milliseconds after its latest activity (event time); any new activity in it moves the
    due time. When a due episode is checked (:func:`on_due`) it fires at most once: a trigger is made, or it is
    *suppressed* with a reason (no channel the customer consented to, or the due time passed more than
    ``max_late_ms`` ago, e.g. a week-old cart replayed from a backlog). Either way the episode is spent: no
    second trigger until a new episode opens.

Attribution memory
    Exposures (see :mod:`streams.domain.attribution`) are kept for ``window_ms`` of event time. A profile
    without a customer id keeps its exposures and conversions *pending*: they are counted, and the conversions
    attributed, once the profile joins a customer (:func:`settle` with ``identified=True``), or dropped with a
    reason when the window has passed without that.

Cross-channel journeys
    Counted when a cart episode ends in an order on a channel other than one of the cart's, when a quote is
    submitted on a channel other than one it was filled on, and when a click-and-collect order is collected
    through another channel than the one it was placed on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Final

from streams.domain.attribution import (
    AttributionRules,
    Conversion,
    Credit,
    Exposure,
    add_exposure,
    attribute,
    conversion_of,
    exposure_of,
)
from streams.domain.cart import CART_EVENT_TYPES, Cart, CartLine
from streams.domain.errors import DomainError
from streams.domain.evolve import evolve

__all__ = [
    "ABANDONED_CART",
    "ATTRIBUTION_EXPIRY",
    "DUE_KINDS",
    "QUOTE_FOLLOW_UP",
    "Attribution",
    "CartEpisode",
    "Due",
    "FollowUp",
    "JourneyRules",
    "JourneyState",
    "JourneyStep",
    "QuoteEpisode",
    "channel_consent",
    "journey_from_dict",
    "journey_to_dict",
    "merge_journeys",
    "on_due",
    "on_event",
    "pending_dues",
    "settle",
]

ABANDONED_CART: Final = "abandoned_cart"
QUOTE_FOLLOW_UP: Final = "quote_follow_up"
#: Not a follow-up: the time when a profile's pending attribution items pass their window.
ATTRIBUTION_EXPIRY: Final = "attribution_expiry"
DUE_KINDS: Final = frozenset({ABANDONED_CART, QUOTE_FOLLOW_UP, ATTRIBUTION_EXPIRY})
_EXPIRY_EPISODE: Final = "pending"
#: Channels an abandoned-cart follow-up may use (those of FollowUpTrigger.action_channel that reach a person).
CART_FOLLOW_UP_CHANNELS: Final = frozenset({"email", "sms", "push", "call_centre", "postal"})


def _empty_map() -> Mapping[Any, Any]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class CartEpisode:
    """An open cart journey. ``last_step``: ``cart`` or ``checkout`` (where the shopper stopped)."""

    episode_id: str
    last_activity_ms: int
    last_channel: str | None
    last_step: str
    channels: frozenset[str]
    fired: bool = False


@dataclass(frozen=True)
class QuoteEpisode:
    """An open quote journey: the answers so far (later values win), the step and channels reached."""

    quote_id: str
    product: str
    step: str | None
    fields: Mapping[str, str] = field(default_factory=_empty_map, hash=False)
    last_activity_ms: int = 0
    last_channel: str | None = None
    channels: frozenset[str] = frozenset()
    fired: bool = False

    @property
    def episode_id(self) -> str:
        return f"quote:{self.quote_id}"


@dataclass(frozen=True)
class JourneyState:
    """Everything journeys remember about one profile (see the module docstring).

    ``collect_orders``: click-and-collect orders not collected yet, order id -> channel they were placed on.
    ``coupons``: codes redeemed (``coupon_redeemed``) for an order whose ``order_placed`` was not applied yet.
    ``clock_ms``: the newest event time applied, the "now" of window expiry (event time, so replays agree).
    """

    cart: CartEpisode | None = None
    quotes: tuple[QuoteEpisode, ...] = ()
    exposures: tuple[Exposure, ...] = ()
    pending: tuple[Conversion, ...] = ()
    collect_orders: Mapping[str, str] = field(default_factory=_empty_map, hash=False)
    coupons: Mapping[str, tuple[str, ...]] = field(default_factory=_empty_map, hash=False)
    cross_journeys: int = 0
    clock_ms: int = 0


@dataclass(frozen=True)
class JourneyRules:
    """Quiet periods, follow-up channels, attribution rules and the bounds of :class:`JourneyState`.

    - ``cart_quiet_ms`` / ``quote_quiet_ms``: how long an episode must stay quiet before its follow-up;
    - ``max_late_ms``: a follow-up checked longer than this after its due time is suppressed (stale);
    - ``cart_channels``: channels an abandoned-cart follow-up may use, preferred first, each only with the
      customer's consent (opt-in);
    - ``max_quotes`` / ``max_tracked``: open quotes, and orders awaiting collection or coupons, kept per profile.
    """

    cart_quiet_ms: int = 30 * 60_000
    quote_quiet_ms: int = 15 * 60_000
    max_late_ms: int = 24 * 3600_000
    cart_channels: tuple[str, ...] = ("email", "sms")
    attribution: AttributionRules = field(default_factory=AttributionRules)
    max_quotes: int = 10
    max_tracked: int = 20

    def __post_init__(self) -> None:
        for name in ("cart_quiet_ms", "quote_quiet_ms", "max_late_ms", "max_quotes", "max_tracked"):
            if getattr(self, name) <= 0:
                raise DomainError(f"JourneyRules.{name} must be positive, got {getattr(self, name)}")
        unknown = [c for c in self.cart_channels if c not in CART_FOLLOW_UP_CHANNELS]
        if not self.cart_channels or unknown:
            raise DomainError(
                f"JourneyRules.cart_channels must list channels among {sorted(CART_FOLLOW_UP_CHANNELS)}, "
                f"got {self.cart_channels!r}: e.g. ('email', 'sms')"
            )


@dataclass(frozen=True, slots=True)
class Due:
    """A scheduled check came due: ``due_ms`` is the time it was scheduled for (or re-claimed at),
    ``fired_at_ms`` the backbone clock when the timer claimed it."""

    kind: str
    episode_id: str
    due_ms: int
    fired_at_ms: int


@dataclass(frozen=True)
class FollowUp:
    """A follow-up to send: what the ``FollowUpTrigger`` record says, less the customer id and clock."""

    trigger_id: str
    kind: str
    action_channel: str
    quiet_since_ms: int
    last_channel: str | None
    last_step: str | None
    cart_lines: tuple[CartLine, ...] = ()
    quote_id: str | None = None
    quote_product: str | None = None
    quote_fields: Mapping[str, str] = field(default_factory=_empty_map, hash=False)


@dataclass(frozen=True, slots=True)
class Attribution:
    """One conversion and its credits (empty: unattributed)."""

    conversion: Conversion
    credits: tuple[Credit, ...]


@dataclass(frozen=True)
class JourneyStep:
    """The new journey state and what the shell must do about it.

    ``exposed_channels``: action channels on which the (identified) customer now counts as exposed;
    ``dropped``: (reason, event id) of attribution items given up; ``suppressed``: (reason, episode id) of
    follow-ups spent without a trigger; ``note``: why a due check changed nothing (for logs).
    """

    journey: JourneyState
    attributions: tuple[Attribution, ...] = ()
    exposed_channels: frozenset[str] = frozenset()
    dropped: tuple[tuple[str, str], ...] = ()
    follow_up: FollowUp | None = None
    suppressed: tuple[tuple[str, str], ...] = ()
    cross_journey: bool = False
    note: str | None = None


# --------------------------------------------------------------------------------------------------------
# Consent


def channel_consent(consent: Mapping[str, bool], channel: str) -> bool | None:
    """What the customer said about marketing contact on ``channel``: True, False, or None (never said).

    A channel-specific choice (``marketing_<channel>``, or any ``marketing*`` purpose limited to the channel,
    e.g. ``marketing:sms``) overrides the general ``marketing`` one; when several specific choices disagree,
    a refusal wins (privacy first).
    """
    specific = [
        granted
        for key, granted in consent.items()
        if key.startswith("marketing")
        and (key.partition(":")[0] == f"marketing_{channel}" or key.partition(":")[2] == channel)
    ]
    if specific:
        return all(specific)
    return consent.get("marketing")


def _cart_channel(consent: Mapping[str, bool], rules: JourneyRules) -> str | None:
    # Opt-in: an abandoned-cart reminder is marketing, so an unknown choice is not consent.
    return next((c for c in rules.cart_channels if channel_consent(consent, c) is True), None)


# --------------------------------------------------------------------------------------------------------
# Folding events


def on_event(
    journey: JourneyState,
    event: Mapping[str, Any],
    cart_before: Cart,
    cart_after: Cart,
    *,
    identified: bool,
    rules: JourneyRules,
) -> JourneyStep:
    """Fold one event of the profile (its cart before and after the event) into its journeys, then :func:`settle`.

    ``identified``: the profile is a customer's (``customer:<id>``), so attribution can count and credit.
    """
    at_ms: int = event["occurred_at_ms"]
    event_type = event.get("event_type")
    channel = str(event.get("channel") or "other")
    raw = event.get("payload")
    payload: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    cross = False

    episode = journey.cart
    if event_type == "order_placed" and episode is not None and cart_before.lines and not cart_after.lines:
        cross = len(episode.channels | {channel}) > 1
    if event_type in CART_EVENT_TYPES and cart_after.lines:
        cart_step = "checkout" if event_type == "checkout_started" else "cart"
        episode = _track_cart(episode, cart_after, str(event["event_id"]), channel, cart_step, at_ms)
    # One copy for the fields every event may change (a copy of a frozen record is most of this function's cost).
    state = evolve(journey, clock_ms=max(journey.clock_ms, at_ms), cart=episode)

    if event_type in ("quote_started", "quote_updated"):
        state = replace(state, quotes=_upsert_quote(state.quotes, payload, channel, at_ms, rules.max_quotes))
    elif event_type == "quote_submitted":
        quote_id = str(payload.get("quote_id"))
        quote = next((q for q in state.quotes if q.quote_id == quote_id), None)
        if quote is not None:
            cross = cross or len(quote.channels | {channel}) > 1
            state = replace(state, quotes=tuple(q for q in state.quotes if q.quote_id != quote_id))
    elif event_type == "coupon_redeemed" and payload.get("order_id") and payload.get("code"):
        order_id = str(payload["order_id"])
        codes = (*state.coupons.get(order_id, ()), str(payload["code"]))
        state = replace(state, coupons=_bounded({**state.coupons, order_id: codes}, rules.max_tracked))
    elif event_type == "order_collected":
        order_id = str(payload.get("order_id"))
        placed_on = state.collect_orders.get(order_id)
        if placed_on is not None:
            cross = cross or placed_on != channel
            state = replace(
                state, collect_orders=MappingProxyType({k: v for k, v in state.collect_orders.items() if k != order_id})
            )

    if event_type == "order_placed" and payload.get("fulfilment") == "click_and_collect" and payload.get("order_id"):
        collect = {**state.collect_orders, str(payload["order_id"]): channel}
        state = replace(state, collect_orders=_bounded(collect, rules.max_tracked))

    exposure = exposure_of(event)
    if exposure is not None:
        limit = len(state.exposures) + 1  # bounded by settle(), which counts what an unidentified profile loses
        state = replace(state, exposures=add_exposure(state.exposures, exposure, limit))
    placed = str(payload["order_id"]) if event_type == "order_placed" and payload.get("order_id") else None
    conversion = conversion_of(event, state.coupons.get(placed, ()) if placed else ())
    if conversion is not None and all(p.event_id != conversion.event_id for p in state.pending):
        state = replace(state, pending=(*state.pending, conversion))
        if placed:
            state = replace(state, coupons=MappingProxyType({k: v for k, v in state.coupons.items() if k != placed}))
    if cross:
        state = replace(state, cross_journeys=state.cross_journeys + 1)
    step = settle(state, cart_after, identified=identified, origin_id=str(event["event_id"]), rules=rules)
    return replace(step, cross_journey=True) if cross else step


def _track_cart(
    episode: CartEpisode | None,
    cart: Cart,
    origin_id: str,
    channel: str | None = None,
    step: str | None = None,
    at_ms: int | None = None,
) -> CartEpisode | None:
    """The cart episode after a change of ``cart``: None once it has no lines, else opened or moved on."""
    if not cart.lines or cart.status == "closed":
        return None
    line_channels = frozenset(line.channel for line in cart.lines)
    if episode is None:
        newest = max(cart.lines, key=lambda line: line.updated_at_ms)
        return CartEpisode(
            f"cart:{origin_id}",
            cart.updated_at_ms,
            channel or newest.channel,
            step or "cart",
            line_channels | ({channel} if channel else frozenset()),
        )
    newer = at_ms is not None and at_ms >= episode.last_activity_ms
    moved = (
        max(episode.last_activity_ms, cart.updated_at_ms),
        channel if channel and newer else episode.last_channel,
        step if step and newer else episode.last_step,
        episode.channels | line_channels | ({channel} if channel else frozenset()),
    )
    if moved == (episode.last_activity_ms, episode.last_channel, episode.last_step, episode.channels):
        return episode  # nothing moved: no copy (settle() runs after every event)
    activity, last_channel, last_step, channels = moved
    return replace(
        episode, last_activity_ms=activity, last_channel=last_channel, last_step=last_step, channels=channels
    )


def _upsert_quote(
    quotes: tuple[QuoteEpisode, ...], payload: Mapping[str, Any], channel: str, at_ms: int, limit: int
) -> tuple[QuoteEpisode, ...]:
    quote_id = str(payload.get("quote_id"))
    answers = {str(k): str(v) for k, v in (payload.get("fields") or {}).items()}
    held = next((q for q in quotes if q.quote_id == quote_id), None)
    step = payload.get("step")
    if held is None:
        quote = QuoteEpisode(
            quote_id,
            str(payload.get("product") or ""),
            str(step) if step else None,
            MappingProxyType(answers),
            at_ms,
            channel,
            frozenset({channel}),
        )
    elif at_ms >= held.last_activity_ms:
        quote = replace(
            held,
            step=str(step) if step else held.step,
            fields=MappingProxyType({**held.fields, **answers}),
            last_activity_ms=at_ms,
            last_channel=channel,
            channels=held.channels | {channel},
        )
    else:  # a late event: its answers only fill gaps, the newer step and channel stay
        quote = replace(held, fields=MappingProxyType({**answers, **held.fields}), channels=held.channels | {channel})
    others = [q for q in quotes if q.quote_id != quote_id]
    # Over the bound the quietest quote goes: a prospect's latest journeys matter most for a call back.
    kept = sorted([*others, quote], key=lambda q: (q.last_activity_ms, q.quote_id))[-limit:]
    return tuple(kept)


def _bounded(mapping: Mapping[str, Any], limit: int) -> Mapping[str, Any]:
    """The last ``limit`` entries in insertion order (dicts keep it): the oldest go first."""
    items = list(mapping.items())[-limit:]
    return MappingProxyType(dict(items))


def settle(journey: JourneyState, cart: Cart, *, identified: bool, origin_id: str, rules: JourneyRules) -> JourneyStep:
    """Bring the journey in line with the profile's cart and identity, after any change (event, merge, due check).

    The cart episode follows ``cart`` (``origin_id`` names a new one). An identified profile counts its new
    exposures and attributes its pending conversions (oldest first), then forgets exposures older than two
    windows. An unidentified profile drops, with a reason, the conversions the window has passed by, the
    exposures it has passed by that no pending conversion can use, and what exceeds the bounds.
    """
    episode = _track_cart(journey.cart, cart, origin_id)
    state = journey if episode is journey.cart else replace(journey, cart=episode)
    window = rules.attribution.window_ms
    limit = rules.attribution.max_exposures
    dropped: list[tuple[str, str]] = []
    attributions: list[Attribution] = []
    exposed: frozenset[str] = frozenset()
    if identified:
        exposed = frozenset(e.channel for e in state.exposures if not e.counted)
        exposures = tuple(e if e.counted else replace(e, counted=True) for e in state.exposures)
        for conversion in sorted(state.pending, key=lambda c: (c.at_ms, c.event_id)):
            attributions.append(Attribution(conversion, attribute(conversion, exposures, rules.attribution)))
        # Kept for two windows, not one: a conversion that arrives late (its event time up to a window before
        # the newest event applied) still finds the touches before it.
        kept = tuple(e for e in exposures if e.at_ms + 2 * window >= state.clock_ms)[-limit:]
        if kept != state.exposures or state.pending:
            state = replace(state, exposures=kept, pending=())
    else:
        now = state.clock_ms
        waiting = tuple(c for c in state.pending if c.at_ms + window > now)
        dropped += [("conversion_unidentified_after_window", c.event_id) for c in state.pending if c not in waiting]
        cap = rules.attribution.max_pending
        dropped += [("conversion_overflow", c.event_id) for c in waiting[:-cap]]
        waiting = waiting[-cap:]
        fresh = tuple(e for e in state.exposures if e.counted or e.at_ms + window > now or _needed(e, waiting, window))
        dropped += [("exposure_unidentified_after_window", e.event_id) for e in state.exposures if e not in fresh]
        dropped += [("exposure_overflow", e.event_id) for e in fresh[:-limit] if not e.counted]
        if fresh[-limit:] != state.exposures or waiting != state.pending:
            state = replace(state, exposures=fresh[-limit:], pending=waiting)
    return JourneyStep(state, tuple(attributions), exposed, tuple(dropped))


def _needed(exposure: Exposure, pending: tuple[Conversion, ...], window_ms: int) -> bool:
    """True if a pending conversion would credit ``exposure`` once identified (it is within its window)."""
    return any(c.at_ms - window_ms <= exposure.at_ms <= c.at_ms for c in pending)


# --------------------------------------------------------------------------------------------------------
# Due checks and schedules


def pending_dues(journey: JourneyState, *, identified: bool, rules: JourneyRules) -> dict[tuple[str, str], int]:
    """What should be scheduled for this profile: (kind, episode id) -> due time (epoch ms, event time).

    Open, unspent episodes are due ``quiet`` after their latest activity; an unidentified profile with pending
    attribution items is due for expiry when the oldest of them leaves the window.
    """
    dues: dict[tuple[str, str], int] = {}
    if journey.cart is not None and not journey.cart.fired:
        dues[(ABANDONED_CART, journey.cart.episode_id)] = journey.cart.last_activity_ms + rules.cart_quiet_ms
    for quote in journey.quotes:
        if not quote.fired:
            dues[(QUOTE_FOLLOW_UP, quote.episode_id)] = quote.last_activity_ms + rules.quote_quiet_ms
    if not identified:
        window = rules.attribution.window_ms
        # An exposure a pending conversion can still use expires with that conversion, not on its own.
        times = [c.at_ms for c in journey.pending] + [
            e.at_ms for e in journey.exposures if not e.counted and not _needed(e, journey.pending, window)
        ]
        if times:
            dues[(ATTRIBUTION_EXPIRY, _EXPIRY_EPISODE)] = min(times) + window
    return dues


def on_due(
    journey: JourneyState,
    due: Due,
    cart: Cart,
    consent: Mapping[str, bool],
    *,
    profile_key: str,
    identified: bool,
    rules: JourneyRules,
) -> JourneyStep:
    """Check a due episode: fire its follow-up at most once, or say why not (see the module docstring).

    A check for an episode that closed, already fired, or moved its due time past ``due.due_ms`` (new activity
    after the timer claimed it) changes nothing: a later check is scheduled in that case.
    """
    if due.kind == ATTRIBUTION_EXPIRY:
        # The due time is an event time (oldest pending item + window): it is the "now" of the expiry.
        state = replace(journey, clock_ms=max(journey.clock_ms, due.due_ms))
        return settle(state, cart, identified=identified, origin_id=f"due:{due.due_ms}", rules=rules)
    if due.kind == ABANDONED_CART:
        episode = journey.cart
        if episode is None or episode.episode_id != due.episode_id:
            return JourneyStep(journey, note="episode closed")
        if episode.fired:
            return JourneyStep(journey, note="already fired")
        due_ms = episode.last_activity_ms + rules.cart_quiet_ms
        if due_ms > due.due_ms:
            return JourneyStep(journey, note="rescheduled by later activity")
        spent = replace(journey, cart=replace(episode, fired=True))
        reason = _suppression(due, due_ms, rules) or (None if _cart_channel(consent, rules) else "no_consent")
        if reason is not None:
            return JourneyStep(spent, suppressed=((reason, episode.episode_id),))
        follow_up = FollowUp(
            f"{profile_key}/{ABANDONED_CART}/{episode.episode_id}",
            ABANDONED_CART,
            _cart_channel(consent, rules) or "",
            episode.last_activity_ms,
            episode.last_channel,
            episode.last_step,
            cart_lines=cart.lines,
        )
        return JourneyStep(spent, follow_up=follow_up)
    if due.kind == QUOTE_FOLLOW_UP:
        quote = next((q for q in journey.quotes if q.episode_id == due.episode_id), None)
        if quote is None:
            return JourneyStep(journey, note="episode closed")
        if quote.fired:
            return JourneyStep(journey, note="already fired")
        due_ms = quote.last_activity_ms + rules.quote_quiet_ms
        if due_ms > due.due_ms:
            return JourneyStep(journey, note="rescheduled by later activity")
        spent = replace(journey, quotes=tuple(replace(q, fired=True) if q is quote else q for q in journey.quotes))
        # A requested quote is a service the prospect asked for: only an explicit refusal stops the call back.
        reason = _suppression(due, due_ms, rules) or (
            "no_consent" if channel_consent(consent, "call_centre") is False else None
        )
        if reason is not None:
            return JourneyStep(spent, suppressed=((reason, quote.episode_id),))
        follow_up = FollowUp(
            f"{profile_key}/{QUOTE_FOLLOW_UP}/{quote.episode_id}",
            QUOTE_FOLLOW_UP,
            "call_centre",
            quote.last_activity_ms,
            quote.last_channel,
            quote.step,
            quote_id=quote.quote_id,
            quote_product=quote.product or None,
            quote_fields=quote.fields,
        )
        return JourneyStep(spent, follow_up=follow_up)
    return JourneyStep(journey, note=f"unknown due kind {due.kind!r}")


def _suppression(due: Due, due_ms: int, rules: JourneyRules) -> str | None:
    return "stale" if due.fired_at_ms - due_ms > rules.max_late_ms else None


# --------------------------------------------------------------------------------------------------------
# Merging two profiles' journeys


def merge_journeys(mine: JourneyState, theirs: JourneyState) -> JourneyState:
    """The journeys of a profile that absorbed another (bounds are applied by the next :func:`settle`).

    One cart episode survives: the surviving profile's if open (it keeps its id and fired mark, and gains the
    other's channels and later activity), else the absorbed one's. Quotes, orders awaiting collection,
    coupons and pending conversions are united (the surviving profile's entry wins a tie); exposures are
    united one per touch (the earliest sighting); cross-channel journeys add up.
    """
    cart = mine.cart or theirs.cart
    if mine.cart is not None and theirs.cart is not None:
        newer = theirs.cart if theirs.cart.last_activity_ms > mine.cart.last_activity_ms else mine.cart
        cart = replace(
            mine.cart,
            last_activity_ms=newer.last_activity_ms,
            last_channel=newer.last_channel,
            last_step=newer.last_step,
            channels=mine.cart.channels | theirs.cart.channels,
        )
    quotes = {q.quote_id: q for q in theirs.quotes}
    for quote in mine.quotes:
        other = quotes.get(quote.quote_id)
        if other is not None:
            newer_quote = other if other.last_activity_ms > quote.last_activity_ms else quote
            older_quote = quote if newer_quote is other else other
            quote = replace(
                newer_quote,
                fields=MappingProxyType({**older_quote.fields, **newer_quote.fields}),
                channels=quote.channels | other.channels,
                fired=quote.fired or other.fired,
            )
        quotes[quote.quote_id] = quote
    exposures = mine.exposures
    for exposure in theirs.exposures:
        exposures = add_exposure(exposures, exposure, len(exposures) + 1)
    pending = {c.event_id: c for c in theirs.pending} | {c.event_id: c for c in mine.pending}
    return JourneyState(
        cart=cart,
        quotes=tuple(sorted(quotes.values(), key=lambda q: (q.last_activity_ms, q.quote_id))),
        exposures=exposures,
        pending=tuple(sorted(pending.values(), key=lambda c: (c.at_ms, c.event_id))),
        collect_orders=MappingProxyType({**theirs.collect_orders, **mine.collect_orders}),
        coupons=MappingProxyType({**theirs.coupons, **mine.coupons}),
        cross_journeys=mine.cross_journeys + theirs.cross_journeys,
        clock_ms=max(mine.clock_ms, theirs.clock_ms),
    )


# --------------------------------------------------------------------------------------------------------
# JSON form (what the customer record stores under ``_internal.journey``)


def journey_to_dict(journey: JourneyState) -> dict[str, Any]:
    """The journey as JSON-ready values (lossless; see :func:`journey_from_dict`)."""
    cart = journey.cart
    return {
        "cart": None
        if cart is None
        else {
            "id": cart.episode_id,
            "last_ms": cart.last_activity_ms,
            "last_channel": cart.last_channel,
            "last_step": cart.last_step,
            "channels": sorted(cart.channels),
            "fired": cart.fired,
        },
        "quotes": [
            {
                "id": q.quote_id,
                "product": q.product,
                "step": q.step,
                "fields": dict(q.fields),
                "last_ms": q.last_activity_ms,
                "last_channel": q.last_channel,
                "channels": sorted(q.channels),
                "fired": q.fired,
            }
            for q in journey.quotes
        ],
        "exposures": [
            [e.touch_id, e.event_id, e.channel, e.campaign_id, e.promo_code, e.at_ms, e.counted]
            for e in journey.exposures
        ],
        "pending": [[c.event_id, c.kind, c.channel, c.at_ms, sorted(c.codes), c.order_id] for c in journey.pending],
        "collect_orders": dict(journey.collect_orders),
        "coupons": {k: list(v) for k, v in journey.coupons.items()},
        "cross": journey.cross_journeys,
        "clock_ms": journey.clock_ms,
    }


def journey_from_dict(raw: Mapping[str, Any] | None) -> JourneyState:
    """The journey stored by :func:`journey_to_dict`; None (a record stored before journeys) is an empty one."""
    if not raw:
        return JourneyState()
    cart = raw.get("cart")
    return JourneyState(
        cart=None
        if cart is None
        else CartEpisode(
            cart["id"],
            cart["last_ms"],
            cart["last_channel"],
            cart["last_step"],
            frozenset(cart["channels"]),
            cart["fired"],
        ),
        quotes=tuple(
            QuoteEpisode(
                q["id"],
                q["product"],
                q["step"],
                MappingProxyType(dict(q["fields"])),
                q["last_ms"],
                q["last_channel"],
                frozenset(q["channels"]),
                q["fired"],
            )
            for q in raw.get("quotes", ())
        ),
        exposures=tuple(Exposure(*e) for e in raw.get("exposures", ())),
        pending=tuple(Conversion(c[0], c[1], c[2], c[3], frozenset(c[4]), c[5]) for c in raw.get("pending", ())),
        collect_orders=MappingProxyType(dict(raw.get("collect_orders", {}))),
        coupons=MappingProxyType({k: tuple(v) for k, v in raw.get("coupons", {}).items()}),
        cross_journeys=int(raw.get("cross", 0)),
        clock_ms=int(raw.get("clock_ms", 0)),
    )
