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
- acks a batch's events only after the caller finished it (the caller's loop body returned), so Faust commits
  no offset whose outputs are not durable; events taken into the next batch are not acked before it is done.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

__all__ = ["ready_batches"]


async def ready_batches(stream: Any, max_: int, within_s: float) -> AsyncIterator[list[Any]]:
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
        async for event in stream.events():
            while len(buffer) >= max_:
                room.clear()
                await room.wait()
            buffer.append(event)
            arrived.set()
            if len(buffer) >= max_ or not queued():
                ready.set()
            # Faust hands over queued events without yielding to the loop: without this the filler would hold
            # the loop for a whole batch (~100 ms) while the worker's Redis reply or Kafka acknowledgement waits.
            await asyncio.sleep(0)

    filler: asyncio.Future[Any] = asyncio.ensure_future(fill())
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
            for event in batch:
                await stream.ack(event)
    finally:
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
