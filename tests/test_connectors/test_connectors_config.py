"""CollectorConfig.from_env: keys per channel, secrets, limits, and development defaults only on request."""

from __future__ import annotations

import pytest

from connectors.config import CollectorConfig
from connectors.hashing import DEV_HASH_KEY
from omnichannel.errors import ConfigError

LONG = "k" * 16
HASH = {"OMNICHANNEL_HASH_KEY": "h" * 32}


def test_keys_map_to_their_channels_and_a_key_may_serve_several() -> None:
    config = CollectorConfig.from_env(
        {"OMNICHANNEL_CHANNEL_KEYS": f"web={LONG}1, mobile_app={LONG}2,tablet={LONG}2", "OMNICHANNEL_DEV": "", **HASH}
    )
    assert config.channels_of(f"{LONG}1") == {"web"}
    assert config.channels_of(f"{LONG}2") == {"mobile_app", "tablet"}
    assert config.channels_of("nope") is None
    assert not config.dev
    assert LONG not in repr(config), "keys must not leak into logs"


def test_limits_and_secrets_are_read() -> None:
    config = CollectorConfig.from_env(
        {
            "OMNICHANNEL_CHANNEL_KEYS": f"web={LONG}",
            "OMNICHANNEL_WEBHOOK_SECRETS": f"email={LONG}e",
            "OMNICHANNEL_MAX_BODY_BYTES": "2048",
            "OMNICHANNEL_MAX_BATCH_EVENTS": "10",
            "OMNICHANNEL_PUBLISH_TIMEOUT_S": "0.5",
            "OMNICHANNEL_RETRY_AFTER_S": "7",
            "OMNICHANNEL_ADAPTERS": "web, email_provider",
            "OMNICHANNEL_BODY_TIMEOUT_S": "2.5",
            "OMNICHANNEL_REQUEST_TIMEOUT_S": "9",
            "OMNICHANNEL_MAX_PENDING_BODIES": "3",
            "OMNICHANNEL_MAX_EVENT_AGE_DAYS": "30",
            "OMNICHANNEL_MAX_CLOCK_SKEW_MINUTES": "5",
            **HASH,
        }
    )
    assert (config.body_timeout_s, config.request_timeout_s, config.max_pending_bodies) == (2.5, 9.0, 3)
    assert (config.event_window.max_age_days, config.event_window.max_skew_minutes) == (30, 5)
    assert (config.max_body_bytes, config.max_batch_events, config.publish_timeout_s) == (2048, 10, 0.5)
    assert config.retry_after_s == 7
    assert config.webhook_secrets == {"email": f"{LONG}e"}
    assert config.adapters == ("web", "email_provider")


def test_development_defaults_only_with_the_dev_flag() -> None:
    config = CollectorConfig.from_env({"OMNICHANNEL_DEV": "1"})
    assert config.channels_of("dev-web") == {"web"}
    assert config.webhook_secrets["sms"] == "dev-sms-secret"
    assert (config.read_keys, config.admin_keys) == ({"dev-read"}, {"dev-admin"})
    assert config.hash_key == DEV_HASH_KEY
    with pytest.raises(ConfigError, match="OMNICHANNEL_CHANNEL_KEYS"):
        CollectorConfig.from_env(HASH)


@pytest.mark.parametrize(
    "variable",
    ["OMNICHANNEL_CHANNEL_KEYS", "OMNICHANNEL_WEBHOOK_SECRETS", "OMNICHANNEL_READ_KEYS", "OMNICHANNEL_ADMIN_KEYS"],
)
def test_development_mode_refuses_to_start_beside_real_credentials(variable: str) -> None:
    value = f"web={LONG}" if variable == "OMNICHANNEL_CHANNEL_KEYS" else f"sms={LONG}"
    value = LONG if variable in ("OMNICHANNEL_READ_KEYS", "OMNICHANNEL_ADMIN_KEYS") else value
    with pytest.raises(ConfigError, match=f"OMNICHANNEL_DEV=1 is set beside real credentials \\({variable}\\)"):
        CollectorConfig.from_env({"OMNICHANNEL_DEV": "1", variable: value, **HASH})


def test_the_hash_key_is_required_outside_development_mode() -> None:
    keys = {"OMNICHANNEL_CHANNEL_KEYS": f"web={LONG}"}
    with pytest.raises(ConfigError, match="OMNICHANNEL_HASH_KEY is not set"):
        CollectorConfig.from_env(keys)
    with pytest.raises(ConfigError, match="OMNICHANNEL_HASH_KEY is shorter than 16"):
        CollectorConfig.from_env({**keys, "OMNICHANNEL_HASH_KEY": "short"})
    config = CollectorConfig.from_env({**keys, **HASH})
    assert config.hash_key == b"h" * 32
    assert "hhhh" not in repr(config)
    dev = CollectorConfig.from_env({"OMNICHANNEL_DEV": "1", **HASH})
    assert dev.hash_key == b"h" * 32, "a configured hash key is used in development mode too"


def test_read_and_admin_keys_are_read() -> None:
    config = CollectorConfig.from_env(
        {
            "OMNICHANNEL_CHANNEL_KEYS": f"web={LONG}",
            "OMNICHANNEL_READ_KEYS": f"{LONG}r1, {LONG}r2",
            "OMNICHANNEL_ADMIN_KEYS": f"{LONG}a",
            **HASH,
        }
    )
    assert config.read_keys == {f"{LONG}r1", f"{LONG}r2"}
    assert config.admin_keys == {f"{LONG}a"}
    assert "r1" not in repr(config)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OMNICHANNEL_CHANNEL_KEYS": "web=short"}, "shorter than 16"),
        ({"OMNICHANNEL_CHANNEL_KEYS": f"fax={LONG}"}, "'fax' is not a channel"),
        ({"OMNICHANNEL_CHANNEL_KEYS": LONG}, "is not channel=value"),
        ({"OMNICHANNEL_CHANNEL_KEYS": f"web={LONG}", "OMNICHANNEL_MAX_BODY_BYTES": "-1"}, "positive number"),
        ({"OMNICHANNEL_CHANNEL_KEYS": f"web={LONG}", "OMNICHANNEL_RETRY_AFTER_S": "soon"}, "positive number"),
        ({"OMNICHANNEL_CHANNEL_KEYS": f"web={LONG}", "OMNICHANNEL_BODY_TIMEOUT_S": "0"}, "BODY_TIMEOUT_S='0'"),
        ({"OMNICHANNEL_CHANNEL_KEYS": f"web={LONG}", "OMNICHANNEL_MAX_EVENT_AGE_DAYS": "-3"}, "positive number"),
        ({"OMNICHANNEL_CHANNEL_KEYS": f"web={LONG}", "OMNICHANNEL_READ_KEYS": "short"}, "READ_KEYS: a key is shorter"),
    ],
)
def test_bad_settings_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        CollectorConfig.from_env({**HASH, **env})
