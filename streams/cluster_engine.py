"""Clusters of identifiers, their event logs, and the state folded from them: one optimistic step per batch.

For a batch of items (events, due checks, or nothing but a re-fold after an unlink) :meth:`ClusterEngine.apply`

1. reads, from a :class:`ClusterStore`, the clusters owning the items' identifiers: members, the state last
   derived (graph, carts, records), the last item folded, which of the batch's ids the log already holds, and
   the operator's unlinked identifiers;
2. unites clusters that the batch's events connect (union-find: the survivor is the smallest cluster id)
   and adds the batch's items to the union of their logs (an id already there keeps the preferred copy,
   :func:`streams.domain.fold.preferred`: a duplicate or a replay is a no-op);
3. folds each touched cluster (:func:`streams.domain.fold.fold`): from the state last derived when every new
   item comes after the last one folded (the common case: the cost of the new items only), otherwise from
   its whole log (a late event, a replay, a union, an unlink); then compares with the state last derived;
4. commits members, log entries, derived carts/records/identity index, and deletions, all or nothing, and only
   if nobody committed to the same clusters since step 1 (otherwise re-reads and tries again).

A crash anywhere leaves either the old or the new state; a re-run of the same batch folds the same log and
derives the same state. Nothing here depends on which worker, partition or order delivered an item.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from operator import attrgetter
from typing import Any, Protocol

import orjson

from omnichannel.errors import OmnichannelError
from streams.domain.cart import Cart
from streams.domain.customer import CustomerState
from streams.domain.fold import (
    FoldHooks,
    FoldResult,
    FoldRules,
    FoldStart,
    Item,
    ProfileState,
    fold,
    ident,
    item_from_json,
    item_to_json,
    live_profile,
    parse_ident,
    preferred,
)
from streams.domain.identity import Identifier, Link, founder_of, identifiers_of, profile_key_of

__all__ = [
    "ClusterEngine",
    "ClusterOutcome",
    "ClusterStore",
    "ClusterView",
    "ClusterWrite",
    "NewItem",
    "StoredCluster",
    "StoredProfile",
    "item_text",
]

log = logging.getLogger(__name__)

_MAX_ATTEMPTS = 50


@dataclass(frozen=True)
class StoredProfile:
    """A profile's state as last derived and written."""

    cart: Cart | None = None
    customer: CustomerState | None = None
    merged_into: str | None = None


@dataclass(frozen=True)
class StoredCluster:
    """A cluster as the store holds it (its log is read only when a whole fold is needed)."""

    cid: str
    members: frozenset[str]
    present: frozenset[str]  # those of the batch's item ids already in the log
    last: tuple[int, str] | None  # order key of the last item folded
    profiles: Mapping[str, StoredProfile]
    owners: Mapping[str, str]  # identifier (type:value) -> profile key, as last derived


@dataclass(frozen=True)
class ClusterView:
    """What :meth:`ClusterStore.read` found; ``handle`` is the store's own transaction state."""

    index: Mapping[str, str]  # identifier -> cluster id, for the known ones among those asked
    clusters: Mapping[str, StoredCluster]
    unlinked: frozenset[str]
    handle: Any = None


@dataclass
class ClusterWrite:
    """Everything one cluster's commit changes."""

    cid: str
    members: frozenset[str]
    reindex: frozenset[str]  # identifiers whose cluster becomes ``cid``
    log_entries: dict[str, str]
    last: tuple[int, str] | None
    absorbed: list[str]  # cluster ids merged into ``cid``: their keys go
    profiles: dict[str, StoredProfile]  # changed derived state
    dropped_profiles: set[str]  # profile keys no longer derived
    profile_keys: frozenset[str]
    owners: dict[str, str | None]  # identifier -> profile key (None: no longer owned)
    members_of: dict[str, frozenset[str]]  # profile key -> its identifiers (changed ones)
    before: Mapping[str, StoredProfile] = field(default_factory=dict)  # what the profiles held: write only changes
    profile_keys_changed: bool = True
    log_removed: frozenset[str] = frozenset()  # item ids erased from the log
    unindex: frozenset[str] = frozenset()  # identifiers erased: out of the cluster and its index
    deny: frozenset[str] = frozenset()  # digests of erased identifiers (streams.cluster_engine.digest)


class ClusterStore(Protocol):
    """Where clusters live (Redis in production, :class:`streams.testing.MemoryClusterStore` in unit tests)."""

    async def read(self, identifiers: Collection[str], items: Mapping[str, Collection[str]]) -> ClusterView:
        """Start an optimistic transaction and read the clusters of ``identifiers``.

        ``items``: the batch's item ids and their identifiers; each cluster reports which of the ids that could
        be in its log are (``StoredCluster.present``).
        """
        ...

    async def logs(self, view: ClusterView, cids: Collection[str]) -> dict[str, dict[str, str]]:
        """The whole logs of ``cids`` (item id -> canonical JSON), in the transaction of ``view``."""
        ...

    async def commit(self, view: ClusterView, writes: Sequence[ClusterWrite]) -> bool:
        """Apply ``writes`` if nothing read in ``view`` changed since; False if someone else committed first."""
        ...

    async def abort(self, view: ClusterView) -> None:
        """End the transaction of ``view`` without writing."""
        ...

    async def denied(self, identifiers: Collection[str]) -> set[str]:
        """Those of ``identifiers`` whose digest is on the erasure deny-list."""
        ...


@dataclass(frozen=True)
class NewItem:
    """An item to add: ``identifiers`` are the ``type:value`` strings that place it in a cluster.

    ``item`` None: add nothing, re-fold the cluster of ``identifiers`` (after an unlink).
    """

    item: Item | None
    identifiers: tuple[str, ...]


@dataclass
class ClusterOutcome:
    """One touched cluster after the commit: the fold, and the state it replaced."""

    cid: str
    result: FoldResult
    before: Mapping[str, StoredProfile]
    #: every profile's state now; a cart or record equal to ``before``'s is its very object (:func:`_settled`)
    derived: dict[str, StoredProfile] = field(default_factory=dict)
    changed: dict[str, StoredProfile] = field(default_factory=dict)  # those written by this commit
    whole: bool = False  # folded from the whole log (False: from the state last derived)
    #: identifier -> (the profile its last ``identity.links`` record names once the batch's own records are sent,
    #: the profile it is in now), for each identifier where the two differ; see :func:`relinks`.
    relinks: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)


@dataclass(frozen=True)
class Erasure:
    """What :meth:`ClusterEngine.erase` removed, and the cluster folded again without it (None: nothing held)."""

    profile_key: str
    profiles: frozenset[str]
    identifiers: frozenset[str]
    events: int
    outcome: ClusterOutcome | None


def relinks(
    links: Sequence[Link],
    before: Mapping[str, str],
    now: Mapping[str, str],
    members: Collection[str],
    *,
    replay: bool = False,
    last_linked: Mapping[str, str] | None = None,
) -> dict[str, tuple[str | None, str | None]]:
    """The identifiers whose last ``identity.links`` record, once ``links`` (the batch's own) are sent, would not
    name the profile they are in now: ``{identifier: (named, now)}``.

    A batch's records say where each identifier went *at its event*. Folded on from the last state that is also
    where it is now; folded from the whole log (a late event, a replay, an unlink) it need not be: a late login
    on the family tablet says "the tablet is C1's" while the later login it was folded before keeps it C2's.
    ``before`` is where the identifiers were before the batch (what the topic said, as every batch's records
    were followed by these corrections). An identifier never linked and in the profile it founded needs no
    record. ``replay``: what the topic says is unknown (the batch's first run may have died before sending), so
    every identifier the batch's records do not name is named again (``said``: where it was before the batch,
    else the profile the last link of the whole log named, ``last_linked``, so that an unmerge says from where;
    ``(None, None)`` when neither is known).
    """
    named: dict[str, str | None] = {} if replay else dict(before)
    for link in links:
        named[ident(link.identifier)] = link.profile_key if link.action == "merge" else None
    found: dict[str, tuple[str | None, str | None]] = {}
    for identifier in members:
        owner = now.get(identifier)
        if replay and identifier not in named:  # an identifier the replay's records leave unsaid
            # (None, None): in no profile, and which one the lost records named is unknown (a logout released
            # it in another delivery's history): the processor sends the identifier's tombstone, "no link".
            found[identifier] = (before.get(identifier) or (last_linked or {}).get(identifier), owner)
            continue
        said = named.get(identifier)
        if said != owner and not (said is None and owner == profile_key_of(parse_ident(identifier))):
            found[identifier] = (said, owner)
    return found


def digest(identifier: str) -> str:
    """SHA-256 of ``type:value``: how the deny-list holds erased identifiers without holding them."""
    return hashlib.sha256(identifier.encode()).hexdigest()


@dataclass
class _Group:
    """The clusters one batch's items end up uniting, and what to add to them."""

    cid: str
    old_cids: list[str]
    fresh: list[str]  # identifiers nobody had seen
    news: dict[str, tuple[Item, str]]  # item id -> (item, canonical JSON), the preferred copy
    refold: bool  # asked to fold again without new items (an unlink)


class ClusterEngine:
    """See the module docstring. ``hooks`` (journeys) ride along every fold."""

    def __init__(self, store: ClusterStore, rules: FoldRules, hooks: FoldHooks | None = None) -> None:
        self._store = store
        self._rules = rules
        self._hooks = hooks

    async def apply(self, batch: Sequence[NewItem]) -> tuple[list[ClusterOutcome], Any]:
        """Add ``batch`` to its clusters and re-derive them.

        Returns the touched clusters and what the batch's items decided for journeys (``hooks.new_output()``,
        filled by the attempt that committed), or None without hooks.
        """
        wanted = sorted({i for n in batch for i in n.identifiers})
        if not wanted:
            return [], None
        items = {n.item.item_id: n.identifiers for n in batch if n.item is not None}
        for _attempt in range(_MAX_ATTEMPTS):
            out = self._hooks.new_output() if self._hooks is not None else None
            view = await self._store.read(wanted, items)
            try:
                groups = _group(view, batch)
                whole = [g for g in groups if not self._incremental(view, g)]
                logs = await self._store.logs(view, [c for g in whole for c in g.old_cids]) if whole else {}
                outcomes: list[ClusterOutcome] = []
                writes: list[ClusterWrite] = []
                for group in groups:
                    outcome, write = self._fold(view, group, logs if group in whole else None, out)
                    outcomes.append(outcome)
                    writes.append(write)
            except BaseException:
                await self._store.abort(view)
                raise
            if await self._store.commit(view, writes):
                return outcomes, out
            log.info("clusters changed concurrently; folding the batch again")
        raise OmnichannelError(
            f"cluster update lost {_MAX_ATTEMPTS} races in a row; another worker is writing the same clusters in "
            "a loop - check the workers' logs"
        )

    async def denied(self, identifiers: Collection[str]) -> set[str]:
        """Those of ``identifiers`` that were erased (a replay of old records must not bring them back)."""
        return await self._store.denied(identifiers) if identifiers else set()

    async def erase(self, profile_key: str) -> tuple[Erasure, Any]:
        """Right to erasure for one profile (``customer:<id>``, or an anonymous one) and the profiles it absorbed.

        Its events leave the cluster's log, its identifiers leave the cluster (and go on the deny-list by
        digest), its carts and records are deleted, and the rest of the cluster (other people on a shared
        tablet) is folded again from what remains. Idempotent: an erased profile is not found again.
        """
        founder = founder_of(profile_key)
        if founder is None:
            raise OmnichannelError(f"{profile_key!r} is not a profile key (e.g. customer:C-42, anonymous:a-1)")
        start = ident(founder)
        for _attempt in range(_MAX_ATTEMPTS):
            out = self._hooks.new_output() if self._hooks is not None else None
            view = await self._store.read([start], {})
            try:
                cid = view.index.get(start)
                if cid is None:
                    await self._store.abort(view)
                    return Erasure(profile_key, frozenset(), frozenset(), 0, None), out
                erasure, write = self._plan_erasure(view, cid, profile_key, await self._store.logs(view, [cid]), out)
            except BaseException:
                await self._store.abort(view)
                raise
            if await self._store.commit(view, [write]):
                return erasure, out
            log.info("cluster changed during an erasure; trying again")
        raise OmnichannelError(f"erasure lost {_MAX_ATTEMPTS} races in a row; run it again")

    def _plan_erasure(
        self, view: ClusterView, cid: str, profile_key: str, logs: dict[str, dict[str, str]], out: Any
    ) -> tuple[Erasure, ClusterWrite]:
        stored = view.clusters[cid]
        unlinked = frozenset(parse_ident(i) for i in view.unlinked)
        items = {item_id: item_from_json(text) for item_id, text in logs.get(cid, {}).items()}
        routing = fold(items.values(), self._rules, unlinked=unlinked, emit=set(items))
        gone = {k for k in routing.profiles if live_profile(k, routing.profiles) == profile_key}
        removed = {i for i, k in routing.routes.items() if k in gone}
        kept = [item for i, item in items.items() if i not in removed]
        # The subject's identifiers: those its profiles own and those its events carried, except any that other
        # people's remaining events carry too (a shared tablet stays theirs).
        erased_ids = {ident(i) for i, k in routing.graph.owners.items() if k in gone}
        erased_ids |= {ident(i) for i_id in removed for i in _ids(items[i_id], self._rules)}
        erased_ids -= {ident(i) for item in kept for i in _ids(item, self._rules)}
        result = fold(kept, self._rules, unlinked=unlinked, hooks=self._hooks, emit=frozenset(), out=out)
        outcome = ClusterOutcome(cid, result, stored.profiles, whole=True)
        for key, state in result.profiles.items():
            now = _settled(StoredProfile(state.cart, state.customer, state.merged_into), stored.profiles.get(key))
            outcome.derived[key] = outcome.changed[key] = now
        new_owners = {ident(i): k for i, k in result.graph.owners.items()}
        members = stored.members - erased_ids
        erasure = Erasure(profile_key, frozenset(gone), frozenset(erased_ids), len(removed), outcome)
        write = ClusterWrite(
            cid=cid,
            members=members,
            reindex=frozenset(),
            log_entries={},
            last=max((i.order for i in kept), default=None),
            absorbed=[],
            profiles=outcome.changed,
            dropped_profiles=set(stored.profiles) - set(outcome.derived),
            profile_keys=frozenset(outcome.derived),
            owners={m: new_owners.get(m) for m in stored.members},
            members_of={k: frozenset(ident(i) for i in result.graph.members(k)) for k in set(stored.profiles) | gone},
            log_removed=frozenset(removed),
            unindex=frozenset(erased_ids),
            deny=frozenset(digest(i) for i in erased_ids),
        )
        return erasure, write

    @staticmethod
    def _incremental(view: ClusterView, group: _Group) -> bool:
        """True when folding on from the state last derived equals folding the whole log."""
        if group.refold or len(group.old_cids) != 1:
            return not group.old_cids and not group.refold  # a new cluster: nothing before its items
        stored = view.clusters[group.old_cids[0]]
        if stored.last is None or stored.present & group.news.keys():
            return False
        return all(item.order > stored.last for item, _ in group.news.values())

    def _fold(
        self, view: ClusterView, group: _Group, logs: dict[str, dict[str, str]] | None, out: Any
    ) -> tuple[ClusterOutcome, ClusterWrite]:
        stored = [view.clusters[c] for c in group.old_cids]
        members = frozenset(group.fresh).union(*(s.members for s in stored))
        unlinked = frozenset(parse_ident(i) for i in view.unlinked)
        emit = set(group.news)
        entries: dict[str, str] = {}
        if logs is None:  # on from the state last derived
            start = None
            if stored:
                only = stored[0]
                start = FoldStart(
                    {parse_ident(m): k for m, k in only.owners.items()},
                    {k: ProfileState(p.cart, p.customer, p.merged_into) for k, p in only.profiles.items()},
                )
            items = [item for item, _ in group.news.values()]
            entries = {item_id: text for item_id, (_, text) in group.news.items()}
            result = fold(items, self._rules, unlinked=unlinked, hooks=self._hooks, emit=emit, out=out, start=start)
            orders = [i.order for i in items]
            if stored and stored[0].last is not None:
                orders.append(stored[0].last)
            last: tuple[int, str] | None = max(orders, default=None)
        else:
            log_text: dict[str, str] = {}
            for cid in group.old_cids:
                log_text.update(logs.get(cid, {}))
            if len(stored) > 1:  # a union: the survivor's log takes the others' entries
                for cid in group.old_cids[1:]:
                    entries.update(logs.get(cid, {}))
            for item_id, (item, text) in group.news.items():
                held = log_text.get(item_id)
                if held is not None and preferred((item_from_json(held), held), (item, text))[1] == held:
                    continue
                log_text[item_id] = text
                entries[item_id] = text
            items = [item_from_json(t) for t in log_text.values()]
            result = fold(items, self._rules, unlinked=unlinked, hooks=self._hooks, emit=emit, out=out)
            last = max((i.order for i in items), default=None)
        before: dict[str, StoredProfile] = {}
        old_owners: dict[str, str] = {}
        for s in stored:
            before.update(s.profiles)
            old_owners.update(s.owners)
        outcome = ClusterOutcome(group.cid, result, before, whole=logs is not None)
        rewrite_all = len(stored) != 1
        for key, state in result.profiles.items():
            held_profile = before.get(key)
            now = _settled(StoredProfile(state.cart, state.customer, state.merged_into), held_profile)
            outcome.derived[key] = now
            if rewrite_all or held_profile is not now:
                outcome.changed[key] = now
        owners: dict[str, str | None] = {}
        new_owners = {ident(i): k for i, k in result.graph.owners.items()}
        # A batch some of whose items the log holds is a replay: its first run committed and may have died
        # before its records were sent, so what the topic says is not known and every link is said again.
        replay = any(s.present & group.news.keys() for s in stored)
        last_linked = {ident(i): k for i, k in result.last_linked.items()} if replay else {}
        outcome.relinks = relinks(result.links, old_owners, new_owners, members, replay=replay, last_linked=last_linked)
        for identifier in members:
            held_owner, owner = old_owners.get(identifier), new_owners.get(identifier)
            if rewrite_all or held_owner != owner:
                owners[identifier] = owner
        old_members: dict[str, set[str]] = {}
        for identifier, key in old_owners.items():
            old_members.setdefault(key, set()).add(identifier)
        members_of = {}
        for key in set(result.graph.profiles) | set(old_members):
            now_members = frozenset(ident(i) for i in result.graph.members(key))
            if rewrite_all or now_members != old_members.get(key, set()):
                members_of[key] = now_members
        write = ClusterWrite(
            cid=group.cid,
            members=members,
            reindex=members - stored[0].members if stored else members,
            log_entries=entries,
            last=last,
            absorbed=group.old_cids[1:],
            profiles=outcome.changed,
            dropped_profiles=set(before) - set(outcome.derived),
            profile_keys=frozenset(outcome.derived),
            owners=owners,
            members_of=members_of,
            before={} if rewrite_all else before,
            profile_keys_changed=rewrite_all or set(outcome.derived) != set(before),
        )
        return outcome, write


def _group(view: ClusterView, batch: Sequence[NewItem]) -> list[_Group]:
    """Union-find over the batch's identifiers and the clusters they are in."""
    parent: dict[str, str] = {}

    def find(node: str) -> str:
        root = node
        while parent.setdefault(root, root) != root:
            root = parent[root]
        while parent[node] != root:
            parent[node], node = root, parent[node]
        return root

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    # Nodes: "c" + cluster id for known clusters, "i" + identifier for unknown identifiers.
    def node_of(identifier: str) -> str:
        cid = view.index.get(identifier)
        return f"c{cid}" if cid is not None else f"i{identifier}"

    for new in batch:
        nodes = [node_of(i) for i in new.identifiers]
        find(nodes[0])
        for other in nodes[1:]:
            union(nodes[0], other)
    by_root: dict[str, list[NewItem]] = {}
    for new in batch:
        by_root.setdefault(find(node_of(new.identifiers[0])), []).append(new)
    nodes_of: dict[str, list[str]] = {}
    for node in parent:
        nodes_of.setdefault(find(node), []).append(node)
    groups: list[_Group] = []
    for root, news in by_root.items():
        old_cids = sorted(n[1:] for n in nodes_of[root] if n.startswith("c"))
        fresh = sorted(n[1:] for n in nodes_of[root] if n.startswith("i"))
        if not old_cids and all(n.item is None for n in news):
            continue  # a re-fold asked for identifiers nobody has seen
        chosen: dict[str, tuple[Item, str]] = {}
        for new in news:
            if new.item is None:
                continue
            pair = (new.item, item_text(new.item))
            held = chosen.get(new.item.item_id)
            chosen[new.item.item_id] = preferred(held, pair) if held is not None else pair
        # A new cluster's id is a digest: key names must not carry identifiers (they outlive an erasure).
        cid = old_cids[0] if old_cids else digest(fresh[0])[:32]
        groups.append(_Group(cid, old_cids, fresh, chosen, refold=any(n.item is None for n in news)))
    return groups


def item_text(item: Item) -> str:
    """:func:`~streams.domain.fold.item_to_json`'s canonical text, byte for byte, at a tenth of its cost.

    orjson writes what ``json.dumps(sort_keys=True, separators=(",", ":"))`` writes for dicts of ASCII
    strings, ints, bools and nulls; it differs on non-ASCII and DEL (``json`` escapes them; checked here on the
    output) and on floats, which decoded events never carry (the Event schema has no float or double: a test
    holds it). Anything else orjson refuses (a non-string key, an int past 64 bits) takes ``json``.
    """
    if item.event is not None:
        try:
            data = orjson.dumps({"event": item.event}, option=orjson.OPT_SORT_KEYS)
        except TypeError:
            return item_to_json(item)
        if data.isascii() and b"\x7f" not in data:
            return data.decode()
    return item_to_json(item)


def _ids(item: Item, rules: FoldRules) -> tuple[Identifier, ...]:
    return () if item.event is None else identifiers_of(item.event, rules.identity)


def _settled(now: StoredProfile, held: StoredProfile | None) -> StoredProfile:
    """``now`` as it is kept and written, against ``held`` (what the profile held before).

    ``held`` itself when nothing differs but the cart's version (a re-fold may count it differently; readers only
    need it rising). Otherwise a cart or record equal to ``held``'s *is* ``held``'s own object, so the commit's
    writes and the output records tell a changed part by identity (``is not``) instead of comparing every record
    again; a changed cart gets a higher version than the last written (:func:`_keep_versions_rising`).
    """
    if held is None:
        return now
    same_customer = held.customer == now.customer
    if same_customer and held.merged_into == now.merged_into:
        if held.cart is None or now.cart is None:
            if held.cart is now.cart:
                return held
        elif _same_but_version(now.cart, held.cart):
            return held
    now = _keep_versions_rising(now, held)
    if same_customer and now.customer is not held.customer:
        now = replace(now, customer=held.customer)
    return now


#: A cart's fields but its version: carts equal but for the version are one cart (a copy with the other's version
#: compared instead cost ~6 us a cluster, the copy's constructor sorting and checking its lines again).
_BUT_VERSION = attrgetter(*(f.name for f in fields(Cart) if f.name != "version"))


def _same_but_version(a: Cart, b: Cart) -> bool:
    return a is b or bool(_BUT_VERSION(a) == _BUT_VERSION(b))


def _keep_versions_rising(now: StoredProfile, held: StoredProfile | None) -> StoredProfile:
    """A re-fold may count fewer cart changes than were published (a late event made some no-ops): readers
    fence on the version, so a changed cart always gets a higher one than the last written."""
    if held is None or held.cart is None or now.cart is None or now.cart.version > held.cart.version:
        return now
    if _same_but_version(now.cart, held.cart):
        # The cart did not change (the record did): keep it as published, so it is neither written nor sent again.
        return replace(now, cart=held.cart)
    return replace(now, cart=replace(now.cart, version=held.cart.version + 1))
