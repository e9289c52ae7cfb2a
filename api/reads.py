"""``/v1/customers``, ``/v1/identities``: the unified record, the cart and who an identifier belongs to.

Every answer carries ``freshness``: per channel, the newest event time (ms) applied to this customer, so a
channel app can tell how current the view is. Reading needs a read (or admin) key: a channel key only
publishes (see :mod:`connectors.auth`). A cart read follows merges: asking for an anonymous profile absorbed
at login returns the customer's cart.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sse_starlette.sse import EventSourceResponse
from starlette.datastructures import Headers

from api import examples
from api.openapi import READ_ERRORS, bad_request, not_found, ok
from api.store import ReadStore, profile_key_for
from connectors.auth import KeyRing
from connectors.collector.openapi import KEY_SECURITY
from connectors.http import HttpError, json_response
from streams.domain.identity import IDENTIFIER_TYPES

__all__ = ["reads_router"]

_NO_CUSTOMER = not_found(
    "The backbone processed no event of this customer (or profile).",
    "unknown_customer",
    "no customer record for 'C000123456': no event of it was processed",
)


def _not_found(what: str, detail: str) -> HttpError:
    return HttpError(404, f"unknown_{what}", detail)


def reads_router(store: ReadStore, keyring: KeyRing, *, idle_poll_s: float = 15.0) -> APIRouter:
    """The read routes; ``idle_poll_s`` is how often a quiet live stream checks for a merge (and pings)."""
    router = APIRouter(tags=["read"])

    async def freshness(profile: str) -> dict[str, int]:
        record = await store.customer(profile)
        return dict(record["freshness"]) if record else {}

    @router.get(
        "/v1/customers/{customer_id}",
        summary="The unified customer record",
        response_class=Response,
        responses={200: ok("The record.", "CustomerAnswer", examples.CUSTOMER), **_NO_CUSTOMER, **READ_ERRORS},
    )
    async def get_customer(customer_id: str, request: Request) -> Response:
        """Identities, channels used, recent searches and products, consent, experience signals, freshness.

        `customer_id`: a customer id (`C-42`), or a profile key for a shopper not identified yet
        (`anonymous:anon-7f3a`). 404 when the backbone has no record of it.
        """
        keyring.require_read(request.headers)
        profile = await store.resolve(profile_key_for(customer_id))
        record = await store.customer(profile)
        if record is None:
            raise _not_found("customer", f"no customer record for {customer_id!r}: no event of it was processed")
        return json_response(200, {"profile": profile, "customer": record, "freshness": record["freshness"]})

    @router.get(
        "/v1/customers/{customer_id}/cart",
        summary="The current cart",
        response_class=Response,
        responses={200: ok("The cart.", "CartAnswer", examples.CART), **_NO_CUSTOMER, **READ_ERRORS},
    )
    async def get_cart(customer_id: str, request: Request) -> Response:
        """The open (or last) cart of a customer; lines carry quantity, unit price and provenance."""
        keyring.require_read(request.headers)
        profile, cart, record = await store.cart_view(profile_key_for(customer_id))
        fresh = dict(record["freshness"]) if record else {}
        if cart is None and not fresh:
            raise _not_found("customer", f"no cart and no record for {customer_id!r}: no event of it was processed")
        return json_response(200, {"profile": profile, "cart": cart or _empty_cart(profile), "freshness": fresh})

    @router.get(
        "/v1/identities/{identifier_type}/{value}",
        summary="Which customer an identifier belongs to",
        response_class=Response,
        responses={
            200: ok("The profile holding the identifier.", "IdentityAnswer", examples.IDENTITY),
            **bad_request(
                "`identifier_type` is not one of the identifier types.",
                "unknown_identifier_type",
                f"'email' is not one of {', '.join(IDENTIFIER_TYPES)}",
            ),
            **not_found(
                "The identifier is not linked to any profile.",
                "unknown_identifier",
                "anonymous_id 'anon-7f3a' is not linked to any profile",
            ),
            **READ_ERRORS,
        },
    )
    async def get_identity(identifier_type: str, value: str, request: Request) -> Response:
        """So a freshly logged-in device (or an anonymous one) finds its profile and cart.

        ``identifier_type`` is one of customer_id, loyalty_card, email_hash, phone_hash, anonymous_id, device_id.
        """
        keyring.require_read(request.headers)
        if identifier_type not in IDENTIFIER_TYPES:
            raise HttpError(
                400, "unknown_identifier_type", f"{identifier_type!r} is not one of {', '.join(IDENTIFIER_TYPES)}"
            )
        owner = await store.owner(identifier_type, value)
        if owner is None:
            raise _not_found("identifier", f"{identifier_type} {value!r} is not linked to any profile")
        profile = await store.resolve(owner)
        customer_id = profile.removeprefix("customer:") if profile.startswith("customer:") else None
        body = {
            "identifier": {"type": identifier_type, "value": value},
            "profile": profile,
            "customer_id": customer_id,
            "freshness": await freshness(profile),
        }
        return json_response(200, body)

    @router.get(
        "/v1/customers/{customer_id}/cart/stream",
        summary="Live cart changes (server-sent events)",
        response_class=Response,
        responses={
            200: {
                "description": "A `text/event-stream`: `event: cart` lines whose `data` is `{profile, cart}`.",
                "content": {"text/event-stream": {"schema": {"type": "string"}, "example": examples.CART_STREAM}},
            },
            401: READ_ERRORS[401],
            403: READ_ERRORS[403],
        },
        openapi_extra={"security": [*KEY_SECURITY, {"ApiKeyQuery": []}]},
    )
    async def stream_cart(customer_id: str, request: Request, api_key: str | None = None) -> EventSourceResponse:
        """First a `cart` event with the current cart, then one per change as the processors apply it.

        Follows merges: when the profile is absorbed into a customer at login, the stream moves to the
        customer's cart and says so (`profile` in each event's data). Browsers' EventSource cannot send
        headers, so the key may also come as `?api_key=` here (prefer the header elsewhere: URLs get logged).
        """
        keyring.require_read(Headers({"x-api-key": api_key}) if api_key else request.headers)
        return EventSourceResponse(_cart_events(store, profile_key_for(customer_id), idle_poll_s), ping=15)

    return router


def _empty_cart(profile: str) -> dict[str, Any]:
    customer_id = profile.removeprefix("customer:") if profile.startswith("customer:") else None
    return {
        "cart_key": profile,
        "customer_id": customer_id,
        "status": "open",
        "lines": [],
        "updated_at_ms": 0,
        "version": 0,
    }


async def _cart_events(store: ReadStore, requested: str, idle_poll_s: float) -> AsyncIterator[dict[str, str]]:
    updates = store.cart_updates()
    try:
        profile = await store.resolve(requested)
        await updates.follow(profile)  # subscribe first, then read: no change falls between the two
        cart = await store.cart(profile)
        yield {"event": "cart", "data": json.dumps({"profile": profile, "cart": cart or _empty_cart(profile)})}
        while True:
            change = await updates.next(timeout=idle_poll_s)
            now = await store.resolve(profile)
            if now != profile:  # absorbed at a login: follow the customer's cart from here on
                profile = now
                await updates.follow(profile)
                change = await store.cart(profile) or _empty_cart(profile)
            if change is not None:
                yield {"event": "cart", "data": json.dumps({"profile": profile, "cart": change})}
    except asyncio.CancelledError:
        raise
    finally:
        await updates.close()
