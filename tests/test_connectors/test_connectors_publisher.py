"""The publisher against the real Kafka: acknowledged records, murmur2 keys, a bounded wait when Kafka is down."""

from __future__ import annotations

import asyncio
import gc
import time
import weakref
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from connectors.envelope import normalise
from connectors.errors import PublishError, PublishUnavailableError
from connectors.publisher import Delivery, Publisher
from omnichannel.stack import StackInfo
from schemas.codec import AvroCodec
from schemas.loader import EVENT_FULLNAME
from schemas.samples import sample_event

ReadBack = Callable[..., list[tuple[str, dict[str, Any], int]]]


def murmur2(data: bytes) -> int:
    """Kafka's Java murmur2 (org.apache.kafka.common.utils.Utils.murmur2), as an unsigned 32-bit value."""
    m, mask = 0x5BD1E995, 0xFFFFFFFF
    h = (0x9747B28C ^ len(data)) & mask
    whole = len(data) // 4 * 4
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * m) & mask
        k ^= k >> 24
        k = (k * m) & mask
        h = ((h * m) & mask) ^ k
    tail = data[whole:]
    if len(tail) == 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if tail:
        h ^= tail[0]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    return h ^ (h >> 15)


@pytest.mark.parametrize(
    ("data", "java"),
    [(b"21", -973932308), (b"foobar", -790332482), (b"a-little-bit-long-string", -985981536), (b"abc", 479470107)],
)
def test_the_reference_murmur2_matches_kafkas_own_vectors(data: bytes, java: int) -> None:
    assert murmur2(data) == java & 0xFFFFFFFF  # Kafka's UtilsTest.testMurmur2


def test_published_events_are_acknowledged_and_read_back_with_the_codec(
    publisher: Publisher, topic_for: Callable[[str], str], read_back: ReadBack
) -> None:
    events = [normalise(sample_event(t, channel="web"), received_at_ms=1) for t in ("login", "order_placed")]
    deliveries = publisher.publish(events)
    assert [d.event_id for d in deliveries] == [e["event_id"] for e in events]
    assert all(d.topic == topic_for("web") and d.offset >= 0 for d in deliveries)
    records = read_back(topic_for("web"), 2)
    assert [event for _, event, _ in records] == events
    assert {key for key, _, _ in records} == {"customer:C-42"}


def test_keys_land_on_the_partition_java_and_faust_choose(
    stack: StackInfo,
    codec: AvroCodec,
    unique: Callable[[str], str],
    read_back: ReadBack,
    register_schema: Callable[[str, str], int],
) -> None:
    topic = unique("conn-partitioned")
    register_schema(f"{topic}-value", EVENT_FULLNAME)
    admin = AdminClient({"bootstrap.servers": stack.kafka.address})
    admin.create_topics([NewTopic(topic, 4, 1)])[topic].result(15)
    customers = [f"C-{n}" for n in range(12)]
    with Publisher(stack.kafka.address, codec, topic_for=lambda _: topic) as publisher:
        events = [normalise(sample_event("logout", identities={"customer_id": c}), received_at_ms=1) for c in customers]
        deliveries = publisher.publish(events)
    for customer, delivery in zip(customers, deliveries, strict=True):
        assert delivery.partition == (murmur2(f"customer:{customer}".encode()) & 0x7FFFFFFF) % 4, customer
    assert len({d.partition for d in deliveries}) > 1
    assert len(read_back(topic, 12)) == 12


def test_the_async_path_publishes_concurrent_requests(publisher: Publisher, topic_for: Callable[[str], str]) -> None:
    events = [normalise(sample_event("page_viewed", channel="tablet"), received_at_ms=1) for _ in range(50)]

    async def many() -> list[list[Delivery | Exception]]:
        return await asyncio.gather(*(publisher.publish_many_async([e]) for e in events))  # type: ignore[arg-type]

    outcomes = asyncio.run(many())
    assert all(isinstance(o[0], Delivery) for o in outcomes)
    assert len({o[0].offset for o in outcomes if isinstance(o[0], Delivery)}) == 50


def test_an_unreachable_kafka_fails_within_the_bounded_wait(dead_publisher: Publisher) -> None:
    event = normalise(sample_event("login"), received_at_ms=1)
    started = time.monotonic()
    with pytest.raises(PublishUnavailableError, match="did not acknowledge"):
        dead_publisher.publish([event])
    assert time.monotonic() - started < 0.5 + 1.0 + 1.0, "delivery timeout + report grace, never more"


def test_an_event_that_breaks_the_contract_is_refused_before_producing(publisher: Publisher) -> None:
    event = {**normalise(sample_event("login"), received_at_ms=1), "payload": {"method": 5}}
    (outcome,) = publisher.publish_many([event])
    assert not isinstance(outcome, Delivery)
    assert "payload" in str(outcome) or "method" in str(outcome)


def test_one_event_from_asyncio_is_stored_and_reported_like_a_batch(
    publisher: Publisher, topic_for: Callable[[str], str], read_back: ReadBack
) -> None:
    """A single event from an asyncio caller (the collector's commonest request) takes the short path: it still
    says where Kafka stored the event, and the record reads back as sent."""
    event = normalise(sample_event("page_viewed", channel="web"), received_at_ms=1)
    (outcome,) = asyncio.run(publisher.publish_many_async([event]))
    assert isinstance(outcome, Delivery)
    assert (outcome.event_id, outcome.topic) == (event["event_id"], topic_for("web")) and outcome.offset >= 0
    assert [e for _, e, _ in read_back(topic_for("web"), 1)] == [event]


def test_one_event_from_asyncio_fails_within_the_bounded_wait(dead_publisher: Publisher) -> None:
    event = normalise(sample_event("login"), received_at_ms=1)
    started = time.monotonic()
    (outcome,) = asyncio.run(dead_publisher.publish_many_async([event]))
    assert isinstance(outcome, PublishUnavailableError) and "did not acknowledge" in str(outcome)
    assert time.monotonic() - started < 0.5 + 1.0 + 1.0, "delivery timeout + report grace, never more"


def test_one_event_from_asyncio_that_breaks_the_contract_is_refused_before_producing(publisher: Publisher) -> None:
    event = {**normalise(sample_event("login"), received_at_ms=1), "payload": {"method": 5}}
    (outcome,) = asyncio.run(publisher.publish_many_async([event]))
    assert isinstance(outcome, PublishError) and not isinstance(outcome, PublishUnavailableError)
    assert "method" in str(outcome)


def test_threads_and_an_event_loop_publishing_at_once_each_get_every_acknowledgement(
    publisher: Publisher, topic_for: Callable[[str], str], read_back: ReadBack
) -> None:
    """An event loop serves its own records' reports; a thread's call is served by the poll thread. Both at
    once (the poll thread then also serves some of the loop's reports, handed to the loop): every event is
    acknowledged once, where it was stored, and reads back."""
    thread_events = [normalise(sample_event("page_viewed", channel="store"), received_at_ms=1) for _ in range(120)]
    loop_events = [normalise(sample_event("page_viewed", channel="store"), received_at_ms=1) for _ in range(120)]
    from_threads: list[list[Delivery | Exception]] = []

    def in_threads() -> None:
        for offset in range(0, len(thread_events), 20):
            from_threads.append(publisher.publish_many(thread_events[offset : offset + 20]))  # type: ignore[arg-type]

    async def in_loop() -> list[list[Delivery | Exception]]:
        batches = [publisher.publish_many_async(loop_events[i : i + 10]) for i in range(0, 100, 10)]
        singles = [publisher.publish_many_async([e]) for e in loop_events[100:]]
        worker = asyncio.create_task(asyncio.to_thread(in_threads))
        outcomes = await asyncio.gather(*batches, *singles)
        await worker
        return outcomes  # type: ignore[return-value]

    from_loop = asyncio.run(in_loop())
    every = [o for batch in [*from_threads, *from_loop] for o in batch]
    assert all(isinstance(o, Delivery) for o in every)
    deliveries = [o for o in every if isinstance(o, Delivery)]
    assert sorted(d.event_id for d in deliveries) == sorted(e["event_id"] for e in thread_events + loop_events)
    assert len({(d.partition, d.offset) for d in deliveries}) == 240, "each acknowledgement names its own record"
    stored = {e["event_id"] for _, e, _ in read_back(topic_for("store"), 240)}
    assert stored == {d.event_id for d in deliveries}


def test_a_batch_from_asyncio_fails_within_the_bounded_wait(dead_publisher: Publisher) -> None:
    events = [normalise(sample_event("login"), received_at_ms=1) for _ in range(5)]
    started = time.monotonic()
    outcomes = asyncio.run(dead_publisher.publish_many_async(events))
    assert all(isinstance(o, PublishUnavailableError) for o in outcomes), outcomes
    assert time.monotonic() - started < 0.5 + 1.0 + 1.0, "delivery timeout + report grace, never more"


def test_a_caller_that_gives_up_does_not_stop_the_next_ones_being_acknowledged(
    publisher: Publisher, topic_for: Callable[[str], str], read_back: ReadBack
) -> None:
    """A request cancelled while Kafka acknowledges (its client went away): its records still land, and the
    loop keeps serving the reports of the requests after it."""
    first = [normalise(sample_event("page_viewed", channel="sms"), received_at_ms=1) for _ in range(10)]
    then = [normalise(sample_event("page_viewed", channel="sms"), received_at_ms=1) for _ in range(10)]

    async def scenario() -> list[Delivery | Exception]:
        abandoned = asyncio.create_task(publisher.publish_many_async(first))  # type: ignore[arg-type]
        await asyncio.sleep(0)  # produced, not yet acknowledged (librdkafka lingers 5 ms)
        abandoned.cancel()
        with pytest.raises(asyncio.CancelledError):
            await abandoned
        return await publisher.publish_many_async(then)  # type: ignore[arg-type, return-value]

    outcomes = asyncio.run(scenario())
    assert all(isinstance(o, Delivery) for o in outcomes)
    stored = {e["event_id"] for _, e, _ in read_back(topic_for("sms"), 20)}
    assert stored == {e["event_id"] for e in first + then}


def test_an_event_loop_that_published_is_not_kept_alive_by_the_publisher(publisher: Publisher) -> None:
    """Each loop's report server goes with its loop (tests and tools run one loop after another)."""
    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []

    async def publish_and_note_the_loop() -> None:
        loops.append(weakref.ref(asyncio.get_running_loop()))
        events = [normalise(sample_event("login"), received_at_ms=1) for _ in range(3)]
        assert all(isinstance(o, Delivery) for o in await publisher.publish_many_async(events))

    for _ in range(3):
        asyncio.run(publish_and_note_the_loop())
    gc.collect()
    assert [ref() for ref in loops] == [None, None, None]
