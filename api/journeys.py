"""``/v1/attribution``, ``/v1/typology``, ``/v1/stores``: what journeys across channels add to the read API.

- ``GET /v1/attribution/matrix``: action channel x response channel, live (S5);
- ``GET /v1/typology``: how many customers are mono-, multi- or cross-channel (S6);
- ``GET /v1/segments``: how many customers are fully connected, or prefer a human contact (S6);
- ``GET /v1/stores/{store}/availability?products=A,B``: stock per product in a store (S3, click and collect);
- ``GET /v1/customers/{id}/cart/availability?store=S``: can this cart be collected in that store?

Everything is read from what the stream processors keep in Redis (see docs/journeys.md); any channel's API
key may read, as for the other read routes.
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api import examples
from api.openapi import READ_ERRORS, STOCK_ERRORS, bad_request, not_found, ok
from api.store import ReadStore, profile_key_for
from connectors.auth import KeyRing
from connectors.http import HttpError, json_response
from schemas.topics import CHANNELS
from streams.domain.cart import PRODUCT_ID_PATTERN, CartLine
from streams.domain.stock import STORE_ID_PATTERN, cart_availability
from streams.journeys.store import JourneyStore

__all__ = ["MAX_PRODUCTS", "journeys_router"]

#: Products one availability question may name: one Redis read answers it, keep it small enough for a URL.
MAX_PRODUCTS: Final = 100
_DAY_MS: Final = 24 * 3600 * 1000


def _check_store(store: str) -> None:
    if not STORE_ID_PATTERN.match(store):
        raise HttpError(
            400,
            "invalid_store",
            f"store {store!r} must match {STORE_ID_PATTERN.pattern}: send a store code, e.g. S0231",
        )


def _products(products: str | None) -> list[str]:
    names = list(dict.fromkeys(p.strip() for p in (products or "").split(",") if p.strip()))
    if not names:
        raise HttpError(400, "missing_products", "name the products to check: ?products=SKU-1,SKU-2")
    if len(names) > MAX_PRODUCTS:
        raise HttpError(
            400, "too_many_products", f"{len(names)} products named; ask for at most {MAX_PRODUCTS} at once"
        )
    bad = [p for p in names if not PRODUCT_ID_PATTERN.match(p)]
    if bad:
        raise HttpError(
            400, "invalid_product", f"product ids {bad!r} do not match {PRODUCT_ID_PATTERN.pattern}: send catalogue ids"
        )
    return names


def journeys_router(journeys: JourneyStore, reads: ReadStore, keyring: KeyRing) -> APIRouter:
    """The journeys read routes over the processors' Redis keys."""
    router = APIRouter(tags=["journeys"])

    @router.get(
        "/v1/attribution/matrix",
        summary="Action channel x response channel",
        response_class=Response,
        responses={200: ok("The live matrix.", "AttributionMatrix", examples.ATTRIBUTION), **READ_ERRORS},
    )
    async def get_matrix(request: Request) -> Response:
        """For each action channel (campaign touches), the customers exposed to it; for each response channel
        they converted on, how many of them converted with the credit going to that action channel, and the
        share. Counts are distinct identified customers since the backbone started; `dropped` counts the
        exposures and conversions given up (profile never identified within the window).
        """
        keyring.require_read(request.headers)
        raw = await journeys.matrix()
        exposed: dict[str, int] = {c: int(n) for c, n in raw["exposed"].items() if n}
        responded: dict[str, int] = {c: int(n) for c, n in raw["responded"].items() if n}
        cells = []
        for action in CHANNELS:
            for response in CHANNELS:
                converting = int(raw["converted"][(action, response)])
                if action not in exposed or not (converting or response in responded):
                    continue
                cells.append(
                    {
                        "action_channel": action,
                        "response_channel": response,
                        "exposed_customers": exposed[action],
                        "converting_customers": converting,
                        "share": converting / exposed[action],
                    }
                )
        meta = raw["meta"] or {}
        window_ms = int(meta["window_ms"]) if meta.get("window_ms") else None
        body = {
            "model": meta.get("model"),
            "window_days": None if window_ms is None else window_ms / _DAY_MS,
            "exposed_customers": exposed,
            "responding_customers": responded,
            "cells": cells,
            "dropped": {reason: int(n) for reason, n in raw["dropped"].items()},
        }
        return json_response(200, body)

    @router.get(
        "/v1/typology",
        summary="Customers per channel typology",
        response_class=Response,
        responses={200: ok("Counts per class.", "Typology", examples.TYPOLOGY), **READ_ERRORS},
    )
    async def get_typology(request: Request) -> Response:
        """Identified customers per class: `mono_channel`, `multi_channel`, `cross_channel`, and `unknown`
        (no channel used yet, e.g. only campaign sends). Each customer's own class is in its record."""
        keyring.require_read(request.headers)
        counts = await journeys.typology_counts()
        return json_response(200, {"counts": counts, "customers": sum(counts.values())})

    @router.get(
        "/v1/segments",
        summary="Customers per channel-mix segment",
        response_class=Response,
        responses={200: ok("Counts per segment.", "Segments", examples.SEGMENTS), **READ_ERRORS},
    )
    async def get_segments(request: Request) -> Response:
        """Identified customers per segment: `fully_connected` (digital channels only, several of them) and
        `prefers_human` (store or call centre in most interactions); thresholds in docs/journeys.md. A customer
        is in at most one; `customers` is every identified customer (as in `/v1/typology`), so the rest are in
        neither. Each customer's own segments are in its record."""
        keyring.require_read(request.headers)
        counts = await journeys.segment_counts()
        customers = sum((await journeys.typology_counts()).values())
        return json_response(200, {"counts": counts, "customers": customers})

    @router.get(
        "/v1/stores/{store_id}/availability",
        summary="Stock in a store",
        response_class=Response,
        responses={
            200: ok("Stock per product asked for.", "StoreAvailability", examples.STORE_AVAILABILITY),
            **bad_request(
                "A malformed store code, no products named, too many, or a malformed product id.",
                "missing_products",
                "name the products to check: ?products=SKU-1,SKU-2",
            ),
            **STOCK_ERRORS,
        },
    )
    async def get_store_availability(store_id: str, request: Request, products: str | None = None) -> Response:
        """Units available per product (`?products=SKU-1,SKU-2`), as the stock feed last reported them.

        `available` is null and `known` false for a product the store never reported: treat it as not
        collectable. Levels apply in the stock system's sequence order, so a late update never wins.
        """
        keyring.require_known(request.headers)
        _check_store(store_id)
        names = _products(products)
        levels = await journeys.stock(store_id, names)
        return json_response(200, {"store_id": store_id, "products": [_product(p, levels[p]) for p in names]})

    @router.get(
        "/v1/customers/{customer_id}/cart/availability",
        summary="Can this cart be collected in a store?",
        response_class=Response,
        responses={
            200: ok("Each line against the store's stock.", "CartAvailability", examples.CART_AVAILABILITY),
            **bad_request(
                "No store named, or a malformed store code.",
                "missing_store",
                "name the store to collect from: ?store=S0231",
            ),
            **not_found(
                "The backbone has no cart and no record of this customer.",
                "unknown_customer",
                "no cart and no record for 'C000123456'",
            ),
            **READ_ERRORS,
        },
    )
    async def get_cart_availability(customer_id: str, request: Request, store: str | None = None) -> Response:
        """Each line of the customer's current cart against the store's stock (`?store=S0231`).

        `collectable` is true only when the cart has lines and every one is known and in stock in full;
        `missing` lists the products that stand in the way. Follows merges like the cart read.
        """
        keyring.require_read(request.headers)
        if not store:
            raise HttpError(400, "missing_store", "name the store to collect from: ?store=S0231")
        _check_store(store)
        profile = await reads.resolve(profile_key_for(customer_id))
        cart = await reads.cart(profile)
        if cart is None and await reads.customer(profile) is None:
            raise HttpError(404, "unknown_customer", f"no cart and no record for {customer_id!r}")
        lines = [CartLine(**line) for line in (cart or {}).get("lines", [])]
        levels = await journeys.stock(store, [line.product_id for line in lines])
        answer = cart_availability(store, lines, levels)
        body = {
            "profile": profile,
            "store_id": store,
            "collectable": answer.collectable,
            "lines": [
                {"product_id": a.product_id, "quantity": a.quantity, "available": a.available, "ok": a.ok}
                for a in answer.lines
            ],
            "missing": [a.product_id for a in answer.lines if not a.ok],
        }
        return json_response(200, body)

    return router


def _product(product_id: str, level: dict[str, Any] | None) -> dict[str, Any]:
    if level is None:
        return {"product_id": product_id, "known": False, "available": None, "in_stock": False}
    return {
        "product_id": product_id,
        "known": True,
        "available": level["available"],
        "in_stock": level["available"] > 0,
        "sequence": level["sequence"],
        "updated_at_ms": level["at_ms"],
    }
