"""Running the HTTP API (collector + read API + demo page) as a process, or as several worker processes."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

import uvicorn
from fastapi import FastAPI

from omnichannel import logs
from omnichannel.gc_tuning import tune_gc
from omnichannel.kafka_admin import check_login
from omnichannel.settings import Settings

__all__ = ["run_server", "worker_app"]

# uvloop's event loop and httptools' parser (uvicorn's "auto" picks them too; named so a missing one fails loudly).
_UVICORN: Final[dict[str, Any]] = {"loop": "uvloop", "http": "httptools", "log_level": "warning", "access_log": False}
_HEALTHCHECK_TIMEOUT_S: Final = 30
_VERBOSITY_ENV: Final = "OMNICHANNEL_SERVE_VERBOSITY"  # the parent's -v, for the workers' logging


def run_server(settings: Settings, host: str, port: int, *, workers: int = 1, verbosity: int = 0) -> None:
    """Serve until interrupted; ``settings`` must hold all three addresses (see ``stack.connect``).

    With ``workers`` > 1, uvicorn's supervisor runs that many processes on one listening socket (the kernel
    hands each connection to one of them) and restarts one that dies. Each worker builds its own app and its
    own Kafka producer from the same environment (:func:`worker_app`); nothing else is shared between them.
    """
    if settings.kafka_security.protocol.startswith("SASL"):
        # Refused credentials end the command with one error line (as the worker); a broker that is down does not:
        # /readyz reports it until it answers.
        assert settings.kafka_bootstrap_servers is not None
        check_login(settings.kafka_bootstrap_servers, settings.kafka_security.confluent_config())
    if workers > 1:
        _require_channel_schemas(settings)  # one error line here, not a 503 from every worker
        os.environ[_VERBOSITY_ENV] = str(verbosity)  # this is the entry point: the workers inherit it
        uvicorn.run(
            "omnichannel.serve:worker_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            # A worker must answer the supervisor's ping within this long or be replaced; a new one on a busy
            # machine spends longer than uvicorn's 5 s importing before it can answer.
            timeout_worker_healthcheck=_HEALTHCHECK_TIMEOUT_S,
            **_UVICORN,
        )
        return
    from api.server import create_server
    from connectors.config import CollectorConfig
    from connectors.errors import PublishUnavailableError
    from connectors.publisher import publisher_for
    from streams.config import ProcessorConfig

    config = CollectorConfig.from_env()
    with publisher_for(settings, config.publish_timeout_s) as publisher:
        # Before the server starts, so a schema never registered is one error line (the CLI's), not a traceback.
        with contextlib.suppress(PublishUnavailableError):  # registry down: the app retries at its start
            publisher.prepare(sorted({channel for channels in config.keys.values() for channel in channels}))
        app = create_server(settings, config, publisher, ProcessorConfig.from_env())
        tune_gc()  # start-up is done: what it built is frozen out of collections
        uvicorn.run(app, host=host, port=port, **_UVICORN)


def _require_channel_schemas(settings: Settings) -> None:
    """:class:`SchemaNotRegisteredError` unless every channel topic's Event schema is registered (looked up)."""
    from schemas.publish import require_registered
    from schemas.registry import ConfluentSchemaRegistry
    from schemas.topics import CHANNELS, catalogue_for, channel_topic

    assert settings.schema_registry_url is not None
    channel_topics = {settings.topic(channel_topic(c)) for c in CHANNELS}
    registry = ConfluentSchemaRegistry(settings.schema_registry_url, basic_auth=settings.schema_registry_basic_auth)
    require_registered(registry, [s for s in catalogue_for(settings.namespace) if s.name in channel_topics])


def worker_app() -> FastAPI:
    """One worker process's app (``--workers`` > 1): settings from the environment, its own publisher.

    The worker's entry point, called by uvicorn in each new process; the publisher is closed (records in
    flight flushed, bounded) when the worker shuts down.
    """
    from api.server import create_server
    from connectors.config import CollectorConfig
    from connectors.publisher import publisher_for
    from omnichannel.stack import connect
    from streams.config import ProcessorConfig

    logs.configure(int(os.environ.get(_VERBOSITY_ENV, "0") or 0))
    settings = connect(Settings.from_env())
    config = CollectorConfig.from_env()
    publisher = publisher_for(settings, config.publish_timeout_s)
    app = create_server(settings, config, publisher, ProcessorConfig.from_env())
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        try:
            async with inner(app) as state:
                yield state
        finally:
            publisher.close()

    app.router.lifespan_context = lifespan
    tune_gc()  # this worker process's start-up is done
    return app
