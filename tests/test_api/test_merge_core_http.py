"""The merge core as a shopper's apps drive it: the public HTTP API, fresh data, requests back to back.

A phone adds two lines anonymously and saves the basket with an e-mail; a tablet logs in with that e-mail and
adds a line; the phone removes a line. Sent as fast as the apps send them, the customer's cart must end with
exactly the lines a sequential reading gives, every time; re-sending the phone's events with their ids must
change nothing; an operator's unlink must split the two again.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
import uuid
from typing import Any

import httpx
import pytest
from api_harness import Backbone
from topic_snapshot import latest_values

from schemas.codec import AvroCodec
from schemas.registry import ConfluentSchemaRegistry

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
        env = backbone.cli_env()
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
    # Subscribers of identity.links see the split too: the last record of each identifier says where it is now
    # (the unlink's CLI returns once its records are acknowledged).
    links = _latest_links(backbone)
    email = links[f"email_hash:{_email(token)}"]
    assert (email["action"], email["customer_id"], email["reason"]) == ("unmerge", customer, "unlinked")
    for phone_id in (f"anonymous_id:a-{token}", f"device_id:p-{token}"):
        assert links[phone_id]["action"] == "merge", links[phone_id]
        assert links[phone_id]["customer_id"] == f"anonymous:a-{token}", links[phone_id]
        assert links[phone_id]["previous_customer_id"] == customer, links[phone_id]
    assert links[f"device_id:t-{token}"]["customer_id"] == customer  # the tablet stays the customer's


def _latest_links(backbone: Backbone) -> dict[str, Any]:
    """The last identity.links record of every identifier (key), decoded."""
    settings = backbone.settings
    codec = AvroCodec(ConfluentSchemaRegistry(settings.schema_registry_url or ""))
    return latest_values(settings.kafka_bootstrap_servers or "", settings.topic("identity.links"), codec)


def test_the_unlink_api_needs_an_admin_key_and_splits_the_link(backbone: Backbone) -> None:
    token = uuid.uuid4().hex[:10]
    customer = f"C-{token}"
    url = f"/v1/identities/email_hash/{_email(token)}/unlink"
    with httpx.Client(base_url=backbone.base_url, timeout=30) as client:
        _journey(client, token)
        _settle(client, [customer], {"SKU-A": 1, "SKU-D": 1})
        assert client.post(url).status_code == 401
        assert client.post(url, headers=READ).status_code == 403  # a read key may not correct the graph
        assert client.post(url, headers=PHONE).status_code == 403
        answer = client.post(url, headers={"X-Api-Key": "dev-admin"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["previous_profile"] == f"customer:{customer}"
        assert _lines(client, customer) == {"SKU-D": 1}
        again = client.post(url, headers={"X-Api-Key": "dev-admin"})  # safe to repeat
        assert again.status_code == 200 and again.json()["previous_profile"] is None
        bad = client.post("/v1/identities/customer_id/x/unlink", headers={"X-Api-Key": "dev-admin"})
        assert bad.status_code == 400 and "cannot be unlinked" in bad.json()["detail"]


def _post(client: httpx.Client, headers: dict[str, str], event: dict[str, Any]) -> None:
    answer = client.post("/v1/events", json=event, headers=headers)
    assert answer.status_code == 202, answer.text


def test_shared_devices_over_http_family_tablet_logout_and_staff_till(backbone: Backbone) -> None:
    token = uuid.uuid4().hex[:10]
    tablet = f"fam-{token}"
    x, y, z = f"X-{token}", f"Y-{token}", f"Z-{token}"
    x_email = _email(f"x{token}")
    till = {"device_id": f"till-{token}", "kind": "pos_terminal", "role": "staff_operated"}
    with httpx.Client(base_url=backbone.base_url, timeout=10) as client:
        # Family tablet: X saves a basket there with X's e-mail, then Y logs in on it, then logs out; the next
        # person adds a line anonymously; X logs in on a phone with X's e-mail and unsubscribes from e-mails.
        anon = {"anonymous_id": f"at-{token}"}
        _post(client, TABLET, _event("tablet", "cart_line_added", _line("SKU-X", 1), tablet, **anon))
        _post(client, TABLET, _event("tablet", "identify", {"traits": {}}, tablet, **anon, email_hash=x_email))
        _post(client, TABLET, _event("tablet", "login", {"method": "password"}, tablet, **anon, customer_id=y))
        _post(client, TABLET, _event("tablet", "logout", {}, tablet, **anon, customer_id=y))
        _post(client, TABLET, _event("tablet", "cart_line_added", _line("SKU-N", 4), tablet, **anon))
        _post(
            client,
            PHONE,
            _event("mobile_app", "login", {"method": "password"}, f"px-{token}", customer_id=x, email_hash=x_email),
        )
        optout = _event(
            "mobile_app",
            "consent_changed",
            {"purpose": "marketing", "channel": "email", "granted": False},
            f"px-{token}",
            email_hash=x_email,
        )
        _post(client, PHONE, optout)
        # A staff till whose app sends its own anonymous id: a line between two card scans is nobody's.
        staff = {"anonymous_id": f"staff-{token}"}
        store = {"X-Api-Key": "dev-store"}
        for event in (
            _event("store", "cart_line_added", _line("SKU-1", 1), "", **staff, customer_id=z),
            _event("store", "cart_line_added", _line("SKU-2", 1), "", **staff),
            _event("store", "cart_line_added", _line("SKU-3", 1), "", **staff, loyalty_card=f"L-{token}"),
        ):
            event["device"] = till
            client.post("/v1/events", json=event, headers=store).raise_for_status()

        x_record = _eventually_record(client, x, lambda r: r["consent"].get("marketing:email") is False)
        assert x_email in [i["value"] for i in x_record["identities"]]
        y_record = _eventually_record(client, y, lambda r: r["channels"].get("tablet", {}).get("count", 0) >= 3)
        assert x_email not in [i["value"] for i in y_record["identities"]]  # X's e-mail was never Y's
        assert "marketing:email" not in y_record["consent"]
        # The events went to several partitions (keyed by their strongest identifier): wait for each cart.
        assert _settle(client, [y], {"SKU-X": 1})[y] == {"SKU-X": 1}  # the tablet's basket followed Y's login...
        after_logout = f"anonymous:at-{token}"
        assert _settle(client, [after_logout], {"SKU-N": 4})[after_logout] == {"SKU-N": 4}  # ...not the next one's
        assert _settle(client, [z], {"SKU-1": 1})[z] == {"SKU-1": 1}
        card = f"loyalty:L-{token}"
        assert _settle(client, [card], {"SKU-3": 1})[card] == {"SKU-3": 1}
        time.sleep(1)  # nothing applied late may change them afterwards
        assert _lines(client, y) == {"SKU-X": 1} and _lines(client, after_logout) == {"SKU-N": 4}
        staff_link = client.get(f"/v1/identities/anonymous_id/staff-{token}", headers=READ)
        assert staff_link.status_code == 404  # the staff app's id links no one


def _eventually_record(client: httpx.Client, customer: str, check: Any, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    record: dict[str, Any] = {}
    while time.monotonic() < deadline:
        answer = client.get(f"/v1/customers/{customer}", headers=READ)
        if answer.status_code == 200:
            record = answer.json()["customer"]
            if check(record):
                return record
        time.sleep(0.3)
    pytest.fail(f"{customer}'s record never satisfied the check: {record}")


def _owner(client: httpx.Client, identifier_type: str, value: str) -> str | None:
    answer = client.get(f"/v1/identities/{identifier_type}/{value}", headers=READ)
    return answer.json()["profile"] if answer.status_code == 200 else None


def test_a_late_login_on_the_family_tablet_leaves_every_link_record_saying_where_it_is(backbone: Backbone) -> None:
    """The tablet's offline queue sends Y's login after X's later one has been applied: the re-fold keeps the
    tablet X's, and identity.links, whose late record says "the tablet is Y's", ends with one saying X's."""
    token = uuid.uuid4().hex[:10]
    x, y, tablet = f"X-{token}", f"Y-{token}", f"lt-{token}"
    anon = {"anonymous_id": f"lat-{token}"}
    with httpx.Client(base_url=backbone.base_url, timeout=10) as client:
        x_login = _event("tablet", "login", {"method": "password"}, tablet, **anon, customer_id=x)
        _post(client, TABLET, x_login)
        deadline = time.monotonic() + 60
        while _owner(client, "device_id", tablet) != f"customer:{x}":
            assert time.monotonic() < deadline, "X's login was not applied"
            time.sleep(0.3)
        y_login = _event("tablet", "login", {"method": "password"}, tablet, **anon, customer_id=y)
        y_login["occurred_at_ms"] = x_login["occurred_at_ms"] - 60_000  # a minute before X's, sent after it
        _post(client, TABLET, y_login)
        _eventually_record(client, y, lambda r: r["channels"].get("tablet", {}).get("count", 0) >= 1)
        assert _owner(client, "device_id", tablet) == f"customer:{x}"  # the later login wins
    wanted = {f"device_id:{tablet}": ("merge", x), f"anonymous_id:lat-{token}": ("merge", x)}
    deadline = time.monotonic() + 30  # the records follow the Redis commit by a Kafka acknowledgement
    while True:
        links = _latest_links(backbone)
        last = {i: (links[i]["action"], links[i]["customer_id"]) if i in links else None for i in wanted}
        if last == wanted or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert last == wanted
