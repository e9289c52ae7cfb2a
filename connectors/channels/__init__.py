"""The registry of channel adapters: adding a channel means adding a module and a line in :data:`ADAPTER_MODULES`.

Modules are imported only when an adapter is loaded, so importing this package has no side effects.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from typing import Final

from connectors.channels.base import ChannelAdapter
from omnichannel.errors import ConfigError

__all__ = ["ADAPTER_MODULES", "ChannelAdapter", "load_adapter", "load_adapters"]

#: Adapter name -> module defining its ``ADAPTER``.
ADAPTER_MODULES: Final[Mapping[str, str]] = {
    "web": "connectors.channels.web",
    "mobile_app": "connectors.channels.mobile_app",
    "tablet": "connectors.channels.tablet",
    "pos": "connectors.channels.pos",
    "call_centre": "connectors.channels.call_centre",
    "email_provider": "connectors.channels.email_provider",
    "sms": "connectors.channels.sms",
    "back_office": "connectors.channels.back_office",
}


def load_adapter(name: str) -> ChannelAdapter:
    """The adapter registered as ``name``; :class:`ConfigError` names the registered ones otherwise."""
    try:
        module_name = ADAPTER_MODULES[name]
    except KeyError:
        raise ConfigError(f"no channel adapter named {name!r}; registered: {', '.join(ADAPTER_MODULES)}") from None
    adapter = importlib.import_module(module_name).ADAPTER
    if not isinstance(adapter, ChannelAdapter):
        raise ConfigError(f"{module_name}.ADAPTER is not a ChannelAdapter")
    return adapter


def load_adapters(names: Iterable[str] | None = None) -> dict[str, ChannelAdapter]:
    """The adapters named (default: every registered one), by name."""
    return {name: load_adapter(name) for name in (ADAPTER_MODULES if names is None else names)}
