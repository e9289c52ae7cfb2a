"""``GET /v1/customers/{id}/journey``: what a customer did, where, with whom and in what order, across channels.

The answer is the events of the customer's identity cluster that the merge core gave them (see
:mod:`streams.journeys.timeline`): the cluster's log is read in one snapshot and folded with the worker's rules
on each request, so it follows merges, unlinks and erasure exactly as the record does.
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.store import ReadStore, profile_key_for
from connectors.auth import KeyRing
from connectors.http import HttpError, json_response
from streams.domain.fold import FoldRules
from streams.domain.identity import customer_id_from_key
from streams.journeys.timeline import JourneyEntry, journey_of

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "MAX_LOG_ITEMS", "timeline_router"]

DEFAULT_LIMIT: Final = 50
#: Most entries one page returns: a page is one JSON answer, keep it well under a megabyte.
MAX_LIMIT: Final = 500
#: Largest cluster log folded on read (each request folds the whole log, linear in its size: about a second
#: here for this many). Above it the route answers 422 and the journey is to be read from `events.by_customer`.
MAX_LOG_ITEMS: Final = 20_000

_EXAMPLE: Final = {
    "profile": "customer:C-42",
    "customer_id": "C-42",
    "total": 4,
    "next_cursor": None,
    "events": [
        {
            "event_id": "0b9e...-4",
            "occurred_at_ms": 1732464000000,
            "event_type": "order_collected",
            "channel": "store",
            "device_kind": "pos_till",
            "store_id": "S0231",
            "site": None,
            "actor": {"actor_id": "E10442", "role": "employee"},
            "summary": "order ORD-77 collected at S0231",
            "step": {"session_id": None, "episode": "order:ORD-77"},
            "profile": "customer:C-42",
        },
        {
            "event_id": "0b9e...-3",
            "occurred_at_ms": 1732377600000,
            "event_type": "order_placed",
            "channel": "web",
            "device_kind": "desktop_browser",
            "store_id": None,
            "site": "shop.example.com",
            "actor": None,
            "summary": "order ORD-77 placed: 499.00 EUR, click_and_collect at S0231, codes SPRING10",
            "step": {"session_id": "web-s-981", "episode": "cart:0b9e...-3"},
            "profile": "customer:C-42",
        },
    ],
}


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
            200: {
                "description": "A page of the journey, newest first",
                "content": {"application/json": {"example": _EXAMPLE}},
            },
            400: {"description": "A malformed since, until, limit or cursor"},
            404: {"description": "The backbone has no event of this customer"},
            422: {"description": f"The customer's cluster log holds more than {MAX_LOG_ITEMS} items"},
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
        `total` counts the events within since/until. Follows merges, operator unlinks and erasure like the record.
        """
        keyring.require_read(request.headers)
        first, before = _ms("since", since), _ms("until", until)
        size, after = _limit(limit), _cursor(cursor)
        profile = await store.resolve(profile_key_for(customer_id))
        found = await store.cluster_log(profile)
        if found is None:
            raise HttpError(404, "unknown_customer", f"no event of {customer_id!r} was processed")
        cid, count = found
        if count > MAX_LOG_ITEMS:
            raise HttpError(
                422,
                "journey_too_long",
                f"the cluster of {customer_id!r} holds {count} items, more than the {MAX_LOG_ITEMS} folded on read: "
                "read this customer's history from the events.by_customer topic",
            )
        items, unlinked = await store.cluster_items(cid)
        entries = [
            e
            for e in journey_of(items, rules, profile, unlinked=unlinked)
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
