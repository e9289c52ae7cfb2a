"""The cycle collector tuned for the project's long-lived processes: the stream worker and the HTTP server.

CPython collects its youngest generation every 700 net allocations and, every so often, walks every object
the process holds. Both processes allocate per event or per request (dicts, records, coroutines) while
holding a large, stable heap (modules, schemas, the app; the worker's cache of committed clusters), so the
default thresholds made collection a large share of their CPU: ~20 % of the worker's stage, ~16 % of the
collector's under load (`benchmarks/README.md`, sessions 6 and 9). Nearly everything a request or an event
makes is freed by reference counting, which this does not delay; only reference cycles wait longer (a few MB
of them at most).

The stream worker also collects between its batches (:func:`collect_between_batches`): its cache of committed
clusters replaces objects one for one, which leaves the count that triggers a collection nearly unchanged while
the young generation fills with the replacements, until a collection in the middle of a batch walks all of them.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Final

__all__ = ["FULL_COLLECTION_MIN_INTERVAL_S", "GC_NEW_OBJECTS", "BatchCollector", "collect_between_batches", "tune_gc"]

#: Objects allocated (net) between two collections of the youngest generation; CPython's default is 700.
GC_NEW_OBJECTS: Final = 50_000


def tune_gc() -> None:
    """Freeze what start-up built out of every collection, and collect far less often; call once start-up is done."""
    gc.freeze()
    gc.set_threshold(GC_NEW_OBJECTS, 20, 100)


#: The least time between two full collections made by :class:`BatchCollector` (each walks the whole heap, the
#: worker's cluster cache included: 100-200 ms seen on the benchmark's machine).
FULL_COLLECTION_MIN_INTERVAL_S: Final = 300.0


class BatchCollector:
    """Collects the young generation after every batch, the older ones at the ratios of the process's thresholds.

    Measured (benchmarks/README.md, session 14): left to CPython, the worker's young generation was collected a
    few times a minute in pauses that grew from 9 to 84 ms as its cache filled (a net allocation count, which
    the cache's one-for-one replacements hardly move, decides when; what the collection walks is every object
    made since). After each batch it holds only that batch's survivors: under 1 ms for a batch of 10 events.
    The middle generation follows every ``threshold1`` young collections, the old one every ``threshold2`` middle
    ones but at most once per ``full_min_interval_s``, a full walk of the heap being the one long pause left.
    """

    def __init__(
        self,
        full_min_interval_s: float = FULL_COLLECTION_MIN_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._full_min_interval_s = full_min_interval_s
        self._clock = clock
        self._last_full = clock()

    def __call__(self) -> int:
        """Collect now; returns the oldest generation collected (0, 1 or 2)."""
        _, young_since_middle, middle_since_full = gc.get_count()
        _, middle_every, full_every = gc.get_threshold()
        generation = 0
        if young_since_middle + 1 >= middle_every:
            generation = 1
            now = self._clock()
            if middle_since_full + 1 >= full_every and now - self._last_full >= self._full_min_interval_s:
                generation, self._last_full = 2, now
        gc.collect(generation)
        return generation


#: The worker's collector (one per process: the generations are process-wide).
collect_between_batches: Final = BatchCollector()
