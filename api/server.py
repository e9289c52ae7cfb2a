"""One ASGI app for channel apps: the collector (writes), the read API (reads, live cart) and the demo page."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import Response
from redis.asyncio import Redis
from redis.asyncio.retry import Retry  # the asyncio Retry: a Redis Cluster client awaits it
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.staticfiles import StaticFiles

from api.admin import admin_router
from api.health import kafka_probe, readiness_router, redis_probe, registry_probe
from api.journeys import journeys_router
from api.openapi import read_components
from api.reads import reads_router
from api.store import ReadStore
from api.timeline import timeline_router
from connectors.auth import KeyRing
from connectors.collector.app import create_app
from connectors.config import DEV_READ_KEY, CollectorConfig, dev_key
from connectors.http import json_response, problem_body
from connectors.publisher import Publisher
from omnichannel.logs import kv
from omnichannel.redis_clients import async_redis
from omnichannel.settings import Settings
from streams.config import ProcessorConfig
from streams.journeys.store import JourneyStore
from streams.keys import Keys

__all__ = ["DEMO_DIR", "create_server", "read_redis_client"]

log = logging.getLogger(__name__)

DEMO_DIR = Path(__file__).resolve().parent / "demo"

_READ_DESCRIPTION = """
Channel apps read the unified view back: the customer record, the cart (also live, as server-sent events), who
an identifier belongs to, attribution, typology and store stock. Every answer carries `freshness`: per channel,
the newest event time applied. **Keys**: a channel key publishes its channels' events, a read key
(`OMNICHANNEL_READ_KEYS`) reads, an admin key (`OMNICHANNEL_ADMIN_KEYS`) administers; send it as `X-Api-Key`
(the Authorize button) or `Authorization: Bearer`.
"""


def read_redis_client(url: str) -> Redis:
    """The read API's Redis client: a short retry budget, so an outage answers 503 in about a second.

    The stream workers retry for longer (their writes must land); a reader would rather retry later.
    """
    return async_redis(
        url,
        decode_responses=True,
        socket_timeout=2,
        socket_connect_timeout=1,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )


def create_server(
    settings: Settings, config: CollectorConfig, publisher: Publisher, processor: ProcessorConfig | None = None
) -> FastAPI:
    """Collector + read API + admin + ``/readyz`` (+ the demo page and its development keys when ``config.dev``).

    ``processor``: the workers' configuration (``ProcessorConfig.from_env()`` at the entry point), for unlinks.
    """
    assert settings.redis_url is not None and settings.schema_registry_url is not None
    app = create_app(config, publisher, components=read_components())
    app.title = "Omnichannel backbone API"
    app.description = (app.description or "") + _READ_DESCRIPTION
    redis, keys = read_redis_client(settings.redis_url), Keys(settings.namespace, single_slot=settings.redis_cluster)
    keyring = KeyRing(config.keys, config.read_keys, config.admin_keys)
    store = ReadStore(redis, keys)
    app.include_router(reads_router(store, keyring))
    app.include_router(timeline_router(store, keyring, (processor or ProcessorConfig()).fold_rules))
    app.include_router(journeys_router(JourneyStore(redis, keys), store, keyring))
    app.include_router(
        admin_router(
            settings, processor or ProcessorConfig(), keyring, publisher, redis, retry_after_s=config.retry_after_s
        )
    )
    app.include_router(
        readiness_router(
            {
                "kafka": kafka_probe(publisher),
                "registry": registry_probe(settings.schema_registry_url, _basic_auth(settings)),
                "redis": redis_probe(redis),
            }
        )
    )

    @app.exception_handler(RedisConnectionError)
    @app.exception_handler(RedisTimeoutError)
    async def redis_unavailable(request: Request, exc: Exception) -> Response:
        log.warning("Redis unavailable", extra=kv(path=request.url.path, error=exc.__class__.__name__))
        detail = f"the customer store (Redis) is unavailable; retry after {config.retry_after_s} s"
        return json_response(
            503,
            problem_body("redis_unavailable", detail),
            headers={"Retry-After": str(config.retry_after_s)},
        )

    if config.dev:
        _mount_demo(app)
    return app


def _basic_auth(settings: Settings) -> httpx.BasicAuth | None:
    if settings.schema_registry_basic_auth is None:
        return None
    user, _, password = settings.schema_registry_basic_auth.partition(":")
    return httpx.BasicAuth(user, password)


def _mount_demo(app: FastAPI) -> None:
    @app.get("/demo/config.json", include_in_schema=False, response_class=Response)
    async def demo_config() -> Response:
        """The development keys the demo page publishes and reads with (only with OMNICHANNEL_DEV=1)."""
        return json_response(200, {"keys": {c: dev_key(c) for c in ("mobile_app", "tablet")}, "read_key": DEV_READ_KEY})

    app.mount("/demo", StaticFiles(directory=DEMO_DIR, html=True), name="demo")
