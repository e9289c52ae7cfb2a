"""One ASGI app for channel apps: the collector (writes), the read API (reads, live cart) and the demo page."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import Response
from starlette.staticfiles import StaticFiles

from api.journeys import journeys_router
from api.reads import reads_router
from api.store import ReadStore
from connectors.auth import KeyRing
from connectors.collector.app import create_app
from connectors.config import CollectorConfig, dev_key
from connectors.http import json_response
from connectors.publisher import Publisher
from omnichannel.settings import Settings
from streams.app import redis_client
from streams.journeys.store import JourneyStore
from streams.keys import Keys

__all__ = ["DEMO_DIR", "create_server"]

DEMO_DIR = Path(__file__).resolve().parent / "demo"


def create_server(settings: Settings, config: CollectorConfig, publisher: Publisher) -> FastAPI:
    """Collector + read API (+ the demo page and its development keys when ``config.dev``)."""
    assert settings.redis_url is not None
    app = create_app(config, publisher)
    app.title = "Omnichannel backbone API"
    redis, keys, keyring = redis_client(settings.redis_url), Keys(settings.namespace), KeyRing(config.keys)
    store = ReadStore(redis, keys)
    app.include_router(reads_router(store, keyring))
    app.include_router(journeys_router(JourneyStore(redis, keys), store, keyring))
    if config.dev:

        @app.get("/demo/config.json", include_in_schema=False, response_class=Response)
        async def demo_config() -> Response:
            """The development keys the demo page publishes and reads with (only with OMNICHANNEL_DEV=1)."""
            return json_response(200, {"keys": {c: dev_key(c) for c in ("mobile_app", "tablet")}})

        app.mount("/demo", StaticFiles(directory=DEMO_DIR, html=True), name="demo")
    return app
