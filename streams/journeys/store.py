"""Redis side of journeys: the schedule of due checks, the live attribution matrix, typology and segment
counts and stock.

Every write here is idempotent, so the state stage can apply it *before* the fenced write of the customer
record that caused it (a crash in between replays the batch and writes the same thing again):

- the schedule is a sorted set, member ``[profile, kind, episode]`` -> due time; setting a member again
  with the same due time changes nothing;
- the matrix and typology counts are sets of customer ids (``SADD``/``SREM``), never blind counters, so a
  replayed conversion cannot count twice;
- a stock level is written only if newer than the one held (compare-and-set in one script).

Claiming due checks is one script on the schedule's single key: members due by ``now`` get their score moved
to ``now + lease`` and are returned, so two workers (or a worker and its restarted self) never claim the same
member at once. A claimed member is removed only once its command is acknowledged by Kafka, and only if its
score is still the lease (a new due time set meanwhile survives); a worker that dies in between leaves the
member to be claimed again when the lease expires.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, cast

from redis.asyncio import Redis

from schemas.topics import CHANNELS
from streams.domain.attribution import AttributionRules
from streams.domain.segments import SEGMENTS
from streams.domain.stock import StockLevel, stock_level_of
from streams.domain.typology import TYPOLOGIES
from streams.keys import Keys
from streams.redis_ops import APPLY_OPS, RedisOps

__all__ = ["DROP_REASONS", "Claimed", "JourneyEffects", "JourneyStore", "schedule_member"]

log = logging.getLogger(__name__)

#: Reasons an exposure or conversion is given up (see ``streams.domain.journey.settle``).
DROP_REASONS: Final = (
    "exposure_unidentified_after_window",
    "conversion_unidentified_after_window",
    "exposure_overflow",
    "conversion_overflow",
)

_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[3]))
for i = 1, #due, 2 do redis.call('ZADD', KEYS[1], ARGV[2], due[i]) end
return due
"""

_RELEASE = """
local removed = 0
for i = 2, #ARGV do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) == tonumber(ARGV[1]) then
    redis.call('ZREM', KEYS[1], ARGV[i])
    removed = removed + 1
  end
end
return removed
"""

# Levels are stored as "<sequence>:<occurred_at_ms>:<available>": the ordering fields stay exact decimal
# strings (Lua numbers are doubles, a 64-bit sequence would lose precision) and compare by length, then text.
_STOCK = """
local function greater(a, b)
  if #a ~= #b then return #a > #b end
  return a > b
end
local held = redis.call('HGET', KEYS[1], ARGV[1])
if held then
  local seq, at = string.match(held, '^(%d+):(%d+):')
  if seq then
    if greater(seq, ARGV[2]) then return 0 end
    if seq == ARGV[2] and not greater(ARGV[3], at) then return 0 end
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ':' .. ARGV[3] .. ':' .. ARGV[4])
return 1
"""


def schedule_member(profile_key: str, kind: str, episode_id: str) -> str:
    """The schedule member of one due check (deterministic, so re-scheduling overwrites its time)."""
    return json.dumps([profile_key, kind, episode_id], separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class Claimed:
    """A due check claimed by this worker until ``lease_ms``."""

    member: str
    profile_key: str
    kind: str
    episode_id: str
    due_ms: int
    lease_ms: int


@dataclass
class JourneyEffects:
    """Idempotent Redis writes decided while folding one profile's batch (applied before its fenced write)."""

    schedule: list[tuple[str, int | None]] = field(default_factory=list)  # member -> due ms, None: unschedule
    adds: list[tuple[str, str]] = field(default_factory=list)  # (set key, member)
    removes: list[tuple[str, str]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.schedule or self.adds or self.removes)


class JourneyStore:
    """Reads and writes of the journey keys of one namespace (see :mod:`streams.keys`)."""

    def __init__(self, client: Redis, keys: Keys) -> None:
        self._redis = client
        self._keys = keys
        self._claim = client.register_script(_CLAIM)
        self._release = client.register_script(_RELEASE)
        self._stock = client.register_script(_STOCK)
        self._apply = client.register_script(APPLY_OPS)

    @property
    def keys(self) -> Keys:
        return self._keys

    # -- writes by the state stage ------------------------------------------------------------------------

    async def apply(self, effects: Iterable[JourneyEffects]) -> None:
        """Apply the effects of a batch in one script call, in order (each write is idempotent)."""
        ops = RedisOps()
        for effect in effects:
            for member, due_ms in effect.schedule:
                if due_ms is None:
                    ops.zrem(self._keys.due(), member)
                else:
                    ops.zadd(self._keys.due(), member, due_ms)
            for key, member in effect.adds:
                ops.sadd(key, member)
            for key, member in effect.removes:
                ops.srem(key, member)
        if ops:
            await self._apply(keys=ops.keys, args=ops.args)

    # -- the timer ----------------------------------------------------------------------------------------

    async def claim(self, now_ms: int, lease_ms: int, limit: int) -> list[Claimed]:
        """Claim up to ``limit`` checks due by ``now_ms`` for ``lease_ms`` (see the module docstring)."""
        lease = now_ms + lease_ms
        raw: list[Any] = await self._claim(keys=[self._keys.due()], args=[now_ms, lease, limit])
        claimed: list[Claimed] = []
        for member, score in zip(raw[::2], raw[1::2], strict=True):
            try:
                profile, kind, episode = json.loads(member)
            except (ValueError, TypeError):
                log.warning("unreadable schedule member removed", extra={"member": str(member)[:200]})
                await self._redis.zrem(self._keys.due(), member)
                continue
            claimed.append(Claimed(str(member), str(profile), str(kind), str(episode), int(float(score)), lease))
        return claimed

    async def release(self, claimed: Sequence[Claimed]) -> None:
        """Remove checks whose commands Kafka acknowledged, unless re-scheduled since the claim."""
        by_lease: dict[int, list[str]] = {}
        for item in claimed:
            by_lease.setdefault(item.lease_ms, []).append(item.member)
        for lease, members in by_lease.items():
            await self._release(keys=[self._keys.due()], args=[lease, *members])

    async def scheduled(self) -> list[tuple[str, int]]:
        """Every scheduled check and its time (for ops and tests)."""
        raw = cast(list[tuple[str, float]], await self._redis.zrange(self._keys.due(), 0, -1, withscores=True))
        return [(str(member), int(score)) for member, score in raw]

    async def write_meta(self, rules: AttributionRules) -> None:
        """Record the worker's attribution model and window, so readers of the matrix can say what it means."""
        mapping = {"model": rules.model.value, "window_ms": str(rules.window_ms)}
        await self._redis.hset(self._keys.attribution_meta(), mapping=cast(Any, mapping))

    # -- stock (written by the identity stage, which routes stock levels here) ------------------------------

    async def apply_stock(self, events: Sequence[dict[str, Any]]) -> int:
        """Write each ``stock_level_changed`` level unless an equal or newer one is held; how many were written."""
        levels = [stock_level_of(event) for event in events]
        if not levels:
            return 0
        pipe = self._redis.pipeline(transaction=False)
        for level in levels:
            args: list[str | int] = [level.product_id, level.sequence, level.at_ms, level.available]
            await self._stock(keys=[self._keys.stock(level.store_id)], args=args, client=pipe)
        written = sum(int(r) for r in await pipe.execute())
        if written < len(levels):
            log.debug("stale stock levels ignored", extra={"ignored": len(levels) - written})
        return written

    async def stock(self, store_id: str, product_ids: Sequence[str]) -> dict[str, dict[str, Any] | None]:
        """The level held for each product in a store (None: never reported)."""
        if not product_ids:
            return {}
        raw = cast(list[str | None], await self._redis.hmget(self._keys.stock(store_id), list(product_ids)))
        return {product: _level(value) for product, value in zip(product_ids, raw, strict=True)}

    # -- reads for the API --------------------------------------------------------------------------------

    async def matrix(self) -> dict[str, Any]:
        """Set sizes of the live matrix: exposed per action channel, converted per pair, responded, dropped."""
        pipe = self._redis.pipeline(transaction=False)
        for action in CHANNELS:
            pipe.scard(self._keys.exposed(action))
        for action in CHANNELS:
            for response in CHANNELS:
                pipe.scard(self._keys.converted(action, response))
        for response in CHANNELS:
            pipe.scard(self._keys.responded(response))
        for reason in DROP_REASONS:
            pipe.scard(self._keys.dropped(reason))
        pipe.hgetall(self._keys.attribution_meta())
        raw = await pipe.execute()
        n = len(CHANNELS)
        exposed = dict(zip(CHANNELS, raw[:n], strict=True))
        pairs = [(a, r) for a in CHANNELS for r in CHANNELS]
        converted = dict(zip(pairs, raw[n : n + n * n], strict=True))
        responded = dict(zip(CHANNELS, raw[n + n * n : 2 * n + n * n], strict=True))
        dropped = dict(zip(DROP_REASONS, raw[2 * n + n * n : -1], strict=True))
        return {"exposed": exposed, "converted": converted, "responded": responded, "dropped": dropped, "meta": raw[-1]}

    async def typology_counts(self) -> dict[str, int]:
        """Customers per typology class."""
        pipe = self._redis.pipeline(transaction=False)
        for typology in TYPOLOGIES:
            pipe.scard(self._keys.typology(typology))
        return dict(zip(TYPOLOGIES, (int(n) for n in await pipe.execute()), strict=True))

    async def segment_counts(self) -> dict[str, int]:
        """Customers per channel-mix segment."""
        pipe = self._redis.pipeline(transaction=False)
        for segment in SEGMENTS:
            pipe.scard(self._keys.segment(segment))
        return dict(zip(SEGMENTS, (int(n) for n in await pipe.execute()), strict=True))


def _level(value: str | None) -> dict[str, Any] | None:
    if value is None:
        return None
    sequence, at_ms, available = value.split(":", 2)
    return StockLevel("", "", int(available), int(sequence), int(at_ms)).to_dict()
