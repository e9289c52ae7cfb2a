"""The worker's drain on one Redis vs on a local Redis Cluster (3 masters + 3 replicas): the single-slot cost.

On a cluster every key of the backbone carries the ``{idg}`` tag (streams/keys.py), so the whole state is served
by one master and the worker additionally waits for that master's replica (``WAIT 1``) after each batch. This
measures what that costs: the same events, drained by one worker, into each Redis in turn.

    python -m benchmarks.redis_cluster [--events 4000] [--customers 400] [--rounds 2]

Kafka and the registry come from the running stack (``omnichannel stack up``) or the environment; the single
Redis is the stack's, the cluster is started here in a temporary directory and stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from connectors.publisher import publisher_for
from omnichannel.kafka_admin import ensure_topics
from omnichannel.redis_clients import sync_redis
from omnichannel.settings import Settings
from omnichannel.stack import connect
from omnichannel.stack.model import quiet
from omnichannel.stack.processes import stop
from omnichannel.stack.redis_cluster import start_local_redis_cluster
from schemas.samples import sample_event
from schemas.topics import catalogue_for
from streams.keys import Keys

RESULTS = Path(__file__).resolve().parent / "results"


def _events(count: int, customers: int) -> list[dict[str, Any]]:
    now = int(time.time() * 1000)
    return [
        sample_event(
            "cart_line_added",
            occurred_at_ms=now + n,
            received_at_ms=now + n,
            identities={"customer_id": f"C-{n % customers}"},
            payload={"product_id": f"P-{n}", "quantity": 1, "unit_price_cents": 100, "currency": "EUR"},
        )
        for n in range(count)
    ]


def _applied(client: Any, keys: Keys, customers: int) -> int:
    total = 0
    for n in range(customers):
        raw = client.get(keys.cart(f"customer:C-{n}"))
        total += len(json.loads(raw)["lines"]) if raw else 0
    return total


def drain(base: Settings, redis_url: str, events: list[dict[str, Any]], customers: int) -> dict[str, Any]:
    """Publish ``events`` first, then time one worker from its start until every line is in Redis."""
    namespace = f"bench{uuid.uuid4().hex[:8]}"
    assert base.kafka_bootstrap_servers and base.schema_registry_url
    settings = Settings.from_env({**os.environ, "OMNICHANNEL_NAMESPACE": namespace}).with_addresses(
        base.kafka_bootstrap_servers, base.schema_registry_url, redis_url
    )
    assert settings.kafka_bootstrap_servers is not None
    ensure_topics(settings.kafka_bootstrap_servers, catalogue_for(namespace), settings.partitions)
    with publisher_for(settings, 30.0) as publisher:
        publisher.publish(events)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNICHANNEL_")} | {
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "SCHEMA_REGISTRY_URL": base.schema_registry_url,
        "REDIS_URL": redis_url,
        "OMNICHANNEL_NAMESPACE": namespace,
        "OMNICHANNEL_STATE_DIR": tempfile.mkdtemp(prefix=namespace),
    }
    client = sync_redis(redis_url, decode_responses=True)
    keys = Keys(namespace, single_slot=settings.redis_cluster)
    started = time.monotonic()
    first = None
    worker = subprocess.Popen(
        [sys.executable, "-m", "omnichannel.cli", "worker"], env=env, stdout=subprocess.DEVNULL, start_new_session=True
    )
    try:
        while (applied := _applied(client, keys, customers)) < len(events):
            if worker.poll() is not None:
                raise RuntimeError(f"the worker exited with {worker.returncode}")
            if first is None and applied:
                first = (time.monotonic(), applied)
            time.sleep(0.25)
        done = time.monotonic()
    finally:
        stop(worker.pid)
        client.close()
    assert first is not None
    # The drain rate from the first applied batch on (the worker's start and group join are not Redis's doing).
    return {
        "redis": "cluster" if settings.redis_cluster else "single",
        "start_to_first_s": round(first[0] - started, 1),
        "drain_events_per_s": round((len(events) - first[1]) / max(done - first[0], 1e-3)),
        "total_s": round(done - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--customers", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=2, help="drains on each Redis, alternated")
    args = parser.parse_args()
    base = connect(Settings.from_env())
    assert base.redis_url is not None
    events = _events(args.events, args.customers)
    with tempfile.TemporaryDirectory() as tmp:
        cluster = start_local_redis_cluster(Path(tmp), install_missing=False, progress=quiet)
        try:
            # Alternated, so a machine busier at one moment does not favour one side.
            runs = [drain(base, url, events, args.customers) for url in [base.redis_url, cluster.address] * args.rounds]
        finally:
            for pid in cluster.pids:
                stop(pid)
    result = {"events": args.events, "customers": args.customers, "load_average": os.getloadavg(), "runs": runs}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "redis_cluster.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
