"""The Faust application: one thin agent around :mod:`streams.processor`, and the journeys timer.

Nothing here runs at import: :func:`build_app` makes the app for given settings, and the
``omnichannel worker`` command runs it. Design choices from faust-streaming's known behaviours
(see docs/stream-processing.md):
- agents take batches (:func:`streams.faust_batches.ready_batches`: what is ready, filled while the last batch
  is processed) at concurrency 1, and never let an exception escape the loop:
  Faust would ack and skip the batch. Poison records go to the dead-letter topic inside the batch; an
  infrastructure failure (Redis or Kafka down after bounded retries) ends the process *without* committing,
  so nothing is skipped and a restarted worker resumes where the last commit was;
- raw bytes in (the project's codec does Avro); outputs go out through a confluent-kafka producer
  (:mod:`streams.kafka_sink`); a batch is acked, so Faust may commit its offsets, only once Kafka acknowledged its
  outputs, which it does while the agent processes the next batch;
- no repartition: the state is folded per identity cluster in Redis (atomic, order-independent), so it does not
  matter which worker reads an event; ``events.by_customer`` is an output for subscribers, keyed by profile;
- output keys are partitioned with murmur2, like the connectors' producers;
- the cycle collector runs between batches (:func:`omnichannel.gc_tuning.collect_between_batches`), not in the
  middle of one;
- a timer on every worker claims due journey checks in Redis (atomically: two workers never both claim one)
  and folds them into their profiles' clusters; the fold decides, in order with the events (docs/journeys.md).
"""

from __future__ import annotations

import logging
import os
import ssl
import sys
from collections.abc import Sequence
from typing import Any

import faust
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from omnichannel.gc_tuning import collect_between_batches
from omnichannel.lag.processor_metrics import processor_metrics
from omnichannel.redis_clients import async_redis
from omnichannel.settings import KafkaSecurity, Settings
from schemas.codec import AvroCodec
from schemas.registry import ConfluentSchemaRegistry
from schemas.topics import CHANNELS, channel_topic
from streams.config import ProcessorConfig
from streams.domain.fold import DueCheck
from streams.erasure import record_status
from streams.faust_batches import ready_batches
from streams.journeys.store import JourneyStore
from streams.journeys.timer import FollowUpTimer
from streams.kafka_sink import KafkaSink
from streams.keys import SINGLE_SLOT_TAG, Keys
from streams.processor import fold_stage_on_redis
from streams.records import Incoming

__all__ = ["EXIT_INFRASTRUCTURE", "build_app", "faust_credentials", "redis_client"]

log = logging.getLogger(__name__)

#: Exit status of a worker that stopped because Redis or Kafka stayed unreachable (EX_TEMPFAIL).
EXIT_INFRASTRUCTURE = 75


def redis_client(url: str) -> Redis:
    """The worker's async Redis client, with bounded retries (about 10 s in all) on connection errors.

    On a Redis Cluster: a client on the master serving every key's one slot (:mod:`omnichannel.redis_clients`).
    """
    return async_redis(
        url,
        slot_of=SINGLE_SLOT_TAG,
        decode_responses=True,
        socket_timeout=5,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.1), 8),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )


def _incoming(event: Any) -> Incoming:
    message = event.message
    headers = message.headers or ()
    pairs = tuple(headers.items()) if isinstance(headers, dict) else tuple(headers)
    return Incoming(
        message.topic, message.partition, message.offset, message.key, message.value, pairs, message.timestamp
    )


def _fatal(stage: str, exc: BaseException) -> None:
    log.critical(
        "stopping the worker without committing: infrastructure unavailable after retries",
        extra={"stage": stage, "error": f"{type(exc).__name__}: {exc}"},
        exc_info=exc,
    )
    sys.stderr.flush()
    os._exit(EXIT_INFRASTRUCTURE)  # not sys.exit: Faust would commit the batch's offsets on shutdown


#: How long a batch waits for its Redis Cluster replica to confirm the writes before its offsets may be committed.
_REPLICA_WAIT_MS = 2000


async def _replicated(redis: Redis) -> None:
    """Wait until the master's replica has the batch's writes (``WAIT 1``): a failover then keeps them.

    Redis replicates asynchronously, so a master killed right after EXEC can take acknowledged writes with it;
    once the Kafka offsets are committed nothing would replay them. With no replica answering (it is down, so no
    failover can happen either) the batch goes on after the wait, said once per batch in the log.
    """
    if await redis.wait(1, _REPLICA_WAIT_MS) < 1:
        log.warning("no Redis replica confirmed the batch's writes", extra={"waited_ms": _REPLICA_WAIT_MS})


def faust_credentials(security: KafkaSecurity) -> Any:
    """The Faust/aiokafka form of the Kafka security settings (None for PLAINTEXT)."""
    if security.protocol == "PLAINTEXT":
        return None
    context = None
    if security.protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=str(security.ca_file) if security.ca_file else None)
    if security.protocol == "SSL":
        return faust.SSLCredentials(context)
    return faust.SASLCredentials(
        username=security.sasl_username,
        password=security.sasl_password,
        mechanism=security.sasl_mechanism or "PLAIN",
        ssl_context=context,
    )


def build_app(settings: Settings, config: ProcessorConfig, app_id: str | None = None) -> faust.App:
    """The worker's Faust app, wired to the settings' Kafka, registry and Redis (nothing starts yet)."""
    assert settings.kafka_bootstrap_servers and settings.schema_registry_url and settings.redis_url
    brokers = ";".join(f"kafka://{b.strip()}" for b in settings.kafka_bootstrap_servers.split(","))
    app_id = app_id or settings.topic("omnichannel-processor")
    datadir = settings.state_dir / "faust" / app_id
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        app_id,
        datadir=str(datadir),
        broker=brokers,
        value_serializer="raw",
        key_serializer="raw",
        store="memory://",
        web_enabled=False,
        topic_allow_declare=False,  # topics come from the catalogue (`omnichannel topics create`)
        topic_disable_leader=True,
        topic_partitions=settings.partitions,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        producer_acks=-1,
        producer_linger=0.005,
        broker_credentials=faust_credentials(settings.kafka_security),
    )
    codec = AvroCodec(
        ConfluentSchemaRegistry(settings.schema_registry_url, basic_auth=settings.schema_registry_basic_auth)
    )
    redis = redis_client(settings.redis_url)
    keys = Keys(settings.namespace, single_slot=settings.redis_cluster)

    sink = KafkaSink(settings)
    journey_store = JourneyStore(redis, keys)
    timer = FollowUpTimer(journey_store, config.journeys.attribution)
    metrics = processor_metrics()

    async def applied(batch: Sequence[Incoming]) -> None:
        # After the Redis write: record time -> state applied, per record (see omnichannel.lag.processor_metrics).
        metrics.records_applied(
            app_id, [(r.topic, r.partition, r.timestamp_s) for r in batch if r.timestamp_s is not None]
        )

    stage = fold_stage_on_redis(
        codec,
        redis,
        keys,
        config,
        settings.topic,
        journey_store,
        on_stock=journey_store.apply_stock,
        on_applied=applied,
        on_erased=lambda request_id, status: record_status(redis, keys, request_id, status),
    )
    channel_topics = app.topic(
        *(settings.topic(channel_topic(c)) for c in CHANNELS), value_serializer="raw", key_serializer="raw"
    )

    async def outputs_durable() -> None:
        # Awaited beside the next batch's processing; the batch is acked (its offsets committable) only after.
        try:
            await sink.flushed()
        except Exception as exc:  # Kafka did not acknowledge: stop before anything after it is acked
            _fatal("fold-outputs", exc)

    @app.agent(channel_topics, concurrency=1)
    async def fold_events(stream: Any) -> None:
        async for events in ready_batches(stream, config.batch_max, config.batch_within_s, outputs_durable):
            try:
                await stage.process([_incoming(e) for e in events], sink)
                if settings.redis_cluster:  # before the batch's offsets can be committed (the next iteration)
                    await _replicated(redis)
            except Exception as exc:  # Redis/Kafka down after retries, or a bug: stop, never skip records
                _fatal("fold", exc)
            collect_between_batches()  # the batch's survivors now, not tens of thousands mid-batch later

    async def apply_dues(dues: Sequence[DueCheck]) -> None:
        await stage.apply_dues(dues, sink)

    @app.timer(interval=config.journey_tick_s)  # type: ignore[untyped-decorator]  # faust has no type hints
    async def follow_up_timer() -> None:
        try:
            await timer.tick(apply_dues)
        except RedisError as exc:  # Redis down after retries: stop like the agents (a claim is never lost)
            _fatal("journeys-timer", exc)
        except Exception:  # a bug must not stop the timer for good: unreleased claims are retried
            log.exception("journeys timer tick failed; retrying at the next tick")

    return app
