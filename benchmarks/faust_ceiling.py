"""The framework's own ceiling: a Faust agent that does nothing, on the worker's topics and settings.

Run by :mod:`benchmarks.streams` as a subprocess (``python -m benchmarks.faust_ceiling ...``): a Faust app built
like ``streams.app.build_app`` (aiokafka transport, raw bytes, ``take_events`` batches of the same size and wait,
concurrency 1, same commit interval) whose agent only counts records. When it has seen ``--total`` records it
writes its figures (from process start, and from the first record) as JSON to ``--out`` and exits.
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
    state: dict[str, Any] = {"seen": 0, "first": None}

    @app.agent(topics, concurrency=1)
    async def nothing(stream: Any) -> None:
        async for events in stream.take_events(args.batch_max, within=args.within):
            if state["first"] is None:
                state["first"] = time.perf_counter()
            state["seen"] += len(events)
            if state["seen"] >= args.total:
                ended = time.perf_counter()
                figures = {
                    "events": state["seen"],
                    "seconds_from_start": round(ended - STARTED, 2),
                    "seconds_from_first_record": round(ended - state["first"], 2),
                    "events_per_s": round(state["seen"] / (ended - state["first"])),
                    "event_loop": os.environ.get("FAUST_LOOP", "asyncio"),
                    "batch": {"max": args.batch_max, "within_s": args.within},
                }
                Path(args.out).write_text(json.dumps(figures))
                sys.stdout.flush()
                os._exit(0)  # the figures are out; no need to wait for Faust's shutdown

    from omnichannel.gc_tuning import tune_gc

    worker = faust.Worker(app, loglevel="WARNING", quiet=True)
    tune_gc()
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
