"""In-memory implementations of the stream ports, for unit tests of pure logic (never integration tests).

:class:`MemoryClusterStore` has the semantics of :class:`streams.cluster_store.RedisClusterStore`: a commit
applies all or nothing, and only if nothing it read changed since (versions per identifier, per cluster and
for the unlinked set, like Redis WATCH). ``before_commit`` lets a test run another worker's whole step
between a read and its commit, and ``fail_commit`` crash a worker just before it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

from streams.cluster_engine import ClusterView, ClusterWrite, StoredCluster, StoredProfile, digest

__all__ = ["CrashError", "MemoryClusterStore"]


class CrashError(RuntimeError):
    """A simulated crash of the worker (raised where a real process would have died)."""


@dataclass
class _Handle:
    versions: dict[str, int]


@dataclass
class MemoryClusterStore:
    """See the module docstring."""

    index: dict[str, str] = field(default_factory=dict)
    members: dict[str, set[str]] = field(default_factory=dict)
    item_logs: dict[str, dict[str, str]] = field(default_factory=dict)
    cluster_profiles: dict[str, set[str]] = field(default_factory=dict)
    profiles: dict[str, StoredProfile] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)
    unlinked: set[str] = field(default_factory=set)
    last: dict[str, tuple[int, str]] = field(default_factory=dict)
    erased: set[str] = field(default_factory=set)
    versions: dict[str, int] = field(default_factory=dict)
    before_commit: Callable[[], Awaitable[None]] | None = None
    fail_commit: Callable[[], bool] | None = None
    commits: int = 0

    async def read(self, identifiers: Collection[str], items: Mapping[str, Collection[str]]) -> ClusterView:
        watched = [f"i:{i}" for i in identifiers] + ["unlinked"]
        index = {i: self.index[i] for i in identifiers if i in self.index}
        clusters: dict[str, StoredCluster] = {}
        for cid in sorted(set(index.values())):
            watched.append(f"c:{cid}")
            members = frozenset(self.members.get(cid, ()))
            keys = sorted(self.cluster_profiles.get(cid, ()))
            log = self.item_logs.get(cid, {})
            clusters[cid] = StoredCluster(
                cid,
                members,
                frozenset(i for i, ids in items.items() if i in log and any(self.index.get(x) == cid for x in ids)),
                self.last.get(cid),
                {k: self.profiles[k] for k in keys if k in self.profiles},
                {m: self.owners[m] for m in members if m in self.owners},
            )
        handle = _Handle({w: self.versions.get(w, 0) for w in watched})
        return ClusterView(index, clusters, frozenset(self.unlinked), handle=handle)

    async def commit(self, view: ClusterView, writes: Sequence[ClusterWrite]) -> bool:
        if self.before_commit is not None:
            hook, self.before_commit = self.before_commit, None
            await hook()
        if self.fail_commit is not None and self.fail_commit():
            raise CrashError("worker died before its commit")
        handle: _Handle = view.handle
        if any(self.versions.get(w, 0) != v for w, v in handle.versions.items()):
            return False
        for write in writes:
            self._apply(write)
        self.commits += 1
        return True

    async def logs(self, view: ClusterView, cids: Collection[str]) -> dict[str, dict[str, str]]:
        return {cid: dict(self.item_logs.get(cid, {})) for cid in cids}

    async def abort(self, view: ClusterView) -> None:
        return None

    def _bump(self, name: str) -> None:
        self.versions[name] = self.versions.get(name, 0) + 1

    def _apply(self, write: ClusterWrite) -> None:
        cid = write.cid
        for absorbed in write.absorbed:
            self.members.pop(absorbed, None)
            self.item_logs.pop(absorbed, None)
            self.cluster_profiles.pop(absorbed, None)
            self.last.pop(absorbed, None)
            self._bump(f"c:{absorbed}")
        self.members.setdefault(cid, set()).update(write.reindex)
        for identifier in write.reindex:
            self.index[identifier] = cid
            self._bump(f"i:{identifier}")
        self.item_logs.setdefault(cid, {}).update(write.log_entries)
        for item_id in write.log_removed:
            self.item_logs[cid].pop(item_id, None)
        for identifier in write.unindex:
            self.members[cid].discard(identifier)
            self.index.pop(identifier, None)
            self.owners.pop(identifier, None)
            self._bump(f"i:{identifier}")
        self.erased |= write.deny
        if write.last is not None:
            self.last[cid] = write.last
        self.cluster_profiles[cid] = set(write.profile_keys)
        for key in write.dropped_profiles:
            self.profiles.pop(key, None)
        self.profiles.update(write.profiles)
        for identifier, owner in write.owners.items():
            if identifier in write.unindex:
                continue
            if owner is None:
                self.owners.pop(identifier, None)
            else:
                self.owners[identifier] = owner
        self._bump(f"c:{cid}")

    async def denied(self, identifiers: Collection[str]) -> set[str]:
        return {i for i in identifiers if digest(i) in self.erased}

    def unlink(self, identifier: str) -> None:
        self.unlinked.add(identifier)
        self._bump("unlinked")
