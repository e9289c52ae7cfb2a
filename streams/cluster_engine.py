"""Clusters of identifiers, their event logs, and the state folded from them: one optimistic step per batch.

For a batch of items (events, due checks, or nothing but a re-fold after an unlink) :meth:`ClusterEngine.apply`

1. reads, from a :class:`ClusterStore`, the clusters owning the items' identifiers: members, event log,
   the state last derived, and the operator's unlinked identifiers;
2. unites clusters that the batch's events connect (union-find: the survivor is the smallest cluster id)
   and adds the batch's items to the union of their logs (an id already there keeps the preferred copy,
   :func:`streams.domain.fold.preferred`: a duplicate or a replay is a no-op);
3. folds each touched cluster from its whole log (:func:`streams.domain.fold.fold`) and compares the
   result with the state last derived;
4. commits members, log entries, derived carts/records/identity index, and deletions, all or nothing, and only
   if nobody committed to the same clusters since step 1 (otherwise re-reads and tries again).

A crash anywhere leaves either the old or the new state; a re-run of the same batch folds the same log and
derives the same state. Nothing here depends on which worker, partition or order delivered an item.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from omnichannel.errors import OmnichannelError
from streams.domain.cart import Cart
from streams.domain.customer import CustomerState
from streams.domain.fold import (
    FoldHooks,
    FoldResult,
    FoldRules,
    Item,
    fold,
    ident,
    item_from_json,
    item_to_json,
    parse_ident,
    preferred,
)

__all__ = [
    "ClusterEngine",
    "ClusterOutcome",
    "ClusterStore",
    "ClusterView",
    "ClusterWrite",
    "NewItem",
    "StoredCluster",
    "StoredProfile",
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
    """A cluster as the store holds it."""

    cid: str
    members: frozenset[str]
    log: Mapping[str, str]  # item id -> canonical JSON (streams.domain.fold.item_to_json)
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
    absorbed: list[str]  # cluster ids merged into ``cid``: their keys go
    profiles: dict[str, StoredProfile]  # changed derived state
    dropped_profiles: set[str]  # profile keys no longer derived
    profile_keys: frozenset[str]
    owners: dict[str, str | None]  # identifier -> profile key (None: no longer owned)
    members_of: dict[str, frozenset[str]]  # profile key -> its identifiers (changed ones)


class ClusterStore(Protocol):
    """Where clusters live (Redis in production, :class:`streams.testing.MemoryClusterStore` in unit tests)."""

    async def read(self, identifiers: Collection[str]) -> ClusterView:
        """Start an optimistic transaction and read the clusters of ``identifiers``."""
        ...

    async def commit(self, view: ClusterView, writes: Sequence[ClusterWrite]) -> bool:
        """Apply ``writes`` if nothing read in ``view`` changed since; False if someone else committed first."""
        ...

    async def abort(self, view: ClusterView) -> None:
        """End the transaction of ``view`` without writing."""
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
    derived: dict[str, StoredProfile] = field(default_factory=dict)  # every profile's state now
    changed: dict[str, StoredProfile] = field(default_factory=dict)  # those written by this commit


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
        for _attempt in range(_MAX_ATTEMPTS):
            out = self._hooks.new_output() if self._hooks is not None else None
            view = await self._store.read(wanted)
            try:
                outcomes, writes = self._plan(view, batch, out)
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

    def _plan(
        self, view: ClusterView, batch: Sequence[NewItem], out: Any
    ) -> tuple[list[ClusterOutcome], list[ClusterWrite]]:
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
        groups: dict[str, list[NewItem]] = {}
        for new in batch:
            groups.setdefault(find(node_of(new.identifiers[0])), []).append(new)

        unlinked = frozenset(parse_ident(i) for i in view.unlinked)
        outcomes: list[ClusterOutcome] = []
        writes: list[ClusterWrite] = []
        for root, news in groups.items():
            nodes = [n for n in parent if find(n) == root]
            old_cids = sorted(n[1:] for n in nodes if n.startswith("c"))
            fresh_ids = sorted(n[1:] for n in nodes if n.startswith("i"))
            if not old_cids and all(n.item is None for n in news):
                continue  # a re-fold asked for identifiers nobody has seen
            cid = old_cids[0] if old_cids else fresh_ids[0]
            stored = [view.clusters[c] for c in old_cids]
            members = frozenset(fresh_ids).union(*(s.members for s in stored))
            log_text: dict[str, str] = {}
            for s in stored:
                log_text.update(s.log)
            entries: dict[str, str] = {}
            if len(stored) > 1:  # a union: the survivor's log takes the others' entries
                for s in stored[1:]:
                    entries.update(s.log)
            emit: set[str] = set()
            for new in news:
                if new.item is None:
                    continue
                text = item_to_json(new.item)
                emit.add(new.item.item_id)
                held = log_text.get(new.item.item_id)
                if held is not None:
                    keep = preferred((item_from_json(held), held), (new.item, text))[1]
                    if keep == held:
                        continue
                log_text[new.item.item_id] = text
                entries[new.item.item_id] = text
            items = [item_from_json(t) for t in log_text.values()]
            result = fold(items, self._rules, unlinked=unlinked, hooks=self._hooks, emit=emit, out=out)
            before: dict[str, StoredProfile] = {}
            old_owners: dict[str, str] = {}
            for s in stored:
                before.update(s.profiles)
                old_owners.update(s.owners)
            outcome = ClusterOutcome(cid, result, before)
            derived: dict[str, StoredProfile] = {}
            for key, state in result.profiles.items():
                derived[key] = StoredProfile(state.cart, state.customer, state.merged_into)
            for key, now in derived.items():
                held_profile = before.get(key)
                now = _keep_versions_rising(now, held_profile)
                derived[key] = now
                outcome.derived[key] = now
                if held_profile != now or len(stored) != 1:
                    outcome.changed[key] = now
            owners: dict[str, str | None] = {}
            new_owners = {ident(i): k for i, k in result.graph.owners.items()}
            for identifier in members:
                if old_owners.get(identifier) != new_owners.get(identifier) or len(stored) != 1:
                    owners[identifier] = new_owners.get(identifier)
            members_of = {k: frozenset(ident(i) for i in ms) for k, ms in result.graph.profiles.items()}
            outcomes.append(outcome)
            writes.append(
                ClusterWrite(
                    cid=cid,
                    members=members,
                    reindex=members - stored[0].members if stored else members,
                    log_entries=entries,
                    absorbed=old_cids[1:],
                    profiles=outcome.changed,
                    dropped_profiles=set(before) - set(derived),
                    profile_keys=frozenset(derived),
                    owners=owners,
                    members_of=members_of,
                )
            )
        return outcomes, writes


def _keep_versions_rising(now: StoredProfile, held: StoredProfile | None) -> StoredProfile:
    """A re-fold may count fewer cart changes than were published (a late event made some no-ops): readers
    fence on the version, so a changed cart always gets a higher one than the last written."""
    if held is None or held.cart is None or now.cart is None:
        return now
    if replace(now.cart, version=held.cart.version) == held.cart:
        return replace(now, cart=held.cart)
    if now.cart.version <= held.cart.version:
        return replace(now, cart=replace(now.cart, version=held.cart.version + 1))
    return now
