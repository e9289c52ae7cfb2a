"""The worker's stage alone: ``FoldStage.process`` over the mixed dataset, real Redis, outputs discarded.

No Faust and no Kafka round trip: what one batch of the worker costs in the merge core, its Redis reads and
commit, journeys and the Avro encoding of its outputs. Use it to measure a change to the stage (CPU per event is
the figure least sensitive to a shared machine); the worker's own figure beside the Faust ceiling is
``python -m benchmarks.streams``. Creates a namespace (topics and subjects, for the schema ids) and deletes it.

    python -m benchmarks.fold_stage [--events 20000] [--batch 500] [--profile] [--gc worker|default]

The cycle collector runs with the worker's thresholds (``omnichannel.gc_tuning.tune_gc``) unless ``--gc default``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import pstats
import time
import uuid
from collections.abc import Sequence
from typing import Any

from benchmarks.machine import describe, load_average, save
from benchmarks.streams import dataset, delete_namespace
from omnichannel.gc_tuning import tune_gc
from omnichannel.provision import provision
from omnichannel.settings import Settings
from schemas.codec import AvroCodec
from schemas.loader import EVENT_FULLNAME
from schemas.registry import ConfluentSchemaRegistry
from schemas.topics import channel_topic
from streams.app import redis_client
from streams.config import ProcessorConfig
from streams.keys import Keys
from streams.processor import fold_stage_on_redis
from streams.records import Incoming, Outgoing


class _Discard:
    """A sink that counts the outputs and sends nothing."""

    def __init__(self) -> None:
        self.records = 0

    async def send(self, records: Sequence[Outgoing]) -> None:
        self.records += len(records)

    async def send_and_wait(self, records: Sequence[Outgoing]) -> None:
        self.records += len(records)


async def _run(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    assert settings.schema_registry_url and settings.redis_url
    ns = settings.namespace
    codec = AvroCodec(ConfluentSchemaRegistry(settings.schema_registry_url))
    data, _ = dataset(args.events, max(args.events // 10, 1), 7, int(time.time() * 1000) - args.events * 5)
    records = []
    for n, (channel, key, event) in enumerate(data):
        topic = settings.topic(channel_topic(channel))
        value = codec.encode(f"{topic}-value", EVENT_FULLNAME, event)
        records.append(Incoming(topic, 0, n, key.encode(), value, (), time.time()))
    redis = redis_client(settings.redis_url)
    keys = Keys(ns)
    config = ProcessorConfig()
    stage = fold_stage_on_redis(codec, redis, keys, config, settings.topic)
    sink = _Discard()
    profile = cProfile.Profile() if args.profile else None
    if args.gc == "worker":
        tune_gc()
    load_before = load_average()
    started, cpu_started = time.perf_counter(), time.process_time()
    if profile is not None:
        profile.enable()
    for start in range(0, len(records), args.batch):
        await stage.process(records[start : start + args.batch], sink)
    if profile is not None:
        profile.disable()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    await redis.aclose()
    if profile is not None:
        pstats.Stats(profile).sort_stats("tottime").print_stats(30)
    return {
        "events": len(records),
        "batch": args.batch,
        "seconds": round(seconds, 2),
        "events_per_s": round(len(records) / seconds),
        "cpu_us_per_event": round(cpu * 1e6 / len(records)),
        "outputs": sink.records,
        "profiled": bool(args.profile),
        "gc": args.gc,
        "load_average": [load_before, load_average()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=20_000, help="events of the mixed dataset (shoppers: 1/10)")
    parser.add_argument("--batch", type=int, default=500, help="records per FoldStage.process call")
    parser.add_argument("--profile", action="store_true", help="run under cProfile and print the top functions")
    parser.add_argument(
        "--gc", choices=("worker", "default"), default="worker", help="garbage-collector thresholds (default: worker's)"
    )
    parser.add_argument("--name", default="fold-stage", help="results file name (benchmarks/results/<name>.json)")
    args = parser.parse_args()
    namespace = f"stage{uuid.uuid4().hex[:8]}"
    settings = dataclasses.replace(Settings.from_env(), namespace=namespace, partitions=1)
    provision(settings)
    try:
        result = asyncio.run(_run(settings, args))
    finally:
        delete_namespace(settings, namespace)
    result = {"machine": describe(), **result}
    print(
        f"{result['events']:,} events, batch {args.batch}: {result['events_per_s']:,} events/s, "
        f"{result['cpu_us_per_event']:,} µs CPU per event, {result['outputs']:,} outputs"
    )
    print(f"written to {save(args.name, result)}")


if __name__ == "__main__":
    main()
