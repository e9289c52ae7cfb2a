"""Reading what the stream processors wrote to Redis (see :mod:`streams.keys` for the layout)."""

from __future__ import annotations

import json
from typing import Any

from redis.asyncio import Redis

from streams.cluster_store import LAST_FIELD
from streams.domain.fold import Item, item_from_json, parse_ident
from streams.domain.identity import IDENTIFIER_TYPES, Identifier, founder_of
from streams.keys import Keys
from streams.state_json import public_customer

__all__ = ["CartUpdates", "ReadStore", "profile_key_for"]


def profile_key_for(customer_or_profile: str) -> str:
    """``C-1`` -> ``customer:C-1``; a profile key such as ``anonymous:A1`` is taken as it is."""
    return customer_or_profile if ":" in customer_or_profile else f"customer:{customer_or_profile}"


class ReadStore:
    """Async reads of carts, customer records and identity owners; live cart changes via pub/sub."""

    def __init__(self, client: Redis, keys: Keys) -> None:
        self._redis = client
        self._keys = keys

    async def resolve(self, profile_key: str) -> str:
        """The profile that now holds ``profile_key``'s state: itself, unless it was absorbed at a login.

        Follows both the state's hand-over mark and the identity graph (an anonymous id linked to a
        customer before any of its events reached the state stage never had state of its own).
        """
        for _ in range(8):  # a chain of absorptions is short; bounded against a (corrupt) cycle
            meta = await self._redis.get(self._keys.meta(profile_key))
            merged_into = json.loads(meta).get("merged_into") if meta else None
            if not merged_into:
                founder = founder_of(profile_key)
                owner = await self.owner(founder.type, founder.value) if founder else None
                merged_into = owner if owner and owner != profile_key else None
            if not merged_into:
                return profile_key
            profile_key = merged_into
        return profile_key

    async def cart_view(self, requested: str) -> tuple[str, dict[str, Any] | None, dict[str, Any] | None]:
        """(profile, cart, customer record) in one round trip when the profile was never absorbed (the usual case).

        Reads the merge marks, the cart and the record together; only a profile absorbed at a login costs
        more round trips (to follow it to its customer).
        """
        founder = founder_of(requested)
        pipe = self._redis.pipeline(transaction=False)
        pipe.get(self._keys.meta(requested))
        pipe.get(self._keys.owner(f"{founder.type}:{founder.value}") if founder else self._keys.meta(requested))
        pipe.get(self._keys.cart(requested))
        pipe.get(self._keys.customer(requested))
        meta, owner, cart, customer = await pipe.execute()
        merged_into = json.loads(meta).get("merged_into") if meta else None
        moved = merged_into or (owner if founder and owner and owner != requested else None)
        if moved:
            profile = await self.resolve(requested)
            return profile, await self.cart(profile), await self.customer(profile)
        return requested, json.loads(cart) if cart else None, public_customer(str(customer)) if customer else None

    async def customer(self, profile_key: str) -> dict[str, Any] | None:
        raw = await self._redis.get(self._keys.customer(profile_key))
        return public_customer(str(raw)) if raw else None

    async def cart(self, profile_key: str) -> dict[str, Any] | None:
        raw = await self._redis.get(self._keys.cart(profile_key))
        return json.loads(raw) if raw else None

    async def cluster_of(self, profile_key: str) -> str | None:
        """The identity cluster ``profile_key`` is in (found through its founding identifier, else any member
        identifier); None when the backbone holds no event of it."""
        founder = founder_of(profile_key)
        if founder is not None:
            cid = await self._redis.get(self._keys.cluster_of(f"{founder.type}:{founder.value}"))
            if cid is not None:
                return str(cid)
        for member in sorted(await self._redis.smembers(self._keys.members(profile_key))):
            cid = await self._redis.get(self._keys.cluster_of(str(member)))
            if cid is not None:
                return str(cid)
        return None

    async def cluster_items(self, cid: str) -> tuple[list[Item], frozenset[Identifier]]:
        """Every item of a cluster's log and the identifiers an operator unlinked (what the worker folds)."""
        pipe = self._redis.pipeline(transaction=True)  # one snapshot: the log and the unlinks of one moment
        pipe.hgetall(self._keys.cluster_log(cid))
        pipe.smembers(self._keys.unlinked())
        log, unlinked = await pipe.execute()
        items = [item_from_json(text) for item_id, text in log.items() if item_id != LAST_FIELD]
        return items, frozenset(parse_ident(i) for i in unlinked)

    async def owner(self, identifier_type: str, value: str) -> str | None:
        """The profile key an identifier belongs to, or None when the backbone never linked it."""
        if identifier_type not in IDENTIFIER_TYPES:
            return None
        owner = await self._redis.get(self._keys.owner(f"{identifier_type}:{value}"))
        return None if owner is None else str(owner)

    def cart_updates(self) -> CartUpdates:
        """A subscription to live cart changes; subscribe *before* reading a snapshot so no change is missed."""
        return CartUpdates(self._redis.pubsub(), self._keys)


class CartUpdates:
    """One live subscription (one Redis pub/sub connection); always ``close()`` it."""

    def __init__(self, pubsub: Any, keys: Keys) -> None:
        self._pubsub = pubsub
        self._keys = keys
        self._channel: str | None = None

    async def follow(self, profile_key: str) -> None:
        """Listen to ``profile_key``'s cart (and stop listening to the previous one)."""
        if self._channel is not None:
            await self._pubsub.unsubscribe(self._channel)
        self._channel = self._keys.cart_updates(profile_key)
        await self._pubsub.subscribe(self._channel)

    async def next(self, timeout: float) -> dict[str, Any] | None:
        """The next cart change, or None after ``timeout`` seconds without one."""
        message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=timeout)
        if message is None or message.get("type") != "message":
            return None
        data: dict[str, Any] = json.loads(message["data"])
        return data

    async def close(self) -> None:
        await self._pubsub.aclose()
