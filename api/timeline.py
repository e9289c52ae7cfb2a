"""``GET /v1/customers/{id}/journey``: what a customer did, where, with whom and in what order, across channels.

The answer is the events of the customer's identity cluster that the merge core gave them (see
:mod:`streams.journeys.timeline`): the cluster's log is read in one snapshot and folded with the worker's rules
on each request (in a worker thread), so it follows merges and unlinks exactly as the record does; an erasure
removes the events from the log, and so from the journey.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api import examples
from api.openapi import READ_ERRORS, bad_request, not_found, ok
from api.store import ReadStore, profile_key_for
from connectors.auth import KeyRing
from connectors.http import HttpError, json_response
from streams.domain.fold import FoldRules
from streams.domain.identity import customer_id_from_key
from streams.journeys.timeline import JourneyEntry, journey_of

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "timeline_router"]

DEFAULT_LIMIT: Final = 50
#: Most entries one page returns: a page is one JSON answer, keep it well under a megabyte.
MAX_LIMIT: Final = 500


def _ms(name: str, raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise HttpError(400, f"invalid_{name}", f"{name}={raw!r} must be epoch milliseconds, e.g. {name}=1732377600000")
    return int(raw)


def _limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise HttpError(400, "invalid_limit", f"limit={raw!r} must be a whole number from 1 to {MAX_LIMIT}")
    return int(raw)


def _cursor(raw: str | None) -> tuple[int, str] | None:
    if not raw:
        return None
    at, _, event_id = raw.partition(":")
    if not at.isdigit() or not event_id:
        raise HttpError(400, "invalid_cursor", "cursor must be the next_cursor of a previous page, unchanged")
    return int(at), event_id


def timeline_router(store: ReadStore, keyring: KeyRing, rules: FoldRules) -> APIRouter:
    """The journey route; ``rules`` are the workers' (so the fold on read routes events as theirs did)."""
    router = APIRouter(tags=["read"])

    @router.get(
        "/v1/customers/{customer_id}/journey",
        summary="One customer's journey across channels",
        response_class=Response,
        responses={
            200: ok("A page of the journey, newest first.", "Journey", examples.JOURNEY),
            **bad_request(
                "A malformed since, until, limit or cursor.",
                "invalid_limit",
                f"limit='5000' must be a whole number from 1 to {MAX_LIMIT}",
            ),
            **not_found(
                "The backbone has no event of this customer (never seen, or erased).",
                "unknown_customer",
                "no event of 'C-42' is held",
            ),
            **READ_ERRORS,
        },
    )
    async def get_journey(
        customer_id: str,
        request: Request,
        since: str | None = None,
        until: str | None = None,
        limit: str | None = None,
        cursor: str | None = None,
    ) -> Response:
        """The customer's events on every channel and under every identifier merged into them (an anonymous
        phone's basket before the login, an SMS to their phone number...), newest first. Each says where
        (`channel`, `device_kind`, `store_id` / `site`), with whom (`actor`: employee or agent), what
        (`event_type`, `summary`) and the journey step (`step.session_id`, `step.episode`: `cart:<id>` from the
        first line to the order, `quote:<id>`, `ticket:<id>`, `contact:<id>`, `order:<id>`).

        `since` (inclusive) and `until` (exclusive) bound the event time in epoch ms; `limit` (default 50, at
        most 500) sizes a page; pass `next_cursor` back as `cursor` for the next, older page (null: last page).
        `total` counts the events within since/until. Follows merges and operator unlinks like the record; an
        erased customer has no journey (404). The whole history is kept (the cluster's log), so each request
        folds it: cost linear in the customer's number of events.
        """
        keyring.require_read(request.headers)
        first, before = _ms("since", since), _ms("until", until)
        size, after = _limit(limit), _cursor(cursor)
        profile = await store.resolve(profile_key_for(customer_id))
        cid = await store.cluster_of(profile)
        if cid is None:
            raise HttpError(404, "unknown_customer", f"no event of {customer_id!r} is held")
        items, unlinked = await store.cluster_items(cid)
        # The fold is CPU work, linear in the log: off the event loop, so other requests are not held up.
        journey = await asyncio.to_thread(journey_of, items, rules, profile, unlinked=unlinked)
        entries = [
            e
            for e in journey
            if (first is None or e.occurred_at_ms >= first) and (before is None or e.occurred_at_ms < before)
        ]
        start = 0 if after is None else next((n for n, e in enumerate(entries) if e.order < after), len(entries))
        page = entries[start : start + size]
        more = start + size < len(entries)
        body: dict[str, Any] = {
            "profile": profile,
            "customer_id": customer_id_from_key(profile),
            "total": len(entries),
            "next_cursor": _next(page[-1]) if more and page else None,
            "events": [e.to_dict() for e in page],
        }
        return json_response(200, body)

    return router


def _next(entry: JourneyEntry) -> str:
    return f"{entry.occurred_at_ms}:{entry.event_id}"
