"""`omnichannel rebuild` through the real stack: journeys posted to the collector, applied by a real worker, Redis
wiped (FLUSHDB of the test's own Redis database), the CLI rebuilds, and the read API and every project key
answer exactly as before; the erased customer stays erased; a running worker makes the rebuild refuse.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import redis
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from streams_harness import Pipeline
from topic_snapshot import latest_values

from omnichannel.provision import provision, remove_namespace
from omnichannel.settings import Settings
from omnichannel.stack.processes import free_port, stop
from schemas.codec import AvroCodec
from schemas.registry import ConfluentSchemaRegistry
from schemas.samples import sample_event
from schemas.topics import CHANNELS, channel_topic

#: The tests' own Redis database: FLUSHDB there touches no other test's keys.
REDIS_DB = 12
READ = {"X-Api-Key": "dev-read"}
ADMIN = {"X-Api-Key": "dev-admin"}
CLI = [sys.executable, "-m", "omnichannel.cli"]


def _with_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{db}"))


@dataclass
class Backbone:
    """A worker and the HTTP API as real processes, on one namespace and the tests' Redis database."""

    env: dict[str, str]
    settings: Settings
    base_url: str
    state: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def namespace(self) -> str:
        return self.settings.namespace

    @property
    def group(self) -> str:
        return self.settings.topic("omnichannel-processor")

    def start(self, name: str, argv: list[str]) -> None:
        with (self.state / f"{name}.log").open("ab") as log:
            self.procs[name] = subprocess.Popen(
                argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def start_worker(self) -> None:
        self.start("worker", [*CLI, "worker"])

    def stop_worker(self) -> None:
        stop(self.procs.pop("worker").pid)
        _wait(lambda: not _members(self.settings, self.group), "the worker to leave its group", timeout=60)

    def cli(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CLI, *args], env=self.env, capture_output=True, text=True, timeout=timeout)

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.settings.redis_url or "", decode_responses=True)


@pytest.fixture
def backbone(settings: Settings, tmp_path: Path) -> Iterator[Backbone]:
    namespace = f"rb{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNICHANNEL_")}
    env |= {
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers or "",
        "SCHEMA_REGISTRY_URL": settings.schema_registry_url or "",
        "REDIS_URL": _with_db(settings.redis_url or "", REDIS_DB),
        "OMNICHANNEL_NAMESPACE": namespace,
        "OMNICHANNEL_PARTITIONS": "2",
        "OMNICHANNEL_STATE_DIR": str(tmp_path),
        "OMNICHANNEL_DEV": "1",
    }
    scoped = Settings.from_env(env)
    assert scoped.kafka_bootstrap_servers is not None
    provision(scoped, 2)  # topics and schemas: producers only look schema ids up
    port = free_port()
    found = Backbone(env, scoped, f"http://127.0.0.1:{port}", tmp_path)
    found.start_worker()
    found.start("api", [*CLI, "serve", "--port", str(port)])
    try:
        _wait(lambda: _answers(f"{found.base_url}/healthz"), "the API", timeout=60)
        yield found
    finally:
        for proc in found.procs.values():
            stop(proc.pid)
        remove_namespace(scoped)  # a long-lived development broker would keep every run's partitions


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _wait(check: Callable[[], Any], what: str, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}")


def _members(settings: Settings, group: str) -> int:
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    return len(admin.describe_consumer_groups([group])[group].result(timeout=20).members)


def _ends(consumer: Consumer, topic: str) -> dict[int, int] | None:
    try:
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in (0, 1)}
    except KafkaException:  # a partition of a new topic without a leader yet
        return None


def _drained(settings: Settings, group: str) -> bool:
    """True once the group committed every record of every channel topic."""
    consumer = Consumer(
        {"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": group, "enable.auto.commit": False}
    )
    try:
        partitions = [TopicPartition(settings.topic(channel_topic(c)), p) for c in CHANNELS for p in (0, 1)]
        for tp in consumer.committed(partitions, timeout=10):
            end = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=10)[1]
            if end > 0 and tp.offset < end:
                return False
        return True
    finally:
        consumer.close()


# -- traffic --------------------------------------------------------------------------------------------------


def _event(channel: str, event_type: str, at: int, payload: dict[str, Any], **ids: Any) -> dict[str, Any]:
    device = ids.pop("device", None)
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "occurred_at_ms": at,
        "channel": channel,
        "source_system": "test",
        "device": device,
        "identities": ids,
        "payload": payload,
    }


def _line(product: str, quantity: int = 1) -> dict[str, Any]:
    return {"product_id": product, "quantity": quantity, "unit_price_cents": 1000, "currency": "EUR"}


@dataclass(frozen=True)
class Journey:
    """One shopper: an anonymous phone basket saved with an e-mail, a tablet login, a removal on the phone
    after the login, and a purchase line at a till with a loyalty card."""

    token: str

    @property
    def customer(self) -> str:
        return f"C-{self.token}"

    @property
    def email(self) -> str:
        return hashlib.sha256(f"{self.token}@example.com".encode()).hexdigest()

    @property
    def anonymous(self) -> str:
        return f"a-{self.token}"

    @property
    def card(self) -> str:
        return f"L-{self.token}"

    def events(self, now: int) -> list[dict[str, Any]]:
        phone = {"device_id": f"ph-{self.token}", "kind": "phone", "role": "customer_owned"}
        tablet = {"device_id": f"tb-{self.token}", "kind": "tablet", "role": "customer_owned"}
        till = {"device_id": f"till-{self.token[:2]}", "kind": "pos_till", "role": "staff_operated"}
        anon = {"anonymous_id": self.anonymous}
        me = {"customer_id": self.customer}
        return [
            _event("mobile_app", "cart_line_added", now, _line("SKU-A"), device=phone, **anon),
            _event("mobile_app", "cart_line_added", now + 1, _line("SKU-B", 2), device=phone, **anon),
            _event("mobile_app", "identify", now + 2, {"traits": {}}, device=phone, **anon, email_hash=self.email),
            _event("tablet", "login", now + 3, {"method": "password"}, device=tablet, **me, email_hash=self.email),
            _event("tablet", "cart_line_added", now + 4, _line("SKU-D"), device=tablet, **me),
            _event("mobile_app", "cart_line_removed", now + 5, {"product_id": "SKU-B"}, device=phone, **anon),
            _event("store", "cart_line_added", now + 6, _line("SKU-S"), device=till, **me, loyalty_card=self.card),
        ]


def _post_all(client: httpx.Client, events: list[dict[str, Any]]) -> int:
    """Post in batches per channel (the fold does not depend on the order); every event must be accepted."""
    by_channel: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_channel.setdefault(event["channel"], []).append(event)
    for channel, found in by_channel.items():
        for start in range(0, len(found), 200):
            chunk = found[start : start + 200]
            answer = client.post("/v1/events", json={"events": chunk}, headers={"X-Api-Key": f"dev-{channel}"})
            assert answer.status_code == 202, answer.text
    return len(events)


def _play(backbone: Backbone, client: httpx.Client, journeys: list[Journey]) -> int:
    """Post the journeys, erase the first customer, unlink the second's e-mail; wait until all is applied."""
    now = int(time.time() * 1000) - 60_000
    sent = _post_all(client, [e for n, j in enumerate(journeys) for e in j.events(now + 10 * n)])
    level = {"store_id": "S1", "product_id": "SKU-A", "available": 3, "sequence": 1}
    sent += _post_all(client, [_event("store", "stock_level_changed", now, level)])
    _wait(lambda: _drained(backbone.settings, backbone.group), "the worker to apply the journeys")
    erased, unlinked = journeys[0], journeys[1]
    answer = client.post(f"/v1/customers/{erased.customer}/erasure", headers=ADMIN)
    assert answer.status_code == 202, answer.text
    status_url = answer.json()["status_url"]
    _wait(lambda: client.get(status_url, headers=ADMIN).json()["status"] == "done", "the erasure")
    answer = client.post(f"/v1/identities/email_hash/{unlinked.email}/unlink", headers=ADMIN)
    assert answer.status_code == 200, answer.text
    _wait(lambda: _drained(backbone.settings, backbone.group), "the worker to apply everything")
    return sent + 1


# -- snapshots ------------------------------------------------------------------------------------------------


def _api_snapshot(client: httpx.Client, journeys: list[Journey]) -> dict[str, Any]:
    paths = ["/v1/attribution/matrix", "/v1/typology", "/v1/segments", "/v1/stores/S1/availability"]
    for j in journeys:
        paths += [
            f"/v1/customers/{j.customer}",
            f"/v1/customers/{j.customer}/cart",
            f"/v1/customers/{j.customer}/journey?limit=100",
            f"/v1/identities/email_hash/{j.email}",
            f"/v1/identities/anonymous_id/{j.anonymous}",
            f"/v1/identities/loyalty_card/{j.card}",
            f"/v1/customers/anonymous:{j.anonymous}/cart",
        ]
    found = {}
    for path in paths:
        answer = client.get(path, headers=READ)
        found[path] = (answer.status_code, answer.json() if answer.content else None)
    return found


def _redis_snapshot(client: redis.Redis, namespace: str) -> dict[str, Any]:
    """Every key of the namespace with its content (JSON strings parsed, sets sorted)."""
    found: dict[str, Any] = {}
    for key in client.scan_iter(match=f"{namespace}:*", count=1000):
        kind = client.type(key)
        if kind == "string":
            text = client.get(key) or ""
            try:
                found[key] = json.loads(text)
            except ValueError:
                found[key] = text
        elif kind == "hash":
            found[key] = client.hgetall(key)
        elif kind == "set":
            found[key] = sorted(client.smembers(key))
        elif kind == "zset":
            found[key] = client.zrange(key, 0, -1, withscores=True)
        else:
            found[key] = kind
    return _named_by_members(found, f"{namespace}:idg:{{idg}}:")


def _named_by_members(found: dict[str, Any], idg: str) -> dict[str, Any]:
    """Cluster ids are names taken from whichever identifier arrived first: a replay in another order names
    the same cluster otherwise. Rename each cluster after its members, so equal clusters compare equal (and
    its commit token, random by design, compares by presence)."""
    names = {
        key.removeprefix(f"{idg}clm:"): "members-" + hashlib.sha256(json.dumps(members).encode()).hexdigest()[:16]
        for key, members in found.items()
        if key.startswith(f"{idg}clm:")
    }
    renamed: dict[str, Any] = {}
    for key, value in found.items():
        kind, _, cid = key.removeprefix(idg).partition(":")
        if kind in ("clog", "clv") and cid not in names and (kind == "clv" or set(value) == {"~last"}):
            continue  # an erasure emptied this cluster: nothing left in it, a replay has no reason to make it
        if key.startswith(idg) and kind in ("clm", "clog", "clp", "clv") and cid in names:
            key = f"{idg}{kind}:{names[cid]}"
            if kind == "clv":
                value = "a commit's random token"  # for the workers' caches: present, any value
        elif key.startswith(f"{idg}cl:"):
            value = names.get(value, value)
        renamed[key] = value
    return renamed


def _topics_snapshot(backbone: Backbone) -> dict[str, Any]:
    """The latest value of every key of the compacted projections, decoded (what they converge to)."""
    settings = backbone.settings
    codec = AvroCodec(ConfluentSchemaRegistry(settings.schema_registry_url or ""))
    found: dict[str, Any] = {}
    for name in ("customer.carts", "customer.state", "identity.links"):
        latest = latest_values(settings.kafka_bootstrap_servers or "", settings.topic(name), codec)
        found |= {f"{name} {key}": value for key, value in latest.items()}
    return found


def _links_disagreeing(links: dict[str, Any], held: dict[str, Any], namespace: str) -> list[str]:
    wrong = []
    for key, link in links.items():
        identifier = key.removeprefix("identity.links ")
        owner = held.get(f"{namespace}:idg:{{idg}}:owner:{identifier}")
        if link is None or link["action"] != "merge":
            continue
        expected = owner.removeprefix("customer:") if owner and owner.startswith("customer:") else owner
        if link["customer_id"] != expected:
            wrong.append(f"{identifier}: link says {link['customer_id']}, the graph {owner}")
    return wrong


def _differences(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return [
        f"{k}: before {before.get(k)!r:.300} after {after.get(k)!r:.300}"
        for k in sorted(before.keys() | after.keys())
        if before.get(k) != after.get(k)
    ]


def _wipe_rebuild_compare(backbone: Backbone, client: httpx.Client, journeys: list[Journey]) -> dict[str, float]:
    """Snapshot, stop the worker, FLUSHDB, rebuild, compare; restart the worker and compare again."""
    api_before = _api_snapshot(client, journeys)
    topics_before = _topics_snapshot(backbone)
    store = backbone.redis()
    try:
        keys_before = _redis_snapshot(store, backbone.namespace)
        backbone.stop_worker()
        store.flushdb()
        store.set("someone-else:session", "kept")  # not the project's: a rebuild must leave it alone
        store.set(f"{backbone.namespace}:cart:{{customer:ghost}}", "{}")  # a stale derived key: wiped

        started = time.monotonic()
        done = backbone.cli("rebuild", "--yes")
        seconds = time.monotonic() - started
        assert done.returncode == 0, done.stdout + done.stderr
        print(done.stdout, done.stderr)  # the figures, shown with -s
        summary = re.search(r"rebuilt: ([\d,]+) records replayed in ([\d.]+) s", done.stdout)
        assert summary is not None, done.stdout

        assert store.get("someone-else:session") == "kept"
        assert _differences(keys_before, _redis_snapshot(store, backbone.namespace)) == []
        assert _differences(api_before, _api_snapshot(client, journeys)) == []
        # The republished projections: carts and records exactly as before; every identifier's latest link
        # names the profile that owns it in the rebuilt graph. Known limit (docs/reliability.md): after the
        # unlink of the second shopper's e-mail, their anonymous id keeps the worker's `merge` link.
        topics_after = _topics_snapshot(backbone)
        links = {
            k: v for k, v in topics_after.items() if k.startswith("identity.links ") and journeys[1].token not in k
        }
        projections = ("customer.carts ", "customer.state ")
        assert (
            _differences(
                *({k: v for k, v in t.items() if k.startswith(projections)} for t in (topics_before, topics_after))
            )
            == []
        )
        assert _links_disagreeing(links, _redis_snapshot(store, backbone.namespace), backbone.namespace) == []

        # The worker resumes from its committed offsets over the rebuilt state: nothing changes.
        backbone.start_worker()
        _wait(lambda: _members(backbone.settings, backbone.group), "the worker to join its group", timeout=60)
        time.sleep(3)
        assert _differences(keys_before, _redis_snapshot(store, backbone.namespace)) == []
        records = float(summary.group(1).replace(",", ""))
        return {"records": records, "replay_s": float(summary.group(2)), "cli_s": seconds}
    finally:
        store.close()


def _assert_erased(backbone: Backbone, client: httpx.Client, journey: Journey) -> None:
    for path in (
        f"/v1/customers/{journey.customer}",
        f"/v1/customers/{journey.customer}/cart",
        f"/v1/identities/email_hash/{journey.email}",
        f"/v1/identities/loyalty_card/{journey.card}",
        f"/v1/identities/anonymous_id/{journey.anonymous}",
    ):
        assert client.get(path, headers=READ).status_code == 404, path
    store = backbone.redis()
    try:
        held = _redis_snapshot(store, backbone.namespace)
        text = json.dumps(held)
        for secret in (journey.customer, journey.email, journey.card, journey.anonymous):
            assert secret not in text
        denied = set(held[f"{backbone.namespace}:idg:{{idg}}:erased"])
        assert hashlib.sha256(f"customer_id:{journey.customer}".encode()).hexdigest() in denied
    finally:
        store.close()


# -- tests ----------------------------------------------------------------------------------------------------


def test_rebuild_refuses_while_a_worker_of_the_group_runs(backbone: Backbone) -> None:
    with httpx.Client(base_url=backbone.base_url, timeout=10) as client:
        journey = Journey(uuid.uuid4().hex[:10])
        _post_all(client, journey.events(int(time.time() * 1000)))
    _wait(lambda: _drained(backbone.settings, backbone.group), "the worker to apply the journey")
    assert _members(backbone.settings, backbone.group) == 1
    store = backbone.redis()
    try:
        ns = backbone.namespace
        _wait(lambda: store.exists(f"{ns}:attr:{{{ns}:attr}}:meta"), "the worker's first timer tick (it writes)")
        before = _redis_snapshot(store, ns)
        done = backbone.cli("rebuild", "--yes", timeout=120)
        assert done.returncode == 1, done.stdout + done.stderr
        assert backbone.group in done.stderr and "stop every `omnichannel worker`" in done.stderr
        assert _redis_snapshot(store, backbone.namespace) == before  # nothing wiped
    finally:
        store.close()


def test_redis_wiped_is_rebuilt_identical_from_kafka_and_the_erased_stay_erased(backbone: Backbone) -> None:
    journeys = [Journey(f"{n}{uuid.uuid4().hex[:8]}") for n in range(8)]
    with httpx.Client(base_url=backbone.base_url, timeout=10) as client:
        _play(backbone, client, journeys)
        # The unlinked e-mail split the second shopper's phone basket back out of their record.
        assert client.get(f"/v1/identities/email_hash/{journeys[1].email}", headers=READ).status_code == 404
        cart = client.get(f"/v1/customers/{journeys[2].customer}/cart", headers=READ).json()["cart"]
        assert sorted(line["product_id"] for line in cart["lines"]) == ["SKU-A", "SKU-D", "SKU-S"]
        _assert_erased(backbone, client, journeys[0])

        _wipe_rebuild_compare(backbone, client, journeys)
        _assert_erased(backbone, client, journeys[0])


@pytest.mark.faults
@pytest.mark.timeout(1500)
def test_a_wiped_redis_of_thousands_of_events_is_rebuilt_identical(backbone: Backbone) -> None:
    journeys = [Journey(f"{n}{uuid.uuid4().hex[:8]}") for n in range(400)]
    with httpx.Client(base_url=backbone.base_url, timeout=30) as client:
        sent = _play(backbone, client, journeys)
        figures = _wipe_rebuild_compare(backbone, client, journeys)
        _assert_erased(backbone, client, journeys[0])
    assert figures["records"] >= sent
    print(f"\nrebuild figures: {sent} events sent; {figures}")


def test_rebuild_says_which_records_retention_already_deleted(
    pipeline_factory: Callable[..., Pipeline], tmp_path: Path
) -> None:
    pipeline = pipeline_factory(start=False)
    now = int(time.time() * 1000)
    token = uuid.uuid4().hex[:8]
    phone = {"device_id": f"ph-{token}", "kind": "phone", "role": "customer_owned"}
    pipeline.publish(
        [
            sample_event(
                "cart_line_added",
                channel="web",
                identities={"customer_id": f"R-{token}"},
                device=phone,
                occurred_at_ms=now + n,
                payload=_line(f"SKU-{n}"),
            )
            for n in range(6)
        ]
    )
    topic = pipeline.topic(channel_topic("web"))
    admin = AdminClient({"bootstrap.servers": pipeline.settings.kafka_bootstrap_servers})
    consumer = Consumer({"bootstrap.servers": pipeline.settings.kafka_bootstrap_servers, "group.id": "watermarks"})
    try:
        ends = _wait(lambda: _ends(consumer, topic), "the new topic's partitions to have leaders", timeout=30)
    finally:
        consumer.close()
    partition = max(ends, key=lambda p: ends[p])  # the partition the customer's key went to
    # What retention does to old segments: the records before offset 2 are gone.
    for future in admin.delete_records([TopicPartition(topic, partition, 2)]).values():
        future.result(timeout=20)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNICHANNEL_")} | {
        "KAFKA_BOOTSTRAP_SERVERS": pipeline.settings.kafka_bootstrap_servers or "",
        "SCHEMA_REGISTRY_URL": pipeline.settings.schema_registry_url or "",
        "REDIS_URL": pipeline.settings.redis_url or "",
        "OMNICHANNEL_NAMESPACE": pipeline.settings.namespace,
        "OMNICHANNEL_STATE_DIR": str(tmp_path),
    }
    done = subprocess.run([*CLI, "rebuild", "--yes"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{topic}[{partition}] before offset 2" in done.stderr
    assert "rebuilt: 4 records replayed" in done.stdout
    cart = pipeline.cart(f"customer:R-{token}")
    assert cart is not None and sorted(line["product_id"] for line in cart["lines"]) == [
        f"SKU-{n}" for n in range(2, 6)
    ]
