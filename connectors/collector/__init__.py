"""The HTTP collector: ``create_app(config, publisher)`` builds the ASGI app (nothing starts on import)."""

from connectors.collector.app import create_app

__all__ = ["create_app"]
