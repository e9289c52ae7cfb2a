"""Collector and SDK throughput, each beside the raw confluent-kafka produce ceiling of the same run.

Run: ``python -m benchmarks.collector`` (starts or reuses a stack through ``omnichannel.stack.resolve_stack``;
``KAFKA_BOOTSTRAP_SERVERS`` / ``SCHEMA_REGISTRY_URL`` / ``REDIS_URL`` point it at existing services).

What runs where: the collector is a real uvicorn process (uvloop, httptools, access log off; one worker, or
``omnichannel serve --workers N`` with ``--workers N``); the load generator is a second process: a minimal
keep-alive HTTP/1.1 client on uvloop with N connections, each sending its next request once the answer arrived
(closed loop; httpx would cap the figures itself). Kafka, the collector and the load generator share the
machine's cores. Measured, for the same sample events, on topics private to the run (deleted at the end, with
their registry subjects; nothing lands on real channel topics):

* ``raw_produce_ceiling``: pre-encoded records straight into confluent-kafka with the connectors' producer
  settings (acks=all, idempotence, lz4, murmur2) - the most any Python connector here could publish;
* ``publisher_in_process``: the connectors' validation + Avro encoding + publish, no HTTP;
* ``collector_single``: ``POST /v1/events`` with one event per request (requests/s);
* ``collector_batch_100``: ``POST /v1/events`` with ``{"events": [100 events]}`` (events/s);
* ``sdk``: :class:`connectors.sdk.Tracker` (batches of 100, one background sender) to the same collector;
* ``trivial_single`` / ``trivial_batch_100``: the ceilings: a plain Starlette app that reads the body and
  answers 202, served by uvicorn with the same settings (and workers), under the same load from the same
  generator, in the same run (each measured right before the collector's figure it bounds);
* ``without_kafka_single`` / ``without_kafka_batch_100`` (phase ``nokafka``, one worker): the same collector
  process with publishing cut after the Avro encoding (answered as if stored, nothing produced): what HTTP,
  the app and validation + encoding allow before Kafka's producer and its delivery reports take their share.

``--only single,batch`` runs a subset; ``--py-spy DIR`` profiles the collector during extra, unreported
single and batch runs (``pip install py-spy``; not a project dependency).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import confluent_kafka
import httpx
import orjson
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from benchmarks.machine import describe, load_average, save
from connectors.config import CollectorConfig
from connectors.envelope import normalise, partition_key
from connectors.publisher import Delivery, Outcome, Publisher, producer_config
from omnichannel.gc_tuning import tune_gc
from omnichannel.settings import Settings
from omnichannel.stack import resolve_stack
from schemas.codec import AvroCodec
from schemas.loader import EVENT_FULLNAME, canonical_json
from schemas.registry import ConfluentSchemaRegistry
from schemas.samples import sample_event
from schemas.topics import CHANNELS, channel_topic, subject_for

DURATION_S = 10.0
WARMUP_S = 2.0
SINGLE_CONNECTIONS = 64
BATCH_CONNECTIONS = 8
RAW_RECORDS = 300_000
PUBLISHER_EVENTS = 100_000
SDK_EVENTS = 50_000
KEY = "dev-web"
BATCH = 100
PHASES = ("raw", "inproc", "single", "batch", "nokafka", "sdk")
LOADGEN = (
    "one process (asyncio on uvloop), N keep-alive HTTP/1.1 connections, closed loop (next request once the "
    "answer is read); it shares the machine's 2 cores with the server under test and Kafka"
)


def _event(n: int) -> dict[str, Any]:
    event = sample_event("cart_line_added", channel="web", identities={"customer_id": f"C-{n % 5000}"})
    for filled in ("event_id", "received_at_ms", "source_system"):
        del event[filled]  # the collector fills them, as for most real senders
    return event


# -- the collector process ------------------------------------------------------------------------------------


def serve(port: int, kafka: str, registry: str, prefix: str, *, without_kafka: bool = False) -> None:
    """The collector as ``omnichannel serve`` runs it (collector part), publishing to the run's private topics.

    ``without_kafka``: every event is validated and encoded as before, then answered as stored at offset -1
    without being produced (a ceiling for the figures, never a way to run the collector).
    """
    import uvicorn

    from connectors.collector import create_app

    config = CollectorConfig.from_env({"OMNICHANNEL_DEV": "1"})
    topic_for = lambda channel: f"{prefix}.{channel_topic(channel)}"  # noqa: E731 - as a namespace would name it
    with Publisher(kafka, AvroCodec(ConfluentSchemaRegistry(registry)), topic_for=topic_for) as pub:
        if without_kafka:
            encode = pub.encode

            async def encoded_only(events: Sequence[Mapping[str, Any]]) -> list[Outcome]:
                return [Delivery(str(e["event_id"]), encode(e)[0], 0, -1) for e in events]

            pub.publish_many_async = encoded_only  # type: ignore[method-assign]
        app = create_app(config, pub)
        tune_gc()  # as `omnichannel serve` does once its app is built
        uvicorn.run(app, host="127.0.0.1", port=port, **_UVICORN)


_UVICORN: dict[str, Any] = {"loop": "uvloop", "http": "httptools", "access_log": False, "log_level": "warning"}


def trivial_app() -> Any:
    """The ceiling: a plain Starlette app that reads the body and answers 202 with a small JSON body."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    answer = b'{"status":"accepted","event_id":"3f1c0b1e-5a43-4c1e-9a57-2b3f9c1d7e20","partition":1,"offset":1}'

    async def accept(request: Request) -> Response:
        await request.body()
        return Response(answer, status_code=202, media_type="application/json")

    async def healthz(_: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    app = Starlette(routes=[Route("/v1/events", accept, methods=["POST"]), Route("/healthz", healthz)])
    tune_gc()  # the ceiling runs with the collector's process settings
    return app


def serve_trivial(port: int, workers: int) -> None:
    import uvicorn

    uvicorn.run(
        "benchmarks.collector:trivial_app", factory=True, host="127.0.0.1", port=port, workers=workers, **_UVICORN
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
    cpu_before = time.process_time()
    await asyncio.gather(*(_connection(port, request, start_at, stop_at, out) for _ in range(connections)))
    loadgen_cpu = time.process_time() - cpu_before
    latencies = sorted(out["latencies"])
    count = len(latencies)
    return {
        "requests": count,
        "requests_per_s": round(count / duration_s, 1),
        "statuses": dict(out["statuses"]),
        "p50_ms": round(latencies[count // 2] * 1000, 2) if count else None,
        "p99_ms": round(latencies[int(count * 0.99)] * 1000, 2) if count else None,
        "connections": connections,
        "loadgen_cpu_cores": round(loadgen_cpu / (duration_s + warmup_s), 2),
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


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (uvicorn's workers, the spawn helpers)."""
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            pids += _tree(int(child))
    return pids


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its descendants."""
    total = 0.0
    for one in _tree(pid):
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _run_load(
    port: int,
    server_pid: int,
    method: str,
    path: str,
    body: bytes,
    connections: int,
    *,
    profile: Path | None = None,
) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("wb", suffix=".json", delete=False) as scratch:
        scratch.write(body)
    body_file = Path(scratch.name)
    command = [sys.executable, "-m", "benchmarks.collector", "--load", str(port), method, path, str(body_file)]
    command += [str(connections), str(DURATION_S)]
    load_before = load_average()
    spy = None
    if profile is not None:  # the profiled process is the worker serving requests (the only one with 1 worker)
        target = _tree(server_pid)[-1]
        spy = subprocess.Popen(
            [
                *(
                    str(Path(sys.executable).with_name("py-spy")),
                    "record",
                    "--pid",
                    str(target),
                    "--format",
                    "raw",
                    "--rate",
                    "250",
                    "--nonblocking",
                ),
                *("--duration", str(int(DURATION_S + WARMUP_S)), "--output", str(profile)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    try:
        cpu_before = _cpu_seconds(server_pid)
        result = subprocess.run(command, capture_output=True, text=True, check=True, timeout=120)
        cpu = _cpu_seconds(server_pid) - cpu_before
    finally:
        body_file.unlink(missing_ok=True)
        if spy is not None:
            spy.wait(30)
    figures: dict[str, Any] = json.loads(result.stdout)
    figures["server_cpu_cores"] = round(cpu / (DURATION_S + WARMUP_S), 2)
    figures["load_average_before"] = load_before
    figures["load_average_after"] = load_average()
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


def _wait_until_up(url: str, process: subprocess.Popen[Any]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server process exited at start: {process.args!r}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the server did not answer /healthz within 60 s: {process.args!r}")


def _start(stack: ExitStack, command: list[str], env: dict[str, str] | None = None) -> tuple[int, int]:
    """Start a server process on a free port, wait for ``/healthz``; (port, pid). Stopped when ``stack`` closes."""
    port = _free_port()
    process = subprocess.Popen([part.replace("{port}", str(port)) for part in command], env=env)
    stack.callback(process.wait, 15)
    stack.callback(process.terminate)
    _wait_until_up(f"http://127.0.0.1:{port}", process)
    return port, process.pid


def _collector_command(workers: int, kafka: str, registry: str, prefix: str) -> tuple[list[str], dict[str, str] | None]:
    if workers == 1:
        return [sys.executable, "-m", "benchmarks.collector", "--serve", "{port}", kafka, registry, prefix], None
    # Several workers: the real `omnichannel serve` (collector + read API) in the run's namespace.
    env = os.environ | {
        "KAFKA_BOOTSTRAP_SERVERS": kafka,
        "SCHEMA_REGISTRY_URL": registry,
        "OMNICHANNEL_NAMESPACE": prefix,
        "OMNICHANNEL_DEV": "1",
    }
    return [sys.executable, "-m", "omnichannel.cli", "serve", "--port", "{port}", "--workers", str(workers)], env


def _delete_run_topics(kafka: str, registry: str, topics: list[str], subjects_of: list[str]) -> None:
    """Delete the run's topics and the registry subjects of ``subjects_of`` (best effort: failures are printed)."""
    admin = AdminClient({"bootstrap.servers": kafka})
    for topic, future in admin.delete_topics(topics, operation_timeout=60).items():
        try:
            future.result(60)
        except Exception as exc:  # cleanup reports and goes on
            print(f"could not delete topic {topic}: {exc}", file=sys.stderr)
    from confluent_kafka.schema_registry import SchemaRegistryClient

    client = SchemaRegistryClient({"url": registry})
    for topic in subjects_of:
        for permanent in (False, True):
            try:
                client.delete_subject(subject_for(topic), permanent=permanent)
            except Exception:  # a topic never encoded to has no subject
                continue


def run(phases: frozenset[str], workers: int, profile_dir: Path | None) -> dict[str, Any]:
    settings = Settings.from_env()
    result: dict[str, Any] = {}
    with ExitStack() as stack:
        running = stack.enter_context(resolve_stack(settings, progress=lambda m: print(f"... {m}", file=sys.stderr)))
        kafka, registry = running.info.kafka.address, running.info.registry.address
        prefix = f"bench-{uuid.uuid4().hex[:8]}"
        topics = [f"{prefix}.{channel_topic('web')}", f"{prefix}.raw", f"{prefix}.inproc.web"]
        admin = AdminClient({"bootstrap.servers": kafka})
        for future in admin.create_topics([NewTopic(t, settings.partitions, 1) for t in topics]).values():
            future.result(30)
        schema_registry = ConfluentSchemaRegistry(registry)
        # Producers only look schema ids up: register the Event under every topic this run writes.
        written = [*topics, *(f"{prefix}.{channel_topic(c)}" for c in CHANNELS)]
        written = list(dict.fromkeys([*written, *(f"{prefix}.inproc.{c}" for c in CHANNELS)]))
        stack.callback(_delete_run_topics, kafka, registry, topics, written)
        for topic in written:
            schema_registry.register(subject_for(topic), canonical_json(EVENT_FULLNAME))
        codec = AvroCodec(schema_registry)
        result["load_average_at_start"] = load_average()

        if "raw" in phases:
            result["raw_produce_ceiling"] = _raw_ceiling(kafka, codec, f"{prefix}.raw")
            print(f"raw produce ceiling: {result['raw_produce_ceiling']['events_per_s']:,} events/s", file=sys.stderr)
        if "inproc" in phases:
            result["publisher_in_process"] = _publisher_in_process(kafka, codec, lambda c: f"{prefix}.inproc.{c}")
            print(f"publisher in process: {result['publisher_in_process']['events_per_s']:,} events/s", file=sys.stderr)

        if phases & {"single", "batch", "sdk"}:
            trivial = [sys.executable, "-m", "benchmarks.collector", "--serve-trivial", "{port}", str(workers)]
            trivial_port, trivial_pid = _start(stack, trivial)
            command, env = _collector_command(workers, kafka, registry, prefix)
            port, pid = _start(stack, command, env)
            subjects = [("trivial", (trivial_port, trivial_pid)), ("collector", (port, pid))]
            if "nokafka" in phases and workers == 1:
                bare = [
                    sys.executable,
                    "-m",
                    "benchmarks.collector",
                    "--serve-no-kafka",
                    "{port}",
                    kafka,
                    registry,
                    prefix,
                ]
                subjects.append(("without_kafka", _start(stack, bare)))
            single_body = orjson.dumps(_event(1))
            batch_body = orjson.dumps({"events": [_event(n) for n in range(BATCH)]})
            for name, body, connections in (
                ("single", single_body, SINGLE_CONNECTIONS),
                ("batch", batch_body, BATCH_CONNECTIONS),
            ):
                if name not in phases:
                    continue
                label = name if name == "single" else f"batch_{BATCH}"
                per = 1 if name == "single" else BATCH
                for subject, (at, server) in subjects:
                    figures = _run_load(at, server, "POST", "/v1/events", body, connections)
                    figures["events_per_s"] = round(figures["requests_per_s"] * per)
                    result[f"{subject}_{label}"] = figures
                    print(
                        f"{subject} {label}: {figures['events_per_s']:,} events/s "
                        f"({figures['requests_per_s']:,} requests/s)",
                        file=sys.stderr,
                    )
                collector = result[f"collector_{label}"]
                collector["share_of_ceiling"] = round(
                    collector["requests_per_s"] / result[f"trivial_{label}"]["requests_per_s"], 3
                )
                if profile_dir is not None:
                    profile_dir.mkdir(parents=True, exist_ok=True)
                    out = profile_dir / f"collector-{name}.txt"
                    _run_load(port, pid, "POST", "/v1/events", body, connections, profile=out)
                    print(f"profile: {out}", file=sys.stderr)
            if "sdk" in phases:
                result["sdk"] = _sdk(f"http://127.0.0.1:{port}")
                print(f"SDK: {result['sdk']['events_per_s']:,} events/s", file=sys.stderr)
        result["load_average_at_end"] = load_average()

    for name in ("collector_single", f"collector_batch_{BATCH}"):
        if name in result:
            figures = result[name]
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
            "collector": f"uvicorn, {workers} worker(s), uvloop, httptools, access log off; acks=all, idempotent, "
            "lz4, linger.ms=5" + ("" if workers == 1 else "; `omnichannel serve --workers`"),
            "ceiling": "plain Starlette app answering 202 after reading the body, same uvicorn settings and workers",
            "load_generator": LOADGEN,
            "connections": {"single": SINGLE_CONNECTIONS, "batch": BATCH_CONNECTIONS},
        },
        **result,
    }


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--only", default=",".join(PHASES), help=f"comma-separated phases of {', '.join(PHASES)}")
    parser.add_argument("--workers", type=int, default=1, help="collector (and ceiling) worker processes")
    parser.add_argument("--py-spy", type=Path, default=None, metavar="DIR", help="profile the collector into DIR")
    parser.add_argument("--name", default="collector", help="results file name (benchmarks/results/NAME.json)")
    parser.add_argument("--serve", nargs=4, metavar=("PORT", "KAFKA", "REGISTRY", "PREFIX"), help=argparse.SUPPRESS)
    parser.add_argument(
        "--serve-no-kafka", nargs=4, metavar=("PORT", "KAFKA", "REGISTRY", "PREFIX"), help=argparse.SUPPRESS
    )
    parser.add_argument("--serve-trivial", nargs=2, metavar=("PORT", "WORKERS"), help=argparse.SUPPRESS)
    parser.add_argument(
        "--load", nargs=6, metavar=("PORT", "METHOD", "PATH", "BODY", "CONNS", "SECONDS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.serve:
        port, kafka, registry, prefix = args.serve
        serve(int(port), kafka, registry, prefix)
        return
    if args.serve_no_kafka:
        port, kafka, registry, prefix = args.serve_no_kafka
        serve(int(port), kafka, registry, prefix, without_kafka=True)
        return
    if args.serve_trivial:
        serve_trivial(int(args.serve_trivial[0]), int(args.serve_trivial[1]))
        return
    if args.load:
        port, method, path, body, connections, seconds = args.load
        load(int(port), method, path, body if body != "-" else None, int(connections), float(seconds))
        return
    phases = frozenset(p.strip() for p in args.only.split(",") if p.strip())
    if unknown := phases - set(PHASES):
        parser.error(f"unknown phases: {', '.join(sorted(unknown))}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: stop the servers, delete the run's topics
    result = run(phases, args.workers, args.py_spy)
    path = save(args.name, result)
    print(json.dumps(result, indent=2))
    print(f"written to {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
