"""The clusters in Redis: one optimistic, fenced commit per batch (see :mod:`streams.cluster_engine`).

A read notes what decides it: the cluster each of the batch's identifiers is in (or that it is in none), each
of those clusters' version token (every commit to a cluster writes a fresh random one, an absorbed cluster's is
deleted, so no commit to a cluster's members, log, profiles, derived state or its identifiers' index goes unseen),
and the unlinked set. The commit is one script call that writes only if all of them still hold what was read
(:data:`streams.redis_ops.FENCED_APPLY_OPS`); otherwise it writes nothing, and the loser re-reads and folds again.
Why a fence in the script rather than WATCH/MULTI/EXEC: Redis 7.0 checks each WATCHed key against the connection's
watched ones, so a WATCH of n keys costs n^2 (at 5,000 events a batch: ~130 ms of Redis per WATCH, during which
every other client waits), and the transaction took three more round trips. A token read after the index still
decides correctly: an identifier moved in between fails its own fence. The derived carts, records and identity
index are written in the same call, and each cart change is published for live readers. Key layout:
:mod:`streams.keys`.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import orjson
from redis.asyncio import Redis

from streams.cluster_engine import ClusterView, ClusterWrite, StoredCluster, StoredProfile, digest
from streams.keys import Keys
from streams.redis_ops import FENCED_APPLY_OPS, RedisOps
from streams.state_json import cart_from_json, cart_to_json, customer_from_json, customer_to_json

__all__ = ["RedisClusterStore", "meta_to_json"]


#: Field of a cluster's log hash holding ``[at_ms, item_id]`` of the last item folded (item ids never start with ~).
LAST_FIELD = "~last"


def meta_to_json(merged_into: str | None) -> str:
    return orjson.dumps({"merged_into": merged_into}).decode()  # compact JSON (UTF-8, not \u escapes), ~1/10 the cost


def _order(last: str | None) -> tuple[int, str] | None:
    if not last:
        return None
    at_ms, item_id = json.loads(last)
    return int(at_ms), str(item_id)


#: Per cluster (KEYS: version token, log; ARGV[2]: JSON list of the batch's item ids to look for in each log):
#: the token, the log's last-folded field (ARGV[1]) and a "0"/"1" per asked id ("": no such key or field). One
#: call instead of two commands a cluster, each packed and parsed by redis-py in Python.
_PROBE = """
local asked = cjson.decode(ARGV[2])
local out = {}
for n = 1, #asked do
  out[#out + 1] = redis.call('GET', KEYS[2 * n - 1]) or ''
  out[#out + 1] = redis.call('HGET', KEYS[2 * n], ARGV[1]) or ''
  local flags = {}
  for i, item_id in ipairs(asked[n]) do
    flags[i] = redis.call('HEXISTS', KEYS[2 * n], item_id) == 1 and '1' or '0'
  end
  out[#out + 1] = table.concat(flags)
end
return out
"""


@dataclass(frozen=True)
class _Cached:
    version: str  # the cluster's version token when this copy was written
    cluster: StoredCluster


@dataclass(frozen=True)
class _Handle:
    """What the read saw, as the commit's fence: index key -> cluster id, cluster id -> token, unlinked set."""

    index: Mapping[str, str | None]
    versions: Mapping[str, str | None]
    unlinked: frozenset[str]


class RedisClusterStore:
    """:class:`streams.cluster_engine.ClusterStore` on Redis.

    Keeps the clusters it last committed (members, derived carts and records, owners) in a bounded LRU keyed by
    the cluster's version token: each commit writes a fresh random token, so an equal token proves the copy is
    what Redis holds (another worker's commit, a restore or a wipe changes or removes it) and the read skips
    fetching and parsing it. The token is fenced like the rest: a commit still lands only on what was read.
    """

    def __init__(self, client: Redis, keys: Keys, *, cache_size: int = 50_000) -> None:
        self._redis = client
        self._keys = keys
        self._cache: OrderedDict[str, _Cached] = OrderedDict()
        self._cache_size = cache_size
        self._apply = client.register_script(FENCED_APPLY_OPS)
        self._probe = client.register_script(_PROBE)

    async def read(self, identifiers: Collection[str], items: Mapping[str, Collection[str]]) -> ClusterView:
        keys = self._keys
        wanted = list(identifiers)
        index_keys = [keys.cluster_of(i) for i in wanted]
        raw_index, unlinked = await self._index_and_unlinked(index_keys)
        index = {i: c for i, c in zip(wanted, raw_index, strict=True) if c is not None}
        cids = sorted(set(index.values()))
        asked: dict[str, list[str]] = {}  # per cluster, the batch's item ids that could already be in its log
        for item_id, item_identifiers in items.items():
            for cid in {index[i] for i in item_identifiers if i in index}:
                asked.setdefault(cid, []).append(item_id)
        clusters: dict[str, StoredCluster] = {}
        versions: dict[str, str | None] = {}
        if cids:
            probe_keys = [k for c in cids for k in (keys.cluster_version(c), keys.cluster_log(c))]
            probe_args = [LAST_FIELD, orjson.dumps([asked.get(c, []) for c in cids]).decode()]
            raw = await self._probe(keys=probe_keys, args=probe_args)
            missing: list[tuple[str, tuple[int, str] | None, frozenset[str]]] = []
            for n, cid in enumerate(cids):
                version, last, held = (x or None for x in raw[3 * n : 3 * n + 3])
                versions[cid] = version
                flags = zip(asked.get(cid, []), held or "", strict=True)
                present = frozenset(i for i, flag in flags if flag == "1")
                last_order = _order(last)
                cached = self._cache.get(cid)
                if version is not None and cached is not None and cached.version == version:
                    self._cache.move_to_end(cid)
                    held = cached.cluster  # (the constructor, not dataclasses.replace: a third of its cost)
                    clusters[cid] = StoredCluster(cid, held.members, present, last_order, held.profiles, held.owners)
                else:
                    missing.append((cid, last_order, present))
            if missing:
                clusters |= await self._read_clusters(missing)
        seen_unlinked = frozenset(unlinked)
        handle = _Handle(dict(zip(index_keys, raw_index, strict=True)), versions, seen_unlinked)
        return ClusterView(index, clusters, seen_unlinked, handle=handle)

    async def _index_and_unlinked(self, index_keys: list[str]) -> tuple[list[str | None], set[str]]:
        reads = self._redis.pipeline(transaction=False)
        reads.mget(index_keys)
        reads.smembers(self._keys.unlinked())
        raw_index, unlinked = await reads.execute()
        return raw_index, unlinked

    async def _read_clusters(
        self, wanted: list[tuple[str, tuple[int, str] | None, frozenset[str]]]
    ) -> dict[str, StoredCluster]:
        """Members, profiles and derived state of clusters this worker holds no current copy of."""
        keys = self._keys
        reads = self._redis.pipeline(transaction=False)
        for cid, _, _ in wanted:
            reads.smembers(keys.cluster_members(cid))
            reads.smembers(keys.cluster_profiles(cid))
        raw = await reads.execute()
        shapes = []
        reads = self._redis.pipeline(transaction=False)
        for n, (cid, last, present) in enumerate(wanted):
            ordered_members, ordered_profiles = sorted(raw[2 * n]), sorted(raw[2 * n + 1])
            shapes.append((cid, ordered_members, ordered_profiles, last, present))
            derived_keys = [k for p in ordered_profiles for k in (keys.cart(p), keys.customer(p), keys.meta(p))]
            derived_keys += [keys.owner(m) for m in ordered_members]
            if derived_keys:
                reads.mget(derived_keys)
            else:
                reads.ping()  # one reply per cluster
        derived = await reads.execute()
        clusters: dict[str, StoredCluster] = {}
        for (cid, members, profiles, last, present), values in zip(shapes, derived, strict=True):
            stored: dict[str, StoredProfile] = {}
            for n, key in enumerate(profiles):
                cart, customer, meta = values[3 * n : 3 * n + 3]
                stored[key] = StoredProfile(
                    cart_from_json(cart) if cart else None,
                    customer_from_json(customer) if customer else None,
                    json.loads(meta).get("merged_into") if meta else None,
                )
            owner_values = values[3 * len(profiles) :] if members else []
            owners = {m: o for m, o in zip(members, owner_values, strict=True) if o is not None}
            clusters[cid] = StoredCluster(cid, frozenset(members), present, last, stored, owners)
        return clusters

    async def logs(self, view: ClusterView, cids: Collection[str]) -> dict[str, dict[str, str]]:
        ordered = list(cids)
        if not ordered:
            return {}
        reads = self._redis.pipeline(transaction=False)
        for cid in ordered:
            reads.hgetall(self._keys.cluster_log(cid))
        found = await reads.execute()
        return {cid: {k: v for k, v in log.items() if k != LAST_FIELD} for cid, log in zip(ordered, found, strict=True)}

    async def commit(self, view: ClusterView, writes: Sequence[ClusterWrite]) -> bool:
        handle: _Handle = view.handle
        keys = self._keys
        # 128 random bits as 32 hex digits, as uuid4().hex gave (without building a UUID: ~4 -> 0.6 us a cluster)
        tokens = {write.cid: os.urandom(16).hex() for write in writes}
        ops = RedisOps()
        for index_key, cid in handle.index.items():
            ops.expect(index_key, cid)
        for cid, version in handle.versions.items():
            ops.expect(keys.cluster_version(cid), version)
        ops.expect_members(keys.unlinked(), handle.unlinked)
        for write in writes:
            self._queue(ops, keys, write)
            ops.set(keys.cluster_version(write.cid), tokens[write.cid])
            for absorbed in write.absorbed:
                ops.delete(keys.cluster_version(absorbed))
        # One script call: a few hundred commands sent one by one would cost a reply each to parse in Python.
        if not await self._apply(keys=ops.keys, args=ops.fenced_args):
            return False  # someone committed to these clusters (or moved an identifier) since the read
        for write in writes:
            self._remember(view, write, tokens[write.cid])
        return True

    def _remember(self, view: ClusterView, write: ClusterWrite, version: str) -> None:
        """Keep the cluster as this commit left it, so the next batch need not read it back."""
        for absorbed in write.absorbed:
            self._cache.pop(absorbed, None)
        held = view.clusters.get(write.cid)
        profiles: dict[str, StoredProfile] = {}
        for key in write.profile_keys:
            profile = write.profiles.get(key) or (held.profiles.get(key) if held is not None else None)
            if profile is None:  # not derivable from the write: read it back next time
                self._cache.pop(write.cid, None)
                return
            profiles[key] = profile
        owners = dict(held.owners) if held is not None and not write.absorbed else {}
        for identifier, owner in write.owners.items():
            if owner is None:
                owners.pop(identifier, None)
            else:
                owners[identifier] = owner
        for identifier in write.unindex:
            owners.pop(identifier, None)
        owners = {m: o for m, o in owners.items() if m in write.members}
        cluster = StoredCluster(write.cid, write.members, frozenset(), write.last, profiles, owners)
        self._cache[write.cid] = _Cached(version, cluster)
        self._cache.move_to_end(write.cid)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    async def abort(self, view: ClusterView) -> None:
        """Nothing to end: a read holds no transaction (the commit is fenced instead)."""

    @staticmethod
    def _queue(tx: RedisOps, keys: Keys, write: ClusterWrite) -> None:
        cid = write.cid
        for absorbed in write.absorbed:
            tx.delete(keys.cluster_members(absorbed), keys.cluster_log(absorbed), keys.cluster_profiles(absorbed))
        if write.reindex:
            tx.sadd(keys.cluster_members(cid), *sorted(write.reindex))
            for identifier in sorted(write.reindex):
                tx.set(keys.cluster_of(identifier), cid)
        entries = dict(write.log_entries)
        if write.last is not None:
            entries[LAST_FIELD] = orjson.dumps(write.last).decode()
        if entries:
            tx.hset(keys.cluster_log(cid), mapping=entries)
        if write.log_removed:
            tx.hdel(keys.cluster_log(cid), *sorted(write.log_removed))
        for identifier in sorted(write.unindex):
            tx.srem(keys.cluster_members(cid), identifier)
            tx.delete(keys.cluster_of(identifier), keys.owner(identifier))
        if write.deny:
            tx.sadd(keys.erased(), *sorted(write.deny))
        if write.profile_keys_changed:
            tx.delete(keys.cluster_profiles(cid))
            if write.profile_keys:
                tx.sadd(keys.cluster_profiles(cid), *sorted(write.profile_keys))
        for key in sorted(write.dropped_profiles):
            tx.delete(keys.cart(key), keys.customer(key), keys.meta(key), keys.members(key))
        for key, profile in write.profiles.items():
            held = write.before.get(key)
            # Only what changed: most events touch one profile's record, fewer its cart, rarely its merge.
            if held is None or held.merged_into != profile.merged_into:
                tx.set(keys.meta(key), meta_to_json(profile.merged_into))
            # Parts equal to what was held are its own objects (streams.cluster_engine._settled): identity says.
            if held is None or held.cart is not profile.cart:
                if profile.cart is not None:
                    text = cart_to_json(profile.cart)
                    tx.set(keys.cart(key), text)
                    tx.publish(keys.cart_updates(key), text)
                else:
                    tx.delete(keys.cart(key))
            if held is None or held.customer is not profile.customer:
                if profile.customer is not None:
                    tx.set(keys.customer(key), customer_to_json(profile.customer))
                else:
                    tx.delete(keys.customer(key))
        for identifier, owner in write.owners.items():
            if identifier in write.unindex:
                continue
            if owner is None:
                tx.delete(keys.owner(identifier))
            else:
                tx.set(keys.owner(identifier), owner)
        for key, members in write.members_of.items():
            tx.delete(keys.members(key))
            if members:
                tx.sadd(keys.members(key), *sorted(members))

    async def denied(self, identifiers: Collection[str]) -> set[str]:
        ordered = list(identifiers)
        found = await self._redis.smismember(self._keys.erased(), [digest(i) for i in ordered])
        return {i for i, hit in zip(ordered, found, strict=True) if hit}

    async def unlink(self, identifier: str) -> None:
        """Add ``identifier`` (``type:value``) to the operator's unlinked set (then re-fold its cluster)."""
        await self._redis.sadd(self._keys.unlinked(), identifier)
