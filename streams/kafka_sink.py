"""The processors' outputs to Kafka through a confluent-kafka producer (:class:`streams.processor.Sink`).

Why not Faust's own producer: an awaited or buffered ``Topic.send`` costs ~40 us of event-loop time per record
(Faust's buffer, then aiokafka's batching in Python), about a sixth of the worker's CPU; librdkafka batches and
sends from its own threads. ``send`` queues records and returns; ``flushed`` waits (off the event loop) until
Kafka acknowledged every record queued so far. The worker acks a batch's events, so Faust may commit their
source offsets, only once ``flushed`` returned after the batch's ``send`` (:func:`streams.faust_batches.ready_batches`),
and meanwhile processes the next batch: the at-least-once contract of docs/stream-processing.md holds without
Faust's flush, and the ~20-50 ms a batch's acknowledgement takes no longer stops the worker.

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
        self._queued = 0  # records queued since the last flush started
        self._flushing = asyncio.Lock()
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
            # Kept for good: a record that failed may belong to a batch whose flush already returned on another
            # call, so every later flushed() fails too (the worker stops; nothing after it is acked).
            self._failures.append(f"{msg.topic()}: {err.str()}")

    async def send(self, records: Sequence[Outgoing]) -> None:
        """Queue ``records`` for Kafka and return; :meth:`flushed` says when they are acknowledged."""
        for record in records:
            self._produce(record)
        self._queued += len(records)

    async def flushed(self) -> None:
        """Return once Kafka acknowledged every record queued so far; raise if any record ever failed."""
        async with self._flushing:  # one flush at a time: each waits for everything queued before it started
            queued, self._queued = self._queued, 0
            remaining = await asyncio.to_thread(self._producer.flush, self._timeout_s) if queued else 0
        if remaining or self._failures:
            raise ServiceUnavailableError(
                f"Kafka did not acknowledge {remaining + len(self._failures)} output records within "
                f"{self._timeout_s:g} s ({'; '.join(self._failures[:3]) or 'timed out'}); what caused them is not "
                "marked done (the worker commits no offset, an unlink can be run again): they are sent again on retry"
            )

    async def send_and_wait(self, records: Sequence[Outgoing]) -> None:
        await self.send(records)
        await self.flushed()

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
