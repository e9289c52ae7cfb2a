"""Typed, frozen settings, read from the environment once at an entry point and passed down.

Library code never reads ``os.environ``: the CLI, the workers and the test fixtures build a
:class:`Settings` with :meth:`Settings.from_env` and hand it to what they start.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from omnichannel.errors import ConfigError

__all__ = ["KAFKA_VERSION", "REGISTRY_VERSION", "KafkaSecurity", "Settings"]

#: Apache Kafka release fetched from Maven Central for the local stack (broker and tools on one version).
KAFKA_VERSION = "4.1.1"
#: Log4j 2 version Kafka 4.1 was built with; its SLF4J 1.x binding is not in Kafka's published POM.
KAFKA_LOG4J_VERSION = "2.24.3"
#: Apicurio Registry release whose Confluent-compatible API (``/apis/ccompat/v7``) the local stack serves.
REGISTRY_VERSION = "3.0.9"

_DOCKER_MODES = ("auto", "never")
_SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
_SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True)
class KafkaSecurity:
    """How clients authenticate to Kafka and check its certificate (all optional: PLAINTEXT by default).

    Passed to confluent-kafka as :meth:`confluent_config`; the Faust/aiokafka worker takes the same fields
    (``security_protocol``, ``sasl_mechanism``, ``sasl_plain_username``/``password``, an SSL context from
    ``ca_file``).
    """

    protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ca_file: Path | None = None

    def confluent_config(self) -> dict[str, str]:
        """The librdkafka properties (``security.protocol``, ``sasl.*``, ``ssl.ca.location``) to merge in."""
        config = {"security.protocol": self.protocol}
        if self.sasl_mechanism:
            config["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username is not None and self.sasl_password is not None:
            config |= {"sasl.username": self.sasl_username, "sasl.password": self.sasl_password}
        if self.ca_file is not None:
            config["ssl.ca.location"] = str(self.ca_file)
        return config


@dataclass(frozen=True)
class Settings:
    """Where the services are and where the project keeps its files.

    ``None`` addresses mean "not given": the stack resolver then reuses a stack started by
    ``omnichannel stack up``, or starts one (Docker if an engine answers, else local processes).
    """

    kafka_bootstrap_servers: str | None = None
    schema_registry_url: str | None = None
    redis_url: str | None = None
    state_dir: Path = field(default_factory=lambda: Path(".omnichannel").resolve())
    cache_dir: Path = field(default_factory=lambda: Path.home() / ".cache" / "omnichannel")
    docker: str = "auto"
    install_missing: bool = True
    partitions: int = 4
    #: Prepended to every topic name and Redis key, so several deployments (or test runs) can share one
    #: Kafka and one Redis without seeing each other's data. Empty by default.
    namespace: str = ""
    kafka_security: KafkaSecurity = field(default_factory=KafkaSecurity)
    #: ``user:password`` for the Schema Registry's HTTP basic auth (``SCHEMA_REGISTRY_BASIC_AUTH``).
    schema_registry_basic_auth: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from environment variables (see the README's configuration table)."""
        env = os.environ if environ is None else environ
        docker = env.get("OMNICHANNEL_DOCKER", "auto").strip().lower() or "auto"
        if docker not in _DOCKER_MODES:
            raise ConfigError(f"OMNICHANNEL_DOCKER={docker!r} is not one of {', '.join(_DOCKER_MODES)}")
        defaults = cls()
        return cls(
            kafka_bootstrap_servers=_optional(env, "KAFKA_BOOTSTRAP_SERVERS"),
            schema_registry_url=_optional(env, "SCHEMA_REGISTRY_URL"),
            redis_url=_optional(env, "REDIS_URL"),
            state_dir=Path(env["OMNICHANNEL_STATE_DIR"]).resolve()
            if env.get("OMNICHANNEL_STATE_DIR")
            else defaults.state_dir,
            cache_dir=Path(env["OMNICHANNEL_CACHE_DIR"]).resolve()
            if env.get("OMNICHANNEL_CACHE_DIR")
            else defaults.cache_dir,
            docker=docker,
            install_missing=env.get("OMNICHANNEL_INSTALL_MISSING", "1") not in ("0", "false", "no"),
            partitions=_positive_int(env, "OMNICHANNEL_PARTITIONS", defaults.partitions),
            namespace=_namespace(env),
            kafka_security=_kafka_security(env),
            schema_registry_basic_auth=_basic_auth(env),
        )

    def topic(self, name: str) -> str:
        """The real name of catalogue topic ``name`` in this deployment's namespace."""
        return f"{self.namespace}.{name}" if self.namespace else name

    @property
    def redis_cluster(self) -> bool:
        """True when ``redis_url`` names a Redis Cluster (``redis+cluster://``: :mod:`omnichannel.redis_clients`)."""
        return (self.redis_url or "").split("://", 1)[0] in ("redis+cluster", "rediss+cluster")

    def with_addresses(self, kafka: str, registry: str, redis: str) -> Settings:
        """A copy pointing at a resolved stack."""
        return replace(self, kafka_bootstrap_servers=kafka, schema_registry_url=registry, redis_url=redis)


def _kafka_security(env: Mapping[str, str]) -> KafkaSecurity:
    protocol = (_optional(env, "KAFKA_SECURITY_PROTOCOL") or "PLAINTEXT").upper()
    if protocol not in _SECURITY_PROTOCOLS:
        raise ConfigError(
            f"KAFKA_SECURITY_PROTOCOL={protocol!r} is not one of {', '.join(_SECURITY_PROTOCOLS)}, "
            "e.g. KAFKA_SECURITY_PROTOCOL=SASL_SSL"
        )
    mechanism = _optional(env, "KAFKA_SASL_MECHANISM")
    username, password = _optional(env, "KAFKA_SASL_USERNAME"), _optional(env, "KAFKA_SASL_PASSWORD")
    if protocol.startswith("SASL_"):
        mechanism = (mechanism or "").upper()
        if mechanism not in _SASL_MECHANISMS:
            raise ConfigError(
                f"KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_SASL_MECHANISM, one of {', '.join(_SASL_MECHANISMS)}"
            )
        if username is None or password is None:
            raise ConfigError(f"KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD")
    elif mechanism or username or password:
        raise ConfigError(
            f"KAFKA_SASL_* is set but KAFKA_SECURITY_PROTOCOL={protocol}: set SASL_SSL (or SASL_PLAINTEXT) to use it"
        )
    ca = _optional(env, "KAFKA_SSL_CAFILE")
    ca_file = Path(ca).resolve() if ca else None
    if ca_file is not None and not ca_file.is_file():
        raise ConfigError(f"KAFKA_SSL_CAFILE={ca!r} is not a readable file (the PEM of the CA that signed the brokers)")
    return KafkaSecurity(protocol, mechanism or None, username, password, ca_file)


def _basic_auth(env: Mapping[str, str]) -> str | None:
    value = _optional(env, "SCHEMA_REGISTRY_BASIC_AUTH")
    if value is not None and ":" not in value:
        raise ConfigError(
            "SCHEMA_REGISTRY_BASIC_AUTH must be user:password, e.g. SCHEMA_REGISTRY_BASIC_AUTH=svc:s3cret"
        )
    return value


def _optional(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _namespace(env: Mapping[str, str]) -> str:
    value = env.get("OMNICHANNEL_NAMESPACE", "").strip()
    if value and not all(c.isalnum() or c in "-_" for c in value):
        raise ConfigError(
            f"OMNICHANNEL_NAMESPACE={value!r} may only hold letters, digits, '-' and '_' (it prefixes topic "
            "names and Redis keys), e.g. OMNICHANNEL_NAMESPACE=staging"
        )
    return value


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise ConfigError(f"{name}={raw!r} must be a positive whole number, e.g. {name}={default}")
    return value
