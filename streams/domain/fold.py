"""The merge core: a cluster's carts, records and identity graph as one deterministic fold over its events.

A *cluster* is a connected set of identifiers: two identifiers are in one cluster once any event carried both
(union-find, so it only grows and does not depend on the order events arrive in). Identity rules only ever
look at the profiles owning an event's identifiers, which are all in the event's cluster, so replaying a
cluster's events alone gives the same answer as replaying every event of every customer.

:func:`fold` replays a cluster's items (events, and follow-up checks that came due) sorted by
``(at_ms, item_id)`` (event time, then event id):

- each event is resolved with :func:`~streams.domain.identity.observe` (or :func:`release` for a logout)
  against the graph *as it was at that event's time*, then applied to the cart and record of its profile;
- a profile absorbed at a login hands its cart (by the configured :class:`MergeMode`) and record to the
  customer at that point of the sequence, exactly as a sequential reader would;
- an identifier unlinked by an operator is left out from the start: both sides are recomputed from their own
  events.

The state is therefore a function of the *set* of items: a merge is a union of two logs, an unlink a
different rule over the same log, a duplicate (same id) a no-op, a replay or a crash-restart a re-run that
gives the same result. :mod:`streams.cluster_engine` keeps the logs and writes the fold's result.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Final, Protocol

from streams.domain.cart import Cart, MergeMode, apply_cart_event, expire_if_idle, merge_carts
from streams.domain.customer import CustomerLimits, CustomerState, apply_customer_event, merge_customer_states
from streams.domain.errors import DomainError
from streams.domain.identity import (
    Identifier,
    IdentityGraph,
    IdentityRules,
    Link,
    customer_id_from_key,
    identifiers_of,
    observe,
    release,
    settled_owner,
)

__all__ = [
    "DueCheck",
    "FoldHooks",
    "FoldResult",
    "FoldRules",
    "FoldStart",
    "Item",
    "ProfileState",
    "due_item",
    "event_item",
    "fold",
    "ident",
    "item_from_json",
    "item_to_json",
    "live_profile",
    "parse_ident",
    "preferred",
]

#: Longest chain of ``merged_into`` followed to find where a profile's due check now belongs.
_MAX_HOPS: Final = 32


def ident(identifier: Identifier) -> str:
    """``type:value``, the text form used as a key."""
    return f"{identifier.type}:{identifier.value}"


def parse_ident(text: str) -> Identifier:
    kind, _, value = text.partition(":")
    return Identifier(kind, value)  # type: ignore[arg-type]  # written by ident(), so the type is valid


@dataclass(frozen=True, slots=True)
class DueCheck:
    """A follow-up check that came due for a profile (scheduled by the journeys, claimed by the timer)."""

    profile_key: str
    kind: str
    episode: str
    due_ms: int
    fired_at_ms: int


@dataclass(frozen=True, slots=True)
class Item:
    """One entry of a cluster's log: an event (decoded) or a due check. Ordered by ``(at_ms, item_id)``."""

    item_id: str
    at_ms: int
    event: Mapping[str, Any] | None = None
    due: DueCheck | None = None
    #: The event's :func:`identifiers_of` under the fold's identity rules, when whoever read it had them already.
    identifiers: tuple[Identifier, ...] | None = field(default=None, compare=False, repr=False)

    @property
    def order(self) -> tuple[int, str]:
        return (self.at_ms, self.item_id)


def event_item(event: Mapping[str, Any], identifiers: tuple[Identifier, ...] | None = None) -> Item:
    """``identifiers``: the event's ``identifiers_of`` under the fold's rules, if the caller has them."""
    return Item(str(event["event_id"]), int(event["occurred_at_ms"]), event=event, identifiers=identifiers)


def due_item(due: DueCheck) -> Item:
    # The id leaves out fired_at_ms: a check claimed again after a lost lease is the same check.
    return Item(f"due:{due.profile_key}:{due.kind}:{due.episode}:{due.due_ms}", due.fired_at_ms, due=due)


def item_to_json(item: Item) -> str:
    """Canonical text of an item (sorted keys): equal items give equal text, so a preference is total."""
    if item.due is not None:
        d = item.due
        body: dict[str, Any] = {
            "due": [d.profile_key, d.kind, d.episode, d.due_ms, d.fired_at_ms],
        }
    else:
        body = {"event": item.event}
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def item_from_json(text: str) -> Item:
    raw = json.loads(text)
    if "due" in raw:
        p, k, e, due_ms, fired = raw["due"]
        return due_item(DueCheck(p, k, e, int(due_ms), int(fired)))
    return event_item(raw["event"])


def preferred(a: tuple[Item, str], b: tuple[Item, str]) -> tuple[Item, str]:
    """Of two items with one id (a producer re-sent an event with other content), the one every worker keeps.

    The earlier one wins, then the smaller canonical text: a total order, so the choice does not depend on
    which copy arrived first.
    """
    return min(a, b, key=lambda pair: (pair[0].at_ms, pair[1]))


@dataclass(frozen=True)
class FoldRules:
    """The rules a fold applies (built once from :class:`streams.config.ProcessorConfig`)."""

    identity: IdentityRules = field(default_factory=IdentityRules)
    merge_mode: MergeMode = MergeMode.MAX
    cart_idle_ms: int = 7 * 24 * 3600 * 1000
    customer_limits: CustomerLimits = field(default_factory=CustomerLimits)
    #: The record reads identities with the same rules as resolution (the usual case): read them once per event.
    same_identity_rules: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "same_identity_rules", self.customer_limits.identity_rules == self.identity)


@dataclass
class ProfileState:
    """What a fold leaves for one profile key. ``merged_into``: absorbed into that profile."""

    cart: Cart | None = None
    customer: CustomerState | None = None
    merged_into: str | None = None


class FoldHooks(Protocol):
    """Journeys ride along the fold (see :class:`streams.journeys.processing.JourneyProcessor`).

    ``out`` collects what an item decides (records to send, idempotent Redis effects). For items whose records
    were already sent by an earlier run, the fold passes ``replay_output(out)``: their records are dropped, but
    their effects are applied again, in order, because a re-fold can change them (an exposure that now lands on
    an identified customer) and applying idempotent effects again in order ends in the fold's final state.
    """

    def new_output(self) -> Any: ...

    def replay_output(self, out: Any) -> Any: ...

    def on_event(
        self, key: str, event: Mapping[str, Any], before: Cart, after: Cart, customer: CustomerState, out: Any
    ) -> CustomerState: ...

    def on_merge(
        self, key: str, absorbed: str, merge_id: str, cart: Cart, customer: CustomerState, out: Any
    ) -> CustomerState: ...

    def on_due(self, key: str, due: DueCheck, cart: Cart, customer: CustomerState, out: Any) -> CustomerState: ...


@dataclass
class FoldResult:
    """The state after every item, and what the items of ``emit`` decided.

    Attributes:
        graph: the cluster's identity graph.
        profiles: the state of every profile key the cluster ever had.
        routes: the profile each item of ``emit`` was applied to (None: no usable identifier left, e.g. all
            unlinked).
        links: identity-graph changes made by items of ``emit``, in order.
        rejected: items of ``emit`` refused by a business rule, with the reason (for the dead-letter topic).
        last_linked: per identifier, the profile the last link of any folded item named (linked to, or
            unlinked from): where a subscriber of ``identity.links`` last saw it, had it seen every record.
    """

    graph: IdentityGraph
    profiles: dict[str, ProfileState]
    routes: dict[str, str | None]
    links: list[Link]
    rejected: dict[str, str]
    last_linked: dict[Identifier, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FoldStart:
    """The state a fold of a log left after its last item: its graph's owners and every profile's state.

    Folding new items that all come after that last item from here equals folding the whole log again
    (the fold is a left fold in a fixed order), at the cost of the new items only.
    """

    owners: Mapping[Identifier, str]
    profiles: Mapping[str, ProfileState]


class _Graph:
    """The fold's graph, changed in place; :func:`observe` is handed only the profiles an event touches."""

    def __init__(self) -> None:
        self.owners: dict[Identifier, str] = {}
        self.profiles: dict[str, frozenset[Identifier]] = {}

    def load(self, owners: Mapping[Identifier, str]) -> None:
        members: dict[str, set[Identifier]] = {}
        for identifier, key in owners.items():
            members.setdefault(key, set()).add(identifier)
        self.owners = dict(owners)
        self.profiles = {k: frozenset(v) for k, v in members.items()}

    def around(self, identifiers: Iterable[Identifier]) -> IdentityGraph:
        keys = {self.owners[i] for i in identifiers if i in self.owners}
        profiles = {k: self.profiles[k] for k in keys}
        return IdentityGraph(
            owners=MappingProxyType({m: k for k, ms in profiles.items() for m in ms}),
            profiles=MappingProxyType(profiles),
        )

    def replace(self, old: IdentityGraph, new: IdentityGraph) -> None:
        for identifier in old.owners:
            del self.owners[identifier]
        for key in old.profiles:
            del self.profiles[key]
        self.owners.update(new.owners)
        self.profiles.update(new.profiles)

    def freeze(self) -> IdentityGraph:
        return IdentityGraph(owners=MappingProxyType(dict(self.owners)), profiles=MappingProxyType(dict(self.profiles)))


def fold(
    items: Iterable[Item],
    rules: FoldRules,
    *,
    unlinked: Collection[Identifier] = frozenset(),
    hooks: FoldHooks | None = None,
    emit: Collection[str] = frozenset(),
    out: Any = None,
    start: FoldStart | None = None,
) -> FoldResult:
    """Replay ``items`` (distinct ids) in ``(at_ms, item_id)`` order; see the module docstring.

    ``emit``: ids of the items whose outputs go to ``out`` (the items of the batch being processed); the
    others' journey records are dropped (sent when they were processed), their effects kept (see FoldHooks).
    ``start``: continue from the state a fold left after its last item, when every item of ``items`` comes
    after that one in the order (the result is then the fold of all of them; see :class:`FoldStart`).
    """
    graph = _Graph()
    profiles: dict[str, ProfileState] = {}
    if start is not None:
        graph.load(start.owners)
        profiles.update((k, ProfileState(p.cart, p.customer, p.merged_into)) for k, p in start.profiles.items())
    result = FoldResult(IdentityGraph(), profiles, {}, [], {})
    replay: Any = None
    if hooks is not None:
        replay = hooks.replay_output(out) if out is not None else hooks.new_output()
    for item in sorted(items, key=lambda i: i.order):
        sink = out if item.item_id in emit else replay
        if item.event is not None:
            _apply_event(item, graph, profiles, rules, unlinked, hooks, sink, result, item.item_id in emit)
        elif item.due is not None and hooks is not None:
            key = live_profile(item.due.profile_key, profiles)
            if item.item_id in emit:
                result.routes[item.item_id] = key
            state = profiles.get(key)
            if state is not None and state.customer is not None:
                cart = state.cart or _new_cart(key)
                state.customer = hooks.on_due(key, item.due, cart, state.customer, sink)
    result.graph = graph.freeze()
    return result


def _apply_event(
    item: Item,
    graph: _Graph,
    profiles: dict[str, ProfileState],
    rules: FoldRules,
    unlinked: Collection[Identifier],
    hooks: FoldHooks | None,
    sink: Any,
    result: FoldResult,
    emitted: bool,
) -> None:
    event = item.event
    assert event is not None
    found = item.identifiers if item.identifiers is not None else identifiers_of(event, rules.identity)
    ids = tuple(i for i in found if i not in unlinked) if unlinked else found
    logout = event.get("event_type") == "logout"
    key = None if logout else settled_owner(graph.owners, ids)
    observation = None
    if key is None:  # the event may change the graph (settled_owner: it repeats known facts, observe changes nothing)
        local = graph.around(ids)
        observation = (release if logout else observe)(local, ids, rules.identity, item.item_id, item.at_ms)
        if observation.graph is not local:
            graph.replace(local, observation.graph)
            for founded in observation.graph.profiles.keys() - local.profiles.keys():
                if founded in profiles:  # a key used before (absorbed, then founded again after a logout)
                    profiles[founded] = ProfileState()
        key = observation.key
        if emitted:
            result.links.extend(observation.links)
        for link in observation.links:
            result.last_linked[link.identifier] = link.profile_key
    if emitted:
        result.routes[item.item_id] = key
    if key is None:
        return
    target = profiles.setdefault(key, ProfileState())
    if observation is not None:
        after = observation.graph
        for absorbed in observation.absorbed:
            source = profiles.setdefault(absorbed, ProfileState())
            if source.customer is not None:
                # Identifiers kept apart at this merge (another person's) do not travel in the record either.
                moved = tuple(i for i in source.customer.identities if after.profile_of(i) in (key, None))
                if moved != source.customer.identities:
                    source.customer = replace(source.customer, identities=moved)
            _merge(absorbed, key, f"merge:{absorbed}>{key}:{item.item_id}", profiles, rules, hooks, sink)
    base = target.cart or _new_cart(key)
    try:
        updated = apply_cart_event(expire_if_idle(base, item.at_ms, rules.cart_idle_ms), event)
        cart = updated if updated is not base or (target.cart is None and updated.version) else target.cart
        seen = found if rules.same_identity_rules else None
        customer = apply_customer_event(target.customer or CustomerState(key=key), event, rules.customer_limits, seen)
        if hooks is not None:
            customer = hooks.on_event(key, event, base, cart or base, customer, sink)
    except DomainError as exc:
        if emitted:
            result.rejected[item.item_id] = str(exc)
        return
    except (KeyError, TypeError, ValueError) as exc:
        # A record valid for the contract but not for its own event type (a ticket_opened carrying a login's
        # payload): rejected like a rule breach, deterministically, so it never stops the stream.
        if emitted:
            result.rejected[item.item_id] = f"payload does not fit event_type {event.get('event_type')!r}: {exc!r}"
        return
    target.cart, target.customer = cart, customer


def _merge(
    absorbed: str,
    key: str,
    merge_id: str,
    profiles: dict[str, ProfileState],
    rules: FoldRules,
    hooks: FoldHooks | None,
    sink: Any,
) -> None:
    source = profiles.setdefault(absorbed, ProfileState())
    target = profiles[key]
    if source.cart is not None and source.cart.lines:
        target.cart = merge_carts(target.cart or _new_cart(key), source.cart, rules.merge_mode)
        source.cart = replace(source.cart, status="closed", lines=(), version=source.cart.version + 1)
    if source.customer is not None:
        mine = target.customer or CustomerState(key=key)
        target.customer = merge_customer_states(mine, source.customer, rules.customer_limits)
        if hooks is not None:
            target.customer = hooks.on_merge(
                key, absorbed, merge_id, target.cart or _new_cart(key), target.customer, sink
            )
    source.merged_into = key


def live_profile(key: str, profiles: Mapping[str, ProfileState]) -> str:
    """Where a profile's state lives now (following absorptions)."""
    for _ in range(_MAX_HOPS):
        state = profiles.get(key)
        if state is None or state.merged_into is None:
            return key
        key = state.merged_into
    return key


def _new_cart(key: str) -> Cart:
    return Cart(cart_key=key, customer_id=customer_id_from_key(key))
