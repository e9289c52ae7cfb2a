"""The collector's ASGI app: ``POST /v1/events``, the channels' webhooks under ``/v1/webhooks/<channel>``,
``GET /healthz`` and the OpenAPI document (``/openapi.json``, browsable at ``/docs``)."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, Response
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles

from connectors.auth import KeyRing
from connectors.channels import load_adapters
from connectors.channels.base import WebhookContext
from connectors.collector.events import events_endpoint, events_router
from connectors.collector.fastpath import FastRoutes
from connectors.collector.guard import GuardLimits, RequestGuard
from connectors.collector.openapi import KEY_SECURITY, SECURITY_SCHEMES, component_schemas, error_response, ref
from connectors.config import CollectorConfig
from connectors.envelope import Clock, IdFactory, system_clock_ms, uuid4_text
from connectors.errors import PublishUnavailableError
from connectors.hashing import DEV_HASH_KEY
from connectors.http import HttpError, json_response, problem_body
from connectors.publisher import Publisher
from omnichannel.logs import kv
from schemas.validation import Problem

__all__ = ["SWAGGER_UI_DIR", "create_app"]

log = logging.getLogger(__name__)

SWAGGER_UI_DIR: Final = Path(__file__).resolve().parent / "swagger_ui"

_DESCRIPTION = """
The way into the omnichannel backbone for channel apps and providers. Every accepted event is validated
against the Avro Event contract, stamped with the collector's clock and stored in Kafka (topic
`channel.<channel>.events`) before the answer: **202 means stored**. Errors always have the shape
`{"error", "detail", "problems": [{"path", "reason"}]}`.
"""


def create_app(
    config: CollectorConfig,
    publisher: Publisher,
    *,
    clock: Clock = system_clock_ms,
    new_id: IdFactory = uuid4_text,
    wall_clock_s: Callable[[], float] = time.time,
    components: Mapping[str, Any] | None = None,
) -> FastAPI:
    """Build the collector. ``publisher`` is the process's one :class:`Publisher` (the caller closes it).

    ``clock`` stamps ``received_at_ms``; ``new_id`` makes missing event ids; ``wall_clock_s`` checks webhook
    timestamps (all injectable for tests). ``components``: OpenAPI schemas of routes added to the app later.
    """

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        channels = sorted({channel for channels in config.keys.values() for channel in channels})
        try:  # look the schema ids up now so the first request does not wait on the Schema Registry
            publisher.prepare(channels)  # a schema not registered stops the start (SchemaNotRegisteredError)
        except PublishUnavailableError as exc:
            log.warning("schema id lookup deferred to the first request", extra=kv(reason=str(exc)))
        yield

    app = FastAPI(
        title="Omnichannel collector",
        version="1.0.0",
        description=_DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served below from the vendored assets: no CDN, so /docs works offline
        redoc_url=None,
    )
    if config.dev:  # loud on purpose: the development keys and secrets are public
        log.warning(
            "DEVELOPMENT MODE (OMNICHANNEL_DEV=1): public dev-<channel>, dev-read and dev-admin keys, dev webhook "
            "secrets and the demo page are served; never expose this process",
            extra=kv(hash_key="dev" if config.hash_key == DEV_HASH_KEY else "configured"),
        )
    keyring = KeyRing(config.keys, config.read_keys, config.admin_keys)
    post_events = events_endpoint(config, keyring, publisher.publish_many_async, clock, new_id)
    app.include_router(events_router(post_events))
    context = WebhookContext(config, keyring, publisher.publish_many_async, clock, wall_clock_s)
    for adapter in load_adapters(config.adapters).values():
        if adapter.webhook is None:
            continue
        if not _webhook_configured(adapter.channel, config):
            log.warning("webhook not mounted: no key or secret", extra=kv(channel=adapter.channel))
            continue
        app.include_router(adapter.webhook(context), prefix=f"/v1/webhooks/{adapter.channel}", tags=["webhooks"])

    @app.get(
        "/healthz",
        summary="Liveness",
        tags=["operations"],
        response_class=Response,
        responses={
            200: {
                "description": "The process serves requests.",
                "content": {"application/json": {"schema": ref("Health"), "example": {"status": "ok"}}},
            }
        },
        openapi_extra={"security": []},
    )
    async def healthz() -> Response:
        """200 while the process serves requests. Kafka's health shows in publish answers (503)."""
        return json_response(200, {"status": "ok"})

    _mount_docs(app)
    _install_error_handlers(app)
    limits = GuardLimits(
        config.body_timeout_s, config.request_timeout_s, config.max_pending_bodies, config.retry_after_s
    )
    app.add_middleware(FastRoutes, routes={("POST", "/v1/events"): post_events})  # inside the guard
    app.add_middleware(RequestGuard, limits=limits)
    extra = dict(components or {})
    app.openapi = lambda: _openapi(app, extra)  # type: ignore[method-assign]
    return app


def _mount_docs(app: FastAPI) -> None:
    """``/docs``: Swagger UI from files shipped in this package (see ``swagger_ui/README.md``)."""
    app.mount("/docs/assets", StaticFiles(directory=SWAGGER_UI_DIR), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} - Swagger UI",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon-32x32.png",
            oauth2_redirect_url=None,
            swagger_ui_parameters={"persistAuthorization": True},
        )


def _webhook_configured(channel: str, config: CollectorConfig) -> bool:
    return channel in config.webhook_secrets or any(channel in channels for channels in config.keys.values())


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HttpError)
    async def problem(_: Request, exc: HttpError) -> Response:
        return exc.response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return json_response(exc.status_code, problem_body(code, str(exc.detail)), headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> Response:
        found = [
            Problem(".".join(str(part) for part in error.get("loc", ())[1:]), str(error.get("msg")))
            for error in exc.errors()
        ]
        return json_response(422, problem_body("invalid_request", "the request does not match the API", found))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error", extra=kv(path=request.url.path))
        return json_response(500, problem_body("internal_error", "unexpected error; the collector's log has details"))


def _openapi(app: FastAPI, extra: Mapping[str, Any]) -> dict[str, Any]:
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        components = schema.setdefault("components", {})
        components.setdefault("schemas", {}).update(component_schemas() | dict(extra))
        components["securitySchemes"] = SECURITY_SCHEMES
        schema["security"] = KEY_SECURITY  # every operation needs a key unless it says `security: []`
        for operation in (op for path in schema["paths"].values() for op in path.values()):
            _replace_validation_answer(operation)
        _restore_examples(app, schema)
        for unused in ("HTTPValidationError", "ValidationError"):
            components["schemas"].pop(unused, None)
        app.openapi_schema = schema
    return app.openapi_schema


def _restore_examples(app: FastAPI, schema: dict[str, Any]) -> None:
    """Put the routes' answer examples back as written: FastAPI drops every null from them (``exclude_none``)."""
    for route in iter_route_contexts(app.routes):  # routes of included routers too, with their prefixes
        if not isinstance(route.original_route, APIRoute):
            continue
        for method in route.methods or ():
            operation = schema["paths"].get(route.path_format, {}).get(method.lower())
            for status, response in route.responses.items() if operation else ():
                for media, content in response.get("content", {}).items():
                    if "example" in content:
                        documented = operation["responses"][str(status)]["content"][media]
                        documented["example"] = content["example"]


def _replace_validation_answer(operation: dict[str, Any]) -> None:
    """FastAPI documents a 422 with its own body, which this API never sends (errors are ``Error``).

    Only a parameter that is not a plain string can fail FastAPI's validation (answered by the handler
    above as 422 ``invalid_request``); the routes declare their own 422 where a body can be invalid.
    """
    answer = operation.get("responses", {}).get("422")
    if answer is None or "HTTPValidationError" not in str(answer):
        return
    typed = [p for p in operation.get("parameters", []) if p.get("schema", {}).get("type") != "string"]
    typed = [p for p in typed if {"type": "string"} not in p.get("schema", {}).get("anyOf", [])]
    if typed:
        operation["responses"]["422"] = error_response(
            "A parameter does not have the documented type.",
            {"error": "invalid_request", "detail": "the request does not match the API", "problems": []},
        )
    else:
        del operation["responses"]["422"]
