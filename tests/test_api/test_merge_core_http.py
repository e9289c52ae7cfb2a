"""The merge core as a shopper's apps drive it: the public HTTP API, fresh data, requests back to back.

A phone adds two lines anonymously and saves the basket with an e-mail; a tablet logs in with that e-mail and
adds a line; the phone removes a line. Sent as fast as the apps send them, the customer's cart must end with
exactly the lines a sequential reading gives, every time; re-sending the phone's events with their ids must
change nothing; an operator's unlink must split the two again.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import uuid
from typing import Any

import httpx
import pytest
from api_harness import Backbone

PHONE = {"X-Api-Key": "dev-mobile_app"}
TABLET = {"X-Api-Key": "dev-tablet"}
#: Reads need the read key: channel keys only publish.
READ = {"X-Api-Key": "dev-read"}
RUNS = 30


def _email(token: str) -> str:
    return hashlib.sha256(f"{token}@example.com".encode()).hexdigest()


def _event(channel: str, event_type: str, payload: dict[str, Any], device: str, **ids: str) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "occurred_at_ms": int(time.time() * 1000),
        "channel": channel,
        "source_system": "test",
        "device": {
            "device_id": device,
            "kind": "phone" if channel == "mobile_app" else "tablet",
            "role": "customer_owned",
        },
        "identities": ids,
        "payload": payload,
    }


def _line(product: str, qty: int) -> dict[str, Any]:
    return {"product_id": product, "quantity": qty, "unit_price_cents": 1000, "currency": "EUR"}


def _journey(client: httpx.Client, token: str) -> list[dict[str, Any]]:
    """Point 1 of the merge-core issue, each event created and posted as the app would: no pauses."""
    phone = {"anonymous_id": f"a-{token}"}
    sent = []
    steps: list[tuple[dict[str, str], str, str, dict[str, Any], str, dict[str, str]]] = [
        (PHONE, "mobile_app", "cart_line_added", _line("SKU-A", 1), f"p-{token}", phone),
        (PHONE, "mobile_app", "cart_line_added", _line("SKU-B", 2), f"p-{token}", phone),
        (PHONE, "mobile_app", "identify", {"traits": {}}, f"p-{token}", {**phone, "email_hash": _email(token)}),
        (
            TABLET,
            "tablet",
            "login",
            {"method": "password"},
            f"t-{token}",
            {"customer_id": f"C-{token}", "email_hash": _email(token)},
        ),
        (TABLET, "tablet", "cart_line_added", _line("SKU-D", 1), f"t-{token}", {"customer_id": f"C-{token}"}),
        (PHONE, "mobile_app", "cart_line_removed", {"product_id": "SKU-B"}, f"p-{token}", phone),
    ]
    for headers, channel, event_type, payload, device, ids in steps:
        event = _event(channel, event_type, payload, device, **ids)
        answer = client.post("/v1/events", json=event, headers=headers)
        assert answer.status_code == 202, answer.text
        sent.append(event)
    return sent


def _lines(client: httpx.Client, customer: str) -> dict[str, int] | None:
    answer = client.get(f"/v1/customers/{customer}/cart", headers=READ)
    if answer.status_code != 200:
        return None
    return {line["product_id"]: line["quantity"] for line in answer.json()["cart"]["lines"]}


def _settle(
    client: httpx.Client, customers: list[str], expected: dict[str, int], timeout: float = 120
) -> dict[str, Any]:
    """Wait until every cart shows ``expected``; then return what each shows (mismatches included)."""
    deadline = time.monotonic() + timeout
    found: dict[str, Any] = {}
    while time.monotonic() < deadline:
        found = {c: _lines(client, c) for c in customers}
        if all(v == expected for v in found.values()):
            break
        time.sleep(0.5)
    return found


def test_the_phone_to_tablet_journey_sent_back_to_back_thirty_times_never_loses_the_removal(
    backbone: Backbone,
) -> None:
    tokens = [uuid.uuid4().hex[:10] for _ in range(RUNS)]
    with httpx.Client(base_url=backbone.base_url, timeout=10) as client:
        for token in tokens:
            _journey(client, token)
        customers = [f"C-{t}" for t in tokens]
        found = _settle(client, customers, {"SKU-A": 1, "SKU-D": 1})
        time.sleep(2)  # nothing applied late may change a cart afterwards
        again = {c: _lines(client, c) for c in customers}
    mismatches = {c: v for c, v in again.items() if v != {"SKU-A": 1, "SKU-D": 1}}
    assert found == again
    assert mismatches == {}, f"{len(mismatches)} of {RUNS} carts wrong: {mismatches}"


def test_retries_after_the_login_with_the_original_event_ids_change_nothing(backbone: Backbone) -> None:
    token = uuid.uuid4().hex[:10]
    customer = f"C-{token}"
    with httpx.Client(base_url=backbone.base_url, timeout=10) as client:
        sent = _journey(client, token)
        assert _settle(client, [customer], {"SKU-A": 1, "SKU-D": 1})[customer] == {"SKU-A": 1, "SKU-D": 1}
        record = client.get(f"/v1/customers/{customer}", headers=READ).json()
        for event in sent[:3] + sent[5:]:  # the phone's events, re-sent by its retry queue
            answer = client.post("/v1/events", json=event, headers=PHONE)
            assert answer.status_code == 202, answer.text
        marker = _event("tablet", "page_viewed", {"url": "https://x", "title": None, "referrer": None}, f"t-{token}")
        marker["identities"] = {"customer_id": customer}
        assert client.post("/v1/events", json=marker, headers=TABLET).status_code == 202
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the marker, sent last, shows the retries were read too
            after = client.get(f"/v1/customers/{customer}", headers=READ).json()
            if (
                after["customer"]["channels"].get("tablet", {}).get("count", 0)
                > record["customer"]["channels"]["tablet"]["count"]
            ):
                break
            time.sleep(0.3)
        else:
            pytest.fail("the marker event was never applied")
        assert _lines(client, customer) == {"SKU-A": 1, "SKU-D": 1}
        assert after["customer"]["channels"]["mobile_app"] == record["customer"]["channels"]["mobile_app"]


def test_an_operator_unlinks_a_wrong_email_and_both_sides_are_recomputed(backbone: Backbone) -> None:
    token = uuid.uuid4().hex[:10]
    customer = f"C-{token}"
    with httpx.Client(base_url=backbone.base_url, timeout=10) as client:
        _journey(client, token)
        _settle(client, [customer], {"SKU-A": 1, "SKU-D": 1})
        env = {k: v for k, v in os.environ.items() if not k.startswith("OMNICHANNEL_")}
        env |= {
            "KAFKA_BOOTSTRAP_SERVERS": backbone.settings.kafka_bootstrap_servers or "",
            "SCHEMA_REGISTRY_URL": backbone.settings.schema_registry_url or "",
            "REDIS_URL": backbone.settings.redis_url or "",
            "OMNICHANNEL_NAMESPACE": backbone.namespace,
        }
        done = subprocess.run(
            [sys.executable, "-m", "omnichannel.cli", "identities", "unlink", "email_hash", _email(token)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert f"from customer:{customer}" in done.stdout
        assert _lines(client, customer) == {"SKU-D": 1}  # the phone's lines were never the customer's
        phone = client.get(f"/v1/identities/anonymous_id/a-{token}", headers=READ)
        assert phone.status_code == 200 and phone.json()["customer_id"] is None, phone.text
        anonymous_cart = client.get(f"/v1/customers/anonymous:a-{token}/cart", headers=READ)
        assert anonymous_cart.status_code == 200, anonymous_cart.text
        lines = {line["product_id"]: line["quantity"] for line in anonymous_cart.json()["cart"]["lines"]}
        assert lines == {"SKU-A": 1}
