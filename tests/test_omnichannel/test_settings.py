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


def test_kafka_and_registry_credentials_reach_the_client_configs(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    settings = Settings.from_env(
        {
            "KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "KAFKA_SASL_USERNAME": "backbone",
            "KAFKA_SASL_PASSWORD": "s3cret-password",
            "KAFKA_SSL_CAFILE": str(ca),
            "SCHEMA_REGISTRY_BASIC_AUTH": "svc:registry-password",
        }
    )
    assert settings.kafka_security.confluent_config() == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "backbone",
        "sasl.password": "s3cret-password",
        "ssl.ca.location": str(ca.resolve()),
    }
    assert settings.schema_registry_basic_auth == "svc:registry-password"
    assert "s3cret" not in repr(settings) and "registry-password" not in repr(settings), "secrets stay out of logs"
    assert Settings.from_env({}).kafka_security.confluent_config() == {"security.protocol": "PLAINTEXT"}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "is not one of PLAINTEXT"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "u"}, "needs KAFKA_SASL_MECHANISM"),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_MECHANISM": "PLAIN"},
            "needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD",
        ),
        ({"KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p"}, "set SASL_SSL"),
        ({"KAFKA_SSL_CAFILE": "/nonexistent/ca.pem"}, "not a readable file"),
        ({"SCHEMA_REGISTRY_BASIC_AUTH": "no-colon"}, "user:password"),
    ],
)
def test_incomplete_credentials_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)
