"""Collector and SDK throughput, each beside the raw confluent-kafka produce ceiling of the same run.

Run: ``python -m benchmarks.collector`` (starts or reuses a stack through ``omnichannel.stack.resolve_stack``;
``KAFKA_BOOTSTRAP_SERVERS`` / ``SCHEMA_REGISTRY_URL`` / ``REDIS_URL`` point it at existing services).

What runs where: the collector is a real uvicorn process (uvloop, httptools, one worker, as in production);
the load generator is a second process: a minimal keep-alive HTTP/1.1 client on uvloop with N connections
(httpx would cap the figures itself). Kafka runs on the same machine, so all three share its cores.
Measured, for the same sample events, on topics private to the run (nothing lands on real channel topics):

* ``raw_produce_ceiling``: pre-encoded records straight into confluent-kafka with the connectors' producer
  settings (acks=all, idempotence, lz4, murmur2) - the most any Python connector here could publish;
* ``publisher_in_process``: the connectors' validation + Avro encoding + publish, no HTTP;
* ``collector_single``: ``POST /v1/events`` with one event per request (requests/s);
* ``collector_batch_100``: ``POST /v1/events`` with ``{"events": [100 events]}`` (events/s);
* ``sdk``: :class:`connectors.sdk.Tracker` (batches of 100, one background sender) to the same collector;
* ``loadgen_ceiling``: the load generator against ``GET /healthz``, to show it is not the bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import confluent_kafka
import httpx
import orjson
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from benchmarks.machine import describe, save
from connectors.config import CollectorConfig
from connectors.envelope import normalise, partition_key
from connectors.publisher import Publisher, producer_config
from omnichannel.settings import Settings
from omnichannel.stack import resolve_stack
from schemas.codec import AvroCodec
from schemas.loader import EVENT_FULLNAME, canonical_json
from schemas.registry import ConfluentSchemaRegistry
from schemas.samples import sample_event
from schemas.topics import CHANNELS, subject_for

DURATION_S = 10.0
WARMUP_S = 2.0
SINGLE_CONNECTIONS = 64
BATCH_CONNECTIONS = 8
RAW_RECORDS = 300_000
PUBLISHER_EVENTS = 100_000
SDK_EVENTS = 50_000
KEY = "dev-web"


def _event(n: int) -> dict[str, Any]:
    event = sample_event("cart_line_added", channel="web", identities={"customer_id": f"C-{n % 5000}"})
    for filled in ("event_id", "received_at_ms", "source_system"):
        del event[filled]  # the collector fills them, as for most real senders
    return event


# -- the collector process ------------------------------------------------------------------------------------


def serve(port: int, kafka: str, registry: str, prefix: str) -> None:
    """The collector as ``omnichannel serve`` runs it (collector part), publishing to the run's private topics."""
    import uvicorn

    from connectors.collector import create_app

    config = CollectorConfig.from_env({"OMNICHANNEL_DEV": "1"})
    with Publisher(kafka, AvroCodec(ConfluentSchemaRegistry(registry)), topic_for=lambda c: f"{prefix}.{c}") as pub:
        uvicorn.run(
            create_app(config, pub),
            host="127.0.0.1",
            port=port,
            loop="uvloop",
            http="httptools",
            access_log=False,
            log_level="warning",
        )


# -- the load generator process -------------------------------------------------------------------------------


async def _connection(port: int, request: bytes, start_at: float, stop_at: float, out: dict[str, Any]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    statuses: collections.Counter[int] = out["statuses"]
    latencies: list[float] = out["latencies"]
    try:
        while (now := time.perf_counter()) < stop_at:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            if now >= start_at:
                statuses[status] += 1
                latencies.append(time.perf_counter() - now)
    finally:
        writer.close()


async def _load(port: int, request: bytes, connections: int, duration_s: float, warmup_s: float) -> dict[str, Any]:
    start_at = time.perf_counter() + warmup_s
    stop_at = start_at + duration_s
    out: dict[str, Any] = {"statuses": collections.Counter(), "latencies": []}
    await asyncio.gather(*(_connection(port, request, start_at, stop_at, out) for _ in range(connections)))
    latencies = sorted(out["latencies"])
    count = len(latencies)
    return {
        "requests": count,
        "requests_per_s": round(count / duration_s, 1),
        "statuses": dict(out["statuses"]),
        "p50_ms": round(latencies[count // 2] * 1000, 2) if count else None,
        "p99_ms": round(latencies[int(count * 0.99)] * 1000, 2) if count else None,
        "connections": connections,
    }


def load(port: int, method: str, path: str, body_file: str | None, connections: int, duration_s: float) -> None:
    """Print the load run's JSON result (run in its own process)."""
    import uvloop

    body = Path(body_file).read_bytes() if body_file else b""
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Api-Key: {KEY}\r\n"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    request = head.encode() + b"\r\n" + body
    print(json.dumps(uvloop.run(_load(port, request, connections, duration_s, WARMUP_S))))


# -- the benchmark driver -------------------------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _run_load(port: int, server_pid: int, method: str, path: str, body: bytes, connections: int) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("wb", suffix=".json", delete=False) as scratch:
        scratch.write(body)
    body_file = Path(scratch.name)
    command = [sys.executable, "-m", "benchmarks.collector", "--load", str(port), method, path, str(body_file)]
    command += [str(connections), str(DURATION_S)]
    try:
        cpu_before = _cpu_seconds(server_pid)
        result = subprocess.run(command, capture_output=True, text=True, check=True, timeout=120)
        cpu = _cpu_seconds(server_pid) - cpu_before
    finally:
        body_file.unlink(missing_ok=True)
    figures: dict[str, Any] = json.loads(result.stdout)
    figures["server_cpu_cores"] = round(cpu / (DURATION_S + WARMUP_S), 2)
    return figures


def _raw_ceiling(kafka: str, codec: AvroCodec, topic: str) -> dict[str, Any]:
    events = [normalise(_event(n), received_at_ms=1) for n in range(1000)]
    records = [(partition_key(e), codec.encode(subject_for(topic), EVENT_FULLNAME, e)) for e in events]
    producer = Producer(producer_config(kafka, delivery_timeout_s=30))
    delivered = 0

    def count(err: Any, _: Any) -> None:
        nonlocal delivered
        delivered += err is None

    started = time.perf_counter()
    for n in range(RAW_RECORDS):
        key, value = records[n % len(records)]
        while True:
            try:
                producer.produce(topic, value=value, key=key, on_delivery=count)
                break
            except BufferError:
                producer.poll(0.01)
        if n % 1000 == 0:
            producer.poll(0)
    producer.flush(60)
    elapsed = time.perf_counter() - started
    assert delivered == RAW_RECORDS, f"only {delivered} of {RAW_RECORDS} raw records were acknowledged"
    return {"events": RAW_RECORDS, "events_per_s": round(RAW_RECORDS / elapsed), "value_bytes": len(records[0][1])}


def _publisher_in_process(kafka: str, codec: AvroCodec, topic_for: Callable[[str], str]) -> dict[str, Any]:
    raw = [_event(n) for n in range(PUBLISHER_EVENTS)]
    with Publisher(kafka, codec, topic_for=topic_for, delivery_timeout_s=30) as publisher:
        started = time.perf_counter()
        for offset in range(0, PUBLISHER_EVENTS, 500):
            batch = [normalise(e, received_at_ms=1) for e in raw[offset : offset + 500]]
            publisher.publish(batch)
        elapsed = time.perf_counter() - started
    return {"events": PUBLISHER_EVENTS, "events_per_s": round(PUBLISHER_EVENTS / elapsed), "batch": 500}


def _sdk(url: str) -> dict[str, Any]:
    from connectors.sdk import Tracker

    tracker = Tracker(url, KEY, "web", batch_size=100, flush_interval_s=0.05, max_queue=SDK_EVENTS + 1)
    payload = {"product_id": "SKU-1001", "quantity": 2, "unit_price_cents": 4999, "currency": "EUR"}
    started = time.perf_counter()
    for n in range(SDK_EVENTS):
        tracker.track("cart_line_added", payload, customer_id=f"C-{n % 5000}")
    tracked = time.perf_counter() - started
    tracker.close()  # flushes: returns once every event is stored in Kafka (raises otherwise)
    elapsed = time.perf_counter() - started
    return {
        "events": SDK_EVENTS,
        "events_per_s": round(SDK_EVENTS / elapsed),
        "track_calls_per_s": round(SDK_EVENTS / tracked),
        "batch": 100,
    }


def _wait_until_up(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the collector process exited at start")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError("the collector did not answer /healthz within 30 s")


def run() -> dict[str, Any]:
    settings = Settings.from_env()
    with ExitStack() as stack:
        running = stack.enter_context(resolve_stack(settings, progress=lambda m: print(f"... {m}", file=sys.stderr)))
        kafka, registry = running.info.kafka.address, running.info.registry.address
        prefix = f"bench-{uuid.uuid4().hex[:8]}"
        topics = [f"{prefix}.web", f"{prefix}.raw", f"{prefix}.inproc.web"]
        admin = AdminClient({"bootstrap.servers": kafka})
        for future in admin.create_topics([NewTopic(t, settings.partitions, 1) for t in topics]).values():
            future.result(30)
        schema_registry = ConfluentSchemaRegistry(registry)
        codec = AvroCodec(schema_registry)
        # Producers only look schema ids up: register the Event under every topic this run writes.
        written = [*topics, *(f"{prefix}.{c}" for c in CHANNELS), *(f"{prefix}.inproc.{c}" for c in CHANNELS)]
        for topic in written:
            schema_registry.register(subject_for(topic), canonical_json(EVENT_FULLNAME))

        ceiling = _raw_ceiling(kafka, codec, f"{prefix}.raw")
        print(f"raw produce ceiling: {ceiling['events_per_s']:,} events/s", file=sys.stderr)
        in_process = _publisher_in_process(kafka, codec, lambda c: f"{prefix}.inproc.{c}")
        print(f"publisher in process: {in_process['events_per_s']:,} events/s", file=sys.stderr)

        port = _free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.collector", "--serve", str(port), kafka, registry, prefix]
        )
        stack.callback(server.wait, 10)
        stack.callback(server.terminate)
        url = f"http://127.0.0.1:{port}"
        _wait_until_up(url, server)

        loadgen = _run_load(port, server.pid, "GET", "/healthz", b"", SINGLE_CONNECTIONS)
        print(f"load generator ceiling: {loadgen['requests_per_s']:,} requests/s", file=sys.stderr)
        single = _run_load(port, server.pid, "POST", "/v1/events", orjson.dumps(_event(1)), SINGLE_CONNECTIONS)
        print(f"collector single: {single['requests_per_s']:,} requests/s", file=sys.stderr)
        batch = _run_load(
            port,
            server.pid,
            "POST",
            "/v1/events",
            orjson.dumps({"events": [_event(n) for n in range(100)]}),
            BATCH_CONNECTIONS,
        )
        batch["events_per_s"] = round(batch["requests_per_s"] * 100)
        print(f"collector batches of 100: {batch['events_per_s']:,} events/s", file=sys.stderr)
        sdk = _sdk(url)
        print(f"SDK: {sdk['events_per_s']:,} events/s", file=sys.stderr)

    for name, figures in (("single", single), ("batch", batch)):
        accepted = figures["statuses"].get("202", figures["statuses"].get(202, 0))
        assert accepted == figures["requests"], f"{name}: not every request was accepted: {figures['statuses']}"
    return {
        "machine": describe(),
        "settings": {
            "duration_s": DURATION_S,
            "warmup_s": WARMUP_S,
            "partitions": settings.partitions,
            "librdkafka": confluent_kafka.libversion()[0],
            "kafka": f"Apache Kafka {running.info.kafka.version} (one local broker, {running.info.kafka.resolved_by})",
            "collector": "uvicorn 1 worker, uvloop, httptools; acks=all, idempotent, lz4, linger.ms=5",
            "load_generator": "separate process, keep-alive HTTP/1.1 on uvloop",
        },
        "raw_produce_ceiling": ceiling,
        "publisher_in_process": in_process,
        "loadgen_ceiling": loadgen,
        "collector_single": single,
        "collector_batch_100": batch,
        "sdk": sdk,
    }


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--serve", nargs=4, metavar=("PORT", "KAFKA", "REGISTRY", "PREFIX"), help=argparse.SUPPRESS)
    parser.add_argument(
        "--load", nargs=6, metavar=("PORT", "METHOD", "PATH", "BODY", "CONNS", "SECONDS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.serve:
        port, kafka, registry, prefix = args.serve
        serve(int(port), kafka, registry, prefix)
        return
    if args.load:
        port, method, path, body, connections, seconds = args.load
        load(int(port), method, path, body if body != "-" else None, int(connections), float(seconds))
        return
    result = run()
    path = save("collector", result)
    print(json.dumps(result, indent=2))
    print(f"written to {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
