"""The collector's configuration: per-channel API keys, webhook secrets and limits, read once at start-up.

Environment variables (all optional when ``OMNICHANNEL_DEV=1``):

======================================  ==========================================================================
``OMNICHANNEL_CHANNEL_KEYS``            ``channel=key`` pairs, comma-separated, e.g. ``web=k1,mobile_app=k2``. A key
                                        publishes only the channels it is listed for (repeat a key to share it).
``OMNICHANNEL_WEBHOOK_SECRETS``         ``channel=secret`` pairs for signed provider webhooks, e.g. ``email=s1,sms=s2``.
``OMNICHANNEL_READ_KEYS``               Comma-separated keys that may read customer data (records, carts, identities).
``OMNICHANNEL_ADMIN_KEYS``              Comma-separated keys for admin operations (they may read as well).
``OMNICHANNEL_HASH_KEY``                Secret of the keyed hash of clear e-mails and phone numbers (required,
                                        at least 16 characters; see :mod:`connectors.hashing`).
``OMNICHANNEL_MAX_BODY_BYTES``          Largest request body accepted (default 1048576, 1 MiB): 413 above.
``OMNICHANNEL_MAX_BATCH_EVENTS``        Most events in one ``{"events": [...]}`` batch (default 500): 413 above.
``OMNICHANNEL_PUBLISH_TIMEOUT_S``       Longest wait for Kafka's acknowledgement before answering 503 (default 5).
``OMNICHANNEL_RETRY_AFTER_S``           ``Retry-After`` seconds sent with a 503 (default 5).
``OMNICHANNEL_WEBHOOK_TOLERANCE_S``     Largest age of a signed webhook's timestamp, against replays (default 300).
``OMNICHANNEL_BODY_TIMEOUT_S``          Longest wait for a request's whole body, from its start (default 10): 408.
``OMNICHANNEL_REQUEST_TIMEOUT_S``       Longest wait for the answer to start, body included (default 30): 408.
``OMNICHANNEL_MAX_PENDING_BODIES``      Most requests receiving their bodies at once (default 64): 503 above.
``OMNICHANNEL_MAX_EVENT_AGE_DAYS``      Oldest ``occurred_at_ms`` accepted, in days before receipt (default 3650): 422.
``OMNICHANNEL_MAX_CLOCK_SKEW_MINUTES``  Furthest ``occurred_at_ms`` accepted after receipt (default 60): 422.
``OMNICHANNEL_ADAPTERS``                Channel adapters to enable, comma-separated (default: every registered one).
``OMNICHANNEL_DEV``                     ``1``: development defaults for absent keys and secrets (see below).
======================================  ==========================================================================

Development mode (``OMNICHANNEL_DEV=1``, never otherwise): the key of channel ``<c>`` is ``dev-<c>``
(``dev-web``, ``dev-mobile_app``...), its webhook secret ``dev-<c>-secret``, the read key ``dev-read``, the admin
key ``dev-admin`` and the hash key :data:`connectors.hashing.DEV_HASH_KEY` unless ``OMNICHANNEL_HASH_KEY`` is
set. These are public, so development mode refuses to start beside real keys or secrets (a dev key would
open a production deployment). Without the dev flag, missing keys are an error and each key or secret must be
at least 16 characters long.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from connectors.envelope import EventTimeWindow
from connectors.hashing import DEV_HASH_KEY
from omnichannel.errors import ConfigError
from schemas.topics import CHANNELS

__all__ = [
    "DEV_ADMIN_KEY",
    "DEV_READ_KEY",
    "MIN_SECRET_LENGTH",
    "CollectorConfig",
    "dev_key",
    "dev_secret",
    "event_window_from_env",
]

#: The development read and admin keys (only used when ``OMNICHANNEL_DEV=1``).
DEV_READ_KEY = "dev-read"
DEV_ADMIN_KEY = "dev-admin"
#: Variables holding real credentials: development mode refuses to start when one is set.
_REAL_CREDENTIALS = (
    "OMNICHANNEL_CHANNEL_KEYS",
    "OMNICHANNEL_WEBHOOK_SECRETS",
    "OMNICHANNEL_READ_KEYS",
    "OMNICHANNEL_ADMIN_KEYS",
)

#: Shortest key or secret accepted outside development mode (a guessable key defeats per-channel auth).
MIN_SECRET_LENGTH = 16
_GENERATE_HINT = 'generate one with: python -c "import secrets; print(secrets.token_urlsafe(24))"'


def dev_key(channel: str) -> str:
    """The development API key of ``channel`` (only used when ``OMNICHANNEL_DEV=1``)."""
    return f"dev-{channel}"


def dev_secret(channel: str) -> str:
    """The development webhook secret of ``channel`` (only used when ``OMNICHANNEL_DEV=1``)."""
    return f"dev-{channel}-secret"


@dataclass(frozen=True, kw_only=True)
class CollectorConfig:
    """What the collector, the webhooks and the read API accept, from whom, and how long they wait for Kafka.

    ``keys`` maps an API key to the channels it may publish; ``read_keys`` may read customer data and
    ``admin_keys`` run admin operations (and read); ``webhook_secrets`` maps a channel to the secret its
    provider signs webhooks with; ``hash_key`` keys the hash of clear identifiers. None is shown by ``repr``.
    """

    hash_key: bytes = field(repr=False)
    keys: Mapping[str, frozenset[str]] = field(default_factory=dict, repr=False)
    read_keys: frozenset[str] = field(default=frozenset(), repr=False)
    admin_keys: frozenset[str] = field(default=frozenset(), repr=False)
    webhook_secrets: Mapping[str, str] = field(default_factory=dict, repr=False)
    max_body_bytes: int = 1_048_576
    max_batch_events: int = 500
    publish_timeout_s: float = 5.0
    retry_after_s: int = 5
    webhook_tolerance_s: int = 300
    body_timeout_s: float = 10.0
    request_timeout_s: float = 30.0
    max_pending_bodies: int = 64
    event_window: EventTimeWindow = field(default_factory=EventTimeWindow)
    adapters: tuple[str, ...] | None = None  # None: every registered adapter
    dev: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CollectorConfig:
        """Build the configuration from the environment variables in this module's docstring."""
        env = os.environ if environ is None else environ
        dev = env.get("OMNICHANNEL_DEV", "").strip().lower() in ("1", "true", "yes")
        defaults = cls(hash_key=DEV_HASH_KEY)
        if dev and (real := [name for name in _REAL_CREDENTIALS if env.get(name, "").strip()]):
            raise ConfigError(
                f"OMNICHANNEL_DEV=1 is set beside real credentials ({', '.join(real)}): the development keys are "
                "public and would open this deployment. Unset OMNICHANNEL_DEV for production, or unset "
                f"{', '.join(real)} to develop with the dev-<channel>, dev-read and dev-admin keys"
            )
        keys = _channel_keys(env.get("OMNICHANNEL_CHANNEL_KEYS", ""), dev)
        secrets = _pairs("OMNICHANNEL_WEBHOOK_SECRETS", env.get("OMNICHANNEL_WEBHOOK_SECRETS", ""), dev)
        read_keys = _keys("OMNICHANNEL_READ_KEYS", env.get("OMNICHANNEL_READ_KEYS", ""))
        admin_keys = _keys("OMNICHANNEL_ADMIN_KEYS", env.get("OMNICHANNEL_ADMIN_KEYS", ""))
        if dev:
            keys = {dev_key(channel): frozenset({channel}) for channel in CHANNELS}
            secrets = {channel: dev_secret(channel) for channel in CHANNELS}
            read_keys, admin_keys = frozenset({DEV_READ_KEY}), frozenset({DEV_ADMIN_KEY})
        if not keys:
            raise ConfigError(
                "no channel API keys are configured: set OMNICHANNEL_CHANNEL_KEYS=web=<key>,mobile_app=<key> "
                f"({_GENERATE_HINT}), or OMNICHANNEL_DEV=1 for the development keys dev-<channel>"
            )
        adapters_raw = env.get("OMNICHANNEL_ADAPTERS", "").strip()
        return cls(
            hash_key=_hash_key(env, dev),
            keys=keys,
            read_keys=read_keys,
            admin_keys=admin_keys,
            webhook_secrets=secrets,
            max_body_bytes=int(_positive(env, "OMNICHANNEL_MAX_BODY_BYTES", defaults.max_body_bytes)),
            max_batch_events=int(_positive(env, "OMNICHANNEL_MAX_BATCH_EVENTS", defaults.max_batch_events)),
            publish_timeout_s=float(_positive(env, "OMNICHANNEL_PUBLISH_TIMEOUT_S", defaults.publish_timeout_s)),
            retry_after_s=int(_positive(env, "OMNICHANNEL_RETRY_AFTER_S", defaults.retry_after_s)),
            webhook_tolerance_s=int(_positive(env, "OMNICHANNEL_WEBHOOK_TOLERANCE_S", defaults.webhook_tolerance_s)),
            body_timeout_s=_positive(env, "OMNICHANNEL_BODY_TIMEOUT_S", defaults.body_timeout_s),
            request_timeout_s=_positive(env, "OMNICHANNEL_REQUEST_TIMEOUT_S", defaults.request_timeout_s),
            max_pending_bodies=int(_positive(env, "OMNICHANNEL_MAX_PENDING_BODIES", defaults.max_pending_bodies)),
            event_window=event_window_from_env(env),
            adapters=tuple(a.strip() for a in adapters_raw.split(",") if a.strip()) if adapters_raw else None,
            dev=dev,
        )

    def channels_of(self, key: str) -> frozenset[str] | None:
        """The channels ``key`` may publish, or ``None`` for an unknown key."""
        return self.keys.get(key)


def event_window_from_env(environ: Mapping[str, str] | None = None) -> EventTimeWindow:
    """The accepted ``occurred_at_ms`` window (``OMNICHANNEL_MAX_EVENT_AGE_DAYS``, ``..._CLOCK_SKEW_MINUTES``)."""
    env = os.environ if environ is None else environ
    defaults = EventTimeWindow()
    return EventTimeWindow(
        max_age_days=_positive(env, "OMNICHANNEL_MAX_EVENT_AGE_DAYS", defaults.max_age_days),
        max_skew_minutes=_positive(env, "OMNICHANNEL_MAX_CLOCK_SKEW_MINUTES", defaults.max_skew_minutes),
    )


def _hash_key(env: Mapping[str, str], dev: bool) -> bytes:
    raw = env.get("OMNICHANNEL_HASH_KEY", "").strip()
    if not raw and dev:
        return DEV_HASH_KEY
    if not raw:
        raise ConfigError(
            "OMNICHANNEL_HASH_KEY is not set: it keys the hash of the e-mails and phone numbers the backbone "
            f"receives in clear; {_GENERATE_HINT}, keep it secret and never change it (hashes would stop "
            "matching), or set OMNICHANNEL_DEV=1 for development"
        )
    if len(raw) < MIN_SECRET_LENGTH:
        raise ConfigError(f"OMNICHANNEL_HASH_KEY is shorter than {MIN_SECRET_LENGTH} characters; {_GENERATE_HINT}")
    return raw.encode("utf-8")


def _keys(variable: str, raw: str) -> frozenset[str]:
    """Parse ``key,key``; each at least MIN_SECRET_LENGTH long (only read outside development mode)."""
    keys = frozenset(part.strip() for part in raw.split(",") if part.strip())
    if any(len(key) < MIN_SECRET_LENGTH for key in keys):
        raise ConfigError(f"{variable}: a key is shorter than {MIN_SECRET_LENGTH} characters; {_GENERATE_HINT}")
    return keys


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
