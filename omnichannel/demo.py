"""``omnichannel demo``: the whole backbone on one machine, and the basket moving from phone to tablet.

Brings up (or reuses) Kafka, the registry and Redis, starts a worker and the HTTP API as child processes,
then plays the S1 journey through the public HTTP API and prints a timeline: for each step, how long the
collector took to accept it (202 = stored in Kafka) and how long until the other device's live cart
stream showed it. Without ``--scripted`` it then keeps serving the demo page until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from connectors.config import DEV_READ_KEY
from omnichannel.provision import provision
from omnichannel.settings import Settings
from omnichannel.stack import Progress, resolve_stack
from omnichannel.stack.processes import free_port, spawn, stop, tail, wait_until

__all__ = ["DemoStep", "run_demo", "scripted_journey"]

_KEYS = {"mobile_app": "dev-mobile_app", "tablet": "dev-tablet"}
_READ_KEY = DEV_READ_KEY  # the live carts and look-ups are reads: channel keys only publish


@dataclass(frozen=True)
class DemoStep:
    """One line of the timeline."""

    at_ms: float
    device: str
    action: str
    accepted_ms: float
    seen_by: str
    seen_after_ms: float | None


class _CartStream:
    """Follows one device's live cart (SSE) in the background and remembers every change with its time."""

    def __init__(self, client: httpx.AsyncClient, profile: str, key: str) -> None:
        self.changes: list[tuple[float, dict[str, Any]]] = []
        self._task = asyncio.create_task(self._run(client, profile, key))

    async def _run(self, client: httpx.AsyncClient, profile: str, key: str) -> None:
        url = f"/v1/customers/{profile}/cart/stream"
        async with client.stream("GET", url, headers={"X-Api-Key": key}, timeout=None) as response:
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    self.changes.append((time.perf_counter(), json.loads(line[5:])))

    async def wait_for(self, predicate: Callable[[dict[str, Any]], bool], since: float, timeout: float = 30) -> float:
        """Milliseconds from ``since`` until a change satisfying ``predicate`` arrived."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            for at, data in self.changes:
                if at >= since and predicate(data):
                    return (at - since) * 1000
            await asyncio.sleep(0.005)
        raise TimeoutError("the change did not reach the other device's live cart within 30 s")

    def close(self) -> None:
        self._task.cancel()


def _lines(data: dict[str, Any]) -> dict[str, int]:
    return {line["product_id"]: line["quantity"] for line in data["cart"]["lines"]}


async def scripted_journey(base_url: str, report: Callable[[DemoStep], None]) -> list[DemoStep]:
    """Phone (anonymous) fills a basket, saves it with an e-mail, the tablet logs in and adds a product."""
    token = uuid.uuid4().hex[:8]
    # A fresh shopper each run: an e-mail stays with the first customer who claimed it (identity rules).
    email_hash = hashlib.sha256(f"ana+{token}@example.com".encode()).hexdigest()
    customer = f"C-{token}"
    phone = {"channel": "mobile_app", "anonymous": f"anon-{token}", "device": f"phone-{token}", "kind": "phone"}
    tablet = {"channel": "tablet", "anonymous": f"anon-tab-{token}", "device": f"tablet-{token}", "kind": "tablet"}
    steps: list[DemoStep] = []
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:

        async def send(dev: dict[str, str], event_type: str, payload: dict[str, Any], **ids: str) -> float:
            event = {
                "event_type": event_type,
                "occurred_at_ms": int(time.time() * 1000),
                "channel": dev["channel"],
                "source_system": "demo",
                "device": {"device_id": dev["device"], "kind": dev["kind"], "role": "customer_owned"},
                "identities": {"anonymous_id": dev["anonymous"], **ids},
                "payload": payload,
            }
            sent = time.perf_counter()
            answer = await client.post("/v1/events", json=event, headers={"X-Api-Key": _KEYS[dev["channel"]]})
            if answer.status_code != 202:
                raise RuntimeError(f"the collector answered {answer.status_code}: {answer.text}")
            return sent

        phone_cart = _CartStream(client, f"anonymous:{phone['anonymous']}", _READ_KEY)
        tablet_cart: _CartStream | None = None
        try:

            async def step(
                dev: dict[str, str],
                action: str,
                sent: float,
                watcher: _CartStream,
                who: str,
                check: Callable[[dict[str, Any]], bool],
            ) -> None:
                accepted = (time.perf_counter() - sent) * 1000
                seen = await watcher.wait_for(check, sent)
                result = DemoStep((sent - started) * 1000, dev["kind"], action, accepted, who, seen)
                steps.append(result)
                report(result)

            def add(product: str) -> dict[str, Any]:
                return {"product_id": product, "quantity": 1, "unit_price_cents": 4999, "currency": "EUR"}

            await asyncio.sleep(0.3)  # let the phone's stream subscribe
            sent = await send(phone, "cart_line_added", add("SKU-LAMP"))
            await step(
                phone,
                "adds a reading lamp (anonymous)",
                sent,
                phone_cart,
                "phone",
                lambda d: _lines(d).get("SKU-LAMP") == 1,
            )
            sent = await send(phone, "cart_line_added", add("SKU-CHAIR"))
            await step(phone, "adds an oak chair", sent, phone_cart, "phone", lambda d: "SKU-CHAIR" in _lines(d))
            await send(phone, "identify", {"traits": {}}, email_hash=email_hash)
            tablet_cart = _CartStream(client, customer, _READ_KEY)
            await asyncio.sleep(0.3)
            sent = await send(tablet, "login", {"method": "password"}, customer_id=customer, email_hash=email_hash)
            await step(
                tablet,
                "logs in with the same e-mail",
                sent,
                tablet_cart,
                "tablet",
                lambda d: _lines(d) == {"SKU-LAMP": 1, "SKU-CHAIR": 1},
            )
            sent = await send(tablet, "cart_line_added", add("SKU-RUG"), customer_id=customer)
            await step(tablet, "adds a wool rug", sent, phone_cart, "phone", lambda d: "SKU-RUG" in _lines(d))
        finally:
            phone_cart.close()
            if tablet_cart is not None:
                tablet_cart.close()
    return steps


def _print_step(step: DemoStep) -> None:
    seen = f"{step.seen_after_ms:7.0f} ms" if step.seen_after_ms is not None else "      -"
    print(
        f"  +{step.at_ms:6.0f} ms  {step.device:6}  {step.action:34}  accepted in {step.accepted_ms:5.0f} ms"
        f"   -> on the {step.seen_by}'s live cart after {seen}",
        flush=True,
    )


@contextlib.contextmanager
def _child(argv: list[str], log: Path, what: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = spawn(argv, log)
    try:
        yield proc
    finally:
        stop(proc.pid, timeout=15)
        if proc.returncode not in (None, 0, -signal.SIGTERM):
            print(f"{what} exited with {proc.returncode}; last lines of {log}:\n{tail(log)}", file=sys.stderr)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_demo(settings: Settings, progress: Progress, scripted: bool, port: int | None = None) -> list[DemoStep]:
    """Bring the backbone up, play the journey, and (unless ``scripted``) serve the page until Ctrl-C."""
    # The worker, the API and the local services run in sessions of their own (so Ctrl-C reaches only this
    # process, which then stops them in order): a terminal closing or a `kill` must clean up the same way.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    run_dir = settings.state_dir / "demo"
    with resolve_stack(settings, run_dir=run_dir / "stack", progress=progress) as stack:
        settings = stack.settings(settings)
        assert settings.kafka_bootstrap_servers is not None
        provision(settings)  # topics and schemas: the worker and the API only look schema ids up
        os.environ.update(
            {
                "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
                "SCHEMA_REGISTRY_URL": settings.schema_registry_url or "",
                "REDIS_URL": settings.redis_url or "",
                "OMNICHANNEL_DEV": "1",
            }
        )
        port = port or free_port()
        cli = [sys.executable, "-m", "omnichannel.cli"]
        progress("Starting the stream-processor worker and the HTTP API...")
        with (
            _child([*cli, "worker", "--supervise"], run_dir / "worker.log", "the worker") as worker,
            _child([*cli, "serve", "--port", str(port)], run_dir / "api.log", "the API") as api,
        ):
            base = f"http://127.0.0.1:{port}"
            wait_until(
                lambda: _answers(base), what="the HTTP API", timeout=60, process=api, log_file=run_dir / "api.log"
            )
            progress("Waiting for the worker to join its consumer group (a probe event goes through)...")
            wait_until(
                lambda: _probe(base), what="the worker", timeout=120, process=worker, log_file=run_dir / "worker.log"
            )
            print("\nThe basket moves from the phone to the tablet (times from the first click):", flush=True)
            steps = asyncio.run(scripted_journey(base, _print_step))
            if not scripted:
                print(f"\nOpen {base}/demo/ to play it yourself (phone and tablet side by side). Ctrl-C to stop.")
                with contextlib.suppress(KeyboardInterrupt):
                    while worker.poll() is None and api.poll() is None:
                        time.sleep(0.5)
                progress("Stopping the worker, the API and the services this demo started...")
            return steps


_PROBE = f"demo-probe-{uuid.uuid4().hex[:8]}"


def _probe(base: str) -> bool:
    """Send one page view for a probe shopper and report whether the worker has applied it."""
    headers = {"X-Api-Key": _KEYS["mobile_app"]}
    found = httpx.get(f"{base}/v1/identities/anonymous_id/{_PROBE}", headers={"X-Api-Key": _READ_KEY}, timeout=2)
    if found.status_code == 200:
        return True
    event = {
        "event_type": "page_viewed",
        "occurred_at_ms": int(time.time() * 1000),
        "channel": "mobile_app",
        "source_system": "demo",
        "identities": {"anonymous_id": _PROBE},
        "payload": {"url": "app://home", "title": None, "referrer": None},
    }
    httpx.post(f"{base}/v1/events", json=event, headers=headers, timeout=10)
    time.sleep(1)
    return False


def _answers(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
