"""Publishing Event records to the channel topics: one idempotent producer per process.

Every record is Avro (through :class:`schemas.codec.AvroCodec`) on ``channel.<channel>.events`` under the
subject ``<topic>-value``, keyed by :func:`connectors.envelope.partition_key`. A publish call returns only
once Kafka acknowledged every record (``acks=all``) or the bounded wait ran out: a record that was not
acknowledged is never reported as published.

Who serves the producer's delivery reports depends on the caller. An asyncio caller's event loop serves them
itself (``poll(0)`` every millisecond while its records are in flight, :class:`_LoopReports`), so each report
settles its request on the loop's own thread: a poll thread would hand every report over through
``call_soon_threadsafe`` and take the GIL from the loop once per record (4-5 µs of CPU per record, measured:
benchmarks/README.md). A thread calling :meth:`Publisher.publish_many` waits while a background thread polls
for it; that thread otherwise polls once a second, for client errors and logs. A single event from an asyncio
caller (the collector's commonest request) takes a shorter path than a batch: no lock or outcome list.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from types import TracebackType
from typing import Any, Final, NamedTuple, cast

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from connectors.envelope import partition_key
from connectors.errors import InvalidEventError, PublishError, PublishUnavailableError
from omnichannel.logs import kv
from omnichannel.settings import Settings
from schemas.codec import AvroCodec
from schemas.errors import EncodeError, RegistryError, SchemaNotRegisteredError, UnknownEventTypeError
from schemas.loader import EVENT_FULLNAME
from schemas.registry import ConfluentSchemaRegistry
from schemas.topics import channel_topic, subject_for
from schemas.validation import Problem

__all__ = ["Delivery", "Outcome", "Publisher", "TopicFor", "producer_config", "publisher_for"]

log = logging.getLogger(__name__)

TopicFor = Callable[[str], str]
"""Channel -> topic; :func:`schemas.topics.channel_topic` except in tests that isolate their topics."""

# Errors that mean "Kafka did not take it, try again later" rather than "this record can never be taken".
_UNAVAILABLE: Final = frozenset(
    {
        KafkaError._MSG_TIMED_OUT,
        KafkaError._TIMED_OUT,
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._DESTROY,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NOT_ENOUGH_REPLICAS,
        KafkaError.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.NOT_LEADER_FOR_PARTITION,
    }
)
# Extra wait beyond librdkafka's own message timeout, for its failure report to reach us.
_REPORT_GRACE_S: Final = 1.0
_QUEUE_FULL_PAUSE_S: Final = 0.005
# An event loop with records in flight serves their reports this often (librdkafka lingers 5 ms per batch).
_LOOP_POLL_S: Final = 0.001
# The poll thread, when no thread waits for reports: client errors and logs are served at most this late.
_IDLE_POLL_S: Final = 1.0
# What happened to one produce call (sentinels: compared by identity).
_PRODUCED: Final = object()
_REFUSED: Final = object()
_FULL: Final = object()


class Delivery(NamedTuple):
    """Where Kafka stored one acknowledged event (a named tuple: one is made per record, in the poll thread)."""

    event_id: str
    topic: str
    partition: int
    offset: int


Outcome = Delivery | PublishError
"""Per-event result of :meth:`Publisher.publish_many`: a delivery, or why the event was not published."""


def producer_config(bootstrap: str, *, delivery_timeout_s: float, linger_ms: int = 5) -> dict[str, Any]:
    """The producer settings every connector uses (see the module docstring for why each one)."""
    return {
        "bootstrap.servers": bootstrap,
        "acks": "all",  # acknowledged only once every in-sync replica has the record
        "enable.idempotence": True,  # producer retries never duplicate or reorder a partition's records
        "partitioner": "murmur2_random",  # Java's and Faust's partitioner: a key lands where stream joins expect
        "linger.ms": linger_ms,  # a few ms of batching: concurrent requests share produce requests
        "compression.type": "lz4",
        # librdkafka gives up on (and reports) a record after this long, so a caller's wait is bounded.
        "message.timeout.ms": max(int(delivery_timeout_s * 1000), linger_ms + 1),
        "client.id": "omnichannel-connector",
    }


class _Pending:
    """Delivery reports of one batch; ``notify`` runs once, after the last report (in the poll thread).

    ``remaining`` starts one above the number of records to produce; the producing caller releases that
    guard (and any record it could not produce) when it is done, so ``notify`` cannot fire early.
    """

    __slots__ = ("event_ids", "lock", "notify", "outcomes", "remaining")

    def __init__(self, event_ids: list[str], notify: Callable[[], None]) -> None:
        self.event_ids = event_ids
        self.outcomes: list[Outcome | None] = [None] * len(event_ids)
        self.remaining = 1
        self.notify = notify
        self.lock = threading.Lock()

    def release(self, count: int) -> None:
        with self.lock:
            self.remaining -= count
            finished = self.remaining == 0
        if finished:
            self.notify()

    def report(self, index: int, err: KafkaError | None, msg: Message) -> None:
        self.outcomes[index] = _outcome(self.event_ids[index], err, msg)
        self.release(1)


def _outcome(event_id: str, err: KafkaError | None, msg: Message) -> Outcome:
    """What one delivery report says about one record."""
    if err is None:
        partition, offset = msg.partition(), msg.offset()
        return Delivery(
            event_id, str(msg.topic()), -1 if partition is None else partition, -1 if offset is None else offset
        )
    if err.code() in _UNAVAILABLE or err.retriable():
        return PublishUnavailableError(f"Kafka did not acknowledge the record: {err.str()}")
    return PublishError(f"Kafka refused the record: {err.str()}")


class _LoopReports:
    """Serves the producer's delivery reports on one event loop while records produced from it are in flight.

    Every such record's report goes through :meth:`report`, which runs its handler on the loop's thread: at
    once when the loop's own ``poll`` served it, else (the poll thread, or ``flush`` at close) handed over.
    """

    __slots__ = ("inflight", "loop", "poll", "thread", "timer")

    def __init__(self, loop: asyncio.AbstractEventLoop, poll: Callable[[float], object]) -> None:
        # Weak: the publisher keeps this per loop in a WeakKeyDictionary, which a strong reference would defeat.
        self.loop = cast(asyncio.AbstractEventLoop, weakref.proxy(loop))
        self.poll = poll
        self.thread = threading.get_ident()
        self.inflight = 0
        self.timer: asyncio.TimerHandle | None = None

    def produced(self, count: int) -> None:
        """``count`` more records will report here: poll until they have."""
        self.inflight += count
        if self.timer is None:
            self.timer = self.loop.call_later(_LOOP_POLL_S, self._serve)

    def report(self, handler: Callable[..., None], key: object, err: KafkaError | None, msg: Message) -> None:
        if threading.get_ident() != self.thread:
            with contextlib.suppress(RuntimeError, ReferenceError):  # a closed loop: nobody waits for it any more
                self.loop.call_soon_threadsafe(self.report, handler, key, err, msg)
            return
        self.inflight -= 1
        handler(key, err, msg)

    def _serve(self) -> None:
        self.timer = None
        try:
            self.poll(0)
        finally:  # a report that raised must not stop the others from being served
            if self.inflight > 0:
                self.timer = self.loop.call_later(_LOOP_POLL_S, self._serve)


class _AsyncBatch:
    """One asyncio caller's batch: outcomes by index; the future resolves after the last report.

    Only the loop's thread touches it (see :class:`_LoopReports`), so it needs no lock. ``remaining`` starts
    one above the records to produce, as :class:`_Pending`'s does, and for the same reason.
    """

    __slots__ = ("event_ids", "future", "outcomes", "remaining")

    def __init__(self, event_ids: list[str], future: asyncio.Future[None]) -> None:
        self.event_ids = event_ids
        self.outcomes: list[Outcome | None] = [None] * len(event_ids)
        self.remaining = 1
        self.future = future

    def report(self, index: int, err: KafkaError | None, msg: Message) -> None:
        self.outcomes[index] = _outcome(self.event_ids[index], err, msg)
        self.release(1)

    def release(self, count: int) -> None:
        self.remaining -= count
        if self.remaining == 0:
            _resolve(self.future)


class Publisher:
    """Encode events and publish them to their channel's topic; one instance per process, thread-safe.

    ``delivery_timeout_s`` bounds every publish call. Use as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        bootstrap: str,
        codec: AvroCodec,
        *,
        delivery_timeout_s: float = 5.0,
        topic_for: TopicFor = channel_topic,
        linger_ms: int = 5,
        security: Mapping[str, str] | None = None,
    ) -> None:
        """``security``: librdkafka properties for authenticated connections (see ``KafkaSecurity``)."""
        self.bootstrap = bootstrap
        self.codec = codec
        self.delivery_timeout_s = delivery_timeout_s
        self.topic_for = topic_for
        config = producer_config(bootstrap, delivery_timeout_s=delivery_timeout_s, linger_ms=linger_ms)
        config |= dict(security or {})
        config["error_cb"] = self._on_error
        config["logger"] = logging.getLogger(f"{__name__}.librdkafka")  # not librdkafka's raw stderr lines
        self._producer = Producer(config)
        self._closed = threading.Event()
        self._wake = threading.Condition()
        self._threads_waiting = 0  # publish_many callers waiting for reports: the poll thread polls for them
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopReports] = weakref.WeakKeyDictionary()
        self._poller = threading.Thread(target=self._poll_loop, name="publisher-poll", daemon=True)
        self._poller.start()

    # -- encoding ---------------------------------------------------------------------------------------

    def encode(self, event: Mapping[str, Any]) -> tuple[str, str, bytes]:
        """(topic, key, Avro bytes) of ``event``.

        :class:`InvalidEventError` if it does not match the contract (validate with
        :func:`connectors.envelope.normalise` first for every problem at once), :class:`PublishUnavailableError`
        if the Schema Registry cannot be reached to look up the topic's schema id or does not hold it (never
        registered here: ``omnichannel schemas register`` does that).
        """
        topic = self.topic_for(str(event.get("channel")))
        try:
            value = self.codec.encode(subject_for(topic), EVENT_FULLNAME, event)  # type: ignore[arg-type]
        except (EncodeError, UnknownEventTypeError) as exc:
            field = getattr(exc, "field", None) or ("event_type" if isinstance(exc, UnknownEventTypeError) else "")
            raise InvalidEventError([Problem(field, str(exc))]) from exc
        except SchemaNotRegisteredError as exc:
            raise PublishUnavailableError(str(exc)) from exc
        except RegistryError as exc:
            raise PublishUnavailableError(f"the Schema Registry is unavailable: {exc}") from exc
        return topic, partition_key(event), value

    def prepare(self, channels: Sequence[str]) -> None:
        """Look the channel topics' schema ids up now, so the first request does not wait for the registry.

        :class:`SchemaNotRegisteredError` (not retried: a deployment step is missing) when a subject lacks the
        schema; :class:`PublishUnavailableError` when the registry does not answer.
        """
        for channel in channels:
            topic = self.topic_for(channel)
            try:
                self.codec.schema_id(subject_for(topic), EVENT_FULLNAME)
            except SchemaNotRegisteredError:
                raise
            except RegistryError as exc:
                raise PublishUnavailableError(f"the Schema Registry is unavailable: {exc}") from exc

    def kafka_answers(self, timeout_s: float = 2.0) -> bool:
        """True when a broker answers a metadata request within ``timeout_s`` (a readiness probe; blocks)."""
        try:
            self._producer.list_topics(timeout=timeout_s)
        except KafkaException:
            return False
        return True

    # -- publishing -------------------------------------------------------------------------------------

    def publish(self, events: Sequence[Mapping[str, Any]]) -> list[Delivery]:
        """Publish every event and wait for Kafka; raise the first failure (the others may be published)."""
        outcomes = self.publish_many(events)
        for outcome in outcomes:
            if isinstance(outcome, PublishError):
                raise outcome
        return [o for o in outcomes if isinstance(o, Delivery)]

    def publish_many(self, events: Sequence[Mapping[str, Any]]) -> list[Outcome]:
        """Publish every event, wait for each acknowledgement or the deadline; one outcome per event."""
        done = threading.Event()
        pending = _Pending([str(e.get("event_id")) for e in events], done.set)
        records = self._encode_all(events, pending.outcomes)
        with pending.lock:
            pending.remaining += len(records)
        deadline = time.monotonic() + self.delivery_timeout_s + _REPORT_GRACE_S
        refused = 0
        with self._wake:
            self._threads_waiting += 1
            self._wake.notify()
        try:
            for index, record in records:
                while (
                    state := self._try_produce(pending.outcomes, index, record, partial(pending.report, index))
                ) is _FULL:
                    if time.monotonic() > deadline:
                        state = self._queue_full(pending.outcomes, index)
                        break
                    time.sleep(_QUEUE_FULL_PAUSE_S)
                refused += state is _REFUSED
            pending.release(refused + 1)
            done.wait(max(0.0, deadline - time.monotonic()))
        finally:
            with self._wake:
                self._threads_waiting -= 1
        return self._settle(pending.outcomes)

    async def publish_many_async(self, events: Sequence[Mapping[str, Any]]) -> list[Outcome]:
        """:meth:`publish_many` for asyncio callers: the event loop keeps serving while Kafka acknowledges."""
        if len(events) == 1:
            return [await self._publish_one_async(events[0])]
        loop = asyncio.get_running_loop()
        reports = self._reports(loop)
        batch = _AsyncBatch([str(e.get("event_id")) for e in events], loop.create_future())
        records = self._encode_all(events, batch.outcomes)
        batch.remaining += len(records)
        deadline = time.monotonic() + self.delivery_timeout_s + _REPORT_GRACE_S
        refused = 0
        report, handler = reports.report, batch.report
        for index, record in records:
            on_delivery = partial(report, handler, index)
            while (state := self._try_produce(batch.outcomes, index, record, on_delivery)) is _FULL:
                if time.monotonic() > deadline:
                    state = self._queue_full(batch.outcomes, index)
                    break
                await asyncio.sleep(_QUEUE_FULL_PAUSE_S)
            if state is _REFUSED:
                refused += 1
            else:
                reports.produced(1)
        batch.release(refused + 1)
        # A timer rather than asyncio.wait_for: no extra task per request on the collector's hot path.
        timer = loop.call_later(max(0.0, deadline - time.monotonic()), _resolve, batch.future)
        try:
            await batch.future
        finally:
            timer.cancel()
        return self._settle(batch.outcomes)

    async def _publish_one_async(self, event: Mapping[str, Any]) -> Outcome:
        """One event, as :meth:`publish_many_async` would publish it, without a batch's bookkeeping (no
        :class:`_Pending`, lock or outcome list): 13-23 % less CPU per single-event request, measured in process."""
        try:
            record = self.encode(event)
        except PublishError as exc:
            return self._failed_one(exc)
        except InvalidEventError as exc:
            return self._failed_one(PublishError(str(exc)))
        loop = asyncio.get_running_loop()
        reports = self._reports(loop)
        future: asyncio.Future[Outcome | None] = loop.create_future()
        on_delivery = partial(reports.report, partial(_settle_report, future), str(event.get("event_id")))
        deadline = time.monotonic() + self.delivery_timeout_s + _REPORT_GRACE_S
        while (state := self._produce(record, on_delivery)) is _FULL:
            if time.monotonic() > deadline:
                return self._failed_one(_queue_full_error())
            await asyncio.sleep(_QUEUE_FULL_PAUSE_S)
        if isinstance(state, PublishError):
            return self._failed_one(state)
        reports.produced(1)
        timer = loop.call_later(max(0.0, deadline - time.monotonic()), _settle_one, future, None)
        try:
            outcome = await future
        finally:
            timer.cancel()
        if outcome is None:
            return self._failed_one(self._not_acknowledged())
        return outcome if type(outcome) is Delivery else self._failed_one(outcome)

    def _encode_all(
        self, events: Sequence[Mapping[str, Any]], outcomes: list[Outcome | None]
    ) -> list[tuple[int, tuple[str, str, bytes]]]:
        """Encode every event first: an event that cannot be encoded gets its outcome, the rest are produced."""
        records: list[tuple[int, tuple[str, str, bytes]]] = []
        for index, event in enumerate(events):
            try:
                records.append((index, self.encode(event)))
            except PublishError as exc:
                outcomes[index] = exc
            except InvalidEventError as exc:
                outcomes[index] = PublishError(str(exc))
        return records

    def _try_produce(
        self,
        outcomes: list[Outcome | None],
        index: int,
        record: tuple[str, str, bytes],
        on_delivery: Callable[[KafkaError | None, Message], None],
    ) -> object:
        """Hand one record to the producer: ``_PRODUCED``, ``_REFUSED`` (outcome set) or ``_FULL`` (wait, retry)."""
        state = self._produce(record, on_delivery)
        if isinstance(state, PublishError):
            outcomes[index] = state
            return _REFUSED
        return state

    def _reports(self, loop: asyncio.AbstractEventLoop) -> _LoopReports:
        """The loop's report server (made on first use; it goes with the loop)."""
        reports = self._loops.get(loop)
        if reports is None:
            reports = self._loops[loop] = _LoopReports(loop, self._producer.poll)
        return reports

    def _produce(
        self, record: tuple[str, str, bytes], on_delivery: Callable[[KafkaError | None, Message], None]
    ) -> object:
        """``_PRODUCED``, ``_FULL`` (wait, retry) or the :class:`PublishError` refusing this record."""
        topic, key, value = record
        try:
            self._producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
        except BufferError:  # local queue full: Kafka is slow or down; the poll thread drains it meanwhile
            return _FULL
        except Exception as exc:  # KafkaException (e.g. an invalid topic name): this record only
            return PublishError(f"the producer refused the record: {exc}")
        return _PRODUCED

    @staticmethod
    def _queue_full(outcomes: list[Outcome | None], index: int) -> object:
        outcomes[index] = _queue_full_error()
        return _REFUSED

    def _settle(self, pending: list[Outcome | None]) -> list[Outcome]:
        snapshot = list(pending)  # a late report may still arrive (in the poll thread, for publish_many)
        outcomes = [outcome for outcome in snapshot if outcome is not None]
        if len(outcomes) < len(snapshot):  # made only when needed: once per request on the collector's hot path
            missing = self._not_acknowledged()
            outcomes = [outcome if outcome is not None else missing for outcome in snapshot]
        if any(type(o) is not Delivery for o in outcomes):
            self._failed(outcomes)
        return outcomes

    def _not_acknowledged(self) -> PublishUnavailableError:
        return PublishUnavailableError(
            f"Kafka at {self.bootstrap} did not acknowledge within {self.delivery_timeout_s:g} s; "
            "retry later with the same event ids (consumers deduplicate on event_id)"
        )

    @staticmethod
    def _failed(outcomes: list[Outcome]) -> None:
        """Log a publish call that did not store everything (one line per call)."""
        failed = sum(1 for o in outcomes if type(o) is not Delivery)
        log.warning("publish incomplete", extra=kv(failed=failed, total=len(outcomes), first=str(outcomes[0])))

    def _failed_one(self, outcome: Outcome) -> Outcome:
        """The single-event path's failure, logged as a one-event call would be."""
        self._failed([outcome])
        return outcome

    # -- lifecycle --------------------------------------------------------------------------------------

    def _poll_loop(self) -> None:
        while not self._closed.is_set():
            with self._wake:
                if not self._threads_waiting:
                    self._wake.wait(_IDLE_POLL_S)
                waiting = self._threads_waiting
            # For a waiting thread: serve reports as they arrive (returns at once when busy). Else: errors, logs.
            self._producer.poll(0.05 if waiting else 0)

    def _on_error(self, err: KafkaError) -> None:
        level = logging.WARNING if err.code() == KafkaError._ALL_BROKERS_DOWN else logging.DEBUG
        log.log(level, "kafka client error", extra=kv(error=err.str(), bootstrap=self.bootstrap))

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop the poll thread and wait (bounded) for records still in flight."""
        if self._closed.is_set():
            return
        self._closed.set()
        with self._wake:
            self._wake.notify()
        self._poller.join()
        remaining = self._producer.flush(timeout_s)
        if remaining:
            log.warning("records not delivered at close", extra=kv(remaining=remaining))

    def __enter__(self) -> Publisher:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _settle_report(future: asyncio.Future[Outcome | None], event_id: str, err: KafkaError | None, msg: Message) -> None:
    _settle_one(future, _outcome(event_id, err, msg))


def _settle_one(future: asyncio.Future[Outcome | None], outcome: Outcome | None) -> None:
    """The single-event path's report (an outcome) or deadline (None): whichever comes first counts."""
    if not future.done():
        future.set_result(outcome)


def _queue_full_error() -> PublishUnavailableError:
    return PublishUnavailableError(
        "Kafka is not keeping up: the producer queue stayed full until the deadline; retry later"
    )


def publisher_for(settings: Settings, delivery_timeout_s: float) -> Publisher:
    """The process's publisher for ``settings`` (addresses filled, e.g. by ``stack.connect``), in its namespace."""
    if settings.kafka_bootstrap_servers is None or settings.schema_registry_url is None:
        raise PublishUnavailableError(
            "no Kafka or Schema Registry address: set KAFKA_BOOTSTRAP_SERVERS and SCHEMA_REGISTRY_URL"
        )
    codec = AvroCodec(
        ConfluentSchemaRegistry(settings.schema_registry_url, basic_auth=settings.schema_registry_basic_auth)
    )
    return Publisher(
        settings.kafka_bootstrap_servers,
        codec,
        delivery_timeout_s=delivery_timeout_s,
        security=settings.kafka_security.confluent_config(),
        topic_for=lambda channel: settings.topic(channel_topic(channel)),  # the deployment's topic namespace
    )
