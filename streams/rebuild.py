"""Rebuild the backbone's Redis state from Kafka, the source of truth: ``omnichannel rebuild``.

The state is a deterministic fold of each identity cluster's events (docs/stream-processing.md), so replaying
every channel topic from its earliest offset, in any order, gives the same carts, records and identity graph.
The steps:

1. refuse while the worker's consumer group has members: a worker writing Redis meanwhile would race the wipe;
2. read what Redis holds that no channel topic does: the erasure deny-list (``denied_sha256`` of every
   ``erasure.audit`` record) and request statuses, and the operator's unlinks (``unmerge`` records with reason
   ``unlinked`` on ``identity.links``); and, for the cart versions, the last cart published per key;
3. delete this namespace's derived keys (:meth:`streams.keys.Keys.derived_patterns`), never the deny-list, then
   write the deny-list, the unlinks and the statuses back, before any event is folded: an erased person's
   records are dropped as they are read, so they never reach Redis or a topic again;
4. read every partition of every channel topic from its earliest offset up to its end offset taken at the start
   and hand the records, in batches, to the worker's own :class:`streams.processor.FoldStage`.

Why the stage is driven from here rather than by resetting the worker group's offsets: the rebuild has a known
end (the end offsets at its start), so it can report progress and finish with a summary and an exit status;
the worker group's committed offsets stay as they were, so the worker resumes where it stopped (the records in
between are folded again, which changes nothing: a replayed event is already in its cluster's log).

Outputs: the compacted projections (``customer.carts``, ``customer.state``, ``identity.links``) are published
again once the replay is over, so they agree with the rebuilt Redis (the latest value per key wins, so this is
harmless); each cart keeps the version last published for it when unchanged (:func:`_fence_versions`).
The append-only topics (``events.by_customer``, triggers, attribution, dead letters, the erasure audit) are not:
their records were sent when the events were first processed, and sending them again would hand every
subscriber duplicates.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from redis.asyncio import Redis
from redis.exceptions import RedisError

from omnichannel.errors import OmnichannelError, ServiceUnavailableError
from omnichannel.redis_clients import async_redis
from omnichannel.settings import Settings
from schemas.codec import AvroCodec
from schemas.errors import DecodeError, RegistryError
from schemas.registry import ConfluentSchemaRegistry
from schemas.topics import CHANNELS, channel_topic
from streams.cluster_store import LAST_FIELD
from streams.config import ProcessorConfig
from streams.domain.fold import fold, ident, item_from_json, parse_ident
from streams.erasure import STATUS_TTL_S
from streams.journeys.store import JourneyStore
from streams.keys import SINGLE_SLOT_TAG, Keys
from streams.processor import CARTS, DEAD_LETTERS, ERASURE_AUDIT, IDENTITY_LINKS, STATE, FoldStage, fold_stage_on_redis
from streams.records import Incoming, Outgoing
from streams.state_json import public_customer

__all__ = [
    "PartitionProgress",
    "Progress",
    "RebuildReport",
    "WorkerActiveError",
    "rebuild",
    "worker_group",
]

log = logging.getLogger(__name__)

_TIMEOUT_S: Final = 10.0


class WorkerActiveError(OmnichannelError):
    """The worker's consumer group has members: a rebuild would race a running worker."""


def worker_group(settings: Settings) -> str:
    """The worker's consumer group (its Faust app id), as ``omnichannel worker`` names it by default."""
    return settings.topic("omnichannel-processor")


@dataclass
class PartitionProgress:
    """One channel-topic partition: records read of those present when the rebuild started."""

    topic: str
    partition: int
    start: int
    end: int
    read: int = 0

    @property
    def total(self) -> int:
        return self.end - self.start

    @property
    def done(self) -> bool:
        return self.read >= self.total


@dataclass
class Progress:
    """The replay so far, handed to the caller's callback every ``progress_every_s`` and at the end."""

    partitions: list[PartitionProgress]
    started: float
    now: float

    @property
    def read(self) -> int:
        return sum(p.read for p in self.partitions)

    @property
    def total(self) -> int:
        return sum(p.total for p in self.partitions)

    @property
    def rate(self) -> float:
        """Records per second since the replay started."""
        return self.read / max(self.now - self.started, 1e-6)


@dataclass(frozen=True)
class RebuildReport:
    """What a rebuild did."""

    keys_wiped: int
    denied_restored: int
    erasures: int
    erasures_without_digests: int  # audit records written before ErasureAudit carried denied_sha256
    unlinked_restored: int
    records: int
    by_topic: dict[str, int] = field(default_factory=dict)
    republished: int = 0
    versions_fenced: int = 0  # carts given back the version last published (see _fence_versions)
    dead_letters: int = 0  # records the fold refused again (not re-sent to the dead-letter topic)
    #: ``topic[partition]`` -> earliest offset, where it is not 0: records before it were deleted by the
    #: topic's retention (7 days by default), so their events are not in the rebuilt state.
    trimmed: dict[str, int] = field(default_factory=dict)
    replay_s: float = 0.0
    total_s: float = 0.0


def _kafka_config(settings: Settings) -> dict[str, Any]:
    assert settings.kafka_bootstrap_servers is not None
    return {"bootstrap.servers": settings.kafka_bootstrap_servers, **settings.kafka_security.confluent_config()}


def check_no_worker(settings: Settings, group: str) -> None:
    """Raise :class:`WorkerActiveError` if ``group`` has members (a running worker)."""
    admin = AdminClient(_kafka_config(settings))
    try:
        future = admin.describe_consumer_groups([group], request_timeout=_TIMEOUT_S)[group]
        description = future.result(timeout=_TIMEOUT_S * 2)
    except KafkaException as exc:
        if exc.args and getattr(exc.args[0], "code", lambda: None)() == KafkaError.GROUP_ID_NOT_FOUND:
            return  # no worker ever ran in this namespace
        raise ServiceUnavailableError(
            f"Kafka did not describe the worker group {group!r}: {exc}; check KAFKA_BOOTSTRAP_SERVERS and retry"
        ) from exc
    members = list(description.members or ())
    if members:
        hosts = ", ".join(sorted({str(m.host) for m in members}))
        raise WorkerActiveError(
            f"the worker group {group!r} has {len(members)} active member(s) ({hosts}): stop every "
            "`omnichannel worker` of this namespace (and its supervisor or systemd unit), then run the rebuild "
            "again. A worker killed with -9 stays a member until its session times out (about a minute)."
        )


def _read_topic(settings: Settings, topic: str) -> Iterator[Incoming]:
    """Every record of ``topic`` from its earliest offset to its end offset now (a bounded scan, no group)."""
    consumer = Consumer(
        _kafka_config(settings)
        | {"group.id": f"{settings.topic('omnichannel-rebuild')}-{uuid.uuid4().hex}", "enable.auto.commit": False}
    )
    try:
        partitions = _partitions(consumer, topic)
        ends: dict[int, int] = {}
        for tp in partitions:
            low, high = _watermarks(consumer, tp)
            if high > low:
                ends[tp.partition] = high
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        done: set[int] = set()
        while len(done) < len(ends):
            messages = consumer.consume(500, timeout=1.0)
            for message in messages:
                if message.error() is not None:
                    raise ServiceUnavailableError(f"reading {topic}: {message.error()}")
                record = _incoming(message)
                if record.offset < ends[record.partition]:
                    yield record
                if record.offset + 1 >= ends[record.partition]:
                    done.add(record.partition)
            if not messages:  # compaction can leave the last offsets empty: ask where the reader is
                for tp in consumer.position([TopicPartition(topic, p) for p in ends if p not in done]):
                    if tp.offset >= ends[tp.partition]:
                        done.add(tp.partition)
    finally:
        consumer.close()


def _watermarks(consumer: Consumer, tp: TopicPartition, attempts: int = 5) -> tuple[int, int]:
    """Earliest and end offsets of a partition; a partition between leaders (a new topic, a broker restart)
    answers again within seconds, so a few tries a second apart before giving up (exit 75)."""
    for attempt in range(attempts):
        try:
            low, high = consumer.get_watermark_offsets(tp, timeout=_TIMEOUT_S)
            return int(low), int(high)
        except KafkaException as exc:
            if attempt == attempts - 1:
                raise ServiceUnavailableError(
                    f"Kafka did not give the offsets of {tp.topic}[{tp.partition}]: {exc}; run the rebuild again"
                ) from exc
            time.sleep(1.0)
    raise AssertionError("unreachable")


def _partitions(consumer: Consumer, topic: str) -> list[TopicPartition]:
    try:
        metadata = consumer.list_topics(topic, timeout=_TIMEOUT_S)
    except KafkaException as exc:
        raise ServiceUnavailableError(f"Kafka did not answer for {topic}: {exc}") from exc
    found = metadata.topics.get(topic)
    if found is None or found.error is not None or not found.partitions:
        raise OmnichannelError(f"topic {topic} does not exist: run `omnichannel topics create` (or the worker) first")
    return [TopicPartition(topic, p) for p in sorted(found.partitions)]


@dataclass(frozen=True)
class _Held:
    """What Redis held that the channel topics do not carry, read back from the output topics."""

    denied: frozenset[str]
    statuses: dict[str, dict[str, Any]]
    without_digests: int
    unlinked: frozenset[str]
    carts: dict[str, tuple[int, str]]  # last cart published per key: version, fingerprint (see _fence_versions)


def _read_held(settings: Settings, codec: AvroCodec) -> _Held:
    denied: set[str] = set()
    statuses: dict[str, dict[str, Any]] = {}
    without = 0
    for message in _read_topic(settings, settings.topic(ERASURE_AUDIT)):
        audit = codec.decode(message.value or b"", "omnichannel.output.ErasureAudit")
        digests = audit.pop("denied_sha256", [])
        denied.update(digests)
        if audit["status"] == "done" and audit["identifiers_erased"] and not digests:
            without += 1
        # A replay of the request reports `nothing_held` later: the first `done` is the request's outcome.
        held = statuses.get(audit["request_id"])
        if held is None or (held["status"] != "done" and audit["status"] == "done"):
            statuses[audit["request_id"]] = audit
    unlinked: set[str] = set()
    for message in _read_topic(settings, settings.topic(IDENTITY_LINKS)):
        if message.value is None:
            continue  # a tombstone (an erased identifier)
        link = codec.decode(message.value, "omnichannel.output.IdentityLink")
        if link["action"] == "unmerge" and link["reason"] == "unlinked":
            unlinked.add(f"{link['identifier_type']}:{link['identifier_value']}")
    carts: dict[str, tuple[int, str]] = {}
    for message in _read_topic(settings, settings.topic(CARTS)):
        key = (message.key or b"").decode()
        if message.value is None:
            carts.pop(key, None)
        else:
            cart = codec.decode(message.value, "omnichannel.output.Cart")
            carts[key] = (int(cart["version"]), _fingerprint(cart))
    return _Held(frozenset(denied), statuses, without, frozenset(unlinked), carts)


async def _wipe(redis: Redis, keys: Keys) -> int:
    """Delete this namespace's derived keys, except the deny-list (never removed: erased stays erased)."""
    keep = keys.erased()
    wiped = 0
    for pattern in keys.derived_patterns():
        batch: list[str] = []
        async for key in redis.scan_iter(match=pattern, count=1000):
            if key != keep:
                batch.append(key)
            if len(batch) >= 500:
                wiped += await redis.unlink(*batch)
                batch = []
        if batch:
            wiped += await redis.unlink(*batch)
    return wiped


async def _restore(redis: Redis, keys: Keys, held: _Held, now_s: float) -> None:
    if held.denied:
        await redis.sadd(keys.erased(), *sorted(held.denied))
    if held.unlinked:
        await redis.sadd(keys.unlinked(), *sorted(held.unlinked))
    for request_id, status in held.statuses.items():
        left = int(status["completed_at_ms"] / 1000 + STATUS_TTL_S - now_s)
        if left > 0:  # statuses are kept 30 days from the erasure, as the worker keeps them
            await redis.set(keys.erasure(request_id), json.dumps(status, separators=(",", ":")), ex=left)


class _RepublishSink:
    """:class:`streams.processor.Sink` noting which carts and records the replay touched (see the module
    docstring); :meth:`publish` sends their final values, read back from Redis, once the replay is over (memory:
    their keys only), so subscribers see the rebuilt state, not every step of the replay; and the identity links
    of the rebuilt graph (:func:`_final_links`)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.carts: set[str] = set()
        self.states: set[str] = set()
        self.dead_letters = 0  # records the replay dead-lettered (already on the dead-letter topic: not re-sent)

    async def send(self, records: Sequence[Outgoing]) -> None:
        for record in records:
            if record.topic == DEAD_LETTERS:
                self.dead_letters += 1
            elif record.topic == CARTS:
                self.carts.add(record.key)
            elif record.topic == STATE:
                self.states.add(record.key)

    async def send_and_wait(self, records: Sequence[Outgoing]) -> None:
        await self.send(records)

    async def publish(self, redis: Redis, keys: Keys, codec: AvroCodec, links: AsyncIterator[Outgoing]) -> int:
        """Send the final value of every touched key (a tombstone where Redis holds none: erased)."""
        producer = Producer(
            _kafka_config(self._settings) | {"partitioner": "murmur2_random", "acks": "all", "enable.idempotence": True}
        )
        sent = 0

        async def produce(topic: str, key: str, value: bytes | None) -> None:
            nonlocal sent
            while True:
                try:
                    producer.produce(self._settings.topic(topic), key=key.encode(), value=value)
                    sent += 1
                    return
                except BufferError:  # the local queue is full: let deliveries drain it
                    await asyncio.to_thread(producer.poll, 0.5)

        cart_subject, state_subject = (f"{self._settings.topic(t)}-value" for t in (CARTS, STATE))
        for key in sorted(self.carts):
            text = await redis.get(keys.cart(key))
            value = None if text is None else codec.encode(cart_subject, "omnichannel.output.Cart", json.loads(text))
            await produce(CARTS, key, value)
        for key in sorted(self.states):
            text = await redis.get(keys.customer(key))
            record = None if text is None else public_customer(str(text))
            value = None if record is None else codec.encode(state_subject, "omnichannel.output.CustomerState", record)
            await produce(STATE, key, value)
        async for link in links:
            await produce(IDENTITY_LINKS, link.key, link.value)
        if await asyncio.to_thread(producer.flush, 60) != 0:
            raise ServiceUnavailableError(
                "Kafka did not acknowledge the rebuilt carts/records within 60 s; Redis is rebuilt, run "
                "`omnichannel rebuild` again once Kafka answers to publish them"
            )
        return sent


async def _final_links(redis: Redis, keys: Keys, config: ProcessorConfig, stage: FoldStage) -> AsyncIterator[Outgoing]:
    """The last link of every identifier in the rebuilt graph, one cluster at a time.

    The worker sends the links made by each batch's new events; a replay reads a person's events from several
    topics out of time order, so the link sent last for an identifier need not be its final one (a phone's
    ``seen_together`` read after the tablet's login that absorbed it). Folding each cluster's whole log once
    more, every item emitting, gives every link in event-time order: the last one per identifier is the graph's.
    """
    unlinked = frozenset(parse_ident(str(i)) for i in await redis.smembers(keys.unlinked()))
    prefix = keys.cluster_members("")
    async for members_key in redis.scan_iter(match=f"{_escape(prefix)}*", count=1000):
        cid = str(members_key)[len(prefix) :]
        log_items = await redis.hgetall(keys.cluster_log(cid))
        items = [item_from_json(str(text)) for item_id, text in log_items.items() if item_id != LAST_FIELD]
        result = fold(items, config.fold_rules, unlinked=unlinked, emit=frozenset(i.item_id for i in items))
        last = {ident(link.identifier): link for link in result.links}
        for identifier in sorted(last):
            # The record the worker sends (one encoder for both: FoldStage's own).
            yield stage._link_record(last[identifier])


def _escape(text: str) -> str:
    """``text`` as a literal in a SCAN pattern."""
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


def _fingerprint(cart: dict[str, Any]) -> str:
    """A cart's content but for its version (what tells a changed cart from the same one)."""
    content = {k: v for k, v in cart.items() if k != "version"}
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


async def _fence_versions(
    redis: Redis, keys: Keys, published: dict[str, tuple[int, str]], touched: Iterable[str]
) -> int:
    """Keep each cart's ``version`` what readers last saw: the same version for the same cart, a higher one
    for a changed cart. A re-fold counts versions its own way (fewer steps in a batch), and a wiped Redis no
    longer holds the last one, so the last cart published on ``customer.carts`` is the reference."""
    fenced = 0
    for key in touched:
        before = published.get(key)
        text = await redis.get(keys.cart(key))
        if before is None or text is None:
            continue
        cart = json.loads(text)
        version, fingerprint = before
        if fingerprint != _fingerprint(cart):
            version = max(cart["version"], version + 1)
        if version != cart["version"]:
            cart["version"] = version
            await redis.set(keys.cart(key), json.dumps(cart, separators=(",", ":")))
            fenced += 1
    return fenced


def _incoming(message: Any) -> Incoming:
    _, stamp = message.timestamp()
    headers = message.headers() or ()
    return Incoming(
        str(message.topic()),
        int(message.partition()),
        int(message.offset()),
        message.key(),
        message.value(),
        tuple((str(k), bytes(v or b"")) for k, v in headers),
        stamp / 1000 if stamp > 0 else None,
    )


async def _replay(
    settings: Settings,
    stage: FoldStage,
    sink: _RepublishSink,
    batch_max: int,
    on_progress: Callable[[Progress], None],
    progress_every_s: float,
) -> Progress:
    consumer = Consumer(
        _kafka_config(settings)
        | {
            "group.id": f"{settings.topic('omnichannel-rebuild')}-{uuid.uuid4().hex}",  # never committed
            "enable.auto.commit": False,
        }
    )
    try:
        parts: dict[tuple[str, int], PartitionProgress] = {}
        for channel in CHANNELS:
            topic = settings.topic(channel_topic(channel))
            for tp in _partitions(consumer, topic):
                low, high = _watermarks(consumer, tp)
                parts[(topic, tp.partition)] = PartitionProgress(topic, tp.partition, low, high)
        consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for (t, p), pp in parts.items() if not pp.done])
        started = last = time.monotonic()
        while not all(p.done for p in parts.values()):
            messages = await asyncio.to_thread(consumer.consume, batch_max, 1.0)
            batch: list[Incoming] = []
            for message in messages:
                if message.error() is not None:
                    raise ServiceUnavailableError(f"reading {message.topic()}: {message.error()}")
                record = _incoming(message)
                part = parts[(record.topic, record.partition)]
                if record.offset >= part.end:
                    continue  # arrived after the rebuild started: the worker folds it when it starts again
                part.read = record.offset + 1 - part.start
                batch.append(record)
            if batch:
                await stage.process(batch, sink)
            if not messages:  # the last offsets can be markers, not records: ask where the reader is
                pending = [TopicPartition(p.topic, p.partition) for p in parts.values() if not p.done]
                for tp in await asyncio.to_thread(consumer.position, pending):
                    part = parts[(tp.topic, tp.partition)]
                    if tp.offset >= part.end:
                        part.read = part.total
            now = time.monotonic()
            if now - last >= progress_every_s:
                last = now
                on_progress(Progress(list(parts.values()), started, now))
        return Progress(list(parts.values()), started, time.monotonic())
    finally:
        consumer.close()


async def rebuild(
    settings: Settings,
    config: ProcessorConfig,
    group: str | None = None,
    on_step: Callable[[str], None] = lambda _: None,
    on_progress: Callable[[Progress], None] = lambda _: None,
    progress_every_s: float = 2.0,
) -> RebuildReport:
    """Rebuild this namespace's Redis state from Kafka (see the module docstring). Safe to run again."""
    assert settings.redis_url and settings.schema_registry_url
    begun = time.monotonic()
    group = group or worker_group(settings)
    await asyncio.to_thread(check_no_worker, settings, group)
    codec = AvroCodec(
        ConfluentSchemaRegistry(settings.schema_registry_url, basic_auth=settings.schema_registry_basic_auth)
    )
    on_step("reading the erasure audit and the operator's unlinks from Kafka")
    try:
        held = await asyncio.to_thread(_read_held, settings, codec)
    except DecodeError as exc:
        raise OmnichannelError(f"an erasure.audit or identity.links record cannot be read: {exc}") from exc
    if held.without_digests:
        log.warning("erasures recorded without deny-list digests", extra={"count": held.without_digests})
    keys = Keys(settings.namespace, single_slot=settings.redis_cluster)
    # On Redis Cluster every derived key is in the {idg} slot: one connection to its master (as the worker).
    redis = async_redis(settings.redis_url, slot_of=SINGLE_SLOT_TAG, decode_responses=True, socket_timeout=30)
    try:
        on_step(f"wiping the derived keys of namespace {settings.namespace or '(none)'!s} (the deny-list stays)")
        wiped = await _wipe(redis, keys)
        await _restore(redis, keys, held, time.time())
        on_step(
            f"restored {len(held.denied)} deny-listed identifier(s) from {len(held.statuses)} erasure(s) and "
            f"{len(held.unlinked)} unlinked identifier(s); replaying the channel topics from their earliest offset"
        )
        journey_store = JourneyStore(redis, keys)
        await journey_store.write_meta(config.journeys.attribution)
        stage = fold_stage_on_redis(
            codec, redis, keys, config, settings.topic, journey_store, on_stock=journey_store.apply_stock
        )
        sink = _RepublishSink(settings)
        done = await _replay(settings, stage, sink, config.batch_max, on_progress, progress_every_s)
        fenced = await _fence_versions(redis, keys, held.carts, sorted(sink.carts))
        on_step("publishing the rebuilt carts, records and links on their compacted topics")
        republished = await sink.publish(redis, keys, codec, _final_links(redis, keys, config, stage))
    except RedisError as exc:
        raise ServiceUnavailableError(
            f"Redis failed during the rebuild ({exc}); run `omnichannel rebuild` again once it answers"
        ) from exc
    except RegistryError as exc:
        raise ServiceUnavailableError(
            f"the Schema Registry failed during the rebuild ({exc}); run `omnichannel rebuild` again once it answers"
        ) from exc
    finally:
        await redis.aclose()
    by_topic: dict[str, int] = {}
    for part in done.partitions:
        by_topic[part.topic] = by_topic.get(part.topic, 0) + part.read
    return RebuildReport(
        keys_wiped=wiped,
        denied_restored=len(held.denied),
        erasures=len(held.statuses),
        erasures_without_digests=held.without_digests,
        unlinked_restored=len(held.unlinked),
        records=done.read,
        by_topic={t: n for t, n in by_topic.items() if n},
        trimmed={f"{p.topic}[{p.partition}]": p.start for p in done.partitions if p.start > 0},
        republished=republished,
        versions_fenced=fenced,
        dead_letters=sink.dead_letters,
        replay_s=done.now - done.started,
        total_s=time.monotonic() - begun,
    )
