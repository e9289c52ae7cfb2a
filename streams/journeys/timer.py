"""The wall-clock side of follow-ups: claim the checks that came due and send each to its profile.

Runs as a Faust ``app.timer`` on every worker (see :func:`streams.app.build_app`). It only *claims and emits*
(Faust cannot write tables from a timer, and the decision belongs to the fold that sees the profile's events in
order): each claimed check becomes a ``journey_due`` command on ``events.by_customer``, keyed by the profile,
and the fold of :mod:`streams.journeys.processing` decides. The schedule lives in Redis, so checks survive a
restart, and fire with no new traffic; a claim holds for ``lease_ms``, so a worker that dies between claim and
send leaves the check to be claimed again (the fold then fires it at most once per episode).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

from streams.domain.attribution import AttributionRules
from streams.journeys.processing import JOURNEY_DUE
from streams.journeys.store import JourneyStore
from streams.processor import BY_CUSTOMER, Sink
from streams.records import Command

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
    """One tick: claim what is due, send a command per check, then release the claims Kafka acknowledged."""

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

    async def tick(self, sink: Sink) -> int:
        """Claim and emit due checks; returns how many were sent."""
        if not self._meta_written:
            await self._store.write_meta(self._attribution)
            self._meta_written = True
        now = self._clock()
        claimed = await self._store.claim(now, self._lease_ms, self._batch)
        if not claimed:
            return 0
        commands = [
            Command(
                JOURNEY_DUE,
                f"due:{c.kind}:{c.episode_id}:{c.due_ms}",
                c.profile_key,
                c.profile_key,
                {"kind": c.kind, "episode": c.episode_id, "due_ms": c.due_ms, "fired_at_ms": now},
            ).to_outgoing(BY_CUSTOMER)
            for c in claimed
        ]
        await sink.send_and_wait(commands)
        await self._store.release(claimed)
        log.debug("due checks sent", extra={"count": len(claimed)})
        return len(claimed)
