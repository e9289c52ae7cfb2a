"""``POST /v1/events``: one event or a batch in the collector's JSON, validated, stamped and published.

Answers 202 only once Kafka acknowledged; a batch gets one result per event (valid events are published
even when others are rejected: 207 then). The checks run cheapest first: key, body size, JSON, channel
rights (403 for the whole request), then each event against the contract.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from connectors.auth import KeyRing, forbidden
from connectors.channels.base import AsyncPublish
from connectors.collector.fastpath import Endpoint
from connectors.collector.openapi import ERROR_RESPONSES, batch_example, event_example, ref
from connectors.config import CollectorConfig
from connectors.envelope import Clock, IdFactory, normalise
from connectors.errors import InvalidEventError, PublishUnavailableError
from connectors.http import (
    HttpError,
    json_response,
    parse_json,
    problem_body,
    problems_json,
    read_body,
    unavailable,
)
from connectors.publisher import Delivery, Outcome
from omnichannel.logs import kv
from schemas.topics import CHANNELS
from schemas.validation import Problem

__all__ = ["events_endpoint", "events_router"]

log = logging.getLogger(__name__)

_DESCRIPTION = """
Send one event (an `EventInput` object) or a batch (`{"events": [...]}`, at most OMNICHANNEL_MAX_BATCH_EVENTS).

* **Authentication**: `Authorization: Bearer <key>` or `X-Api-Key: <key>`. A key publishes only its own
  channels (403 otherwise); when it has exactly one channel, `channel` may be omitted.
* **Filled by the collector**: `event_id` (UUID) when absent, `received_at_ms` (always, from the collector's
  clock), null identities, `consent` `{}`, `source_system` `collector`. Send your own `event_id` to make
  retries safe: consumers deduplicate on it.
* **Answers**: a single event gets 202 with where Kafka stored it. A batch gets one result per event, in
  order: 202 when all were accepted, 207 when some were rejected (the others are stored), 422 when all were
  rejected, 503 (+ `Retry-After`) when Kafka did not acknowledge some: resend those, with the same ids.
"""

_WHERE = {
    "event_id": "3f1c0b1e-5a43-4c1e-9a57-2b3f9c1d7e20",
    "topic": "channel.web.events",
    "partition": 3,
    "offset": 1842,
}
_PARTIAL = {
    "error": "invalid_events",
    "detail": "1 of 2 events were rejected; the others are stored",
    "problems": [{"path": "events[1].payload.quantity", "reason": "expected int, got str 'two'"}],
    "accepted": 1,
    "rejected": 1,
    "unavailable": 0,
    "results": [
        {"index": 0, "status": "accepted", **_WHERE},
        {
            "index": 1,
            "status": "rejected",
            "event_id": "9b2e4c1a-0d7f-4e55-8a0c-1f2e3d4c5b6a",
            "problems": [{"path": "payload.quantity", "reason": "expected int, got str 'two'"}],
        },
    ],
}


def events_router(endpoint: Endpoint) -> APIRouter:
    """The router documenting ``POST /v1/events`` (served by ``endpoint``; the collector's fast path answers
    exact matches first; this route answers the rest: other methods, a trailing slash)."""
    router = APIRouter(tags=["events"])

    @router.post(
        "/v1/events",
        status_code=202,
        summary="Publish one event or a batch",
        description=_DESCRIPTION,
        response_class=Response,
        responses={
            202: {
                "description": "Stored in Kafka (single event), or every event of the batch stored.",
                "content": {
                    "application/json": {
                        "schema": {"anyOf": [ref("Accepted"), ref("BatchResult")]},
                        "example": {"status": "accepted", **_WHERE},
                    }
                },
            },
            207: {
                "description": "Batch: some events were rejected (see `results`); the others are stored.",
                "content": {"application/json": {"schema": ref("BatchResult"), "example": _PARTIAL}},
            },
            **ERROR_RESPONSES,
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"anyOf": [ref("EventInput"), ref("EventBatch")]},
                        "examples": {
                            "single": {"summary": "One web event", "value": event_example()},
                            "batch": {"summary": "A batch", "value": batch_example()},
                        },
                    }
                },
            }
        },
    )
    async def post_events(request: Request) -> Response:
        return await endpoint(request)

    return router


def events_endpoint(
    config: CollectorConfig, keyring: KeyRing, publish: AsyncPublish, clock: Clock, new_id: IdFactory
) -> Endpoint:
    """The handler of ``POST /v1/events`` (see the module docstring); raises :class:`HttpError` for 4xx/5xx."""

    async def post_events(request: Request) -> Response:
        allowed = keyring.channels(request.headers)
        document = parse_json(await read_body(request, config.max_body_bytes))
        received_at_ms = clock()
        if not isinstance(document, dict):
            raise HttpError(
                422,
                "invalid_body",
                f'expected an event object or {{"events": [...]}}, got a JSON {_json_kind(document)}',
                [Problem("", f"expected an object, got {_json_kind(document)}")],
            )
        if "events" in document and "event_type" not in document:
            return await _batch(document, allowed, received_at_ms)
        return await _single(document, allowed, received_at_ms)

    async def _single(raw: dict[str, Any], allowed: frozenset[str], received_at_ms: int) -> Response:
        channel = _channel(raw, allowed)
        try:
            event = normalise(
                raw, received_at_ms=received_at_ms, channel=channel, new_id=new_id, window=config.event_window
            )
        except InvalidEventError as exc:
            raise HttpError(422, "invalid_event", "the event does not match the Event contract", exc.problems) from exc
        (outcome,) = await publish([event])
        if isinstance(outcome, Delivery):
            return json_response(202, {"status": "accepted", **_where(outcome)})
        raise _failure(outcome)

    async def _batch(document: dict[str, Any], allowed: frozenset[str], received_at_ms: int) -> Response:
        raws = document["events"]
        shape = [Problem(name, "unknown field (a batch holds only 'events')") for name in document if name != "events"]
        if not isinstance(raws, list):
            shape.append(Problem("events", f"expected a list of events, got {_json_kind(raws)}"))
        elif not raws:
            shape.append(Problem("events", "the batch is empty: send at least one event"))
        if shape:
            raise HttpError(422, "invalid_body", 'the batch is not {"events": [...]}', shape)
        if len(raws) > config.max_batch_events:
            raise HttpError(
                413,
                "batch_too_large",
                f"the batch has {len(raws)} events; the limit is {config.max_batch_events} "
                "(OMNICHANNEL_MAX_BATCH_EVENTS): split it",
                extra={"limit": config.max_batch_events},
            )
        channels = [_channel(raw, allowed) if isinstance(raw, dict) else None for raw in raws]  # 403 before anything
        results: list[dict[str, Any] | None] = [None] * len(raws)
        valid: list[tuple[int, dict[str, Any]]] = []
        for index, raw in enumerate(raws):
            try:
                event = normalise(
                    raw,
                    received_at_ms=received_at_ms,
                    channel=channels[index],
                    new_id=new_id,
                    window=config.event_window,
                )
            except InvalidEventError as exc:
                event_id = raw.get("event_id") if isinstance(raw, dict) else None
                results[index] = {
                    "index": index,
                    "status": "rejected",
                    "event_id": event_id if isinstance(event_id, str) else None,
                    "problems": problems_json(exc.problems),
                }
                continue
            valid.append((index, event))
        outcomes = await publish([event for _, event in valid]) if valid else []
        for (index, event), outcome in zip(valid, outcomes, strict=True):
            results[index] = _batch_result(index, event["event_id"], outcome)
        return _batch_answer([r for r in results if r is not None])

    def _batch_answer(results: list[dict[str, Any]]) -> Response:
        counts = {status: 0 for status in ("accepted", "rejected", "unavailable", "refused")}
        for result in results:
            counts[result["status"]] += 1
        body: dict[str, Any] = {
            "accepted": counts["accepted"],
            "rejected": counts["rejected"],
            "unavailable": counts["unavailable"] + counts["refused"],
            "results": results,
        }
        if counts["rejected"]:
            log.info("events rejected", extra=kv(rejected=counts["rejected"], total=len(results)))
        if counts["unavailable"]:
            problem = unavailable(
                PublishUnavailableError(f"Kafka did not acknowledge {counts['unavailable']} of {len(results)} events"),
                config.retry_after_s,
            )
            return json_response(503, problem_body(problem.error, problem.detail) | body, headers=problem.headers)
        if counts["refused"]:
            return json_response(502, problem_body("kafka_refused", "Kafka refused some events") | body)
        if counts["accepted"] == len(results):
            return json_response(202, body)
        every = [
            Problem(f"events[{r['index']}].{p['path']}".rstrip("."), p["reason"])
            for r in results
            if r["status"] == "rejected"
            for p in r["problems"]
        ]
        detail = f"{counts['rejected']} of {len(results)} events were rejected; the others are stored"
        status = 207 if counts["accepted"] else 422
        return json_response(status, problem_body("invalid_events", detail, every) | body)

    def _failure(outcome: Outcome) -> HttpError:
        if isinstance(outcome, PublishUnavailableError):
            return unavailable(outcome, config.retry_after_s)
        return HttpError(502, "kafka_refused", str(outcome))

    return post_events


def _channel(raw: dict[str, Any], allowed: frozenset[str]) -> str | None:
    """The channel to fill in (from a one-channel key); 403 when the event names a channel the key may not use."""
    channel = raw.get("channel")
    if channel is None:
        return next(iter(allowed)) if len(allowed) == 1 else None
    if isinstance(channel, str) and channel in CHANNELS and channel not in allowed:
        raise forbidden(channel, allowed)
    return None  # as given; the contract check reports an unknown channel


def _where(delivery: Delivery) -> dict[str, Any]:
    return {
        "event_id": delivery.event_id,
        "topic": delivery.topic,
        "partition": delivery.partition,
        "offset": delivery.offset,
    }


def _batch_result(index: int, event_id: str, outcome: Outcome) -> dict[str, Any]:
    if type(outcome) is Delivery:  # one dict per event, built at once: a batch makes hundreds
        return {
            "index": index,
            "status": "accepted",
            "event_id": outcome.event_id,
            "topic": outcome.topic,
            "partition": outcome.partition,
            "offset": outcome.offset,
        }
    status = "unavailable" if isinstance(outcome, PublishUnavailableError) else "refused"
    return {"index": index, "status": status, "event_id": event_id, "detail": str(outcome)}


def _json_kind(value: Any) -> str:
    return {list: "array", str: "string", bool: "boolean", int: "number", float: "number", type(None): "null"}.get(
        type(value), type(value).__name__
    )
