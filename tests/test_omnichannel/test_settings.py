from __future__ import annotations

from pathlib import Path

import pytest

from omnichannel.errors import ConfigError
from omnichannel.settings import Settings


def test_addresses_come_from_the_documented_variables(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": "k1:9092,k2:9092",
            "SCHEMA_REGISTRY_URL": "http://sr:8081",
            "REDIS_URL": "redis://r:6379/2",
            "OMNICHANNEL_STATE_DIR": str(tmp_path / "state"),
        }
    )
    assert settings.kafka_bootstrap_servers == "k1:9092,k2:9092"
    assert settings.schema_registry_url == "http://sr:8081"
    assert settings.redis_url == "redis://r:6379/2"
    assert settings.state_dir == tmp_path / "state"


def test_blank_variables_mean_not_given() -> None:
    settings = Settings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "  ", "REDIS_URL": ""})
    assert settings.kafka_bootstrap_servers is None
    assert settings.redis_url is None


def test_unknown_docker_mode_is_rejected_with_the_valid_choices() -> None:
    with pytest.raises(ConfigError, match=r"OMNICHANNEL_DOCKER='sometimes' is not one of auto, never"):
        Settings.from_env({"OMNICHANNEL_DOCKER": "sometimes"})
