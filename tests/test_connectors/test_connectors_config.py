"""CollectorConfig.from_env: keys per channel, secrets, limits, and development defaults only on request."""

from __future__ import annotations

import pytest

from connectors.config import CollectorConfig
from omnichannel.errors import ConfigError

LONG = "k" * 16


def test_keys_map_to_their_channels_and_a_key_may_serve_several() -> None:
    config = CollectorConfig.from_env(
        {"OMNICHANNEL_CHANNEL_KEYS": f"web={LONG}1, mobile_app={LONG}2,tablet={LONG}2", "OMNICHANNEL_DEV": ""}
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
        }
    )
    assert (config.max_body_bytes, config.max_batch_events, config.publish_timeout_s) == (2048, 10, 0.5)
    assert config.retry_after_s == 7
    assert config.webhook_secrets == {"email": f"{LONG}e"}
    assert config.adapters == ("web", "email_provider")


def test_development_defaults_only_with_the_dev_flag() -> None:
    config = CollectorConfig.from_env({"OMNICHANNEL_DEV": "1"})
    assert config.channels_of("dev-web") == {"web"}
    assert config.webhook_secrets["sms"] == "dev-sms-secret"
    with pytest.raises(ConfigError, match="OMNICHANNEL_CHANNEL_KEYS"):
        CollectorConfig.from_env({})


def test_dev_defaults_do_not_override_configured_keys() -> None:
    config = CollectorConfig.from_env({"OMNICHANNEL_DEV": "1", "OMNICHANNEL_CHANNEL_KEYS": "web=mine"})
    assert config.channels_of("mine") == {"web"}
    assert config.channels_of("dev-web") is None
    assert config.channels_of("dev-tablet") == {"tablet"}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OMNICHANNEL_CHANNEL_KEYS": "web=short"}, "shorter than 16"),
        ({"OMNICHANNEL_CHANNEL_KEYS": f"fax={LONG}"}, "'fax' is not a channel"),
        ({"OMNICHANNEL_CHANNEL_KEYS": LONG}, "is not channel=value"),
        ({"OMNICHANNEL_CHANNEL_KEYS": f"web={LONG}", "OMNICHANNEL_MAX_BODY_BYTES": "-1"}, "positive number"),
        ({"OMNICHANNEL_CHANNEL_KEYS": f"web={LONG}", "OMNICHANNEL_RETRY_AFTER_S": "soon"}, "positive number"),
    ],
)
def test_bad_settings_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        CollectorConfig.from_env(env)
