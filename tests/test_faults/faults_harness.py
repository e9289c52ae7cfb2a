"""A backbone for fault tests: a supervised worker and the HTTP API as real processes, a sender that counts.

Each posted event adds one unique product to one of a few customers' carts, so the carts in Redis say exactly
which accepted events were applied: a product missing from its cart is lost, a quantity above one is doubled.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from omnichannel.provision import provision
from omnichannel.settings import Settings
from omnichannel.stack.processes import free_port, stop
from streams.keys import Keys

#: Development key of the web channel (the API runs with OMNICHANNEL_DEV=1).
WEB = {"X-Api-Key": "dev-web"}


@dataclass
class Sent:
    """What the sender saw: each event's product and the answer's status (0: no answer)."""

    outcomes: dict[str, int] = field(default_factory=dict)  # product id -> status
    at: dict[str, float] = field(default_factory=dict)  # product id -> monotonic time of the answer

    @property
    def accepted(self) -> set[str]:
        return {p for p, status in self.outcomes.items() if status == 202}

    def longest_refusal_s(self) -> float:
        """Longest stretch between two accepted answers with only refusals in between (0 if none refused)."""
        longest, last_ok, refusing = 0.0, None, False
        for product in sorted(self.at, key=self.at.__getitem__):
            if self.outcomes[product] == 202:
                if refusing and last_ok is not None:
                    longest = max(longest, self.at[product] - last_ok)
                last_ok, refusing = self.at[product], False
            else:
                refusing = True
        return longest


@dataclass
class Backbone:
    """Worker + API on given services, in one namespace."""

    settings: Settings
    namespace: str
    base_url: str
    state: Path
    customers: list[str]
    procs: dict[str, subprocess.Popen[bytes]]

    def log(self, name: str, tail: int | None = 3000) -> str:
        text = (self.state / f"{name}.log").read_text(errors="replace")
        return text[-tail:] if tail else text

    def send(self, count: int, rate_per_s: float, sent: Sent, stop_early: threading.Event | None = None) -> None:
        """Post ``count`` events at about ``rate_per_s``, one unique product each, recording every answer."""
        with httpx.Client(base_url=self.base_url, timeout=15) as client:
            for n in range(count):
                if stop_early is not None and stop_early.is_set():
                    return
                product = f"P-{n:05d}"
                event = {
                    "event_type": "cart_line_added",
                    "occurred_at_ms": int(time.time() * 1000),
                    "channel": "web",
                    "source_system": "fault-test",
                    "identities": {"customer_id": self.customers[n % len(self.customers)]},
                    "payload": {"product_id": product, "quantity": 1, "unit_price_cents": 100, "currency": "EUR"},
                }
                try:
                    status = client.post("/v1/events", json=event, headers=WEB).status_code
                except httpx.HTTPError:
                    status = 0
                sent.outcomes[product], sent.at[product] = status, time.monotonic()
                time.sleep(1 / rate_per_s)

    def applied(self, client: redis.Redis | redis.RedisCluster) -> dict[str, int]:
        """Product id -> quantity over every customer's cart in Redis."""
        keys = Keys(self.namespace, single_slot=self.settings.redis_cluster)
        found: dict[str, int] = {}
        for customer in self.customers:
            raw: Any = client.get(keys.cart(f"customer:{customer}"))
            for line in json.loads(raw)["lines"] if raw else []:
                found[line["product_id"]] = found.get(line["product_id"], 0) + int(line["quantity"])
        return found


def count(sent: Sent, applied: dict[str, int]) -> dict[str, int]:
    """accepted, applied (of those), lost, doubled, and applied although refused (the client may retry those)."""
    accepted = sent.accepted
    return {
        "sent": len(sent.outcomes),
        "accepted": len(accepted),
        "applied": len(accepted & applied.keys()),
        "lost": len(accepted - applied.keys()),
        "doubled": sum(1 for q in applied.values() if q > 1),
        "applied_not_accepted": len(applied.keys() - accepted),
    }


def wait_applied(
    backbone: Backbone, client: redis.Redis | redis.RedisCluster, sent: Sent, timeout: float = 180
) -> dict[str, int]:
    """Wait until every accepted event is in a cart (or ``timeout``); then a little longer for late doubles."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if sent.accepted <= backbone.applied(client).keys():
                break
        except redis.RedisError:
            pass  # a failover in progress
        time.sleep(1)
    time.sleep(3)
    return backbone.applied(client)


@pytest.fixture
def start_backbone(tmp_path: Path) -> Iterator[Any]:
    """Start a supervised worker and the API on ``settings``' services; both are stopped at the end."""
    started: list[Backbone] = []

    def start(settings: Settings, customers: int = 20) -> Backbone:
        namespace = f"flt{uuid.uuid4().hex[:8]}"
        state = tmp_path / namespace
        state.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("OMNICHANNEL_")}
        env |= {
            "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers or "",
            "SCHEMA_REGISTRY_URL": settings.schema_registry_url or "",
            "REDIS_URL": settings.redis_url or "",
            "OMNICHANNEL_NAMESPACE": namespace,
            "OMNICHANNEL_PARTITIONS": "3",
            "OMNICHANNEL_STATE_DIR": str(state),
            "OMNICHANNEL_DEV": "1",
        }
        assert settings.kafka_bootstrap_servers is not None
        provision(dataclasses.replace(settings, namespace=namespace), 3)  # topics and schemas (never auto-registered)
        port = free_port()
        cli = [sys.executable, "-m", "omnichannel.cli"]
        procs = {}
        for name, argv in (("worker", [*cli, "worker", "--supervise"]), ("api", [*cli, "serve", "--port", str(port)])):
            with (state / f"{name}.log").open("wb") as log:
                procs[name] = subprocess.Popen(
                    argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
        backbone = Backbone(
            settings, namespace, f"http://127.0.0.1:{port}", state, [f"C-{n}" for n in range(customers)], procs
        )
        started.append(backbone)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{backbone.base_url}/readyz", timeout=2).status_code == 200:
                    return backbone
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        pytest.fail(f"the API did not become ready: {backbone.log('api')}")

    yield start
    for backbone in started:
        for proc in backbone.procs.values():
            stop(proc.pid)
