"""Admin operations (an admin key, ``OMNICHANNEL_ADMIN_KEYS``): unlink an identifier, erase a customer."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from redis.asyncio import Redis

from api import examples
from api.openapi import ADMIN_ERRORS, bad_request, not_found, ok
from connectors.auth import KeyRing
from connectors.errors import PublishError
from connectors.http import HttpError, json_response
from connectors.publisher import Publisher
from omnichannel.errors import OmnichannelError
from omnichannel.settings import Settings
from streams.config import ProcessorConfig
from streams.erasure import erasure_event, read_status, record_status
from streams.keys import Keys
from streams.unlink import unlink

__all__ = ["admin_router"]


def admin_router(
    settings: Settings,
    processor: ProcessorConfig,
    keyring: KeyRing,
    publisher: Publisher,
    redis: Redis,
    *,
    retry_after_s: int = 5,
) -> APIRouter:
    """``processor`` must be the workers' configuration: the unlinked cluster is folded with their rules."""
    router = APIRouter(tags=["admin"])
    keys = Keys(settings.namespace, single_slot=settings.redis_cluster)

    @router.post(
        "/v1/customers/{customer_id}/erasure",
        summary="Erase a customer (admin key)",
        response_class=Response,
        status_code=202,
        responses={
            202: ok("Accepted: stored in Kafka; poll `status_url`.", "ErasureAccepted", examples.ERASURE_ACCEPTED),
            **ADMIN_ERRORS,
        },
    )
    async def request_erasure(customer_id: str, request: Request) -> Response:
        """Right to erasure: accepted (202) once the request is stored in Kafka; poll `status_url`.

        The stream worker erases the customer's events, cart, record, identity links and journey state in
        Redis, tombstones their keys on the compacted topics, deny-lists their identifiers (by digest) against
        replays, and writes an audit record without personal data to `erasure.audit`.
        """
        keyring.require_admin(request.headers)
        event = erasure_event(customer_id)
        request_id = str(event["event_id"])
        # Before the event: the worker may carry it out (and write "done") before publish returns.
        await record_status(redis, keys, request_id, {"request_id": request_id, "status": "accepted"})
        outcome = (await publisher.publish_many_async([event]))[0]
        if isinstance(outcome, PublishError):
            await redis.delete(keys.erasure(request_id))
            raise HttpError(503, "kafka_unavailable", f"the request was not stored: {outcome}; retry later")
        body = {"request_id": request_id, "status": "accepted", "status_url": f"/v1/erasures/{request_id}"}
        return json_response(202, body, headers={"Retry-After": str(retry_after_s)})

    @router.get(
        "/v1/erasures/{request_id}",
        summary="Status of an erasure request (admin key)",
        response_class=Response,
        responses={
            200: ok("The request's status.", "ErasureStatus", examples.ERASURE_DONE),
            **not_found(
                "No such request in the last 30 days.", "unknown_erasure", "no erasure request 'x' in the last 30 days"
            ),
            **ADMIN_ERRORS,
        },
    )
    async def erasure_status(request_id: str, request: Request) -> Response:
        """`accepted`, then `done` (with counts) or `nothing_held` once the worker carried it out."""
        keyring.require_admin(request.headers)
        status = await read_status(redis, keys, request_id)
        if status is None:
            raise HttpError(404, "unknown_erasure", f"no erasure request {request_id!r} in the last 30 days")
        return json_response(200, status)

    @router.post(
        "/v1/identities/{identifier_type}/{value}/unlink",
        summary="Split a wrong link (admin key)",
        response_class=Response,
        responses={
            200: ok("The identifier is unlinked.", "Unlinked", examples.UNLINKED),
            **bad_request(
                "The identifier cannot be unlinked (unknown type, a customer id), or Kafka did not take the records.",
                "cannot_unlink",
                "a customer id defines its profile and cannot be unlinked; unlink the identifier that was wrongly "
                "linked to it (e.g. email_hash, device_id)",
            ),
            **ADMIN_ERRORS,
        },
    )
    async def unlink_identifier(identifier_type: str, value: str, request: Request) -> Response:
        """The identifier stops linking anyone, from the start of its cluster's history.

        Every profile it had joined is recomputed from its own events (carts, records); the changes are
        published on `customer.carts` / `customer.state` and an `unmerge` (reason `unlinked`) on
        `identity.links`. Safe to repeat. Answers 200 with the profile the identifier belonged to.
        """
        keyring.require_admin(request.headers)
        try:
            report = await unlink(settings, processor, identifier_type, value)
        except OmnichannelError as exc:
            raise HttpError(400, "cannot_unlink", str(exc)) from exc
        body = {
            "identifier": {"type": identifier_type, "value": value},
            "previous_profile": report.previous_profile,
            "request_id": report.request_id,
        }
        return json_response(200, body)

    return router
