"""ready_batches: batch boundaries and acks (pure asyncio; the real Faust worker runs in test_worker_*).

The stream here is the three things ready_batches uses of a Faust agent stream: ``events()``, the agent
channel's ``queue`` (what Faust delivered and nobody took yet) and ``ack()``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from streams.faust_batches import YIELD_EVERY, ready_batches


class _Channel:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()


class _Stream:
    """Events put into ``channel.queue`` come out of ``events()``; None ends the stream, an exception fails it."""

    def __init__(self) -> None:
        self.channel = _Channel()
        self.enable_acks = True
        self.acked: list[int] = []
        self.taken = 0  # events handed out by events()

    async def events(self) -> AsyncIterator[int]:
        while True:
            item = await self.channel.queue.get()  # like Faust's: no yield to the loop while items are queued
            self.taken += 1
            if item is None:
                return
            if isinstance(item, Exception):
                raise item
            yield item

    async def ack(self, event: int) -> bool:
        self.acked.append(event)
        return True

    def put(self, *items: Any) -> None:
        for item in items:
            self.channel.queue.put_nowait(item)


def test_a_backlog_comes_in_full_batches_and_the_rest_without_waiting() -> None:
    asyncio.run(_a_backlog_comes_in_full_batches_and_the_rest_without_waiting())


async def _a_backlog_comes_in_full_batches_and_the_rest_without_waiting() -> None:
    stream = _Stream()
    stream.put(*range(12))
    batches = ready_batches(stream, 5, within_s=60.0)
    started = time.monotonic()
    assert await anext(batches) == [0, 1, 2, 3, 4]
    assert await anext(batches) == [5, 6, 7, 8, 9]
    assert await anext(batches) == [10, 11]  # nothing more queued: handed over at once, not after 60 s
    assert time.monotonic() - started < 10
    assert stream.enable_acks is False  # Faust must not ack on its own: the batch is acked when processed
    await batches.aclose()


def test_events_are_acked_only_after_their_batch_was_processed() -> None:
    asyncio.run(_events_are_acked_only_after_their_batch_was_processed())


async def _events_are_acked_only_after_their_batch_was_processed() -> None:
    stream = _Stream()
    stream.put(*range(7))
    batches = ready_batches(stream, 4, within_s=60.0)
    first = await anext(batches)
    await asyncio.sleep(0.01)  # the filler takes the next events meanwhile
    assert stream.acked == []  # the first batch is still being processed
    second = await anext(batches)  # resuming the generator = the first batch is done
    assert stream.acked == first
    assert second == [4, 5, 6]
    assert all(event not in stream.acked for event in second)
    await batches.aclose()
    assert stream.acked == first  # closed while processing the second: it is not acked (it will be re-read)


def test_events_arriving_during_processing_form_the_next_batch() -> None:
    asyncio.run(_events_arriving_during_processing_form_the_next_batch())


async def _events_arriving_during_processing_form_the_next_batch() -> None:
    stream = _Stream()
    stream.put(1)
    batches = ready_batches(stream, 100, within_s=60.0)
    assert await anext(batches) == [1]
    stream.put(2, 3, 4)  # arrive while batch [1] is processed
    await asyncio.sleep(0.01)
    assert await anext(batches) == [2, 3, 4]
    await batches.aclose()


def test_a_trickle_is_cut_within_the_wait() -> None:
    asyncio.run(_a_trickle_is_cut_within_the_wait())


async def _a_trickle_is_cut_within_the_wait() -> None:
    stream = _Stream()

    async def trickle() -> None:
        for n in range(1000):
            stream.put(n, n + 10_000)  # always one more queued, never a full batch
            await asyncio.sleep(0.002)

    feeder = asyncio.create_task(trickle())
    batches = ready_batches(stream, 10_000, within_s=0.05)
    started = time.monotonic()
    batch = await anext(batches)
    assert 0 < len(batch) < 2000 and time.monotonic() - started < 5
    feeder.cancel()
    await batches.aclose()


def test_the_end_of_the_stream_ends_the_batches_and_a_failure_is_raised() -> None:
    asyncio.run(_the_end_of_the_stream_ends_the_batches_and_a_failure_is_raised())


async def _the_end_of_the_stream_ends_the_batches_and_a_failure_is_raised() -> None:
    stream = _Stream()
    stream.put(1, 2, None)
    assert [batch async for batch in ready_batches(stream, 10, within_s=60.0)] == [[1, 2]]

    failing = _Stream()
    failing.put(RuntimeError("broker gone"))
    with pytest.raises(RuntimeError, match="broker gone"):
        await anext(ready_batches(failing, 10, within_s=60.0))


class _Outputs:
    """The ``durable`` hook: each call is one batch's outputs; the test says when Kafka acknowledged which."""

    def __init__(self) -> None:
        self.flushes: list[asyncio.Future[None]] = []

    def durable(self) -> asyncio.Future[None]:
        flush: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.flushes.append(flush)
        return flush


def test_the_next_batch_is_processed_while_the_last_ones_outputs_are_acknowledged() -> None:
    asyncio.run(_the_next_batch_is_processed_while_the_last_ones_outputs_are_acknowledged())


async def _the_next_batch_is_processed_while_the_last_ones_outputs_are_acknowledged() -> None:
    stream, outputs = _Stream(), _Outputs()
    stream.put(*range(9))
    batches = ready_batches(stream, 3, within_s=60.0, durable=outputs.durable)
    first = await anext(batches)
    second = await anext(batches)  # handed over although the first batch's outputs are not acknowledged
    assert second == [3, 4, 5] and len(outputs.flushes) == 1
    await asyncio.sleep(0.01)
    assert stream.acked == []  # processed, outputs not durable: not acked
    outputs.flushes[0].set_result(None)
    await asyncio.sleep(0.01)
    assert stream.acked == first  # acked as soon as its outputs are durable, while the second is processed
    third = asyncio.ensure_future(anext(batches))  # the second is done; its outputs are not acknowledged yet
    await asyncio.sleep(0.01)
    assert third.done() and await third == [6, 7, 8]
    assert stream.acked == first
    await batches.aclose()  # stopped with the second's outputs unacknowledged: it is read again, never acked
    assert stream.acked == first


def test_a_batch_waits_for_the_one_before_it_and_acks_stay_in_order() -> None:
    asyncio.run(_a_batch_waits_for_the_one_before_it_and_acks_stay_in_order())


async def _a_batch_waits_for_the_one_before_it_and_acks_stay_in_order() -> None:
    stream, outputs = _Stream(), _Outputs()
    stream.put(*range(6), None)
    batches = ready_batches(stream, 2, within_s=60.0, durable=outputs.durable)
    assert await anext(batches) == [0, 1]
    assert await anext(batches) == [2, 3]
    # The second batch is done too: the third is not handed over while the first still waits (one batch at most).
    third = asyncio.ensure_future(anext(batches))
    await asyncio.sleep(0.01)
    assert not third.done()
    outputs.flushes[1].set_result(None)  # Kafka acknowledged the second batch's outputs before the first's
    await asyncio.sleep(0.01)
    assert stream.acked == [] and not third.done()  # never ahead of the first
    outputs.flushes[0].set_result(None)
    assert await third == [4, 5]
    assert stream.acked == [0, 1, 2, 3]
    rest = asyncio.ensure_future(anext(batches, None))  # the end of the stream: the last batch's outputs first
    await asyncio.sleep(0.01)
    assert not rest.done()
    outputs.flushes[2].set_result(None)
    assert await rest is None
    assert stream.acked == list(range(6))


def test_outputs_that_kafka_refused_leave_their_batch_unacked_and_stop_the_batches() -> None:
    asyncio.run(_outputs_that_kafka_refused_leave_their_batch_unacked_and_stop_the_batches())


async def _outputs_that_kafka_refused_leave_their_batch_unacked_and_stop_the_batches() -> None:
    stream, outputs = _Stream(), _Outputs()
    stream.put(*range(4))
    batches = ready_batches(stream, 2, within_s=60.0, durable=outputs.durable)
    await anext(batches)
    await anext(batches)
    outputs.flushes[0].set_exception(RuntimeError("not acknowledged"))
    with pytest.raises(RuntimeError, match="not acknowledged"):
        await anext(batches)
    assert stream.acked == []


def test_taking_a_backlog_lets_the_rest_of_the_worker_run() -> None:
    asyncio.run(_taking_a_backlog_lets_the_rest_of_the_worker_run())


async def _taking_a_backlog_lets_the_rest_of_the_worker_run() -> None:
    """While the filler takes a queued backlog, a Redis reply or Kafka acknowledgement the worker awaits (here: a
    task that only needs the loop) is served within every YIELD_EVERY events, not once the whole batch is taken."""
    stream = _Stream()
    total = 20 * YIELD_EVERY
    stream.put(*range(total))
    seen_at: list[int] = []  # how many events the filler had taken each time the other task ran

    async def other_work() -> None:
        while stream.taken < total:
            seen_at.append(stream.taken)
            await asyncio.sleep(0)

    other = asyncio.ensure_future(other_work())
    batches = ready_batches(stream, total, within_s=60.0)
    assert await anext(batches) == list(range(total))
    await other
    during = sorted({n for n in seen_at if 0 < n < total})
    assert during, "the filler held the loop for the whole backlog"
    gaps = [b - a for a, b in zip([0, *during], [*during, total], strict=True)]
    assert max(gaps) <= YIELD_EVERY + 1
    await batches.aclose()
