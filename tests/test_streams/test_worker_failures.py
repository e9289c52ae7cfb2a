"""Crashes and outages neither lose nor double-apply an event's effect (S10)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis as redis_lib
from streams_harness import Pipeline, carts_by_customer, point_one_journey, random_cart_traffic

from omnichannel.stack.model import quiet
from omnichannel.stack.processes import free_port, stop
from omnichannel.stack.redis_server import start_local_redis
from schemas.samples import sample_event


def test_sigkill_in_the_middle_loses_nothing_and_applies_nothing_twice(
    pipeline_factory: Callable[..., Pipeline],
) -> None:
    events, model = random_cart_traffic(seed=20261123, count=4000, now=int(time.time() * 1000))
    pipeline = pipeline_factory(start=False, extra_env={"OMNICHANNEL_BATCH_MAX": "25"})
    pipeline.publish(events)
    pipeline.worker.start()

    # Killed once Faust committed offsets for a third of the events: outputs not durable by then would be lost.
    pipeline.wait_for(lambda: pipeline.committed() >= len(events) // 3, what="a third of the offsets committed")
    assert pipeline.worker.kill(signal.SIGKILL) == -signal.SIGKILL
    assert carts_by_customer(pipeline) != model, "the worker finished before it was killed: the crash tested nothing"

    pipeline.worker.start()
    pipeline.wait_for(
        lambda: carts_by_customer(pipeline) == model, timeout=180, what="the final carts to equal the model"
    )
    time.sleep(2)  # anything applied twice would show up after the match
    assert carts_by_customer(pipeline) == model
    # Outputs too: a batch acked before Kafka had its outputs would lose them in the crash (at-least-once).
    wanted = {event["event_id"] for event in events}
    assert wanted - pipeline.event_ids_on("events.by_customer", wanted) == set()


def test_kill_9_right_after_logins_never_doubles_the_anonymous_basket(
    pipeline_factory: Callable[..., Pipeline],
) -> None:
    # The merge-core issue's point 6: a worker killed between applying logins and committing their offsets.
    # Small batches so the kill lands with logins applied in Redis and not committed in Kafka.
    pipeline = pipeline_factory(start=False, extra_env={"OMNICHANNEL_BATCH_MAX": "7"})
    now = int(time.time() * 1000)
    tokens = [f"k{n}" for n in range(40)]
    pipeline.publish([e for n, t in enumerate(tokens) for e in point_one_journey(t, now + 10 * n)])
    expected = {t: {"SKU-A": 1, "SKU-D": 1} for t in tokens}

    def carts() -> dict[str, dict[str, int]]:
        found = {}
        for token in tokens:
            cart = pipeline.cart(f"customer:C-{token}")
            found[token] = {line["product_id"]: line["quantity"] for line in (cart or {}).get("lines", [])}
        return found

    for _round in range(3):
        pipeline.worker.start()
        pipeline.wait_for(lambda: any(carts().values()), what="a first login applied")
        pipeline.worker.kill(signal.SIGKILL)
    assert carts() != expected, "the worker finished before it was killed: the crash tested nothing"
    pipeline.worker.start()
    pipeline.wait_for(lambda: carts() == expected, timeout=180, what="every cart to equal the sequential reading")
    time.sleep(2)
    assert carts() == expected


def test_redis_outage_stops_the_worker_without_skipping_and_a_restart_applies_the_event(
    pipeline_factory: Callable[..., Pipeline], tmp_path: Path
) -> None:
    own_redis = start_local_redis(tmp_path / "redis-a", install_missing=False, progress=quiet)
    pipeline = pipeline_factory(redis_url=own_redis.address)
    now = int(time.time() * 1000)
    ids = {"anonymous_id": None, "customer_id": "C-R", "email_hash": None, "phone_hash": None, "loyalty_card": None}

    def add(product: str, at: int) -> dict[str, Any]:
        payload = {"product_id": product, "quantity": 1, "unit_price_cents": 100, "currency": "EUR"}
        return sample_event("cart_line_added", channel="web", identities=ids, payload=payload, occurred_at_ms=at)

    pipeline.publish([add("SKU-1", now)])
    pipeline.wait_for(lambda: pipeline.cart("customer:C-R"), what="the first event")
    time.sleep(2)  # let the worker commit that batch's offsets
    assert own_redis.pid is not None
    stop(own_redis.pid)
    pipeline.publish([add("SKU-2", now + 1)])
    assert pipeline.worker.proc is not None
    status = pipeline.worker.proc.wait(timeout=120)
    assert status == 75, pipeline.worker.log.read_text()[-2000:]
    assert "infrastructure unavailable" in pipeline.worker.log.read_text()

    # Redis is back (empty: a new server): the restarted worker re-reads the uncommitted event.
    second = start_local_redis(tmp_path / "redis-b", install_missing=False, progress=quiet)
    try:
        pipeline.worker.env["REDIS_URL"] = second.address
        pipeline.worker.start()
        client = redis_lib.Redis.from_url(second.address, decode_responses=True)
        key = pipeline.key("cart", "customer:C-R")
        raw = pipeline.wait_for(lambda: client.get(key), what="the event after the outage")
        assert {line["product_id"] for line in json.loads(raw)["lines"]} == {"SKU-2"}
        client.close()
    finally:
        pipeline.worker.stop()
        assert second.pid is not None
        stop(second.pid)


def test_a_supervised_worker_comes_back_by_itself_after_a_redis_outage(
    pipeline_factory: Callable[..., Pipeline], tmp_path: Path
) -> None:
    port = free_port()
    home = tmp_path / "redis-own"
    home.mkdir()

    def redis_server() -> subprocess.Popen[bytes]:
        argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(home)]
        server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, start_new_session=True)
        client = redis_lib.Redis(port=port)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis_lib.ConnectionError:
                time.sleep(0.05)
        client.close()
        return server

    server = redis_server()
    pipeline = pipeline_factory(start=False, redis_url=f"redis://127.0.0.1:{port}/0")
    pipeline.worker.argv_extra = ["--supervise"]
    pipeline.worker.start()
    now = int(time.time() * 1000)
    ids = {"anonymous_id": None, "customer_id": "C-S", "email_hash": None, "phone_hash": None, "loyalty_card": None}

    def add(product: str, at: int) -> dict[str, Any]:
        payload = {"product_id": product, "quantity": 1, "unit_price_cents": 100, "currency": "EUR"}
        return sample_event("cart_line_added", channel="web", identities=ids, payload=payload, occurred_at_ms=at)

    try:
        pipeline.publish([add("SKU-1", now)])
        pipeline.wait_for(lambda: pipeline.cart("customer:C-S"), what="the first event")
        time.sleep(2)  # let that batch's offsets be committed
        server.kill()
        server.wait()
        pipeline.publish([add("SKU-2", now + 1)])
        log = pipeline.worker.log
        deadline = time.monotonic() + 120
        while "restarting" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert "restarting" in log.read_text(), log.read_text()[-2000:]
        assert pipeline.worker.proc is not None and pipeline.worker.proc.poll() is None  # the supervisor stays
        server = redis_server()  # back on its port, empty: the uncommitted event is read again
        client = redis_lib.Redis(port=port, decode_responses=True)
        key = pipeline.key("cart", "customer:C-S")
        raw = pipeline.wait_for(lambda: client.get(key), timeout=120, what="the event after the outage")
        assert {line["product_id"] for line in json.loads(raw)["lines"]} == {"SKU-2"}
        client.close()
    finally:
        pipeline.worker.stop()
        server.kill()
