"""The framework's own ceilings: a Faust agent that does nothing, and the worker's shell without its stage.

Run by :mod:`benchmarks.streams` as a subprocess (``python -m benchmarks.faust_ceiling ...``): a Faust app built
like ``streams.app.build_app`` (aiokafka transport, raw bytes, concurrency 1, same commit interval) whose agent

- by default only counts records, in ``take_events`` batches of the worker's size and wait (the issue's
  "Faust do-nothing agent");
- with ``--shell TOPIC``, is the worker's agent with its stage removed: the worker's batching
  (:func:`streams.faust_batches.ready_batches`, acks held until the outputs are acknowledged), its record
  conversion, and its Kafka sink (:class:`streams.kafka_sink.KafkaSink`) forwarding each record as it came to
  ``TOPIC``, as the worker forwards each event to ``events.by_customer``. No stage can make the worker faster
  than this; the difference between the two is what the worker's shape costs on top of Faust.

When it has seen ``--total`` records it writes its figures (from process start, and from the first record) as
JSON to ``--out`` and exits.
``FAUST_LOOP=uvloop`` in the environment runs it on uvloop, as the worker would; it collects garbage with the
worker's thresholds (``omnichannel.gc_tuning.tune_gc``), so the ceiling and the worker run with the same process
settings.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

STARTED = time.perf_counter()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--brokers", required=True, help="bootstrap servers, comma-separated")
    parser.add_argument("--group", required=True, help="consumer group (Faust app id)")
    parser.add_argument("--topics", required=True, help="topics, comma-separated")
    parser.add_argument("--total", type=int, required=True, help="records to read before stopping")
    parser.add_argument("--batch-max", type=int, default=500)
    parser.add_argument("--within", type=float, default=0.02)
    parser.add_argument("--out", required=True, help="where to write the figures (JSON)")
    parser.add_argument("--shell", metavar="TOPIC", help="the worker's shell, forwarding each record to TOPIC")
    args = parser.parse_args()

    import faust  # after argument parsing: FAUST_LOOP is read at import

    datadir = tempfile.mkdtemp(prefix="faust-ceiling-")
    app = faust.App(
        args.group,
        datadir=datadir,
        broker=";".join(f"kafka://{b}" for b in args.brokers.split(",")),
        value_serializer="raw",
        key_serializer="raw",
        store="memory://",
        web_enabled=False,
        topic_allow_declare=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
    )
    topics = app.topic(*args.topics.split(","), value_serializer="raw", key_serializer="raw")
    state: dict[str, Any] = {"seen": 0, "first": None, "first_cpu": 0.0}

    def counted(events: list[Any]) -> None:
        if state["first"] is None:
            state["first"], state["first_cpu"] = time.perf_counter(), time.process_time()
        state["seen"] += len(events)

    def finish() -> None:
        ended = time.perf_counter()
        figures = {
            "events": state["seen"],
            "seconds_from_start": round(ended - STARTED, 2),
            "seconds_from_first_record": round(ended - state["first"], 2),
            "events_per_s": round(state["seen"] / (ended - state["first"])),
            "event_loop": os.environ.get("FAUST_LOOP", "asyncio"),
            "batch": {"max": args.batch_max, "within_s": args.within},
            # from the first record, as the rate (every thread of the process: the sink's librdkafka ones too)
            "cpu_us_per_event": round((time.process_time() - state["first_cpu"]) * 1e6 / state["seen"]),
        }
        if args.shell:
            figures["shape"] = "ready_batches + KafkaSink forward of each record, acked once acknowledged"
        Path(args.out).write_text(json.dumps(figures))
        sys.stdout.flush()
        os._exit(0)  # the figures are out; no need to wait for Faust's shutdown

    if args.shell:
        from omnichannel.settings import Settings
        from streams.app import _incoming
        from streams.faust_batches import ready_batches
        from streams.kafka_sink import KafkaSink
        from streams.records import Outgoing

        sink = KafkaSink(Settings(kafka_bootstrap_servers=args.brokers))
        out_topic = args.shell

        @app.agent(topics, concurrency=1)
        async def shell(stream: Any) -> None:
            async for events in ready_batches(stream, args.batch_max, args.within, sink.flushed):
                counted(events)
                records = [_incoming(e) for e in events]
                await sink.send([Outgoing(out_topic, (r.key or b"").decode(), r.value or b"") for r in records])
                if state["seen"] >= args.total:
                    await sink.flushed()
                    finish()

    else:

        @app.agent(topics, concurrency=1)
        async def nothing(stream: Any) -> None:
            async for events in stream.take_events(args.batch_max, within=args.within):
                counted(events)
                if state["seen"] >= args.total:
                    finish()

    from omnichannel.gc_tuning import tune_gc

    worker = faust.Worker(app, loglevel="WARNING", quiet=True)
    tune_gc()
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
