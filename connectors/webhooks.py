"""The steps every webhook router shares: authenticate (signature or key), read, map, validate, publish.

A webhook request is all-or-nothing: if any native item is malformed, the answer is 422 naming each
problem (``[2].timestamp: ...``) and nothing is published. Native events a channel deliberately does not
track (e.g. an e-mail ``deferred``) are listed under ``ignored`` in a 202, so the provider does not retry.
Deterministic event ids make a provider's retry of an already stored event harmless downstream.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from connectors.auth import forbidden
from connectors.channels.base import ChannelAdapter, Mapped, WebhookContext
from connectors.collector.openapi import error_response, ref
from connectors.envelope import normalise
from connectors.errors import InvalidEventError, SignatureError
from connectors.http import HttpError, json_response, parse_json, problems_json, read_body, require_published
from connectors.signatures import verify
from schemas.validation import Problem

__all__ = [
    "accept",
    "keyed_json_router",
    "limit_items",
    "map_native",
    "read_signed",
    "require_channel_key",
    "webhook_responses",
]


async def read_signed(
    request: Request, ctx: WebhookContext, channel: str, signature_header: str, timestamp_header: str
) -> tuple[bytes, int]:
    """The body and its signed timestamp (epoch seconds); 401 naming what is wrong with the signature."""
    body = await read_body(request, ctx.config.max_body_bytes)
    secret = ctx.config.webhook_secrets.get(channel)
    if secret is None:  # not mounted without a secret; kept as a guard
        raise HttpError(401, "bad_signature", f"no webhook secret is configured for {channel}")
    try:
        sent_at = verify(
            secret,
            body=body,
            signature=request.headers.get(signature_header),
            timestamp=request.headers.get(timestamp_header),
            now_s=ctx.wall_clock_s(),
            tolerance_s=ctx.config.webhook_tolerance_s,
            header_names=(signature_header, timestamp_header),
        )
    except SignatureError as exc:
        raise HttpError(401, "bad_signature", str(exc)) from exc
    return body, sent_at


def require_channel_key(request: Request, ctx: WebhookContext, channel: str) -> None:
    """401 without a known key, 403 when the key is not one of ``channel``'s."""
    allowed = ctx.keyring.channels(request.headers)
    if channel not in allowed:
        raise forbidden(channel, allowed)


def limit_items(document: Any, ctx: WebhookContext) -> None:
    """413 when a native JSON array holds more items than OMNICHANNEL_MAX_BATCH_EVENTS."""
    if isinstance(document, list) and len(document) > ctx.config.max_batch_events:
        raise HttpError(
            413,
            "batch_too_large",
            f"the payload has {len(document)} items; the limit is {ctx.config.max_batch_events} "
            "(OMNICHANNEL_MAX_BATCH_EVENTS): send fewer per request",
            extra={"limit": ctx.config.max_batch_events},
        )


def map_native(mapping: Callable[..., Mapped], *args: Any, **kwargs: Any) -> Mapped:
    """Run a pure native mapping; 422 listing every problem of the native payload."""
    try:
        return mapping(*args, **kwargs)
    except InvalidEventError as exc:
        raise HttpError(422, "invalid_payload", str(exc), exc.problems) from exc


async def accept(ctx: WebhookContext, adapter: ChannelAdapter, mapped: Mapped) -> Response:
    """Validate every mapped event, publish them all, and answer 202 once Kafka acknowledged."""
    received_at_ms = ctx.clock()
    events: list[dict[str, Any]] = []
    found: list[Problem] = []
    for index, event in enumerate(mapped.events):
        try:
            events.append(
                normalise(
                    event,
                    received_at_ms=received_at_ms,
                    channel=adapter.channel,
                    source_system=adapter.source_system,
                    window=ctx.config.event_window,
                )
            )
        except InvalidEventError as exc:
            found += [Problem(f"[{index}].{p.path}".rstrip("."), p.reason) for p in exc.problems]
    if found:
        raise HttpError(422, "invalid_payload", "the payload maps to events that break the contract", found)
    deliveries = require_published(await ctx.publish(events), ctx.config.retry_after_s) if events else []
    return json_response(
        202,
        {
            "accepted": len(deliveries),
            "event_ids": [d.event_id for d in deliveries],
            "ignored": problems_json(mapped.ignored),
        },
    )


def webhook_responses(auth: str, *, signed: bool = False) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` of a webhook route; ``auth`` says how it authenticates (for the 401 text).

    ``signed``: authenticated by the provider's signature, not a key (so no 403 for a key of another channel).
    """

    def answer(description: str, error: str, detail: str, problems: list[dict[str, str]] | None = None) -> Any:
        return error_response(description, {"error": error, "detail": detail, "problems": problems or []})

    retry = {"Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}}
    return {
        202: {
            "description": "Every event stored in Kafka; `ignored` lists native events the channel does not track.",
            "content": {
                "application/json": {
                    "schema": ref("WebhookAccepted"),
                    "example": {
                        "accepted": 1,
                        "event_ids": ["6f1d2c3b-4a59-4e87-9d10-2b3c4d5e6f70"],
                        "ignored": [{"path": "[1]", "reason": "event 'deferred': a delivery retry in progress"}],
                    },
                }
            },
        },
        400: answer("Malformed JSON or form body.", "malformed_json", "the body is not valid JSON: unexpected end"),
        401: answer(auth, "bad_signature" if signed else "unauthenticated", auth),
        **(
            {}
            if signed
            else {
                403: answer(
                    "The key is not one of this channel's.",
                    "forbidden_channel",
                    "this API key may publish web events, not call_centre events",
                )
            }
        ),
        408: answer(
            "The body did not arrive within OMNICHANNEL_BODY_TIMEOUT_S (e.g. shorter than its Content-Length).",
            "body_timeout",
            "the request body did not arrive within 10 s",
        ),
        413: answer(
            "The body exceeds OMNICHANNEL_MAX_BODY_BYTES, or too many items.",
            "body_too_large",
            "the request body (2000000 bytes) exceeds the limit of 1048576 bytes (OMNICHANNEL_MAX_BODY_BYTES); "
            "send smaller batches",
        ),
        422: answer(
            "A native item is malformed: every problem is listed with its path (e.g. `[2].timestamp`).",
            "invalid_payload",
            "the payload does not match the provider's format",
            [{"path": "[2].timestamp", "reason": "expected epoch seconds, got 'yesterday'"}],
        ),
        503: {
            **answer(
                "Kafka did not acknowledge in time: retry after `Retry-After` seconds (safe: ids are stable).",
                "kafka_unavailable",
                "Kafka did not acknowledge within 5 s. Nothing was reported as published; retry after 5 s with the "
                "same event ids.",
            ),
            "headers": retry,
        },
    }


def keyed_json_router(
    ctx: WebhookContext,
    adapter: ChannelAdapter,
    to_events: Callable[..., Mapped],
    *,
    summary: str,
    description: str,
    example: Any,
) -> APIRouter:
    """``POST`` of JSON (one message or a list) authenticated with the channel's API key: internal systems."""
    routes = APIRouter()

    @routes.post(
        "",
        status_code=202,
        summary=summary,
        description=description,
        response_class=Response,
        responses=webhook_responses("Missing or unknown API key."),
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"type": ["object", "array"]}, "example": example}},
            }
        },
    )
    async def messages(request: Request) -> Response:
        require_channel_key(request, ctx, adapter.channel)
        document = parse_json(await read_body(request, ctx.config.max_body_bytes))
        limit_items(document, ctx)
        return await accept(ctx, adapter, map_native(to_events, document))

    return routes
