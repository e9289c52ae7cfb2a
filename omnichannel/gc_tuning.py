"""The cycle collector tuned for the project's long-lived processes: the stream worker and the HTTP server.

CPython collects its youngest generation every 700 net allocations and, every so often, walks every object
the process holds. Both processes allocate per event or per request (dicts, records, coroutines) while
holding a large, stable heap (modules, schemas, the app; the worker's cache of committed clusters), so the
default thresholds made collection a large share of their CPU: ~20 % of the worker's stage, ~16 % of the
collector's under load (`benchmarks/README.md`, sessions 6 and 9). Nearly everything a request or an event
makes is freed by reference counting, which this does not delay; only reference cycles wait longer (a few MB
of them at most).
"""

from __future__ import annotations

import gc
from typing import Final

__all__ = ["GC_NEW_OBJECTS", "tune_gc"]

#: Objects allocated (net) between two collections of the youngest generation; CPython's default is 700.
GC_NEW_OBJECTS: Final = 50_000


def tune_gc() -> None:
    """Freeze what start-up built out of every collection, and collect far less often; call once start-up is done."""
    gc.freeze()
    gc.set_threshold(GC_NEW_OBJECTS, 20, 100)
