"""The processors' outputs to Kafka through a confluent-kafka producer (:class:`streams.processor.Sink`).

Why not Faust's own producer: an awaited or buffered ``Topic.send`` costs ~40 us of event-loop time per record
(Faust's buffer, then aiokafka's batching in Python), about a sixth of the worker's CPU; librdkafka batches and
sends from its own threads. ``send`` queues every record and waits (off the event loop) until Kafka acknowledged
all of them, so the worker's agent returns, and Faust may commit the batch's source offsets, only once its
outputs are durable: the at-least-once contract of docs/stream-processing.md holds without Faust's flush.

Keys are partitioned with murmur2 (``murmur2_random``), as the connectors and Kafka's Java clients do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from omnichannel.errors import ServiceUnavailableError
from omnichannel.kafka_logging import librdkafka_logger
from omnichannel.settings import Settings
from streams.records import Outgoing

__all__ = ["KafkaSink"]


class KafkaSink:
    """See the module docstring. ``timeout_s`` bounds each wait for acknowledgements."""

    def __init__(self, settings: Settings, *, timeout_s: float = 30.0, linger_ms: int = 5) -> None:
        assert settings.kafka_bootstrap_servers is not None
        self._topic: Callable[[str], str] = settings.topic
        self._timeout_s = timeout_s
        self._failures: list[str] = []
        self._producer = Producer(
            {
                "bootstrap.servers": settings.kafka_bootstrap_servers,
                "partitioner": "murmur2_random",
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": linger_ms,
                "compression.type": "lz4",
                # Reports only for failures: a Python callback per acknowledged record (~3 a event) holds the GIL
                # the worker's event loop needs; flush() still counts every record not yet acknowledged.
                "delivery.report.only.error": True,
                "message.timeout.ms": int(timeout_s * 1000),
                "logger": librdkafka_logger(settings.kafka_bootstrap_servers),
                **settings.kafka_security.confluent_config(),
            }
        )

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._failures.append(f"{msg.topic()}: {err.str()}")

    async def send(self, records: Sequence[Outgoing]) -> None:
        """Queue ``records`` and return once Kafka acknowledged every one (see the module docstring)."""
        await self.send_and_wait(records)

    async def send_and_wait(self, records: Sequence[Outgoing]) -> None:
        if not records:
            return
        for record in records:
            self._produce(record)
        remaining = await asyncio.to_thread(self._producer.flush, self._timeout_s)
        failures, self._failures = self._failures, []
        if remaining or failures:
            raise ServiceUnavailableError(
                f"Kafka did not acknowledge {remaining + len(failures)} of {len(records)} output records "
                f"within {self._timeout_s:g} s ({'; '.join(failures[:3]) or 'timed out'}); what caused them is not "
                "marked done (the worker commits no offset, an unlink can be run again): they are sent again on retry"
            )

    def _produce(self, record: Outgoing) -> None:
        kwargs: dict[str, Any] = {"key": record.key.encode(), "value": record.value, "on_delivery": self._delivered}
        if record.headers:
            kwargs["headers"] = list(record.headers)
        while True:
            try:
                self._producer.produce(self._topic(record.topic), **kwargs)
                return
            except BufferError:  # the local queue is full: let librdkafka send some first
                self._producer.poll(0.05)

    def close(self) -> None:
        """Send what is queued (bounded by the timeout)."""
        self._producer.flush(self._timeout_s)
