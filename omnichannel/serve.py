"""Running the HTTP API (collector + read API + demo page) as a process."""

from __future__ import annotations

import contextlib

import uvicorn

from omnichannel.settings import Settings

__all__ = ["run_server"]


def run_server(settings: Settings, host: str, port: int) -> None:
    """Serve until interrupted; ``settings`` must hold all three addresses (see ``stack.connect``)."""
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
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
