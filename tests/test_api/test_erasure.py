"""Right to erasure end to end: request it, then a fresh consumer group replays every topic, and nothing of the
customer is found again: not through the read API, not in Redis (keys or values), not as the latest value of any
key on the compacted topics. Another customer who shared a tablet with them keeps their data.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from api_harness import Backbone
from confluent_kafka import Consumer, TopicPartition

from omnichannel.stack.processes import stop

PHONE = {"X-Api-Key": "dev-mobile_app"}
TABLET = {"X-Api-Key": "dev-tablet"}
STORE = {"X-Api-Key": "dev-store"}
READ = {"X-Api-Key": "dev-read"}
ADMIN = {"X-Api-Key": "dev-admin"}


def _event(channel: str, event_type: str, payload: dict[str, Any], device: str, **ids: str) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "occurred_at_ms": int(time.time() * 1000),
        "channel": channel,
        "source_system": "test",
        "device": {"device_id": device, "kind": "tablet", "role": "customer_owned"},
        "identities": ids,
        "payload": payload,
    }


def _line(product: str) -> dict[str, Any]:
    return {"product_id": product, "quantity": 1, "unit_price_cents": 1000, "currency": "EUR"}


def _post(client: httpx.Client, headers: dict[str, str], event: dict[str, Any]) -> None:
    answer = client.post("/v1/events", json=event, headers=headers)
    assert answer.status_code == 202, answer.text


def _wait(check: Any, what: str, timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}")


def _redis_mentions(client: redis.Redis, namespace: str, secrets: list[str]) -> list[str]:
    """Every key of the namespace whose name or content mentions one of ``secrets``."""
    found = []
    for key in client.scan_iter(match=f"{namespace}:*", count=1000):
        kind = client.type(key)
        if kind == "string":
            content = [client.get(key) or ""]
        elif kind == "hash":
            content = [f"{k}={v}" for k, v in client.hgetall(key).items()]
        elif kind == "set":
            content = list(client.smembers(key))
        elif kind == "zset":
            content = list(client.zrange(key, 0, -1))
        else:
            content = []
        text = key + "\n" + "\n".join(content)
        found += [f"{key}: {s}" for s in secrets if s in text]
    return found


def _latest(bootstrap: str, topic: str) -> dict[bytes, bytes | None]:
    """The latest value of every key of a topic (what a compacted topic converges to)."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"scan-{uuid.uuid4().hex}", "enable.auto.commit": False}
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        partitions = [TopicPartition(topic, p, 0) for p in metadata.topics[topic].partitions]
        ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions}
        consumer.assign(partitions)
        latest: dict[bytes, bytes | None] = {}
        done = {p for p, end in ends.items() if end == 0}
        deadline = time.monotonic() + 30
        while len(done) < len(ends) and time.monotonic() < deadline:
            for message in consumer.consume(500, timeout=1.0):
                if message.error() is not None:
                    continue
                latest[message.key() or b""] = message.value()
                if message.offset() + 1 >= ends[message.partition()]:
                    done.add(message.partition())
        return latest
    finally:
        consumer.close()


def _drained(bootstrap: str, group: str, topics: list[str]) -> bool:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        partitions = []
        for topic in topics:
            metadata = consumer.list_topics(topic, timeout=10)
            partitions += [TopicPartition(topic, p) for p in metadata.topics[topic].partitions]
        committed = consumer.committed(partitions, timeout=10)
        for tp in committed:
            end = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=10)[1]
            if end > 0 and tp.offset < end:
                return False
        return True
    finally:
        consumer.close()


def test_an_erased_customer_leaves_nothing_after_a_full_replay(backbone: Backbone, tmp_path: Path) -> None:
    token = uuid.uuid4().hex[:10]
    z, y = f"Z-{token}", f"Y-{token}"
    email = hashlib.sha256(f"z{token}@example.com".encode()).hexdigest()
    card, anon, search = f"card-{token}", f"az-{token}", f"wedding ring size {token}"
    secrets = [z, email, card, anon, search]
    with httpx.Client(base_url=backbone.base_url, timeout=10) as client:
        _post(client, PHONE, _event("mobile_app", "cart_line_added", _line("SKU-Z"), f"pz-{token}", anonymous_id=anon))
        _post(
            client,
            PHONE,
            _event(
                "mobile_app",
                "search_performed",
                {"query": search, "results_count": 1},
                f"pz-{token}",
                anonymous_id=anon,
            ),
        )
        _post(
            client,
            PHONE,
            _event(
                "mobile_app",
                "login",
                {"method": "password"},
                f"pz-{token}",
                anonymous_id=anon,
                customer_id=z,
                email_hash=email,
            ),
        )
        _post(
            client,
            STORE,
            _event("store", "cart_line_added", _line("SKU-C"), f"till-{token}", customer_id=z, loyalty_card=card),
        )
        # A family tablet Z and Y both used: Y's data must survive Z's erasure.
        _post(client, TABLET, _event("tablet", "cart_line_added", _line("SKU-T"), f"fam-{token}", customer_id=z))
        _post(client, TABLET, _event("tablet", "cart_line_added", _line("SKU-Y"), f"fam-{token}", customer_id=y))
        _wait(
            lambda: (
                client.get(f"/v1/customers/{z}/cart", headers=READ).status_code == 200
                and len(client.get(f"/v1/customers/{z}/cart", headers=READ).json()["cart"]["lines"]) == 3
            ),
            "Z's basket",
        )
        _wait(lambda: client.get(f"/v1/customers/{y}/cart", headers=READ).status_code == 200, "Y's basket")

        assert client.post(f"/v1/customers/{z}/erasure", headers=READ).status_code == 403
        answer = client.post(f"/v1/customers/{z}/erasure", headers=ADMIN)
        assert answer.status_code == 202, answer.text
        status_url = answer.json()["status_url"]
        status = _wait(
            lambda: (s := client.get(status_url, headers=ADMIN).json()).get("status") != "accepted" and s,
            "the erasure to be carried out",
        )
        assert status["status"] == "done" and status["events_erased"] >= 5 and status["identifiers_erased"] >= 4

        # A fresh consumer group replays every channel topic from the start.
        env = backbone.cli_env(OMNICHANNEL_PARTITIONS="2", OMNICHANNEL_STATE_DIR=str(tmp_path))
        group = f"{backbone.namespace}.replay-{token}"
        with (tmp_path / "replay.log").open("wb") as log:
            replay = subprocess.Popen(
                [sys.executable, "-m", "omnichannel.cli", "worker", "--app-id", group],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            bootstrap = backbone.settings.kafka_bootstrap_servers or ""
            channel_topics = [
                backbone.settings.topic(f"channel.{c}.events") for c in ("mobile_app", "store", "tablet", "back_office")
            ]
            _wait(lambda: _drained(bootstrap, group, channel_topics), "the replaying group to catch up", timeout=120)
        finally:
            stop(replay.pid)

        for path in (
            f"/v1/customers/{z}",
            f"/v1/customers/{z}/cart",
            f"/v1/identities/email_hash/{email}",
            f"/v1/identities/loyalty_card/{card}",
            f"/v1/identities/anonymous_id/{anon}",
        ):
            assert client.get(path, headers=READ).status_code == 404, path
        y_cart = client.get(f"/v1/customers/{y}/cart", headers=READ).json()["cart"]
        assert [line["product_id"] for line in y_cart["lines"]] == ["SKU-Y"]

    store = redis.Redis.from_url(backbone.settings.redis_url or "", decode_responses=True)
    try:
        assert _redis_mentions(store, backbone.namespace, secrets) == []
    finally:
        store.close()
    bootstrap = backbone.settings.kafka_bootstrap_servers or ""
    for topic in ("customer.state", "customer.carts", "identity.links"):
        latest = _latest(bootstrap, backbone.settings.topic(topic))
        leftovers = [k for k, v in latest.items() if v is not None and any(s.encode() in k + v for s in secrets)]
        assert leftovers == [], f"{topic} still holds {leftovers}"
        assert latest.get(f"customer:{z}".encode(), b"") is None or topic == "identity.links"
    audit = _latest(bootstrap, backbone.settings.topic("erasure.audit"))
    assert len(audit) >= 1 and not any(s.encode() in (v or b"") for v in audit.values() for s in secrets)


def test_omnichannel_erase_waits_for_the_outcome(backbone: Backbone) -> None:
    token = uuid.uuid4().hex[:10]
    with httpx.Client(base_url=backbone.base_url, timeout=10) as client:
        _post(
            client, TABLET, _event("tablet", "cart_line_added", _line("SKU-1"), f"t-{token}", customer_id=f"E-{token}")
        )
        _wait(lambda: client.get(f"/v1/customers/E-{token}", headers=READ).status_code == 200, "the record")
        env = backbone.cli_env()
        done = subprocess.run(
            [sys.executable, "-m", "omnichannel.cli", "erase", f"E-{token}"],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert '"status": "done"' in done.stdout
        assert client.get(f"/v1/customers/E-{token}", headers=READ).status_code == 404
