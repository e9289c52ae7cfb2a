"""Running the HTTP API (collector + read API + demo page) as a process."""

from __future__ import annotations

import uvicorn

from omnichannel.settings import Settings

__all__ = ["run_server"]


def run_server(settings: Settings, host: str, port: int) -> None:
    """Serve until interrupted; ``settings`` must hold all three addresses (see ``stack.connect``)."""
    from api.server import create_server
    from connectors.config import CollectorConfig
    from connectors.publisher import publisher_for
    from streams.config import ProcessorConfig

    config = CollectorConfig.from_env()
    with publisher_for(settings, config.publish_timeout_s) as publisher:
        app = create_server(settings, config, publisher, ProcessorConfig.from_env())
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
