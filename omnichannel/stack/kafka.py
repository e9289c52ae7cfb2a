"""Apache Kafka: readiness probe, and a single-node KRaft broker started from Maven Central's jars."""

from __future__ import annotations

import base64
import functools
import os
import re
import socket
import subprocess
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from omnichannel.errors import ServiceStartError
from omnichannel.kafka_logging import librdkafka_logger
from omnichannel.settings import KAFKA_VERSION
from omnichannel.stack.maven import kafka_classpath, require_java
from omnichannel.stack.model import Progress, ServiceInfo
from omnichannel.stack.processes import pick_port, spawn, stop, tail, wait_until

__all__ = ["ScramUser", "kafka_answers", "start_local_kafka"]

_LOG4J2 = """status = error
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stdout.ref = STDOUT
# Readiness is read from this logger's "Kafka Server started" line.
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = INFO
"""

START_TIMEOUT_S = 90.0


def kafka_answers(bootstrap: str, timeout: float = 5.0, security: Mapping[str, str] | None = None) -> bool:
    """True when a broker at ``bootstrap`` serves a metadata request (an open port is not enough).

    ``security``: librdkafka ``security.protocol``/``sasl.*`` properties for a broker that requires them.
    """
    if _every_server_refuses(bootstrap):  # nothing listens: no need to wait out librdkafka's retries
        return False
    # A probe: librdkafka's reconnect lines go to DEBUG; the caller words the outcome.
    logger = librdkafka_logger(bootstrap, announce=False)
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "socket.timeout.ms": int(timeout * 1000),
        "logger": logger,
        **(security or {}),
    }
    admin = AdminClient(config)
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException:
        admin.poll(0)
        return False
    return bool(metadata.brokers)


def _every_server_refuses(bootstrap: str) -> bool:
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=1.0):
                return False
        except ConnectionRefusedError:
            continue
        except (OSError, ValueError):  # unreachable or unparsable: let the real probe decide
            return False
    return True


_SCRAM = "SCRAM-SHA-512"
_SCRAM_LOGIN = "org.apache.kafka.common.security.scram.ScramLoginModule"


@dataclass(frozen=True)
class ScramUser:
    """The one SCRAM-SHA-512 user of a broker started with a SASL listener (clients and the broker itself)."""

    username: str
    password: str = field(repr=False)

    def client_config(self) -> dict[str, str]:
        """The librdkafka properties a client of that listener needs."""
        return {
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": _SCRAM,
            "sasl.username": self.username,
            "sasl.password": self.password,
        }


def _listener_properties(port: int, controller_port: int, scram: ScramUser | None) -> str:
    if scram is None:
        return f"""listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
"""
    # Clients and the broker itself authenticate with SCRAM; the controller listener, on loopback and used by
    # this node alone, stays PLAINTEXT. The user exists from the start: `format --add-scram` writes it.
    jaas = f'{_SCRAM_LOGIN} required username="{scram.username}" password="{scram.password}";'
    return f"""listeners=SASL_PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=SASL_PLAINTEXT://127.0.0.1:{port}
listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=SASL_PLAINTEXT
sasl.enabled.mechanisms={_SCRAM}
sasl.mechanism.inter.broker.protocol={_SCRAM}
listener.name.sasl_plaintext.{_SCRAM.lower()}.sasl.jaas.config={jaas}
"""


def server_properties(
    data_dir: Path,
    port: int,
    controller_port: int,
    *,
    node_id: int = 1,
    voters: str | None = None,
    replicas: int = 1,
    scram: ScramUser | None = None,
) -> str:
    """One node's configuration: a combined broker+controller; ``voters`` lists the whole quorum of a cluster."""
    voters = voters or f"1@127.0.0.1:{controller_port}"
    min_isr = min(2, replicas)
    return f"""process.roles=broker,controller
node.id={node_id}
controller.quorum.voters={voters}
{_listener_properties(port, controller_port, scram)}controller.listener.names=CONTROLLER
log.dirs={data_dir}
# Internal topics (consumer offsets, transactions) replicated on up to three brokers, as the catalogue's topics:
# with three, one broker can die without losing a committed offset.
offsets.topic.replication.factor={replicas}
transaction.state.log.replication.factor={replicas}
transaction.state.log.min.isr={min_isr}
share.coordinator.state.topic.replication.factor={replicas}
share.coordinator.state.topic.min.isr={min_isr}
default.replication.factor={replicas}
min.insync.replicas={min_isr}
# Small and fast for development and tests: one offsets partition, no rebalance delay.
offsets.topic.num.partitions=1
group.initial.rebalance.delay.ms=0
num.partitions=1
auto.create.topics.enable=true
# The cleaner's dedupe buffer defaults to 128 MiB of heap, too much for a 512 MiB broker.
log.cleaner.dedupe.buffer.size=8388608
"""


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes as unpadded base64url (one starting with '-' reads as an option)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def format_storage(
    java: str, classpath: str, home: Path, config: Path, cluster_id: str, extra: Sequence[str] = ()
) -> None:
    """Format a node's log directory for ``cluster_id`` (once: a formatted directory is kept across restarts).

    ``extra``: more ``StorageTool format`` arguments (``--add-scram ...`` for a SASL listener's user).
    """
    fmt = spawn(
        [java, "-cp", classpath, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config), *extra],
        home / "format.log",
    )
    if fmt.wait(timeout=120) != 0:
        raise ServiceStartError(f"Formatting Kafka storage failed:\n{tail(home / 'format.log')}")


def spawn_broker(java: str, classpath: str, home: Path, config: Path, heap: str = "768m") -> subprocess.Popen[bytes]:
    """Start one ``kafka.Kafka`` process on ``config``, logging to ``home/kafka.log``."""
    (home / "log4j2.properties").write_text(_LOG4J2)
    return spawn(
        [
            java,
            "-Xms256m",
            f"-Xmx{heap}",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",  # faster start; benchmarks may drop it
            f"-Dlog4j2.configurationFile={home / 'log4j2.properties'}",
            "-cp",
            classpath,
            "kafka.Kafka",
            str(config),
        ],
        home / "kafka.log",
    )


def start_local_kafka(
    cache_dir: Path, run_dir: Path, progress: Progress, *, port: int | None = None, scram: ScramUser | None = None
) -> ServiceInfo:
    """Format and start a broker+controller on loopback ports; return once it serves metadata.

    ``port`` is the broker port to take back when free (a restart keeps its address); its controller port
    is read back from the previous ``server.properties``. Otherwise, and when taken, free ports are used.
    The data directory is kept between starts, so a restarted broker has its topics and offsets.

    With ``scram`` the client listener is SASL_PLAINTEXT and requires SCRAM-SHA-512 as that user (created
    when the storage is formatted), as a production cluster requires authentication.
    """
    java = require_java()
    classpath = kafka_classpath(cache_dir, progress)
    home = run_dir / "kafka"
    data_dir = home / "data"
    home.mkdir(parents=True, exist_ok=True)
    log_file = home / "kafka.log"
    config = home / "server.properties"
    previous_controller = _previous_controller_port(config) if port is not None else None
    last_error = ""
    for attempt in range(3):  # a port picked free can be taken before the broker binds it
        broker_port = pick_port(port, attempt)
        controller_port = pick_port(previous_controller, attempt, besides={broker_port})
        config.write_text(server_properties(data_dir, broker_port, controller_port, scram=scram))
        if not (data_dir / "meta.properties").exists():
            users = ["--add-scram", f"{_SCRAM}=[name={scram.username},password={scram.password}]"] if scram else []
            format_storage(java, classpath, home, config, new_cluster_id(), users)
        progress(f"Starting Apache Kafka {KAFKA_VERSION} (KRaft) on 127.0.0.1:{broker_port}...")
        proc = spawn_broker(java, classpath, home, config)
        bootstrap = f"127.0.0.1:{broker_port}"
        try:
            wait_until(
                functools.partial(broker_ready, log_file, bootstrap, scram.client_config() if scram else None),
                what=f"Kafka broker on {bootstrap}",
                timeout=START_TIMEOUT_S,
                process=proc,
                log_file=log_file,
            )
        except ServiceStartError as exc:
            stop(proc.pid)
            last_error = str(exc)
            if "Address already in use" in read_log(log_file):
                continue
            raise
        return ServiceInfo("kafka", bootstrap, "local", KAFKA_VERSION, pid=proc.pid, log_file=str(log_file))
    raise ServiceStartError(f"Kafka could not bind free ports after 3 attempts: {last_error}")


def _previous_controller_port(config: Path) -> int | None:
    match = re.search(r"^controller\.quorum\.voters=1@127\.0\.0\.1:(\d+)$", read_log(config), re.MULTILINE)
    return int(match.group(1)) if match else None


def broker_ready(log_file: Path, bootstrap: str, security: Mapping[str, str] | None = None) -> bool:
    """The broker logged its start and serves metadata."""
    return "Kafka Server started" in read_log(log_file) and kafka_answers(bootstrap, 2.0, security)


def read_log(path: Path) -> str:
    """A log's text, or empty when there is none yet."""
    try:
        return path.read_text(errors="replace") if os.path.exists(path) else ""
    except OSError:
        return ""
