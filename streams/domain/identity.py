"""Streaming identity resolution as pure decisions: which profile an event belongs to, and which links change.

A *profile* is a set of identifiers (customer id, loyalty card, e-mail/phone hash, anonymous id, device id)
believed to be one person. Its key is ``customer:<id>`` once it holds a customer id, else the key of the
identifier that founded it (``anonymous:A1``, ``device:D1``, ...).

Rules applied by :func:`observe`:

1. Two different customer ids are never in one profile (``max_per_profile["customer_id"]`` is always 1).
2. Identifiers seen together with a customer id join that customer's profile. A profile without a customer
   id that shares an identifier with the event is *absorbed* whole: its identifiers move to the customer,
   and :attr:`Observation.absorbed` names it so the caller can move its state (cart, recent activity).
3. A *movable* identifier (default: anonymous and device ids) already linked to customer C1 that appears
   with customer C2 moves to C2 (an ``unmerge`` from C1, then a ``merge`` into C2): a shared family
   tablet follows the latest login, and later anonymous-only events from it go to C2. Person-level
   identifiers (e-mail/phone hash, loyalty card) stay with the customer that claimed them first, and a
   login matched only through a movable identifier never takes the person-level identifiers of the
   customer-less profile it absorbs: they stay in a profile of their own (``kept_apart``) until the person
   they belong to claims them.
4. Without a customer id, an event goes to the profile of its strongest known identifier; unknown
   identifiers join it, and other profiles without a customer id that the event touches are absorbed into
   it. If the event touches two customers' profiles the evidence is ambiguous: nothing is linked.
5. Blocked placeholder values are never identifiers, and neither the device id nor the anonymous id of a
   device whose role is not linkable (staff-operated, shared) is used, so a shop's tablet never chains its
   customers together.
6. A ``logout`` (:func:`release`) unlinks the device and anonymous ids it carries from the customer.

:mod:`streams.domain.fold` replays these decisions over a cluster's events in event-time order, so the
outcome never depends on the order in which Kafka delivered them; this module only decides.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal, NamedTuple, get_args

from streams.domain.errors import IdentityRuleError

__all__ = [
    "DEFAULT_BLOCKED_VALUES",
    "IDENTIFIER_TYPES",
    "Identifier",
    "IdentifierType",
    "IdentityGraph",
    "IdentityRules",
    "Link",
    "LinkAction",
    "LinkReason",
    "Observation",
    "customer_id_from_key",
    "founder_of",
    "identifiers_of",
    "observe",
    "profile_key_of",
    "release",
    "settled_owner",
]

IdentifierType = Literal["customer_id", "loyalty_card", "email_hash", "phone_hash", "anonymous_id", "device_id"]

#: Every identifier type, strongest first (the default strength order).
IDENTIFIER_TYPES: Final[tuple[IdentifierType, ...]] = get_args(IdentifierType)

_KEY_PREFIX: Final[Mapping[str, str]] = MappingProxyType(
    {
        "customer_id": "customer",
        "loyalty_card": "loyalty",
        "email_hash": "email",
        "phone_hash": "phone",
        "anonymous_id": "anonymous",
        "device_id": "device",
    }
)
_CUSTOMER_PREFIX: Final = "customer:"

#: Placeholders that SDKs, forms and exports send when they have no identifier (compared stripped and
#: case-insensitively). The hashes are SHA-256, SHA-1 and MD5 of the empty string: what an e-mail or
#: phone hash field holds when the hashed value was blank.
DEFAULT_BLOCKED_VALUES: Final = frozenset(
    {
        "",
        "null",
        "none",
        "undefined",
        "anonymous",
        "unknown",
        "0",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "da39a3ee5e6b4b0d3255bfef95601890afd80709",
        "d41d8cd98f00b204e9800998ecf8427e",
    }
)

LinkAction = Literal["merge", "unmerge"]
LinkReason = Literal[
    "seen_together",
    "profile_absorbed",
    "switched_customer",
    "cap_exceeded",
    "logout",
    "kept_apart",
    "unlinked",
    "refolded",  # a fold of the whole log (a late event, a replay) left the identifier elsewhere than last said
]


def _default_caps() -> Mapping[IdentifierType, int]:
    return MappingProxyType({"customer_id": 1})


#: Most blocked-value answers an :class:`IdentityRules` keeps (a few MB at most).
_BLOCKED_CACHE = 65_536


@dataclass(frozen=True)
class IdentityRules:
    """Configuration of identity resolution; built once at start-up and passed to every call.

    Attributes:
        blocked_values: values that are never identifiers (stripped, case-insensitive).
        block_all_zero: also block values made only of zeros and dashes (``000``, the nil UUID).
        strength_order: identifier types used, strongest first; a type left out is ignored.
        max_per_profile: most identifiers of a type one profile may hold; a further one is not linked.
            ``customer_id`` is always 1 (two customers are never merged).
        linkable_device_roles: device roles whose ``device_id`` is an identifier.
        movable_types: types that follow the latest customer login (see the module docstring, rule 3).
    """

    blocked_values: frozenset[str] = DEFAULT_BLOCKED_VALUES
    block_all_zero: bool = True
    strength_order: tuple[IdentifierType, ...] = IDENTIFIER_TYPES
    max_per_profile: Mapping[IdentifierType, int] = field(default_factory=_default_caps, hash=False)
    linkable_device_roles: frozenset[str] = frozenset({"customer_owned"})
    movable_types: frozenset[IdentifierType] = frozenset({"anonymous_id", "device_id"})

    def __post_init__(self) -> None:
        unknown = [t for t in self.strength_order if t not in IDENTIFIER_TYPES]
        if unknown or len(set(self.strength_order)) != len(self.strength_order):
            raise IdentityRuleError(
                f"IdentityRules.strength_order must list distinct types from {IDENTIFIER_TYPES}, "
                f"got {self.strength_order!r}"
            )
        if "customer_id" not in self.strength_order:
            raise IdentityRuleError(
                "IdentityRules.strength_order must include 'customer_id': it decides the canonical key"
            )
        caps = {"customer_id": 1, **self.max_per_profile}
        if caps["customer_id"] != 1:
            raise IdentityRuleError(
                f"IdentityRules.max_per_profile['customer_id'] must be 1 (two customers are never merged), "
                f"got {caps['customer_id']}"
            )
        bad_caps = {t: n for t, n in caps.items() if t not in IDENTIFIER_TYPES or n < 1}
        if bad_caps:
            raise IdentityRuleError(
                f"IdentityRules.max_per_profile must map identifier types to counts >= 1, got {bad_caps!r}"
            )
        if "customer_id" in self.movable_types:
            raise IdentityRuleError(
                "IdentityRules.movable_types must not include 'customer_id': a customer id defines its profile"
            )
        object.__setattr__(self, "strength_order", tuple(self.strength_order))
        object.__setattr__(self, "max_per_profile", MappingProxyType(caps))
        object.__setattr__(self, "blocked_values", frozenset(v.strip().lower() for v in self.blocked_values))
        object.__setattr__(self, "linkable_device_roles", frozenset(self.linkable_device_roles))
        object.__setattr__(self, "movable_types", frozenset(self.movable_types))
        # Looked up three times per event by the worker: answers kept per rules object (not fields: eq and hash
        # ignore them). The blocked-value answers are bounded: cleared when full, recomputed on demand.
        object.__setattr__(self, "_ranks", {t: n for n, t in enumerate(self.strength_order)})
        object.__setattr__(self, "_blocked", {})

    def is_blocked(self, value: str) -> bool:
        """True if ``value`` is a placeholder rather than an identifier."""
        known: dict[str, bool] = self._blocked  # type: ignore[attr-defined]  # set in __post_init__
        answer = known.get(value)
        if answer is None:
            if len(known) >= _BLOCKED_CACHE:
                known.clear()
            answer = known[value] = self._placeholder(value)
        return answer

    def _placeholder(self, value: str) -> bool:
        normal = value.strip().lower()
        if normal in self.blocked_values:
            return True
        return self.block_all_zero and bool(normal) and set(normal) <= {"0", "-"}

    def rank(self, identifier_type: str) -> int:
        """Position of a type in the strength order (0 is strongest); unused types rank last."""
        ranks: dict[str, int] = self._ranks  # type: ignore[attr-defined]  # set in __post_init__
        return ranks.get(identifier_type, len(self.strength_order))


@dataclass(frozen=True, order=True, slots=True)
class Identifier:
    """One identifier value of one type, e.g. ``Identifier("anonymous_id", "A1")``."""

    type: IdentifierType
    value: str


@dataclass(frozen=True, slots=True)
class Link:
    """A change of the identity graph, published as an ``omnichannel.output.IdentityLink``.

    ``merge``: ``identifier`` now belongs to ``profile_key``; ``previous_key`` is the profile it left
    (None if it was new). ``unmerge``: ``identifier`` left ``profile_key`` (``previous_key`` is None).
    """

    action: LinkAction
    identifier: Identifier
    profile_key: str
    previous_key: str | None
    reason: LinkReason
    event_id: str
    at_ms: int


def profile_key_of(identifier: Identifier) -> str:
    """The key of a profile founded by ``identifier``, e.g. ``customer:C1`` or ``anonymous:A1``."""
    return f"{_KEY_PREFIX[identifier.type]}:{identifier.value}"


def founder_of(profile_key: str) -> Identifier | None:
    """The identifier a profile key was made from (``anonymous:A1`` -> anonymous_id A1), or None if malformed."""
    prefix, sep, value = profile_key.partition(":")
    for identifier_type, key_prefix in _KEY_PREFIX.items():
        if sep and key_prefix == prefix:
            return Identifier(identifier_type, value)  # type: ignore[arg-type]  # keys of _KEY_PREFIX are types
    return None


def customer_id_from_key(profile_key: str) -> str | None:
    """The customer id in a profile key (``customer:C1`` -> ``C1``), or None for a customer-less profile."""
    return profile_key[len(_CUSTOMER_PREFIX) :] if _is_customer_key(profile_key) else None


def _is_customer_key(key: str) -> bool:
    return key.startswith(_CUSTOMER_PREFIX)


@dataclass(frozen=True)
class IdentityGraph:
    """Who is who: each identifier's profile key, and each profile's identifiers.

    The two mappings always agree; build graphs with :func:`observe` rather than by hand.
    """

    owners: Mapping[Identifier, str] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    profiles: Mapping[str, frozenset[Identifier]] = field(default_factory=lambda: MappingProxyType({}), hash=False)

    def profile_of(self, identifier: Identifier) -> str | None:
        """The key of the profile holding ``identifier``, or None if it was never linked."""
        return self.owners.get(identifier)

    def members(self, profile_key: str) -> frozenset[Identifier]:
        """The identifiers of a profile (empty if the profile does not exist)."""
        return self.profiles.get(profile_key, frozenset())

    def customer_of(self, profile_key: str) -> str | None:
        """The customer id of a profile, or None if it has none (or does not exist)."""
        for identifier in self.members(profile_key):
            if identifier.type == "customer_id":
                return identifier.value
        return None


class Observation(NamedTuple):
    """What :func:`observe` decided for one event.

    Attributes:
        graph: the graph after the event.
        key: the canonical profile key the event belongs to, or None if the event carries no usable
            identifier (the caller cannot attach it to anyone: count it and drop or dead-letter it).
        links: merges and unmerges made, in order.
        absorbed: keys of profiles without a customer id that were absorbed into ``key``, in order.
            They no longer exist in ``graph``: the caller must move their state (cart, recent activity)
            into ``key``, e.g. with :func:`streams.domain.cart.merge_carts`.
    """

    graph: IdentityGraph
    key: str | None
    links: tuple[Link, ...]
    absorbed: tuple[str, ...]


def identifiers_of(event: Mapping[str, Any], rules: IdentityRules) -> tuple[Identifier, ...]:
    """The usable identifiers of a decoded event, strongest first.

    Reads ``identities`` and ``device.device_id``; values are stripped of surrounding whitespace; blocked
    values, types left out of ``rules.strength_order``, and device ids of non-linkable roles are dropped.
    """
    found: list[Identifier] = []
    device = event.get("device")
    # A missing role takes the schema default (customer_owned). On a staff-operated or shared device the app's
    # anonymous id is the device's, not a person's: it would chain every customer served there together.
    linkable_device = (
        not isinstance(device, Mapping) or (device.get("role") or "customer_owned") in rules.linkable_device_roles
    )
    identities = event.get("identities")
    if isinstance(identities, Mapping):
        for identifier_type in IDENTIFIER_TYPES:
            if identifier_type == "device_id" or (identifier_type == "anonymous_id" and not linkable_device):
                continue
            _collect(found, identifier_type, identities.get(identifier_type))
    if isinstance(device, Mapping) and linkable_device:
        _collect(found, "device_id", device.get("device_id"))
    return _usable(found, rules)


def _collect(found: list[Identifier], identifier_type: IdentifierType, value: object) -> None:
    if isinstance(value, str):
        found.append(Identifier(identifier_type, value.strip()))


def _usable(identifiers: Iterable[Identifier], rules: IdentityRules) -> tuple[Identifier, ...]:
    kept = {
        i: None
        for i in identifiers
        if i.type in rules.strength_order and not rules.is_blocked(i.value) and i.value == i.value.strip()
    }
    return tuple(sorted(kept, key=lambda i: rules.rank(i.type)))  # stable: keeps input order within a type


def observe(
    graph: IdentityGraph,
    identifiers: Iterable[Identifier],
    rules: IdentityRules,
    event_id: str,
    at_ms: int,
) -> Observation:
    """Link the identifiers seen together in one event and decide the event's canonical profile.

    ``identifiers`` normally comes from :func:`identifiers_of`; blocked values, unused types and values
    with surrounding whitespace are dropped here too, so no input can put them in the graph. The rules are
    those of the module docstring. ``event_id`` and ``at_ms`` are copied into the links for the audit trail.
    An event that repeats known facts returns the same graph and no links.
    """
    ids = _usable(identifiers, rules)
    if not ids:
        return Observation(graph, None, (), ())
    work = _Work(graph, rules, event_id, at_ms)
    customers = [i for i in ids if i.type == "customer_id"]
    if customers:
        # An Identities record carries one customer id; with more, the first decides and the others are
        # refused by the one-customer cap in _claim.
        key = work.found_or_get(customers[0])
        for identifier in ids:
            work.claim(identifier, key)
        return work.result(key)

    owned = list(dict.fromkeys(work.owners[i] for i in ids if i in work.owners))
    if not owned:
        key = work.found_or_get(ids[0])
    else:
        customer_keys = [k for k in owned if _is_customer_key(k)]
        if len(customer_keys) > 1:
            # Identifiers of two customers in one anonymous event: no evidence of who it is. Route by the
            # strongest identifier and change nothing.
            return work.result(owned[0])
        key = customer_keys[0] if customer_keys else owned[0]
        for other in owned:
            if other != key:
                work.absorb(other, key)
    for identifier in ids:
        if identifier not in work.owners:
            work.attach(identifier, key, previous=None, reason="seen_together")
    return work.result(key)


def settled_owner(owners: Mapping[Identifier, str], identifiers: tuple[Identifier, ...]) -> str | None:
    """The profile that already owns every one of ``identifiers`` (as :func:`identifiers_of` gives them), or None.

    With one, :func:`observe` would change nothing (same graph, that profile, no links, nothing absorbed): the
    fold's common case, an event repeating known facts, decided without copying any of the graph.
    """
    if not identifiers:
        return None
    key = owners.get(identifiers[0])
    if key is None:
        return None
    for identifier in identifiers[1:]:
        if owners.get(identifier) != key:
            return None
    return key


def release(
    graph: IdentityGraph,
    identifiers: Iterable[Identifier],
    rules: IdentityRules,
    event_id: str,
    at_ms: int,
) -> Observation:
    """A logout: the event's device-level identifiers stop belonging to the customer who logs out.

    The event itself belongs to that customer (it is their logout); the device and anonymous ids it carries
    are unlinked, so the next anonymous activity on the device starts a profile of its own instead of landing
    in the customer's cart and record. Without a customer id (or on an unknown customer) it is observed like
    any event.
    """
    ids = _usable(identifiers, rules)
    customers = [i for i in ids if i.type == "customer_id"]
    key = graph.profile_of(customers[0]) if customers else None
    if key is None:
        return observe(graph, ids, rules, event_id, at_ms)
    work = _Work(graph, rules, event_id, at_ms)
    for identifier in ids:
        if identifier.type in rules.movable_types and work.owners.get(identifier) == key:
            work.detach(identifier, key, reason="logout")
    return work.result(key)


class _Work:
    """Mutable scratch copy of a graph for one observe() call; frozen again by result()."""

    def __init__(self, graph: IdentityGraph, rules: IdentityRules, event_id: str, at_ms: int) -> None:
        self.graph = graph
        self.rules = rules
        self.event_id = event_id
        self.at_ms = at_ms
        self.owners: dict[Identifier, str] = dict(graph.owners)
        self.profiles: dict[str, set[Identifier]] = {k: set(v) for k, v in graph.profiles.items()}
        self.links: list[Link] = []
        self.absorbed: list[str] = []
        self.changed = False

    def found_or_get(self, identifier: Identifier) -> str:
        """The profile of ``identifier``, founding a new one (without a link) if it is unknown."""
        existing = self.owners.get(identifier)
        if existing is not None:
            return existing
        key = profile_key_of(identifier)
        # A key exists only while its founder belongs to it, and the founder is unknown here.
        assert key not in self.profiles, key
        self.profiles[key] = {identifier}
        self.owners[identifier] = key
        self.changed = True
        return key

    def has_room(self, identifier: Identifier, key: str) -> bool:
        cap = self.rules.max_per_profile.get(identifier.type)
        if cap is None:
            return True
        return sum(1 for m in self.profiles[key] if m.type == identifier.type) < cap

    def attach(self, identifier: Identifier, key: str, *, previous: str | None, reason: LinkReason) -> bool:
        if not self.has_room(identifier, key):
            return False
        self.profiles[key].add(identifier)
        self.owners[identifier] = key
        self.changed = True
        self.links.append(Link("merge", identifier, key, previous, reason, self.event_id, self.at_ms))
        return True

    def detach(self, identifier: Identifier, key: str, *, reason: LinkReason | None) -> None:
        self.profiles[key].discard(identifier)
        if not self.profiles[key]:
            del self.profiles[key]
        del self.owners[identifier]
        self.changed = True
        if reason is not None:
            self.links.append(Link("unmerge", identifier, key, None, reason, self.event_id, self.at_ms))

    def claim(self, identifier: Identifier, key: str) -> None:
        """Bring an identifier seen with customer profile ``key`` into it, as the rules allow."""
        current = self.owners.get(identifier)
        if current == key:
            return
        if current is None:
            self.attach(identifier, key, previous=None, reason="seen_together")
        elif not _is_customer_key(current):
            # Matched through a person-level identifier: the same person, the whole profile joins. Matched only
            # through a device-level one (a family tablet): the device's activity follows the login, but the
            # person-level identifiers seen there may be someone else's and are kept apart (rule 3).
            self.absorb(current, key, whole=identifier.type not in self.rules.movable_types)
        elif identifier.type in self.rules.movable_types and self.has_room(identifier, key):
            self.detach(identifier, current, reason="switched_customer")
            self.attach(identifier, key, previous=current, reason="switched_customer")
        # Otherwise a person-level identifier of another customer: it stays where it is.

    def absorb(self, source: str, target: str, *, whole: bool = True) -> None:
        """Move the identifiers of the customer-less profile ``source`` into ``target``.

        ``whole=False``: only movable (device-level) identifiers move; person-level ones stay in a profile of
        their own, keyed by the strongest of them, so they can later join the person they belong to.
        """
        members = sorted(self.profiles[source], key=lambda i: (self.rules.rank(i.type), i.value))
        kept = [] if whole else [m for m in members if m.type not in self.rules.movable_types]
        if kept:
            founder = founder_of(source)
            if founder is not None and founder.type not in self.rules.movable_types:
                # ``source`` is founded by a person-level identifier: it stays, only device ids leave it.
                for member in members:
                    if member.type in self.rules.movable_types:
                        self.detach(member, source, reason=None)
                        self.attach(member, target, previous=source, reason="switched_customer")
                return
            home = profile_key_of(kept[0])
            for member in kept:
                self.detach(member, source, reason=None)
            self.profiles.setdefault(home, set())
            for member in kept:
                self.attach(member, home, previous=source, reason="kept_apart")
            members = [m for m in members if m not in kept]
        for member in members:
            self.detach(member, source, reason=None)
            if not self.attach(member, target, previous=source, reason="profile_absorbed"):
                # Over a configured cap: the identifier is unlinked rather than left in a headless profile.
                self.links.append(Link("unmerge", member, source, None, "cap_exceeded", self.event_id, self.at_ms))
        self.absorbed.append(source)

    def result(self, key: str) -> Observation:
        if not self.changed:
            return Observation(self.graph, key, (), ())
        graph = IdentityGraph(
            owners=MappingProxyType(dict(self.owners)),
            profiles=MappingProxyType({k: frozenset(v) for k, v in self.profiles.items()}),
        )
        return Observation(graph, key, tuple(self.links), tuple(self.absorbed))
