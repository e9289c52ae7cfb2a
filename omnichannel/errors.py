"""The project's root exception and the errors of its infrastructure layer.

Every error this project raises derives from :class:`OmnichannelError`, so a caller can catch the whole
family at once; third-party errors are wrapped at the boundary with ``raise ... from exc``.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "KafkaAuthenticationError",
    "OmnichannelError",
    "ServiceStartError",
    "ServiceUnavailableError",
]


class OmnichannelError(Exception):
    """Root of every error this project raises."""


class ConfigError(OmnichannelError):
    """A setting is missing or malformed; the message names the variable and an example value."""


class ServiceStartError(OmnichannelError):
    """A local Kafka, Schema Registry or Redis could not be started; the message says what to do."""


class ServiceUnavailableError(OmnichannelError):
    """A configured service does not answer (wrong address, down, or not ready in time)."""


class KafkaAuthenticationError(ConfigError):
    """Kafka refused the client's credentials (SASL): retrying will not help, the settings must change."""
