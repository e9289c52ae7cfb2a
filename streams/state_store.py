"""Carts and customer records in Redis, each update fenced by its source offset in one atomic step.

Every profile key has a *fence*: the offset (in ``events.by_customer``) of the last record applied to it.
A write carries the fence it was computed from and the new one; the Lua script applies it only if the
stored fence is still the expected one, so a replay after a crash or a stale worker after a rebalance
cannot apply an effect twice or overwrite newer state. All keys of one profile share a hash tag, so the
script runs on Redis Cluster. Reads and writes are pipelined per batch, never one round trip per event.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from streams.domain.cart import Cart
from streams.domain.customer import CustomerState
from streams.keys import Keys
from streams.state_json import cart_from_json, cart_to_json, customer_from_json, customer_to_json

__all__ = ["NO_FENCE", "Snapshot", "StateStore", "StateWrite"]

#: Fence of a key nothing was applied to yet.
NO_FENCE = -1
#: Event ids remembered per key (second line of defence behind the fence: duplicates at new offsets).
SEEN_IDS_KEPT = 2000

_APPLY = """
local meta = redis.call('GET', KEYS[1])
local fence = -1
if meta then fence = tonumber(cjson.decode(meta)['offset']) end
if fence ~= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
if ARGV[3] ~= '' then redis.call('SET', KEYS[2], ARGV[3]) end
if ARGV[4] ~= '' then redis.call('SET', KEYS[3], ARGV[4]) end
local n = tonumber(ARGV[5])
for i = 0, n - 1 do redis.call('ZADD', KEYS[4], ARGV[7 + 2 * i], ARGV[8 + 2 * i]) end
if n > 0 then redis.call('ZREMRANGEBYRANK', KEYS[4], 0, -(tonumber(ARGV[6]) + 1)) end
if ARGV[3] ~= '' then redis.call('PUBLISH', ARGV[7 + 2 * n], ARGV[3]) end
return 1
"""


@dataclass(frozen=True)
class Snapshot:
    """What Redis holds for one profile key at the start of a batch."""

    key: str
    fence: int
    merged_into: str | None
    cart: Cart | None
    customer: CustomerState | None
    seen: frozenset[str]


@dataclass(frozen=True)
class StateWrite:
    """The new state of one key, computed from ``expected_fence``; ``None`` parts are left unchanged."""

    key: str
    expected_fence: int
    new_fence: int
    merged_into: str | None
    cart: Cart | None
    customer: CustomerState | None
    applied: Sequence[tuple[str, int]]  # (event id, offset)


class StateStore:
    """Batch reads and fenced batch writes of carts and customer records."""

    def __init__(self, client: Redis, keys: Keys) -> None:
        self._redis = client
        self._keys = keys
        self._apply = client.register_script(_APPLY)

    async def load(self, wanted: Mapping[str, Sequence[str]]) -> dict[str, Snapshot]:
        """Snapshots of each key, with which of the given event ids it has already applied."""
        keys = list(wanted)
        pipe = self._redis.pipeline(transaction=False)
        for key in keys:
            pipe.get(self._keys.meta(key))
            pipe.get(self._keys.cart(key))
            pipe.get(self._keys.customer(key))
            ids = list(wanted[key])
            if ids:
                pipe.zmscore(self._keys.seen(key), ids)
        raw = await pipe.execute()
        snapshots: dict[str, Snapshot] = {}
        position = 0
        for key in keys:
            meta, cart, customer = raw[position : position + 3]
            position += 3
            ids = list(wanted[key])
            seen: frozenset[str] = frozenset()
            if ids:
                scores = raw[position]
                position += 1
                seen = frozenset(i for i, score in zip(ids, scores, strict=True) if score is not None)
            meta_json: dict[str, Any] = json.loads(meta) if meta else {}
            snapshots[key] = Snapshot(
                key=key,
                fence=int(meta_json.get("offset", NO_FENCE)),
                merged_into=meta_json.get("merged_into"),
                cart=cart_from_json(cart) if cart else None,
                customer=customer_from_json(customer) if customer else None,
                seen=seen,
            )
        return snapshots

    async def commit(self, writes: Sequence[StateWrite]) -> list[bool]:
        """Apply each write if its key's fence is unchanged; True where applied, False where fenced off."""
        if not writes:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for write in writes:
            meta = json.dumps({"offset": write.new_fence, "merged_into": write.merged_into})
            args: list[Any] = [
                write.expected_fence,
                meta,
                cart_to_json(write.cart) if write.cart is not None else "",
                customer_to_json(write.customer) if write.customer is not None else "",
                len(write.applied),
                SEEN_IDS_KEPT,
            ]
            for event_id, offset in write.applied:
                args += [offset, event_id]
            args.append(self._keys.cart_updates(write.key))
            keys = [
                self._keys.meta(write.key),
                self._keys.cart(write.key),
                self._keys.customer(write.key),
                self._keys.seen(write.key),
            ]
            await self._apply(keys=keys, args=args, client=pipe)
        return [bool(result) for result in await pipe.execute()]
