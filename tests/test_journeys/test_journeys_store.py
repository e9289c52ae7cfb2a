"""The Redis scripts of journeys against a real Redis: claims are exclusive and survive a crash, releases spare
re-scheduled checks, stock levels apply only if newer."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from omnichannel.settings import Settings
from streams.app import redis_client
from streams.journeys.store import JourneyEffects, JourneyStore, schedule_member
from streams.keys import Keys

T = TypeVar("T")


def run(settings: Settings, body: Callable[[Callable[[], JourneyStore]], Awaitable[T]]) -> T:
    """Run ``body`` with a factory of stores on one fresh namespace (each store has its own connection)."""
    assert settings.redis_url is not None
    keys = Keys(f"t{uuid.uuid4().hex[:10]}")

    async def main() -> T:
        clients: list[Any] = []

        def store() -> JourneyStore:
            clients.append(redis_client(str(settings.redis_url)))
            return JourneyStore(clients[-1], keys)

        try:
            return await body(store)
        finally:
            for client in clients:
                await client.aclose()

    return asyncio.run(main())


def _schedule(members: dict[str, int | None]) -> JourneyEffects:
    return JourneyEffects(schedule=list(members.items()))


def test_two_workers_never_claim_the_same_check(settings: Settings) -> None:
    members = {schedule_member(f"customer:C{n}", "abandoned_cart", f"cart:e{n}"): 1_000 + n for n in range(300)}

    async def body(store: Callable[[], JourneyStore]) -> tuple[list[str], list[str]]:
        first, second = store(), store()
        await first.apply([_schedule(dict(members))])
        a, b = await asyncio.gather(first.claim(5_000, 60_000, 1_000), second.claim(5_000, 60_000, 1_000))
        return [c.member for c in a], [c.member for c in b]

    a, b = run(settings, body)
    assert not set(a) & set(b)
    assert sorted(a + b) == sorted(members)


def test_a_claim_not_released_is_claimed_again_after_its_lease(settings: Settings) -> None:
    member = schedule_member("customer:C1", "quote_follow_up", "quote:Q1")

    async def body(store: Callable[[], JourneyStore]) -> list[list[tuple[str, int, int]]]:
        journeys = store()
        await journeys.apply([_schedule({member: 1_000})])
        rounds = []
        for now in (2_000, 2_050, 2_101):  # the worker "crashed" after the first claim: no release
            rounds.append([(c.episode_id, c.due_ms, c.lease_ms) for c in await journeys.claim(now, 100, 10)])
        return rounds

    assert run(settings, body) == [[("quote:Q1", 1_000, 2_100)], [], [("quote:Q1", 2_100, 2_201)]]


def test_a_release_spares_a_check_rescheduled_since_its_claim(settings: Settings) -> None:
    kept = schedule_member("customer:C1", "abandoned_cart", "cart:a")
    done = schedule_member("customer:C2", "abandoned_cart", "cart:b")
    gone = schedule_member("customer:C3", "abandoned_cart", "cart:c")

    async def body(store: Callable[[], JourneyStore]) -> list[tuple[str, int]]:
        journeys = store()
        await journeys.apply([_schedule({kept: 1_000, done: 1_000, gone: 1_000})])
        claimed = await journeys.claim(2_000, 60_000, 10)
        # While the commands travel: new activity moves one check, an order cancels another.
        await journeys.apply([_schedule({kept: 9_000, gone: None})])
        await journeys.release(claimed)
        return await journeys.scheduled()

    assert run(settings, body) == [(kept, 9_000)]


def _level(store: str, product: str, available: int, sequence: int, at: int) -> dict[str, Any]:
    payload = {"store_id": store, "product_id": product, "available": available, "sequence": sequence}
    return {"event_type": "stock_level_changed", "occurred_at_ms": at, "payload": payload}


def test_stock_levels_apply_only_if_newer_by_sequence_then_time(settings: Settings) -> None:
    big = 2**62  # beyond a double's exact integers: compared as text, not as Lua numbers

    async def body(store: Callable[[], JourneyStore]) -> tuple[list[int], dict[str, Any]]:
        journeys = store()
        written = []
        for batch in (
            [_level("S1", "A", 5, 10, 1_000)],
            [_level("S1", "A", 9, 9, 2_000)],  # older sequence, later time: ignored
            [_level("S1", "A", 7, 10, 1_000)],  # same sequence and time (a replay): ignored
            [_level("S1", "A", 4, 10, 1_500)],  # same sequence, later time: applied
            [_level("S1", "B", 1, big + 1, 1), _level("S1", "B", 2, big, 2)],  # one batch, out of order
            [_level("S2", "A", 0, 1, 1)],  # another store
        ):
            written.append(await journeys.apply_stock(batch))
        return written, await journeys.stock("S1", ["A", "B", "C"])

    written, levels = run(settings, body)
    assert written == [1, 0, 0, 1, 1, 1]
    assert levels == {
        "A": {"available": 4, "sequence": 10, "at_ms": 1_500},
        "B": {"available": 1, "sequence": big + 1, "at_ms": 1},
        "C": None,
    }
