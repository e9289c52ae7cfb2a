"""Stream-processor throughput and latency (issue 5): the real worker beside two ceilings from the same run.

Run: ``python -m benchmarks.streams`` (about 3-4 minutes; starts or reuses a stack through
``omnichannel.stack.resolve_stack``; ``KAFKA_BOOTSTRAP_SERVERS`` / ``SCHEMA_REGISTRY_URL`` / ``REDIS_URL`` point it
at existing services). ``--help`` lists the knobs (events, partitions, ``OMNICHANNEL_BATCH_MAX``, ...).

Everything happens in a fresh namespace (topics ``<ns>.*``, Redis keys ``<ns>:*``, consumer groups ``<ns>.*``),
deleted at the end. A fixed, seeded dataset (default 200,000 events over 20,000 customers: cart adds, sets and
removes, page and product views, searches, and logins that link a shopper's anonymous id to the customer id)
is produced first, keyed as the connectors key (``customer:<id>``, else ``anonymous:<id>``, murmur2), into the
channel topics. Then, on the same records:

* ``consume_ceiling``: confluent-kafka ``Consumer`` reading every record, without and with ``AvroCodec.decode``
  (a fresh codec, reader schema ``Event``, as the worker decodes): the most a Python consumer here could do;
* ``naive_agent``: consume + decode + one awaited Redis command per event (``HSET``, redis.asyncio), the
  anti-pattern faust users report a few hundred events/s with; time-boxed, so it may cover a subset (reported);
* ``faust_do_nothing_agent``: a Faust agent that only counts records (``benchmarks/faust_ceiling.py``), on the
  worker's event loop: the framework's own ceiling;
* ``worker_shell_without_stage``: the worker's agent with its stage removed (its batching, acks held until Kafka
  acknowledged the outputs, its sink forwarding each record to a scratch topic): the most any stage inside this
  worker could reach; its CPU per event is the shell's part of the worker's;
* ``worker``: the real ``omnichannel worker`` (one process, as deployed) draining the dataset; done when the
  worker's consumer group has committed the end offset of every channel-topic partition AND of every
  ``events.by_customer`` partition (read in that order, so every command a committed record caused is counted):
  every effect is then in Redis (Redis is written before offsets are committed). The commit interval is 1 s, so
  the end is seen up to ~1 s late; ``events_per_s`` counts from process start (Faust start-up and group join
  included), ``steady_events_per_s`` is the slope of committed channel offsets between 10 % and 90 % of the set;
* ``latency``: the same worker, then a steady 2,000 cart adds/s for 30 s, each stamped with its send time; a
  separate subscriber process records when each change arrives on the worker's Redis pub/sub channel
  ``<ns>:cart-updates:{<key>}`` (published in the same Lua script as the write, so "visible in Redis").

The machine has 2 cores shared by Kafka, Redis, the worker and this driver, and possibly other work: the load
average is recorded with each figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import confluent_kafka
import redis
from confluent_kafka import Consumer, Producer, TopicPartition

from benchmarks.machine import describe, save, tree_state
from omnichannel.kafka_admin import ensure_topics
from omnichannel.provision import remove_namespace
from omnichannel.settings import Settings
from omnichannel.stack import resolve_stack
from omnichannel.stack.processes import spawn, stop
from schemas.codec import AvroCodec
from schemas.loader import EVENT_FULLNAME
from schemas.publish import register_all
from schemas.registry import ConfluentSchemaRegistry
from schemas.topics import CHANNELS, Cleanup, TopicSpec, catalogue_for, channel_topic, subject_for

EVENTS = 200_000
CUSTOMERS = 20_000
SEED = 20_251_105
PRODUCTS = 500
#: ``--time-base fixed``: event times from this instant (long past: a replay, every follow-up check already due).
BASE_MS = 1_764_000_000_000
STEP_MS = 5
NAIVE_MAX_S = 25.0
LATENCY_RATE = 2000
#: Issue 12's targets, per worker process: each figure is read beside its ceiling from the same run.
TARGETS = {
    "worker_events_per_s": 5_000,
    "worker_share_of_faust_do_nothing": 0.35,
    "latency_p99_ms": 100,
    "latency_at_events_per_s": LATENCY_RATE,
}
LATENCY_S = 30.0
DRAIN_TIMEOUT_S = 420.0
#: Channels a shopper's device can be on (each has its own topic).
DEVICE_CHANNELS = ("mobile_app", "web", "tablet")
#: (event type, weight) of what an identified or anonymous shopper does; logins are drawn separately.
MIX = (
    ("cart_line_added", 30),
    ("cart_quantity_set", 10),
    ("cart_line_removed", 8),
    ("product_viewed", 25),
    ("page_viewed", 20),
    ("search_performed", 3),
)
LOGIN_PROBABILITY = 0.05  # per event of a shopper not logged in yet: ~4 % of events, ~40 % of shoppers


def log(message: str) -> None:
    print(f"... {message}", file=sys.stderr, flush=True)


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# -- the dataset ------------------------------------------------------------------------------------------------


def dataset(
    events: int, customers: int, seed: int, base_ms: int = BASE_MS
) -> tuple[list[tuple[str, str, dict[str, Any]]], dict[str, int]]:
    """``(channel, key, event)`` in production order, and the count of each event type. Same seed, same set
    (event ``n`` happens at ``base_ms + 5 n``; only the base moves with ``--time-base now``)."""
    rng = random.Random(seed)
    kinds, weights = zip(*MIX, strict=True)
    logged_in = [False] * customers
    channel_of = [rng.choice(DEVICE_CHANNELS) for _ in range(customers)]
    out: list[tuple[str, str, dict[str, Any]]] = []
    counts: dict[str, int] = {}
    for n in range(events):
        c = rng.randrange(customers)
        customer_id, anonymous_id = f"C-{c:05d}", f"anon-{c:05d}"
        if not logged_in[c] and rng.random() < LOGIN_PROBABILITY:
            kind = "login"
            logged_in[c] = True
        else:
            kind = rng.choices(kinds, weights)[0]
        product = f"SKU-{rng.randrange(PRODUCTS):04d}"
        payload: dict[str, Any]
        if kind == "login":
            payload = {"method": "password"}
        elif kind == "cart_line_added":
            payload = {
                "product_id": product,
                "quantity": rng.randint(1, 3),
                "unit_price_cents": 1999,
                "currency": "EUR",
            }
        elif kind == "cart_quantity_set":
            payload = {
                "product_id": product,
                "quantity": rng.randint(0, 4),
                "unit_price_cents": 1999,
                "currency": "EUR",
            }
        elif kind == "cart_line_removed":
            payload = {"product_id": product}
        elif kind == "product_viewed":
            payload = {"product_id": product, "category": "home", "unit_price_cents": 1999}
        elif kind == "page_viewed":
            payload = {"url": f"https://shop.example/p/{product}", "title": None, "referrer": None}
        else:
            payload = {"query": f"lamp {rng.randrange(50)}", "results_count": rng.randrange(40)}
        identified = logged_in[c]  # the login itself carries both ids: that is what links them
        channel = channel_of[c]
        event = {
            "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "event_type": kind,
            "occurred_at_ms": base_ms + n * STEP_MS,
            "received_at_ms": base_ms + n * STEP_MS + 40,
            "channel": channel,
            "device": {"device_id": f"dev-{c:05d}", "kind": "phone", "role": "customer_owned"},
            "identities": {
                "anonymous_id": anonymous_id,
                "customer_id": customer_id if identified else None,
                "email_hash": None,
                "phone_hash": None,
                "loyalty_card": None,
            },
            "location": None,
            "actor": None,
            "session_id": f"sess-{c}",
            "consent": {"analytics": True},
            "source_system": "benchmark",
            "payload": payload,
        }
        key = f"customer:{customer_id}" if identified else f"anonymous:{anonymous_id}"
        out.append((channel, key, event))
        counts[kind] = counts.get(kind, 0) + 1
    return out, counts


def producer_settings(kafka: str) -> dict[str, Any]:
    """The connectors' producer settings (connectors/publisher.py), murmur2 like Faust."""
    return {
        "bootstrap.servers": kafka,
        "acks": "all",
        "enable.idempotence": True,
        "partitioner": "murmur2_random",
        "linger.ms": 5,
        "compression.type": "lz4",
    }


def produce(kafka: str, records: list[tuple[str, bytes, bytes]]) -> float:
    """Produce ``(topic, key, value)`` records and wait for every acknowledgement; returns events/s."""
    producer = Producer(producer_settings(kafka))
    failed = 0

    def report(err: Any, _msg: Any) -> None:
        nonlocal failed
        failed += err is not None

    started = time.perf_counter()
    for n, (topic, key, value) in enumerate(records):
        while True:
            try:
                producer.produce(topic, value=value, key=key, on_delivery=report)
                break
            except BufferError:
                producer.poll(0.01)
        if n % 1000 == 0:
            producer.poll(0)
    remaining = producer.flush(60)
    elapsed = time.perf_counter() - started
    if remaining or failed:
        raise RuntimeError(f"{remaining} records unacknowledged and {failed} failed while producing the dataset")
    return len(records) / elapsed


# -- namespace and process helpers ------------------------------------------------------------------------------


def worker_env(settings: Settings, namespace: str, state_dir: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNICHANNEL_")}
    env |= {
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers or "",
        "SCHEMA_REGISTRY_URL": settings.schema_registry_url or "",
        "REDIS_URL": settings.redis_url or "",
        "OMNICHANNEL_NAMESPACE": namespace,
        "OMNICHANNEL_PARTITIONS": str(settings.partitions),
        "OMNICHANNEL_STATE_DIR": str(state_dir),
        **extra,
    }
    return env


def delete_namespace(settings: Settings, namespace: str) -> None:
    """Remove every topic, consumer group, Redis key and registry subject of ``namespace``."""
    remove_namespace(dataclasses.replace(settings, namespace=namespace))


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process (children not included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[float, float]:
    """(busy jiffies, total jiffies) of the whole machine, from /proc/stat."""
    values = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def lua_calls(client: redis.Redis) -> int:
    """EVALSHA calls served by Redis so far (the worker's fenced writes; server-wide)."""
    stats = client.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


def redis_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


@contextlib.contextmanager
def running(argv: list[str], env: dict[str, str], log_file: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A child process in its own session, stopped (SIGTERM, then SIGKILL) on exit."""
    with _env(env):
        proc = spawn(argv, log_file)
    try:
        yield proc
    finally:
        stop(proc.pid, timeout=20)


@contextlib.contextmanager
def _env(env: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))]


# -- (a) consume ceiling ----------------------------------------------------------------------------------------


def assigned_consumer(kafka: str, group: str, partitions: list[TopicPartition]) -> Consumer:
    consumer = Consumer(
        {
            "bootstrap.servers": kafka,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "fetch.max.bytes": 52_428_800,
            "queued.max.messages.kbytes": 262_144,
        }
    )
    consumer.assign([TopicPartition(tp.topic, tp.partition, confluent_kafka.OFFSET_BEGINNING) for tp in partitions])
    return consumer


def consume_ceiling(
    kafka: str, registry_url: str, partitions: list[TopicPartition], total: int, group: str
) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for label, decode in (("consume_only", False), ("consume_and_decode", True)):
        codec = AvroCodec(ConfluentSchemaRegistry(registry_url))  # fresh: its writer ids are not its own
        consumer = assigned_consumer(kafka, group, partitions)
        seen = 0
        started = time.perf_counter()
        first: float | None = None  # timed from the first record: assignment and the first fetch are not reading
        try:
            while seen < total:
                for message in consumer.consume(1000, timeout=1.0):
                    if message.error() is not None:
                        continue
                    if first is None:
                        first = time.perf_counter()
                    if decode:
                        codec.decode(message.value() or b"", EVENT_FULLNAME)
                    seen += 1
                if time.perf_counter() - started > 120:
                    raise RuntimeError(f"the ceiling consumer read only {seen} of {total} records in 120 s")
        finally:
            consumer.close()
        ended = time.perf_counter()
        elapsed = ended - (first or started)
        figures[label] = {
            "events": seen,
            "seconds_from_first_record": round(elapsed, 2),
            "seconds_from_assignment": round(ended - started, 2),
            "events_per_s": round(seen / elapsed),
        }
    figures["load_average"] = load_average()
    return figures


def identity_fold_cost(events: list[tuple[str, str, dict[str, Any]]]) -> dict[str, Any]:
    """Stage 1's pure identity decisions per event, by batch size, without Redis: ``observe`` handed the whole
    batch graph (it copies what it is given, so the cost grows with the batch), and the way the merge core's
    local subgraphs (``streams.domain.fold._Graph``) call it: only the profiles an event touches."""
    from streams.domain.fold import _Graph
    from streams.domain.identity import IdentityGraph, IdentityRules, identifiers_of, observe

    rules = IdentityRules()
    requests = [(e["event_id"], e["occurred_at_ms"], identifiers_of(e, rules)) for _, _, e in events[:8000]]
    out: dict[str, Any] = {}
    for batch in (100, 500, 1000):
        started = time.perf_counter()
        for first in range(0, len(requests), batch):
            graph = IdentityGraph()
            for event_id, at_ms, identifiers in requests[first : first + batch]:
                graph = observe(graph, identifiers, rules, event_id, at_ms).graph
        out[f"whole_graph_batch_{batch}_us_per_event"] = round((time.perf_counter() - started) / len(requests) * 1e6, 1)
        started = time.perf_counter()
        for first in range(0, len(requests), batch):
            working = _Graph()
            for event_id, at_ms, identifiers in requests[first : first + batch]:
                local = working.around(identifiers)
                observation = observe(local, identifiers, rules, event_id, at_ms)
                if observation.graph is not local:
                    working.replace(local, observation.graph)
        out[f"as_identity_store_batch_{batch}_us_per_event"] = round(
            (time.perf_counter() - started) / len(requests) * 1e6, 1
        )
    return out


def decode_variants(registry_url: str, sample: list[bytes]) -> dict[str, Any]:
    """Decode cost per event: as the worker calls it (reader schema given) and without a reader schema."""
    codec = AvroCodec(ConfluentSchemaRegistry(registry_url))
    codec.decode(sample[0], EVENT_FULLNAME)
    out: dict[str, Any] = {}
    for label, reader in (("with_reader_schema_us", EVENT_FULLNAME), ("writer_schema_only_us", None)):
        started = time.perf_counter()
        for data in sample:
            codec.decode(data, reader)
        out[label] = round((time.perf_counter() - started) / len(sample) * 1e6, 1)
    return out


# -- (b) naive agent --------------------------------------------------------------------------------------------


def naive_agent(
    kafka: str, registry_url: str, redis_url: str, namespace: str, partitions: list[TopicPartition], total: int
) -> dict[str, Any]:
    """Consume, decode, and await one Redis write per event: no batching at all."""
    from redis.asyncio import Redis

    codec = AvroCodec(ConfluentSchemaRegistry(registry_url))
    consumer = assigned_consumer(kafka, f"{namespace}.naive", partitions)

    async def run() -> tuple[int, float]:
        client = Redis.from_url(redis_url, decode_responses=True)
        seen = 0
        started = time.perf_counter()
        deadline = started + NAIVE_MAX_S
        try:
            while seen < total and time.perf_counter() < deadline:
                for message in consumer.consume(500, timeout=1.0):
                    if message.error() is not None:
                        continue
                    event = codec.decode(message.value() or b"", EVENT_FULLNAME)
                    key = f"{namespace}:naive:{{{(message.key() or b'').decode()}}}"
                    await client.hset(key, event["event_type"], event["occurred_at_ms"])
                    seen += 1
            return seen, time.perf_counter() - started
        finally:
            await client.aclose()

    try:
        seen, elapsed = asyncio.run(run())
    finally:
        consumer.close()
    return {
        "events": seen,
        "of": total,
        "subset": seen < total,
        "time_box_s": NAIVE_MAX_S,
        "seconds": round(elapsed, 2),
        "events_per_s": round(seen / elapsed),
        "redis_command": "HSET (redis.asyncio, awaited per event)",
        "load_average": load_average(),
    }


def faust_ceiling(
    kafka: str,
    namespace: str,
    inputs: list[TopicPartition],
    total: int,
    batch_max: int,
    uvloop: bool,
    shell_topic: str | None = None,
) -> dict[str, Any]:
    """A Faust agent that does nothing on the same topics and settings, or (``shell_topic``) the worker's agent
    with its stage removed, forwarding each record there (benchmarks/faust_ceiling.py)."""
    topics = sorted({tp.topic for tp in inputs})
    with tempfile.TemporaryDirectory(prefix="faust-ceiling-") as tmp:
        out = Path(tmp) / "figures.json"
        argv = [
            sys.executable,
            "-m",
            "benchmarks.faust_ceiling",
            "--brokers",
            kafka,
            "--group",
            f"{namespace}.worker-shell" if shell_topic else f"{namespace}.faust-ceiling",
            "--topics",
            ",".join(topics),
            "--total",
            str(total),
            "--batch-max",
            str(batch_max),
            "--out",
            str(out),
            *(["--shell", shell_topic] if shell_topic else []),
        ]
        env = {**os.environ, "FAUST_LOOP": "uvloop" if uvloop else "asyncio"}  # as the worker beside it
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)
        if not out.exists():
            raise RuntimeError(f"the Faust ceiling agent exited {done.returncode}: {done.stderr[-2000:]}")
        figures: dict[str, Any] = json.loads(out.read_text())
    figures["load_average"] = load_average()
    return figures


# -- (c) the real worker ----------------------------------------------------------------------------------------


class Progress:
    """Committed offsets of the worker's group against end offsets, sampled from the broker."""

    def __init__(self, kafka: str, group: str, inputs: list[TopicPartition], by_customer: list[TopicPartition]) -> None:
        self._consumer = Consumer({"bootstrap.servers": kafka, "group.id": group, "enable.auto.commit": False})
        self._inputs = inputs
        self._by_customer = by_customer

    def _committed(self, partitions: list[TopicPartition]) -> int:
        found = self._consumer.committed(partitions, timeout=10)
        return sum(max(tp.offset, 0) for tp in found)

    def _ends(self, partitions: list[TopicPartition]) -> int:
        return sum(self._consumer.get_watermark_offsets(tp, timeout=10, cached=False)[1] for tp in partitions)

    def sample(self) -> dict[str, int]:
        # Committed first, then ends: a committed record's commands were acknowledged before its commit.
        committed_in = self._committed(self._inputs)
        committed_bc = self._committed(self._by_customer)
        return {
            "committed_in": committed_in,
            "committed_by_customer": committed_bc,
            "end_in": self._ends(self._inputs),
            "end_by_customer": self._ends(self._by_customer),
        }

    def close(self) -> None:
        self._consumer.close()


def drain(
    settings: Settings,
    namespace: str,
    env: dict[str, str],
    log_file: Path,
    inputs: list[TopicPartition],
    total: int,
    py_spy: str | None,
    workers: int = 1,
    uvloop: bool = False,
) -> tuple[dict[str, Any], subprocess.Popen[bytes], contextlib.ExitStack, Progress]:
    """Start the worker and wait until it has applied everything; the worker is left running for the latency test."""
    assert settings.kafka_bootstrap_servers and settings.redis_url
    group = f"{namespace}.omnichannel-processor"
    by_customer = [TopicPartition(f"{namespace}.events.by_customer", p) for p in range(settings.partitions)]
    progress = Progress(settings.kafka_bootstrap_servers, group, inputs, by_customer)
    stack = contextlib.ExitStack()
    stack.callback(progress.close)
    argv = [sys.executable, "-m", "omnichannel.cli", "worker"]
    # faust/__init__.py reads FAUST_LOOP at import; `omnichannel worker` defaults it to uvloop: named either way,
    # so that the worker and the Faust ceiling never run on different loops.
    env = {**env, "FAUST_LOOP": "uvloop" if uvloop else "asyncio"}
    plain_argv = argv
    if py_spy:
        spy = Path(sys.executable).parent / "py-spy"
        argv = [
            str(spy) if spy.exists() else "py-spy",
            "record",
            "--format",
            "raw",
            "--rate",
            "97",
            "-o",
            py_spy,
            "--",
            *argv,
        ]
    client = redis.Redis.from_url(settings.redis_url)
    stack.callback(client.close)
    redis_cpu_before = redis_cpu(client)
    lua_before = lua_calls(client)
    busy_before = machine_busy()
    started = time.perf_counter()
    worker = stack.enter_context(running(argv, env, log_file))
    worker_pid = worker.pid
    others = [
        stack.enter_context(running(plain_argv, env, log_file.with_name(f"worker{n}.log"))) for n in range(1, workers)
    ]
    if py_spy:
        stack.callback(_stop_profiled, worker)
    samples: list[tuple[float, dict[str, int]]] = []
    first_commit: float | None = None
    done: float | None = None
    try:
        while time.perf_counter() - started < DRAIN_TIMEOUT_S:
            if worker.poll() is not None:
                raise RuntimeError(f"the worker exited with {worker.returncode}; see {log_file}")
            now = time.perf_counter() - started
            state = progress.sample()
            state["lua_writes"] = lua_calls(client) - lua_before
            samples.append((now, state))
            if first_commit is None and state["committed_in"] > 0:
                first_commit = now
            if state["committed_in"] >= total and state["end_in"] == state["committed_in"] and _by_customer_done(state):
                done = now
                break
            time.sleep(0.25)
        if done is None:
            raise RuntimeError(f"the worker did not drain {total} events within {DRAIN_TIMEOUT_S} s; see {log_file}")
        if py_spy:  # py-spy is the parent: the worker is its child
            worker_pid = _child_pid(worker.pid) or worker.pid
        worker_cpu = cpu_seconds(worker_pid) + sum(cpu_seconds(p.pid) for p in others)
    except BaseException:
        stack.close()
        raise
    busy_after = machine_busy()
    redis_used = redis_cpu(client) - redis_cpu_before

    def crossing(fraction: float) -> tuple[float, int]:
        for at, state in samples:
            if state["committed_in"] >= fraction * total:
                return at, state["committed_in"]
        return samples[-1][0], samples[-1][1]["committed_in"]

    t10, c10 = crossing(0.10)
    t90, c90 = crossing(0.90)
    final = samples[-1][1]
    result = {
        "events": total,
        "seconds_from_start": round(done, 2),
        "events_per_s": round(total / done),
        "seconds_to_first_commit": round(first_commit or 0.0, 2),
        "events_per_s_after_first_commit": round(total / (done - (first_commit or 0.0))),
        "steady_events_per_s": round((c90 - c10) / (t90 - t10)) if t90 > t10 else None,
        "by_customer_records": final["end_by_customer"],
        "commands_and_forwards": final["end_by_customer"] - total,
        "worker_processes": workers,
        "worker_event_loop": "uvloop (FAUST_LOOP=uvloop)" if uvloop else "asyncio (FAUST_LOOP=asyncio)",
        "cpu_us_per_event": round(worker_cpu * 1e6 / total),
        "worker_cpu_cores": round(worker_cpu / done, 2),
        "redis_cpu_cores": round(redis_used / done, 2),
        "machine_cpu_busy": round((busy_after[0] - busy_before[0]) / max(1, busy_after[1] - busy_before[1]), 2),
        "load_average": load_average(),
        "samples": [
            {
                "t": round(at, 2),
                "in": s["committed_in"],
                "by_customer_end": s["end_by_customer"],
                "by_customer": s["committed_by_customer"],
                "lua_writes": s["lua_writes"],
            }
            for at, s in samples[:: max(1, len(samples) // 40)]
        ],
    }
    return result, worker, stack, progress


def _stop_profiled(spy: subprocess.Popen[bytes]) -> None:
    """End the profiled worker first, so py-spy sees it exit and writes its profile."""
    child = _child_pid(spy.pid)
    if child is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        spy.wait(30)


def _child_pid(pid: int) -> int | None:
    with contextlib.suppress(OSError):
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if children:
            return int(children[0])
    return None


def final_state_check(redis_url: str, namespace: str, events: list[tuple[str, str, dict[str, Any]]]) -> dict[str, Any]:
    """Cheap sanity check: every shopper's final profile holds a customer record and has applied its last event."""
    last: dict[str, dict[str, Any]] = {}
    for _channel, _key, event in events:
        last[event["identities"]["anonymous_id"]] = event
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    pipe = client.pipeline(transaction=False)
    profiles = []
    for anonymous_id, event in last.items():
        customer = event["identities"]["customer_id"]
        profiles.append((f"customer:{customer}" if customer else f"anonymous:{anonymous_id}", event["event_id"]))
    for profile, event_id in profiles:
        pipe.exists(f"{namespace}:customer:{{{profile}}}")
        pipe.zscore(f"{namespace}:seen:{{{profile}}}", event_id)  # the two-stage worker (before the merge core)
    for anonymous_id in last:
        pipe.get(f"{namespace}:idg:{{idg}}:cl:anonymous_id:{anonymous_id}")  # the merge core: the shopper's cluster
    raw = pipe.execute()
    clusters = raw[2 * len(profiles) :]
    for cluster, (_profile, event_id) in zip(clusters, profiles, strict=True):
        pipe.hexists(f"{namespace}:idg:{{idg}}:clog:{cluster}", event_id)
    in_logs = pipe.execute()
    client.close()
    records = sum(1 for x in raw[0 : 2 * len(profiles) : 2] if x)
    applied = sum(
        1 for seen, logged in zip(raw[1 : 2 * len(profiles) : 2], in_logs, strict=True) if seen is not None or logged
    )
    return {"shoppers": len(profiles), "with_customer_record": records, "last_event_applied": applied}


# -- (d) produce-to-Redis latency -------------------------------------------------------------------------------


def subscribe(redis_url: str, pattern: str, control: str, seconds: float) -> None:
    """Subscriber process: print 'ready', then, once ``control`` says stop (or after ``seconds``), one JSON
    line of (arrival time, payload) per message on ``pattern``."""
    client = redis.Redis.from_url(redis_url)
    pubsub = client.pubsub()  # type: ignore[no-untyped-call]
    pubsub.psubscribe(pattern)
    pubsub.subscribe(control)
    confirmed = 0
    while confirmed < 2:
        if pubsub.get_message(timeout=1.0) is not None:
            confirmed += 1
    print("ready", flush=True)
    arrivals: list[tuple[float, bytes]] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.5)
        if message is None:
            continue
        if message["type"] == "pmessage":
            arrivals.append((time.time(), message["data"]))
        elif message["type"] == "message":
            break
    pubsub.close()
    client.close()
    out = [(at, data.decode()) for at, data in arrivals]
    print(json.dumps(out))


def _by_customer_done(state: dict[str, int]) -> bool:
    """The two-stage worker (before the merge core) also had to drain ``events.by_customer``; the one-stage
    worker only writes it (its group commits nothing there)."""
    return state["committed_by_customer"] in (0, state["end_by_customer"])


def wait_drained(progress: Progress, timeout: float) -> float | None:
    """Seconds until the worker's group has committed every end offset (None: not within ``timeout``)."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        state = progress.sample()
        if state["committed_in"] == state["end_in"] and _by_customer_done(state):
            return time.perf_counter() - started
        time.sleep(0.25)
    return None


def latency(
    settings: Settings,
    namespace: str,
    codec: AvroCodec,
    customers: int,
    rate: int,
    seconds: float,
    progress: Progress,
) -> dict[str, Any]:
    assert settings.kafka_bootstrap_servers and settings.redis_url
    total = int(rate * seconds)
    tail_s = 90.0  # the most we wait, after the last send, for the worker to apply everything
    control = f"{namespace}:bench-stop"
    subscriber = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks.streams",
            "--subscribe",
            settings.redis_url,
            f"{namespace}:cart-updates:*",
            control,
            str(seconds + tail_s + 30),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert subscriber.stdout is not None
        if subscriber.stdout.readline().strip() != "ready":
            raise RuntimeError("the pub/sub subscriber did not start")
        producer = Producer(producer_settings(settings.kafka_bootstrap_servers))
        rng = random.Random(SEED + 1)
        sent: dict[tuple[str, str], float] = {}
        lateness: list[float] = []
        interval = 1.0 / rate
        started = time.perf_counter()
        for n in range(total):
            target = started + n * interval
            delay = target - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            else:
                lateness.append(-delay)
            c = rng.randrange(customers)
            channel = DEVICE_CHANNELS[c % len(DEVICE_CHANNELS)]
            product = f"LAT-{n}"
            wall = time.time()
            event = {
                "event_id": str(uuid.uuid4()),
                "event_type": "cart_line_added",
                "occurred_at_ms": int(wall * 1000),
                "received_at_ms": int(wall * 1000),
                "channel": channel,
                "device": {"device_id": f"dev-{c:05d}", "kind": "phone", "role": "customer_owned"},
                "identities": {
                    "anonymous_id": f"anon-{c:05d}",
                    "customer_id": f"C-{c:05d}",
                    "email_hash": None,
                    "phone_hash": None,
                    "loyalty_card": None,
                },
                "location": None,
                "actor": None,
                "session_id": f"sess-{c}",
                "consent": {"analytics": True},
                "source_system": "benchmark",
                "payload": {"product_id": product, "quantity": 1, "unit_price_cents": 999, "currency": "EUR"},
            }
            topic = f"{namespace}.{channel_topic(channel)}"
            value = codec.encode(subject_for(topic), EVENT_FULLNAME, event)
            producer.produce(topic, key=f"customer:C-{c:05d}", value=value)
            producer.poll(0)
            sent[(f"customer:C-{c:05d}", product)] = wall
        send_seconds = time.perf_counter() - started
        if producer.flush(30):
            raise RuntimeError("latency events were not all acknowledged")
        behind_s = wait_drained(progress, tail_s)
        client = redis.Redis.from_url(settings.redis_url)
        client.publish(control, "stop")
        client.close()
        out, _ = subscriber.communicate(timeout=60)
    finally:
        if subscriber.poll() is None:
            subscriber.kill()
            subscriber.wait()
    arrivals = json.loads(out.strip().splitlines()[-1])
    latencies: list[float] = []
    matched: dict[tuple[str, str], float] = {}
    for at, data in arrivals:
        cart = json.loads(data)
        for line in cart["lines"]:
            ref = (cart["cart_key"], line["product_id"])
            if ref in sent and ref not in matched:
                matched[ref] = at
                latencies.append((at - sent[ref]) * 1000)
    latencies.sort()
    stages = stage_split(settings, namespace, codec, sent, matched)
    return {
        "rate_per_s": rate,
        "seconds": seconds,
        "sent": total,
        "achieved_send_rate_per_s": round(total / send_seconds),
        "sends_behind_schedule": len(lateness),
        "seen_in_redis": len(latencies),
        "drained_s_after_last_send": None if behind_s is None else round(behind_s, 2),
        "p50_ms": _round(percentile(latencies, 0.50)),
        "p90_ms": _round(percentile(latencies, 0.90)),
        "p99_ms": _round(percentile(latencies, 0.99)),
        "p999_ms": _round(percentile(latencies, 0.999)),
        "max_ms": _round(latencies[-1] if latencies else None),
        "measured": "time.time() before produce -> arrival of the cart change on Redis pub/sub in another process",
        "after_redis": stages,
        "load_average": load_average(),
    }


def stage_split(
    settings: Settings,
    namespace: str,
    codec: AvroCodec,
    sent: dict[tuple[str, str], float],
    arrived: dict[tuple[str, str], float],
) -> dict[str, Any]:
    """Where the time goes after Redis: the worker has one stage (consume, fold, one Redis commit, then its
    outputs), and it re-publishes each event on ``events.by_customer`` after the Redis commit, with a CreateTime
    timestamp set by its producer. So send -> Redis pub/sub is the whole path to the state (``p50_ms`` /
    ``p99_ms`` above), and Redis pub/sub -> that timestamp is how much later subscribers of the unified topic
    get it (``outputs_after_redis_*``; librdkafka's linger and the per-batch acknowledgement)."""
    assert settings.kafka_bootstrap_servers
    partitions = [TopicPartition(f"{namespace}.events.by_customer", p) for p in range(settings.partitions)]
    consumer = assigned_consumer(settings.kafka_bootstrap_servers, f"{namespace}.split", partitions)
    ends = sum(consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions)
    to_redis: list[float] = []
    after_redis: list[float] = []
    read = 0
    deadline = time.monotonic() + 60
    try:
        while read < ends and time.monotonic() < deadline:
            for message in consumer.consume(1000, timeout=1.0):
                if message.error() is not None:
                    continue
                read += 1
                if message.headers():
                    continue  # a command, not an event
                event = codec.decode(message.value() or b"", EVENT_FULLNAME)
                product = event["payload"].get("product_id") if isinstance(event["payload"], dict) else None
                ref = ((message.key() or b"").decode(), str(product))
                if ref in sent and ref in arrived:
                    emitted = message.timestamp()[1] / 1000
                    to_redis.append((arrived[ref] - sent[ref]) * 1000)
                    after_redis.append((emitted - arrived[ref]) * 1000)
    finally:
        consumer.close()
    to_redis.sort()
    after_redis.sort()
    return {
        "events": len(to_redis),
        "to_redis_p50_ms": _round(percentile(to_redis, 0.5)),
        "to_redis_p99_ms": _round(percentile(to_redis, 0.99)),
        "outputs_after_redis_p50_ms": _round(percentile(after_redis, 0.5)),
        "outputs_after_redis_p99_ms": _round(percentile(after_redis, 0.99)),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


# -- the driver -------------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    base = Settings.from_env()
    if args.partitions:
        base = Settings.from_env({**os.environ, "OMNICHANNEL_PARTITIONS": str(args.partitions)})
    namespace = f"bench{uuid.uuid4().hex[:8]}"
    tree_at_start = tree_state()
    extra_env = {"OMNICHANNEL_BATCH_MAX": str(args.batch_max)} if args.batch_max else {}
    loads: dict[str, Any] = {"start": load_average()}
    with contextlib.ExitStack() as stack:
        resolved = stack.enter_context(resolve_stack(base, progress=log))
        settings = resolved.settings(base)
        assert settings.kafka_bootstrap_servers and settings.schema_registry_url and settings.redis_url
        state_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-streams-")))
        if args.keep:
            log(f"--keep: namespace {namespace} is left in place (delete it with delete_namespace)")
        else:
            stack.callback(delete_namespace, settings, namespace)
        ensure_topics(settings.kafka_bootstrap_servers, catalogue_for(namespace), settings.partitions)
        register_all(ConfluentSchemaRegistry(settings.schema_registry_url), catalogue_for(namespace))
        log(f"namespace {namespace}, {settings.partitions} partitions")

        started = time.perf_counter()
        # "now": the set ends at the current time, as live traffic (follow-up checks come due after the run);
        # "fixed": long past, as a replay after an outage (every abandoned-cart check is due during the drain).
        base_ms = int(time.time() * 1000) - args.events * STEP_MS if args.time_base == "now" else BASE_MS
        events, counts = dataset(args.events, args.customers, SEED, base_ms)
        codec = AvroCodec(ConfluentSchemaRegistry(settings.schema_registry_url))
        records = []
        for channel, key, event in events:
            topic = f"{namespace}.{channel_topic(channel)}"
            records.append((topic, key.encode(), codec.encode(subject_for(topic), EVENT_FULLNAME, event)))
        log(f"dataset: {len(records):,} events generated and encoded in {time.perf_counter() - started:.1f} s")
        produce_rate = produce(settings.kafka_bootstrap_servers, records)
        log(f"produced at {produce_rate:,.0f} events/s")
        inputs = [
            TopicPartition(f"{namespace}.{channel_topic(c)}", p) for c in CHANNELS for p in range(settings.partitions)
        ]
        total = len(records)
        value_bytes = sum(len(r[2]) for r in records) / total

        ceiling = consume_ceiling(
            settings.kafka_bootstrap_servers, settings.schema_registry_url, inputs, total, f"{namespace}.ceiling"
        )
        ceiling["decode_cost"] = decode_variants(settings.schema_registry_url, [r[2] for r in records[:20_000]])
        ceiling["identity_observe_cost"] = identity_fold_cost(events)
        log(
            f"ceiling: consume {ceiling['consume_only']['events_per_s']:,} events/s, "
            f"consume+decode {ceiling['consume_and_decode']['events_per_s']:,} events/s"
        )
        naive = naive_agent(
            settings.kafka_bootstrap_servers,
            settings.schema_registry_url,
            settings.redis_url,
            namespace,
            inputs,
            total,
        )
        log(f"naive agent: {naive['events_per_s']:,} events/s over {naive['events']:,} events")
        faust_figures = faust_ceiling(
            settings.kafka_bootstrap_servers, namespace, inputs, total, args.batch_max or 500, args.uvloop
        )
        log(f"Faust do-nothing agent: {faust_figures['events_per_s']:,} events/s from its first record")
        # The worker's shell: its batching and sink forwarding each record to a topic of the run's own (so
        # events.by_customer, which the worker's progress counts, stays the worker's).
        shell_topic = f"{namespace}.bench.worker-shell"
        shell_spec = TopicSpec(shell_topic, "as read", EVENT_FULLNAME, Cleanup.DELETE, None, "benchmark scratch")
        ensure_topics(settings.kafka_bootstrap_servers, [shell_spec], settings.partitions)
        shell_figures = faust_ceiling(
            settings.kafka_bootstrap_servers,
            namespace,
            inputs,
            total,
            args.batch_max or 500,
            args.uvloop,
            shell_topic=shell_topic,
        )
        shell_figures["share_of_faust_do_nothing"] = round(
            shell_figures["events_per_s"] / faust_figures["events_per_s"], 3
        )
        log(
            f"the worker's shell (no stage): {shell_figures['events_per_s']:,} events/s from its first record, "
            f"{shell_figures['cpu_us_per_event']} µs of CPU per event, "
            f"{shell_figures['share_of_faust_do_nothing']:.1%} of the Faust do-nothing agent"
        )
        del records

        env = worker_env(settings, namespace, state_dir, extra_env)
        log_file = state_dir / "worker.log"
        loads["before_worker"] = load_average()
        worker_figures, worker, worker_stack, progress = drain(
            settings, namespace, env, log_file, inputs, total, args.py_spy, args.workers, args.uvloop
        )
        stack.enter_context(worker_stack)
        log(
            f"worker: {worker_figures['events_per_s']:,} events/s from start "
            f"({worker_figures['steady_events_per_s']:,} steady), {worker_figures['seconds_from_start']} s"
        )
        worker_figures["share_of_faust_do_nothing"] = round(
            worker_figures["events_per_s"] / faust_figures["events_per_s"], 3
        )
        log(
            f"worker: {worker_figures['cpu_us_per_event']} µs of CPU per event, "
            f"{worker_figures['share_of_faust_do_nothing']:.1%} of the Faust do-nothing agent"
        )
        worker_figures["final_state_check"] = final_state_check(settings.redis_url, namespace, events)
        latency_figures: dict[str, Any] | None = None
        if not args.skip_latency:
            time.sleep(2)
            latency_figures = latency(
                settings, namespace, codec, args.customers, args.latency_rate, args.latency_seconds, progress
            )
            log(
                f"latency at {args.latency_rate}/s: p50 {latency_figures['p50_ms']} ms, "
                f"p99 {latency_figures['p99_ms']} ms"
            )
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited with {worker.returncode}; see {log_file}")
        loads["end"] = load_average()
        kafka_info = resolved.info.kafka.describe()

    return {
        "benchmark": "streams",
        "machine": describe(),
        "load_average": loads,
        "note": "2 cores shared by Kafka, Redis, the worker and the driver; other processes may have been running "
        "(see load_average: 1-, 5-, 15-minute averages at each stage)",
        "tree": {"start": tree_at_start, "end": tree_state()},  # a shared tree: code may change during a run
        "settings": {
            "events": total,
            "customers": args.customers,
            "seed": SEED,
            "time_base": args.time_base,
            "event_mix": counts,
            "value_bytes_avg": round(value_bytes),
            "partitions": settings.partitions,
            "OMNICHANNEL_BATCH_MAX": args.batch_max or "default (500)",
            "batch_within_s": "0.02 (streams.config default)",
            # The loop is "event_loop" below (uvloop unless --asyncio); the process count is "worker_processes".
            "worker": "python -m omnichannel.cli worker (Faust, aiokafka transport)",
            "producer": "acks=all, idempotent, lz4, linger.ms=5, murmur2_random",
            "librdkafka": confluent_kafka.libversion()[0],
            "kafka": kafka_info,
            "py_spy": bool(args.py_spy),
            "worker_processes": args.workers,
            "event_loop": "uvloop (FAUST_LOOP=uvloop, as `omnichannel worker` runs)"
            if args.uvloop
            else "asyncio (FAUST_LOOP=asyncio)",
        },
        "dataset_produce_events_per_s": round(produce_rate),
        "consume_ceiling": ceiling,
        "naive_agent": naive,
        "faust_do_nothing_agent": faust_figures,
        "worker_shell_without_stage": shell_figures,
        "worker": worker_figures,
        "latency": latency_figures,
        "targets": TARGETS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=EVENTS)
    parser.add_argument("--customers", type=int, default=CUSTOMERS)
    parser.add_argument("--partitions", type=int, default=0, help="OMNICHANNEL_PARTITIONS (default: from env, 4)")
    parser.add_argument("--batch-max", type=int, default=0, help="OMNICHANNEL_BATCH_MAX for the worker (default 500)")
    parser.add_argument("--latency-rate", type=int, default=LATENCY_RATE)
    parser.add_argument("--latency-seconds", type=float, default=LATENCY_S)
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--py-spy", metavar="FILE", help="profile the worker with py-spy (raw collapsed stacks)")
    parser.add_argument(
        "--time-base",
        choices=("now", "fixed"),
        default="now",
        help="event times ending now (live traffic, default) or fixed in the past (a replay: follow-ups all due)",
    )
    parser.add_argument("--workers", type=int, default=1, help="worker processes (experiment; the target is per 1)")
    parser.add_argument(
        "--asyncio",
        action="store_true",
        help="run the worker and the Faust ceiling on asyncio's own loop (FAUST_LOOP=asyncio); default uvloop, as "
        "`omnichannel worker` runs",
    )
    parser.add_argument("--uvloop", action="store_true", help="the default (kept so that older commands still run)")
    parser.add_argument("--keep", action="store_true", help="leave the namespace in place (investigation)")
    parser.add_argument("--name", default="streams", help="results file name (benchmarks/results/<name>.json)")
    parser.add_argument(
        "--subscribe", nargs=4, metavar=("REDIS", "PATTERN", "CONTROL", "SECONDS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    args.uvloop = not args.asyncio  # the worker and its Faust ceiling always run on the same loop
    if args.subscribe:
        url, pattern, control, seconds = args.subscribe
        subscribe(url, pattern, control, float(seconds))
        return
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up (processes, namespace) on SIGTERM too
    result = run(args)
    path = save(args.name, result)
    print(json.dumps(result, indent=2))
    print(f"written to {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
