"""Errors of the lag monitor; each derives from :class:`omnichannel.errors.OmnichannelError`.

The monitor itself never lets these escape its poll loop (a broker outage is a *reading*, shown on every
output); they reach callers that ask for one reading directly, such as ``omnichannel lag`` without ``--watch``.
"""

from __future__ import annotations

from omnichannel.errors import OmnichannelError, ServiceUnavailableError

__all__ = ["BrokerUnavailableError", "LagConfigError", "LagError"]


class LagError(OmnichannelError):
    """Root of the lag monitor's errors."""


class BrokerUnavailableError(LagError, ServiceUnavailableError):
    """Kafka did not answer an admin request in time (down, wrong address, or not ready)."""


class LagConfigError(LagError):
    """A lag-monitor setting is malformed; the message names the variable and an example value."""
