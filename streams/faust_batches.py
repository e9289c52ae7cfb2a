"""Batches from a Faust stream: whatever is ready, filled in the background while the last batch is processed.

Why not ``Stream.take_events(max, within)``: it fills a batch only after the previous one was processed (the
stream is held while the agent works) and then waits until ``max`` events or ``within`` seconds. Faust hands an
agent an event every ~150-250 µs here, so a 20 ms ``within`` cut a drain's batches at ~150 events (not 500),
and every batch paid the worker's fixed costs (Redis round trips, one Kafka acknowledgement) again; a longer
``within`` would add its wait to every event of live traffic. :func:`ready_batches` instead

- keeps taking events from the stream into the next batch while the caller processes the current one (Faust
  moves events along while the worker awaits Redis and Kafka), up to ``max_`` events;
- hands over a batch as soon as nothing more is queued for the agent (no wait under live traffic), or when it
  is full, or ``within_s`` after its first event;
- acks a batch's events only after the caller finished it (the caller's loop body returned) and, given
  ``durable``, once the awaitable ``durable()`` made right after that completed: so Faust commits no offset
  whose outputs are not durable. The caller meanwhile gets the next batch: the outputs' acknowledgement by Kafka
  (20-50 ms a batch) overlaps the next batch's work instead of stopping the worker. At most one batch waits so,
  batches are acked in order, and a batch whose ``durable()`` did not complete is never acked (it is re-read).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

__all__ = ["YIELD_EVERY", "ready_batches"]

#: The filler yields to the loop after this many events: a few ms of Faust's per-event work at most. After every
#: event (until session 12) it cost the worker 60-150 µs of CPU per event (benchmarks/README.md, session 12).
YIELD_EVERY = 64


async def ready_batches(
    stream: Any, max_: int, within_s: float, durable: Callable[[], Awaitable[None]] | None = None
) -> AsyncIterator[list[Any]]:
    """Yield lists of Faust events from ``stream`` (an agent's stream); see the module docstring."""
    stream.enable_acks = False  # acked below, once the caller is done with the batch
    buffer: list[Any] = []
    arrived = asyncio.Event()  # the buffer got an event
    ready = asyncio.Event()  # the buffer is full, or nothing more is queued for the agent
    room = asyncio.Event()  # the buffer is below max_
    room.set()

    def queued() -> bool:
        # Events Faust already delivered to this agent that the filler has not taken yet.
        queue = getattr(stream.channel, "queue", None)
        return queue is not None and not queue.empty()

    async def fill() -> None:
        taken = 0
        async for event in stream.events():
            while len(buffer) >= max_:
                room.clear()
                await room.wait()
            buffer.append(event)
            arrived.set()
            if len(buffer) >= max_ or not queued():
                ready.set()
            taken += 1
            if taken % YIELD_EVERY == 0:
                # Faust hands over queued events without yielding to the loop: the filler would hold it for a
                # whole batch (~100 ms) while the worker's Redis reply or Kafka acknowledgement waits.
                await asyncio.sleep(0)

    async def ack_when_durable(events: list[Any], done: asyncio.Future[None]) -> None:
        await done
        for event in events:
            await stream.ack(event)

    filler: asyncio.Future[Any] = asyncio.ensure_future(fill())
    done: asyncio.Future[None] | None = None  # the last batch's durable()
    acking: asyncio.Future[None] | None = None  # the last batch's acks, waiting for done
    try:
        ended = False  # the stream stopped: hand over what was taken, then stop
        while buffer or not ended:
            if not buffer:
                arrived.clear()
                ended = await _until(arrived, filler, None)
                continue
            if not ended and len(buffer) < max_ and queued():
                ready.clear()
                ended = await _until(ready, filler, within_s)
            batch = buffer[:max_]
            del buffer[:max_]
            room.set()
            yield batch
            if durable is None:
                for event in batch:
                    await stream.ack(event)
                continue
            done = asyncio.ensure_future(durable())  # started now, awaited beside the next batch's processing
            if acking is not None:
                await acking  # the previous batch's: in order, and at most one batch not yet durable
            acking = asyncio.ensure_future(ack_when_durable(batch, done))
        if acking is not None:
            await acking
    finally:
        for waiting in (acking, done):  # stopped or failed: a batch not acked yet stays so, and is read again
            if waiting is not None and not waiting.done():
                waiting.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):  # what stopped us is what is raised
                    await waiting
        filler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await filler


async def _until(flag: asyncio.Event, filler: asyncio.Future[Any], timeout: float | None) -> bool:
    """Wait for ``flag`` (at most ``timeout``); True if the stream ended instead (re-raising what stopped it)."""
    waiter: asyncio.Future[Any] = asyncio.ensure_future(flag.wait())
    done, _ = await asyncio.wait({waiter, filler}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    if waiter not in done:
        waiter.cancel()
    if filler in done:
        filler.result()
        return True
    return False
