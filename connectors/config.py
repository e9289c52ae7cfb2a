"""The collector's configuration: per-channel API keys, webhook secrets and limits, read once at start-up.

Environment variables (all optional when ``OMNICHANNEL_DEV=1``):

===================================  ==========================================================================
``OMNICHANNEL_CHANNEL_KEYS``         ``channel=key`` pairs, comma-separated, e.g. ``web=k1,mobile_app=k2``. A key
                                     publishes only the channels it is listed for (repeat a key to share it).
``OMNICHANNEL_WEBHOOK_SECRETS``      ``channel=secret`` pairs for signed provider webhooks, e.g. ``email=s1,sms=s2``.
``OMNICHANNEL_MAX_BODY_BYTES``       Largest request body accepted (default 1048576, 1 MiB): 413 above.
``OMNICHANNEL_MAX_BATCH_EVENTS``     Most events in one ``{"events": [...]}`` batch (default 500): 413 above.
``OMNICHANNEL_PUBLISH_TIMEOUT_S``    Longest wait for Kafka's acknowledgement before answering 503 (default 5).
``OMNICHANNEL_RETRY_AFTER_S``        ``Retry-After`` seconds sent with a 503 (default 5).
``OMNICHANNEL_WEBHOOK_TOLERANCE_S``  Largest age of a signed webhook's timestamp, against replays (default 300).
``OMNICHANNEL_ADAPTERS``             Channel adapters to enable, comma-separated (default: every registered one).
``OMNICHANNEL_DEV``                  ``1``: development defaults for absent keys and secrets (see below).
===================================  ==========================================================================

Development defaults (only with ``OMNICHANNEL_DEV=1``, never otherwise): the key of channel ``<c>`` is
``dev-<c>`` (``dev-web``, ``dev-mobile_app``...) and its webhook secret ``dev-<c>-secret``. Without the dev
flag, missing keys are an error and each key or secret must be at least 16 characters long.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from omnichannel.errors import ConfigError
from schemas.topics import CHANNELS

__all__ = ["MIN_SECRET_LENGTH", "CollectorConfig", "dev_key", "dev_secret"]

#: Shortest key or secret accepted outside development mode (a guessable key defeats per-channel auth).
MIN_SECRET_LENGTH = 16
_GENERATE_HINT = 'generate one with: python -c "import secrets; print(secrets.token_urlsafe(24))"'


def dev_key(channel: str) -> str:
    """The development API key of ``channel`` (only used when ``OMNICHANNEL_DEV=1``)."""
    return f"dev-{channel}"


def dev_secret(channel: str) -> str:
    """The development webhook secret of ``channel`` (only used when ``OMNICHANNEL_DEV=1``)."""
    return f"dev-{channel}-secret"


@dataclass(frozen=True)
class CollectorConfig:
    """What the collector and the webhooks accept, from whom, and how long they wait for Kafka.

    ``keys`` maps an API key to the channels it may publish; ``webhook_secrets`` maps a channel to the
    secret its provider signs webhooks with. Neither is shown by ``repr``.
    """

    keys: Mapping[str, frozenset[str]] = field(default_factory=dict, repr=False)
    webhook_secrets: Mapping[str, str] = field(default_factory=dict, repr=False)
    max_body_bytes: int = 1_048_576
    max_batch_events: int = 500
    publish_timeout_s: float = 5.0
    retry_after_s: int = 5
    webhook_tolerance_s: int = 300
    adapters: tuple[str, ...] | None = None  # None: every registered adapter
    dev: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CollectorConfig:
        """Build the configuration from the environment variables in this module's docstring."""
        env = os.environ if environ is None else environ
        dev = env.get("OMNICHANNEL_DEV", "").strip().lower() in ("1", "true", "yes")
        defaults = cls()
        keys = _channel_keys(env.get("OMNICHANNEL_CHANNEL_KEYS", ""), dev)
        secrets = _pairs("OMNICHANNEL_WEBHOOK_SECRETS", env.get("OMNICHANNEL_WEBHOOK_SECRETS", ""), dev)
        if dev:
            for channel in CHANNELS:
                if not any(channel in channels for channels in keys.values()):
                    keys.setdefault(dev_key(channel), frozenset({channel}))
                secrets.setdefault(channel, dev_secret(channel))
        if not keys:
            raise ConfigError(
                "no channel API keys are configured: set OMNICHANNEL_CHANNEL_KEYS=web=<key>,mobile_app=<key> "
                f"({_GENERATE_HINT}), or OMNICHANNEL_DEV=1 for the development keys dev-<channel>"
            )
        adapters_raw = env.get("OMNICHANNEL_ADAPTERS", "").strip()
        return cls(
            keys=keys,
            webhook_secrets=secrets,
            max_body_bytes=int(_positive(env, "OMNICHANNEL_MAX_BODY_BYTES", defaults.max_body_bytes)),
            max_batch_events=int(_positive(env, "OMNICHANNEL_MAX_BATCH_EVENTS", defaults.max_batch_events)),
            publish_timeout_s=float(_positive(env, "OMNICHANNEL_PUBLISH_TIMEOUT_S", defaults.publish_timeout_s)),
            retry_after_s=int(_positive(env, "OMNICHANNEL_RETRY_AFTER_S", defaults.retry_after_s)),
            webhook_tolerance_s=int(_positive(env, "OMNICHANNEL_WEBHOOK_TOLERANCE_S", defaults.webhook_tolerance_s)),
            adapters=tuple(a.strip() for a in adapters_raw.split(",") if a.strip()) if adapters_raw else None,
            dev=dev,
        )

    def channels_of(self, key: str) -> frozenset[str] | None:
        """The channels ``key`` may publish, or ``None`` for an unknown key."""
        return self.keys.get(key)


def _pairs(variable: str, raw: str, dev: bool) -> dict[str, str]:
    """Parse ``channel=value,channel=value``; channels must be Channel symbols."""
    pairs: dict[str, str] = {}
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        channel, sep, value = item.partition("=")
        channel, value = channel.strip(), value.strip()
        if not sep or not value:
            raise ConfigError(f"{variable}: {item!r} is not channel=value, e.g. {variable}=web=<value>")
        if channel not in CHANNELS:
            raise ConfigError(f"{variable}: {channel!r} is not a channel; channels: {', '.join(CHANNELS)}")
        if not dev and len(value) < MIN_SECRET_LENGTH:
            raise ConfigError(
                f"{variable}: the value for {channel} is shorter than {MIN_SECRET_LENGTH} characters; {_GENERATE_HINT}"
            )
        pairs[channel] = value
    return pairs


def _channel_keys(raw: str, dev: bool) -> dict[str, frozenset[str]]:
    by_key: dict[str, set[str]] = {}
    for item in (part.strip() for part in raw.split(",")):
        if item:  # parsed pair by pair so one key may be listed for several channels
            ((channel, key),) = _pairs("OMNICHANNEL_CHANNEL_KEYS", item, dev).items()
            by_key.setdefault(key, set()).add(channel)
    return {key: frozenset(channels) for key, channels in by_key.items()}


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if value <= 0:
        raise ConfigError(f"{name}={raw!r} must be a positive number, e.g. {name}={default:g}")
    return value
