"""The worker (Faust/aiokafka) authenticates to Kafka with the same settings as the confluent-kafka clients."""

from __future__ import annotations

import faust

from omnichannel.settings import Settings
from streams.app import faust_credentials


def test_plaintext_needs_no_credentials() -> None:
    assert faust_credentials(Settings.from_env({}).kafka_security) is None


def test_sasl_scram_over_plaintext_carries_the_user_and_mechanism() -> None:
    security = Settings.from_env(
        {
            "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "KAFKA_SASL_USERNAME": "worker",
            "KAFKA_SASL_PASSWORD": "s3cret",
        }
    ).kafka_security
    credentials = faust_credentials(security)
    assert isinstance(credentials, faust.SASLCredentials)
    assert (credentials.username, credentials.password) == ("worker", "s3cret")
    assert credentials.mechanism.value == "SCRAM-SHA-512" and credentials.ssl_context is None


def test_tls_gets_a_verifying_context() -> None:
    credentials = faust_credentials(Settings.from_env({"KAFKA_SECURITY_PROTOCOL": "SSL"}).kafka_security)
    assert isinstance(credentials, faust.SSLCredentials)
    assert credentials.context.check_hostname
