"""The clusters in Redis: one WATCH/MULTI/EXEC per batch (see :mod:`streams.cluster_engine`).

Reads watch every key they depend on (the identifiers' cluster index, the clusters' members, logs and profile
sets, the unlinked set), so a commit lands only if no other worker committed to the same clusters meanwhile;
the loser re-reads and folds again. The derived carts, records and identity index are written in the same
transaction, and each cart change is published for live readers. Key layout: :mod:`streams.keys`.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import WatchError

from streams.cluster_engine import ClusterView, ClusterWrite, StoredCluster, StoredProfile, digest
from streams.keys import Keys
from streams.state_json import cart_from_json, cart_to_json, customer_from_json, customer_to_json

__all__ = ["RedisClusterStore", "meta_to_json"]


def meta_to_json(merged_into: str | None, cid: str) -> str:
    return json.dumps({"merged_into": merged_into, "cluster": cid}, separators=(",", ":"))


class RedisClusterStore:
    """:class:`streams.cluster_engine.ClusterStore` on Redis."""

    def __init__(self, client: Redis, keys: Keys) -> None:
        self._redis = client
        self._keys = keys

    async def read(self, identifiers: Collection[str], items: Mapping[str, Collection[str]]) -> ClusterView:
        keys = self._keys
        wanted = list(identifiers)
        tx = self._redis.pipeline(transaction=True)
        try:
            index_keys = [keys.cluster_of(i) for i in wanted]
            await tx.watch(*index_keys, keys.unlinked())
            reads = self._redis.pipeline(transaction=False)
            reads.mget(index_keys)
            reads.smembers(keys.unlinked())
            raw_index, unlinked = await reads.execute()
            index = {i: c for i, c in zip(wanted, raw_index, strict=True) if c is not None}
            cids = sorted(set(index.values()))
            asked: dict[str, list[str]] = {}  # per cluster, the batch's item ids that could already be in its log
            for item_id, item_identifiers in items.items():
                for cid in {index[i] for i in item_identifiers if i in index}:
                    asked.setdefault(cid, []).append(item_id)
            clusters: dict[str, StoredCluster] = {}
            if cids:
                await tx.watch(*(k for c in cids for k in self._cluster_keys(c)))
                reads = self._redis.pipeline(transaction=False)
                for cid in cids:
                    reads.smembers(keys.cluster_members(cid))
                    reads.smembers(keys.cluster_profiles(cid))
                    reads.get(keys.cluster_last(cid))
                    if cid in asked:
                        reads.hmget(keys.cluster_log(cid), asked[cid])
                    else:
                        reads.ping()  # keeps four replies per cluster
                raw = await reads.execute()
                shapes = []
                for n, cid in enumerate(cids):
                    members, profiles, last, held = raw[4 * n : 4 * n + 4]
                    ids = asked.get(cid, [])
                    present = frozenset(i for i, v in zip(ids, held if ids else [], strict=True) if v is not None)
                    shapes.append((cid, members, profiles, last, present))
                reads = self._redis.pipeline(transaction=False)
                for _cid, members, profiles, _last, _present in shapes:
                    for key in sorted(profiles):
                        reads.mget([keys.cart(key), keys.customer(key), keys.meta(key)])
                    if members:
                        reads.mget([keys.owner(m) for m in sorted(members)])
                derived = iter(await reads.execute())
                for cid, members, profiles, last, present in shapes:
                    stored: dict[str, StoredProfile] = {}
                    for key in sorted(profiles):
                        cart, customer, meta = next(derived)
                        stored[key] = StoredProfile(
                            cart_from_json(cart) if cart else None,
                            customer_from_json(customer) if customer else None,
                            json.loads(meta).get("merged_into") if meta else None,
                        )
                    owners: dict[str, str] = {}
                    if members:
                        ordered = sorted(members)
                        owners = {m: o for m, o in zip(ordered, next(derived), strict=True) if o is not None}
                    last_order = None
                    if last:
                        at_ms, item_id = json.loads(last)
                        last_order = (int(at_ms), str(item_id))
                    clusters[cid] = StoredCluster(cid, frozenset(members), present, last_order, stored, owners)
            return ClusterView(index, clusters, frozenset(unlinked), handle=tx)
        except BaseException:
            await tx.reset()  # type: ignore[no-untyped-call]
            raise

    async def logs(self, view: ClusterView, cids: Collection[str]) -> dict[str, dict[str, str]]:
        ordered = list(cids)
        if not ordered:
            return {}
        reads = self._redis.pipeline(transaction=False)
        for cid in ordered:
            reads.hgetall(self._keys.cluster_log(cid))
        return {cid: dict(found) for cid, found in zip(ordered, await reads.execute(), strict=True)}

    def _cluster_keys(self, cid: str) -> list[str]:
        keys = self._keys
        return [keys.cluster_members(cid), keys.cluster_log(cid), keys.cluster_profiles(cid), keys.cluster_last(cid)]

    async def commit(self, view: ClusterView, writes: Sequence[ClusterWrite]) -> bool:
        tx = view.handle
        keys = self._keys
        try:
            tx.multi()
            for write in writes:
                self._queue(tx, keys, write)
            await tx.execute()
            return True
        except WatchError:
            return False
        finally:
            await tx.reset()

    async def abort(self, view: ClusterView) -> None:
        await view.handle.reset()

    @staticmethod
    def _queue(tx: Any, keys: Keys, write: ClusterWrite) -> None:
        cid = write.cid
        for absorbed in write.absorbed:
            tx.delete(
                keys.cluster_members(absorbed),
                keys.cluster_log(absorbed),
                keys.cluster_profiles(absorbed),
                keys.cluster_last(absorbed),
            )
        if write.reindex:
            tx.sadd(keys.cluster_members(cid), *sorted(write.reindex))
            for identifier in sorted(write.reindex):
                tx.set(keys.cluster_of(identifier), cid)
        if write.log_entries:
            tx.hset(keys.cluster_log(cid), mapping=write.log_entries)
        if write.log_removed:
            tx.hdel(keys.cluster_log(cid), *sorted(write.log_removed))
        for identifier in sorted(write.unindex):
            tx.srem(keys.cluster_members(cid), identifier)
            tx.delete(keys.cluster_of(identifier), keys.owner(identifier))
        if write.deny:
            tx.sadd(keys.erased(), *sorted(write.deny))
        if write.last is not None:
            tx.set(keys.cluster_last(cid), json.dumps(list(write.last)))
        tx.delete(keys.cluster_profiles(cid))
        if write.profile_keys:
            tx.sadd(keys.cluster_profiles(cid), *sorted(write.profile_keys))
        for key in sorted(write.dropped_profiles):
            tx.delete(keys.cart(key), keys.customer(key), keys.meta(key), keys.members(key))
        for key, profile in write.profiles.items():
            tx.set(keys.meta(key), meta_to_json(profile.merged_into, cid))
            if profile.cart is not None:
                text = cart_to_json(profile.cart)
                tx.set(keys.cart(key), text)
                tx.publish(keys.cart_updates(key), text)
            else:
                tx.delete(keys.cart(key))
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
