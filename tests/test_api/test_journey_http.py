"""A customer across channels through the public HTTP API and a real worker (issue 16): the journey in order
with its places and actors, the open interaction a seller leaves for the call centre, and the channel-mix
segments as the mix changes."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from api_harness import Backbone

READ = {"X-Api-Key": "dev-read"}
SELLER = {"actor_id": "E-B", "role": "employee"}
AGENT = {"actor_id": "agent-B2", "role": "agent"}


def _key(channel: str) -> dict[str, str]:
    return {"X-Api-Key": f"dev-{channel}"}


def _ids(**given: str) -> dict[str, str | None]:
    names = ("anonymous_id", "customer_id", "email_hash", "phone_hash", "loyalty_card")
    return {name: given.get(name) for name in names}


def _post(
    client: httpx.Client,
    channel: str,
    event_type: str,
    payload: dict[str, Any],
    at: int,
    identities: dict[str, str | None],
    **envelope: Any,
) -> None:
    event = {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "occurred_at_ms": at,
        "channel": channel,
        "source_system": "test",
        "identities": identities,
        "payload": payload,
        **envelope,
    }
    answer = client.post("/v1/events", json=event, headers=_key(channel))
    assert answer.status_code == 202, answer.text


def _wait(probe: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}")


def _record(client: httpx.Client, customer: str) -> dict[str, Any] | None:
    answer = client.get(f"/v1/customers/{customer}", headers=READ)
    return answer.json()["customer"] if answer.status_code == 200 else None


def _quote(quote_id: str, step: str) -> dict[str, Any]:
    return {"quote_id": quote_id, "product": "kitchen_design", "step": step, "fields": {"width_cm": "320"}}


def test_a_sellers_store_interaction_is_picked_up_by_the_call_centre(backbone: Backbone) -> None:
    token = uuid.uuid4().hex[:10]
    customer, quote = f"C-{token}", f"Q-{token}"
    t0 = int(time.time() * 1000) - 60_000
    in_store = {
        "actor": SELLER,
        "location": {"store_id": "S-C", "site": None},
        "device": {"device_id": f"tab-{token}", "kind": "tablet", "role": "staff_operated"},
    }
    with httpx.Client(base_url=backbone.base_url, timeout=10) as client:
        _post(client, "store", "quote_started", _quote(quote, "room"), t0, _ids(customer_id=customer), **in_store)
        _post(
            client,
            "store",
            "quote_updated",
            _quote(quote, "layout"),
            t0 + 1_000,
            _ids(customer_id=customer),
            **in_store,
        )

        # Agent B' in the call centre reads the record the seller left.
        record = _wait(lambda: (r := _record(client, customer)) and r["open_interactions"] and r, "the record")
        (held,) = record["open_interactions"]
        assert {k: held[k] for k in ("kind", "ref", "channel", "store_id", "actor_id", "actor_role", "detail")} == {
            "kind": "quote",
            "ref": quote,
            "channel": "store",
            "store_id": "S-C",
            "actor_id": "E-B",
            "actor_role": "employee",
            "detail": "kitchen_design, step layout",
        }
        assert (held["started_at_ms"], held["last_at_ms"]) == (t0, t0 + 1_000)

        # The agent's own call opens a contact; the seller's quote stays in view behind it.
        call = {"contact_id": f"CALL-{token}", "medium": "call", "direction": "inbound", "reason": "kitchen"}
        _post(client, "call_centre", "contact_started", call, t0 + 5_000, _ids(customer_id=customer), actor=AGENT)
        record = _wait(lambda: (r := _record(client, customer)) and len(r["open_interactions"]) == 2 and r, "the call")
        assert [(i["kind"], i["channel"], i["actor_id"]) for i in record["open_interactions"]] == [
            ("contact", "call_centre", "agent-B2"),
            ("quote", "store", "E-B"),
        ]

        # The agent finishes the quote and ends the call: nothing is left open.
        _post(
            client,
            "call_centre",
            "quote_submitted",
            {"quote_id": quote, "product": "kitchen_design"},
            t0 + 6_000,
            _ids(customer_id=customer),
            actor=AGENT,
        )
        ended = {"contact_id": call["contact_id"], "medium": "call", "outcome": "resolved"}
        _post(client, "call_centre", "contact_ended", ended, t0 + 7_000, _ids(customer_id=customer), actor=AGENT)
        _wait(lambda: (r := _record(client, customer)) and r["open_interactions"] == [], "the quote to complete")

        # A basket emptied line by line is finished too (the record sees it through the cart).
        line = {"product_id": "SKU-1", "quantity": 1, "unit_price_cents": 500, "currency": "EUR"}
        _post(client, "store", "cart_line_added", line, t0 + 8_000, _ids(customer_id=customer), **in_store)
        _wait(lambda: (r := _record(client, customer)) and r["open_interactions"], "the basket")
        _post(client, "store", "cart_line_removed", {"product_id": "SKU-1"}, t0 + 9_000, _ids(customer_id=customer))
        _wait(lambda: (r := _record(client, customer)) and r["open_interactions"] == [], "the emptied basket")


def test_segments_move_as_the_mix_changes(backbone: Backbone) -> None:
    token = uuid.uuid4().hex[:10]
    customer = f"C-{token}"
    ids = _ids(customer_id=customer)
    t0 = int(time.time() * 1000) - 60_000
    page = {"url": "https://shop.example.com/", "title": "home", "referrer": None}
    visit = {"store_id": "S-1"}
    with httpx.Client(base_url=backbone.base_url, timeout=10) as client:

        def counts() -> dict[str, int]:
            answer = client.get("/v1/segments", headers=READ)
            assert answer.status_code == 200, answer.text
            return dict(answer.json()["counts"])

        assert client.get("/v1/segments").status_code == 401
        before = counts()
        for n, channel in enumerate(("web", "mobile_app", "web")):
            _post(client, channel, "page_viewed", page, t0 + n, ids)
        _wait(lambda: (r := _record(client, customer)) and r["segments"] == ["fully_connected"], "fully_connected")
        assert counts() == {**before, "fully_connected": before["fully_connected"] + 1}

        for n in range(4):
            _post(client, "store", "store_visited", visit, t0 + 10 + n, ids, location={"store_id": "S-1", "site": None})
        _wait(lambda: (r := _record(client, customer)) and r["segments"] == ["prefers_human"], "prefers_human")
        assert counts() == {**before, "prefers_human": before["prefers_human"] + 1}

        for n in range(2):
            _post(client, "web", "page_viewed", page, t0 + 20 + n, ids)
        _wait(lambda: (r := _record(client, customer)) and r["channels"]["web"]["count"] == 4, "the web again")
        assert _record(client, customer)["segments"] == []  # type: ignore[index]  # 4 of 9 with a person
        assert counts() == before
        spec = client.get("/openapi.json").json()["paths"]["/v1/segments"]["get"]
        assert "fully_connected" in spec["responses"]["200"]["content"]["application/json"]["example"]["counts"]


def test_a_four_channel_journey_appears_in_order_with_its_places_and_actors(backbone: Backbone) -> None:
    token = uuid.uuid4().hex[:10]
    customer, anonymous, order = f"C-{token}", f"a-{token}", f"ORD-{token}"
    phone = hashlib.sha256(f"+33600{token}".encode()).hexdigest()
    t0 = int(time.time() * 1000) - 3_600_000
    tablet = {"device": {"device_id": f"tab-{token}", "kind": "tablet", "role": "customer_owned"}}
    till = {
        "device": {"device_id": f"till-{token}", "kind": "pos_till", "role": "staff_operated"},
        "location": {"store_id": "S0231", "site": None},
        "actor": {"actor_id": "E10442", "role": "employee"},
    }
    web = {"location": {"store_id": None, "site": "shop.example.com"}, "session_id": f"web-{token}"}
    with httpx.Client(base_url=backbone.base_url, timeout=10) as client:
        # 1. Research on the tablet, anonymous, then logged in.
        viewed = {"product_id": "SKU-DRILL", "category": "tools", "unit_price_cents": 14900}
        _post(client, "tablet", "product_viewed", viewed, t0, _ids(anonymous_id=anonymous), **tablet)
        _post(
            client,
            "tablet",
            "login",
            {"method": "password"},
            t0 + 60_000,
            _ids(anonymous_id=anonymous, customer_id=customer),
            **tablet,
        )
        # 2. An SMS promotion reaches a phone number not known yet.
        sms = {
            "campaign_id": "CMP-SPRING",
            "action": "sms_clicked",
            "message_id": f"m-{token}",
            "promo_code": "SPRING10",
            "url": "https://shop.example.com/spring",
        }
        _post(client, "sms", "campaign_touched", sms, t0 + 120_000, _ids(phone_hash=phone))
        # 3. The web order with the code, to collect in store; the checkout gives the phone number.
        placed = {
            "order_id": order,
            "lines": [{"product_id": "SKU-DRILL", "quantity": 1, "unit_price_cents": 14900}],
            "total_cents": 13410,
            "currency": "EUR",
            "fulfilment": "click_and_collect",
            "collect_store_id": "S0231",
            "coupon_codes": ["SPRING10"],
        }
        _post(client, "web", "order_placed", placed, t0 + 180_000, _ids(customer_id=customer, phone_hash=phone), **web)
        # 4. Collection in store, at the till.
        collected = {"order_id": order, "store_id": "S0231"}
        _post(client, "store", "order_collected", collected, t0 + 240_000, _ids(customer_id=customer), **till)

        url = f"/v1/customers/{customer}/journey"
        assert client.get(url).status_code == 401
        assert client.get(url, headers=_key("web")).status_code == 403  # a channel key only publishes
        body = _wait(
            lambda: (a := client.get(url, headers=READ)).status_code == 200 and a.json()["total"] == 5 and a.json(),
            "the journey",
        )

        # An operator unlinks the phone number (a wrong number typed at checkout): the SMS leaves the journey.
        unlink = client.post(f"/v1/identities/phone_hash/{phone}/unlink", headers={"X-Api-Key": "dev-admin"})
        assert unlink.status_code == 200, unlink.text
        after = client.get(url, headers=READ).json()
        assert [e["event_type"] for e in after["events"]] == [
            "order_collected",
            "order_placed",
            "login",
            "product_viewed",
        ]

    events = body["events"]
    assert [(e["event_type"], e["channel"]) for e in events] == [
        ("order_collected", "store"),
        ("order_placed", "web"),
        ("campaign_touched", "sms"),
        ("login", "tablet"),
        ("product_viewed", "tablet"),
    ]
    collected_entry, placed_entry, sms_entry, _, research = events
    assert (collected_entry["store_id"], collected_entry["device_kind"], collected_entry["actor"]) == (
        "S0231",
        "pos_till",
        {"actor_id": "E10442", "role": "employee"},
    )
    assert collected_entry["step"] == {"session_id": None, "episode": f"order:{order}"}
    assert collected_entry["summary"] == f"order {order} collected at S0231"
    assert placed_entry["site"] == "shop.example.com" and placed_entry["actor"] is None
    assert placed_entry["step"]["session_id"] == f"web-{token}"
    assert placed_entry["summary"] == f"order {order} placed: 134.10 EUR, click_and_collect at S0231, codes SPRING10"
    assert sms_entry["summary"] == "sms clicked: campaign CMP-SPRING, code SPRING10"
    assert sms_entry["profile"] != f"customer:{customer}"  # came with the phone number alone, merged since
    assert (research["device_kind"], research["summary"]) == ("tablet", "viewed SKU-DRILL")
    assert body["profile"] == f"customer:{customer}" and body["customer_id"] == customer


def test_the_journey_pages_newest_first_and_filters_by_time(backbone: Backbone) -> None:
    token = uuid.uuid4().hex[:10]
    customer = f"C-{token}"
    t0 = int(time.time() * 1000) - 60_000
    page = {"url": "https://shop.example.com/", "title": None, "referrer": None}
    with httpx.Client(base_url=backbone.base_url, timeout=10) as client:
        for n in range(5):
            _post(client, "web", "page_viewed", {**page, "title": f"p{n}"}, t0 + n * 1_000, _ids(customer_id=customer))
        url = f"/v1/customers/{customer}/journey"
        _wait(lambda: (a := client.get(url, headers=READ)).status_code == 200 and a.json()["total"] == 5, "5 events")
        seen: list[str] = []
        cursor: str | None = None
        for _ in range(3):
            params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
            answer = client.get(url, params=params, headers=READ).json()
            seen += [e["summary"] for e in answer["events"]]
            cursor = answer["next_cursor"]
        assert seen == ["viewed p4", "viewed p3", "viewed p2", "viewed p1", "viewed p0"]
        assert cursor is None
        window = client.get(url, params={"since": t0 + 1_000, "until": t0 + 3_000}, headers=READ).json()
        assert [e["summary"] for e in window["events"]] == ["viewed p2", "viewed p1"]
        assert window["total"] == 2
        bad = client.get(url, params={"limit": "5000"}, headers=READ)
        assert bad.status_code == 400 and "from 1 to 500" in bad.json()["detail"]
        assert client.get("/v1/customers/C-nobody-here/journey", headers=READ).status_code == 404

        # Erasure removes the journey with the record.
        erase = {"request_id": f"DSR-{token}"}
        _post(client, "back_office", "erasure_requested", erase, t0 + 10_000, _ids(customer_id=customer))
        _wait(lambda: client.get(url, headers=READ).status_code == 404, "the erasure")
        spec = client.get("/openapi.json").json()["paths"]["/v1/customers/{customer_id}/journey"]["get"]
        example = spec["responses"]["200"]["content"]["application/json"]["example"]
        assert example["events"][0]["actor"] == {"actor_id": "E10442", "role": "employee"}
