"""Running the HTTP API (collector + read API + demo page) as a process."""

from __future__ import annotations

import uvicorn

from omnichannel.settings import Settings
from schemas.codec import AvroCodec
from schemas.registry import ConfluentSchemaRegistry
from schemas.topics import channel_topic

__all__ = ["run_server"]


def run_server(settings: Settings, host: str, port: int) -> None:
    """Serve until interrupted; ``settings`` must hold all three addresses (see ``stack.connect``)."""
    from api.server import create_server
    from connectors.config import CollectorConfig
    from connectors.publisher import Publisher

    assert settings.kafka_bootstrap_servers and settings.schema_registry_url
    config = CollectorConfig.from_env()
    codec = AvroCodec(ConfluentSchemaRegistry(settings.schema_registry_url))
    with Publisher(
        settings.kafka_bootstrap_servers,
        codec,
        delivery_timeout_s=config.publish_timeout_s,
        topic_for=lambda channel: settings.topic(channel_topic(channel)),
    ) as publisher:
        app = create_server(settings, config, publisher)
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
