"""The wall-clock side of follow-ups: claim the checks that came due and fold each into its profile's cluster.

Runs as a Faust ``app.timer`` on every worker (see :func:`streams.app.build_app`). It only *claims and hands
over*: each claimed check becomes an item of its profile's cluster log (``apply``, normally
:meth:`streams.processor.FoldStage.apply_dues`), and the fold of :mod:`streams.journeys.processing` decides in
order with the profile's events. The schedule lives in Redis, so checks survive a
restart, and fire with no new traffic; a claim holds for ``lease_ms``, so a worker that dies between claim and
send leaves the check to be claimed again (the fold then fires it at most once per episode).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

from streams.domain.attribution import AttributionRules
from streams.domain.fold import DueCheck
from streams.journeys.store import JourneyStore

__all__ = ["FollowUpTimer"]

log = logging.getLogger(__name__)

#: How long a claim holds before another worker may take the check: far above a Kafka send's worst case
#: (the producer's own retries give up well within it).
DEFAULT_LEASE_MS: Final = 60_000
#: Checks claimed per tick; the rest wait for the next tick (bounds one tick's work after an outage).
DEFAULT_BATCH: Final = 500


def _now_ms() -> int:
    return int(time.time() * 1000)


class FollowUpTimer:
    """One tick: claim what is due, fold each check into its cluster, then release the claims."""

    def __init__(
        self,
        store: JourneyStore,
        attribution: AttributionRules,
        clock: Callable[[], int] = _now_ms,
        lease_ms: int = DEFAULT_LEASE_MS,
        batch: int = DEFAULT_BATCH,
    ) -> None:
        self._store = store
        self._attribution = attribution
        self._clock = clock
        self._lease_ms = lease_ms
        self._batch = batch
        self._meta_written = False

    async def tick(self, apply: Callable[[Sequence[DueCheck]], Awaitable[None]]) -> int:
        """Claim due checks and hand them to ``apply``; returns how many were handed over."""
        if not self._meta_written:
            await self._store.write_meta(self._attribution)
            self._meta_written = True
        now = self._clock()
        claimed = await self._store.claim(now, self._lease_ms, self._batch)
        if not claimed:
            return 0
        await apply([DueCheck(c.profile_key, c.kind, c.episode_id, c.due_ms, now) for c in claimed])
        await self._store.release(claimed)
        log.debug("due checks applied", extra={"count": len(claimed)})
        return len(claimed)
