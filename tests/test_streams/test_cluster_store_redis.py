"""The Redis cluster store, with each worker's cache of the clusters it committed, under every delivery.

The property of test_cluster_engine.py, through the real store on the real Redis: two workers (two store
instances, two caches) take batches from simulated partitions in a random schedule, a rival worker commits
between a worker's read and its commit or inside the read (after it read the identifiers' clusters, before it
read their version tokens; or after the tokens, before the clusters' contents), a worker restarts (its cache is
gone) or replays a batch it committed (the offset commit was lost). Whatever the schedule, what Redis holds
equals one sequential fold, and a cached copy is never used once another worker changed the cluster.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis
from test_cluster_engine import PARTITIONS, Partition, Record, events_strategy, make_event, new_item, reference, view

from omnichannel.settings import Settings
from streams.cluster_engine import ClusterEngine, ClusterView, ClusterWrite, StoredProfile
from streams.cluster_store import RedisClusterStore
from streams.domain.cart import MergeMode
from streams.domain.fold import FoldRules
from streams.keys import Keys
from streams.state_json import cart_from_json, customer_from_json

pytestmark = pytest.mark.integration

EXAMPLES = max(20, int(os.environ.get("OMNICHANNEL_PROPERTY_EXAMPLES", "150")) // 4)


class HookedStore(RedisClusterStore):
    """A worker's store where a test can run another worker's whole step between a read and its commit, or
    inside the read: after it read the identifiers' clusters (``after_index``), or after it read their version
    tokens, before it fetched the contents of those it holds no current copy of (``after_probe``)."""

    before_commit: Callable[[], Awaitable[None]] | None = None
    after_index: Callable[[], Awaitable[None]] | None = None
    after_probe: Callable[[], Awaitable[None]] | None = None

    async def commit(self, view: ClusterView, writes: Sequence[ClusterWrite]) -> bool:
        if self.before_commit is not None:
            hook, self.before_commit = self.before_commit, None
            await hook()
        return await super().commit(view, writes)

    async def _index_and_unlinked(self, index_keys: list[str]) -> tuple[list[str | None], set[str]]:
        found = await super()._index_and_unlinked(index_keys)
        if self.after_index is not None:
            hook, self.after_index = self.after_index, None
            await hook()
        return found

    async def _read_clusters(self, wanted: list[Any]) -> dict[str, Any]:
        if self.after_probe is not None:
            hook, self.after_probe = self.after_probe, None
            await hook()
        return await super()._read_clusters(wanted)


async def stored_profiles(client: Redis, keys: Keys) -> dict[str, StoredProfile]:
    """Every profile Redis holds in the namespace (cart, record or merge marker), parsed."""
    profile_keys = set()
    for kind in ("cart", "customer", "meta"):
        async for name in client.scan_iter(match=f"{keys.namespace}:{kind}:*", count=1000):
            profile_keys.add(name.split("{", 1)[1].rsplit("}", 1)[0])
    found: dict[str, StoredProfile] = {}
    for key in sorted(profile_keys):
        cart, customer, meta = await client.mget([keys.cart(key), keys.customer(key), keys.meta(key)])
        if cart is None and customer is None and meta is None:
            continue
        merged = None if meta is None else json.loads(meta).get("merged_into")
        found[key] = StoredProfile(
            cart_from_json(cart) if cart else None, customer_from_json(customer) if customer else None, merged
        )
    return found


async def deliver(
    redis_url: str, keys: Keys, partitions: list[Partition], schedule: list[Any], rules: FoldRules
) -> dict[str, StoredProfile]:
    client = Redis.from_url(redis_url, decode_responses=True)
    workers = [HookedStore(client, keys), HookedStore(client, keys)]
    engines = [ClusterEngine(w, rules) for w in workers]

    applied: list[dict[str, Any]] = []  # every event some worker committed so far

    def take(p: int, size: int) -> tuple[int, list[Any]]:
        batch = partitions[p].records[partitions[p].committed : partitions[p].committed + size]
        applied.extend(r.event for r in batch)  # the worker retries until its commit lands: they will be applied
        return len(batch), [i for r in batch if (i := new_item(r.event, rules)) is not None]

    async def check() -> None:
        """Not only at the end: after every commit, Redis holds the fold of what was applied (a stale cached
        copy would show here even when a later whole-log fold repairs it)."""
        held, expected = await stored_profiles(client, keys), reference(applied, rules)
        assert {k: view(v) for k, v in held.items()} == {k: view(v) for k, v in expected.items()}

    try:
        for p, size, who, fate, race in schedule:
            if fate == "restart":  # the worker died: a new process, an empty cache
                workers[who] = HookedStore(client, keys)
                engines[who] = ClusterEngine(workers[who], rules)
            taken, items = take(p, size)
            if not taken:
                continue
            if race:
                other = (p + 1) % PARTITIONS

                async def rival(other: int = other, rival_engine: ClusterEngine = engines[1 - who]) -> None:
                    rival_taken, rival_items = take(other, 2)
                    await rival_engine.apply(rival_items)
                    partitions[other].committed += rival_taken

                setattr(workers[who], race, rival)
            await engines[who].apply(items)
            workers[who].before_commit = workers[who].after_index = workers[who].after_probe = None
            await check()
            if fate != "replay":  # "replay": state committed, the offset commit lost: the batch comes again
                partitions[p].committed += taken
        turn = 0
        for p, part in enumerate(partitions):  # both workers drain what is left, taking turns
            while part.committed < len(part.records):
                taken, items = take(p, 2)
                turn += 1
                await engines[turn % 2].apply(items)
                part.committed += taken
                await check()
        return await stored_profiles(client, keys)
    finally:
        async for key in client.scan_iter(match=f"{keys.namespace}:*", count=1000):
            await client.delete(key)
        await client.aclose()


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=events_strategy, data=st.data(), mode=st.sampled_from(list(MergeMode)))
def test_two_caching_workers_leave_what_one_sequential_fold_gives(
    settings: Settings, spec: list[Any], data: st.DataObject, mode: MergeMode
) -> None:
    assert settings.redis_url
    rules = FoldRules(merge_mode=mode)
    if data.draw(st.booleans(), label="one customer"):  # C1's senders only: every batch hits the same cluster
        spec = [(kind, (3, 5, 7)[sender % 3], *rest) for kind, sender, *rest in spec]
    if data.draw(st.booleans(), label="events in time order"):  # the common case: folds go on from the cache
        spec = [(*args[:4], 1_000 * n) for n, args in enumerate(spec)]
    events = [make_event(n, *args) for n, args in enumerate(spec)]
    copies = events + data.draw(st.lists(st.sampled_from(events), max_size=4), label="duplicates")
    partitions = [Partition() for _ in range(PARTITIONS)]
    spread = data.draw(st.integers(0, PARTITIONS - 1), label="partitions used - 1")  # one: batches go on in order
    for event in copies:
        partitions[data.draw(st.integers(0, spread), label="partition")].records.append(Record(event))
    schedule = data.draw(
        st.lists(
            st.tuples(
                st.integers(0, PARTITIONS - 1),
                st.integers(1, 6),
                st.integers(0, 1),  # which worker takes the batch
                st.sampled_from(["none", "none", "restart", "replay"]),
                st.sampled_from(["", "before_commit", "after_index", "after_probe"]),  # a rival's whole step, and when
            ),
            max_size=24,
        ),
        label="schedule",
    )
    keys = Keys(f"cache{uuid.uuid4().hex[:10]}")
    held = asyncio.run(deliver(settings.redis_url, keys, partitions, schedule, rules))

    expected = reference(copies, rules)
    assert set(held) == set(expected)
    for key, state in expected.items():
        assert view(held[key]) == view(state), key


def test_a_cached_cluster_changed_by_another_worker_is_read_again(settings: Settings) -> None:
    """Worker A caches C1's cart; worker B adds a line; A's next add must fold on B's line, not its stale copy."""
    assert settings.redis_url
    rules = FoldRules()
    keys = Keys(f"cache{uuid.uuid4().hex[:10]}")

    async def run() -> dict[str, StoredProfile]:
        client = Redis.from_url(settings.redis_url or "", decode_responses=True)
        a, b = (
            ClusterEngine(RedisClusterStore(client, keys), rules),
            ClusterEngine(RedisClusterStore(client, keys), rules),
        )
        try:
            for engine, n, product, at in ((a, 1, "P1", 1_000), (b, 2, "P2", 2_000), (a, 3, "P3", 3_000)):
                item = new_item(make_event(n, "add", 3, product, 1, at), rules)
                assert item is not None
                await engine.apply([item])
            return await stored_profiles(client, keys)
        finally:
            async for key in client.scan_iter(match=f"{keys.namespace}:*", count=1000):
                await client.delete(key)
            await client.aclose()

    cart = asyncio.run(run())["customer:C1"].cart
    assert cart is not None and {line.product_id: line.quantity for line in cart.lines} == {"P1": 1, "P2": 1, "P3": 1}


class RecordingStore(HookedStore):
    """A store that keeps each commit's answer (True: written, False: the fence refused it)."""

    def __init__(self, client: Redis, keys: Keys) -> None:
        super().__init__(client, keys)
        self.answers: list[bool] = []

    async def commit(self, view: ClusterView, writes: Sequence[ClusterWrite]) -> bool:
        answer = await super().commit(view, writes)
        self.answers.append(answer)
        return answer


def test_a_commit_writes_nothing_when_what_its_read_saw_changed(settings: Settings) -> None:
    """Each part of the commit's fence, one at a time, between worker A's read and its commit: worker B commits
    to the same cluster (its version token), an operator unlinks an identifier (the unlinked set), B founds the
    cluster of an identifier A found in none (the index). A's first commit must write nothing; its retry folds
    what changed, and Redis ends as one sequential fold of every event."""
    assert settings.redis_url
    rules = FoldRules()
    keys = Keys(f"fence{uuid.uuid4().hex[:10]}")
    events = [make_event(n, "add", sender, f"P{n}", 1, 1_000 * n) for n, sender in enumerate((3, 3, 3, 3, 1, 1))]

    def item(n: int) -> Any:
        found = new_item(events[n], rules)
        assert found is not None
        return found

    async def run() -> tuple[list[list[bool]], dict[str, StoredProfile]]:
        client = Redis.from_url(settings.redis_url or "", decode_responses=True)
        a = RecordingStore(client, keys)
        engine_a, engine_b = ClusterEngine(a, rules), ClusterEngine(RedisClusterStore(client, keys), rules)
        answers = []
        try:
            await engine_a.apply([item(0)])  # C1's cluster exists, A holds it in its cache

            async def b_commits_to_c1() -> None:
                await engine_b.apply([item(1)])

            async def operator_unlinks() -> None:
                await client.sadd(keys.unlinked(), "email_hash:" + "9" * 64)

            async def b_founds_a2() -> None:
                await engine_b.apply([item(5)])

            for n, rival in ((2, b_commits_to_c1), (3, operator_unlinks), (4, b_founds_a2)):
                a.answers.clear()
                a.before_commit = rival
                await engine_a.apply([item(n)])
                answers.append(list(a.answers))
            return answers, await stored_profiles(client, keys)
        finally:
            async for key in client.scan_iter(match=f"{keys.namespace}:*", count=1000):
                await client.delete(key)
            await client.aclose()

    answers, held = asyncio.run(run())
    assert answers == [[False, True]] * 3
    expected = reference(events, rules)
    assert {k: view(v) for k, v in held.items()} == {k: view(v) for k, v in expected.items()}
