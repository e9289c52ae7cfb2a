"""Event ids made in bulk: the same kind of id as ``uuid.uuid4()``, never repeated, not even across a fork."""

from __future__ import annotations

import os
import threading
import uuid

import pytest

from connectors.envelope import uuid4_text
from connectors.ids import UuidPool, uuid4_batch


def test_bulk_ids_are_canonical_random_uuid4_texts() -> None:
    ids = uuid4_batch(2000)
    parsed = [uuid.UUID(text) for text in ids]
    assert all(u.version == 4 and u.variant == uuid.RFC_4122 for u in parsed)
    assert [str(u) for u in parsed] == ids, "lowercase, dashed, as str(uuid.uuid4()) writes them"
    assert len(set(ids)) == len(ids)
    # Every non-fixed bit varies (122 random bits): no position is stuck across 2,000 ids.
    fixed = 0xF000 << 64 | 0xC000 << 48  # version nibble and variant bits
    varying = 0
    for u in parsed:
        varying |= u.int ^ parsed[0].int
    assert varying | fixed == (1 << 128) - 1


def test_a_pool_hands_each_id_out_once_across_refills_and_threads() -> None:
    pool = UuidPool(size=7)  # small: many refills race between the threads
    seen: list[str] = []

    def draw() -> None:
        seen.extend(pool() for _ in range(700))

    threads = [threading.Thread(target=draw) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 2800
    assert len(set(seen)) == 2800


def test_a_forked_child_never_repeats_the_parents_remaining_ids() -> None:
    pool = UuidPool(size=64)
    pool()  # the pool now holds 63 ids the parent will hand out
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next ids and leave at once
        os.close(read)
        os.write(write, ",".join(pool() for _ in range(10)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = pipe.read().split(",")
    os.waitpid(pid, 0)
    parent = [pool() for _ in range(63)]
    assert len(child) == 10
    assert not set(child) & set(parent)


def test_the_default_factory_and_the_pool_size_bound() -> None:
    assert uuid.UUID(uuid4_text()).version == 4
    assert uuid4_text() != uuid4_text()
    with pytest.raises(ValueError, match="at least one id"):
        UuidPool(size=0)
