"""Admin operations (an admin key, ``OMNICHANNEL_ADMIN_KEYS``): ``POST /v1/identities/{type}/{value}/unlink``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api import examples
from api.openapi import ADMIN_ERRORS, bad_request, ok
from connectors.auth import KeyRing
from connectors.http import HttpError, json_response
from omnichannel.errors import OmnichannelError
from omnichannel.settings import Settings
from streams.config import ProcessorConfig
from streams.unlink import unlink

__all__ = ["admin_router"]


def admin_router(settings: Settings, processor: ProcessorConfig, keyring: KeyRing) -> APIRouter:
    """``processor`` must be the workers' configuration: the unlinked cluster is folded with their rules."""
    router = APIRouter(tags=["admin"])

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
