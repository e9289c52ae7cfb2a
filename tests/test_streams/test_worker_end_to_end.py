"""A real worker process between real Kafka and real Redis: the basket follows the shopper (S1)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
from streams_harness import Pipeline, point_one_journey

from omnichannel.stack.processes import free_port
from schemas.loader import EVENT_FULLNAME
from schemas.samples import sample_event


def _ids(anonymous: str | None = None, customer: str | None = None) -> dict[str, Any]:
    return {
        "anonymous_id": anonymous,
        "customer_id": customer,
        "email_hash": None,
        "phone_hash": None,
        "loyalty_card": None,
    }


def _device(device_id: str, kind: str, role: str = "customer_owned") -> dict[str, Any]:
    return {"device_id": device_id, "kind": kind, "role": role}


def _add(channel: str, ids: dict[str, Any], device: dict[str, Any], product: str, qty: int, at: int) -> dict[str, Any]:
    payload = {"product_id": product, "quantity": qty, "unit_price_cents": 1000, "currency": "EUR"}
    return sample_event(
        "cart_line_added", channel=channel, identities=ids, device=device, occurred_at_ms=at, payload=payload
    )


def _lines(cart: dict[str, Any] | None) -> dict[str, int]:
    return {line["product_id"]: line["quantity"] for line in (cart or {}).get("lines", [])}


def _phone_to_tablet_journey(now: int) -> list[dict[str, Any]]:
    phone = _device("phone-1", "phone")
    tablet = _device("tablet-1", "tablet")
    anonymous = _ids(anonymous="anon-1")
    return [
        _add("mobile_app", anonymous, phone, "SKU-1", 1, now),
        _add("mobile_app", anonymous, phone, "SKU-2", 2, now + 1),
        sample_event(
            "login", channel="tablet", identities=_ids("anon-1", "C-1"), device=tablet, occurred_at_ms=now + 2
        ),
        _add("tablet", _ids(customer="C-1"), tablet, "SKU-3", 1, now + 3),
    ]


def test_a_basket_started_anonymously_on_the_phone_continues_on_the_tablet(
    pipeline_factory: Callable[..., Pipeline],
) -> None:
    pipeline = pipeline_factory()
    journey = _phone_to_tablet_journey(int(time.time() * 1000) - 60_000)  # a minute old: unlike the worker's clock
    pipeline.publish(journey)

    cart = pipeline.wait_for(
        lambda: (c := pipeline.cart("customer:C-1")) and len(c["lines"]) == 3 and c, what="the merged cart"
    )
    assert _lines(cart) == {"SKU-1": 1, "SKU-2": 2, "SKU-3": 1}
    assert cart["status"] == "open"
    assert {line["channel"] for line in cart["lines"]} == {"mobile_app", "tablet"}
    # No second copy of the basket: the anonymous cart was handed over (closed), or never existed when the
    # login was resolved before the phone's events (they sit on other partitions).
    assert _lines(pipeline.cart("anonymous:anon-1")) == {}

    # Subscribers see the same thing on the unified topics.
    links = [pipeline.codec.decode(m.value()) for m in pipeline.consume("identity.links", 2)]
    assert {(link["identifier_type"], link["identifier_value"], link["customer_id"]) for link in links} >= {
        ("anonymous_id", "anon-1", "C-1")
    }
    carts = pipeline.consume("customer.carts", 10, timeout=15)
    latest = [pipeline.codec.decode(m.value()) for m in carts if m.key() == b"customer:C-1"][-1]
    assert _lines(latest) == {"SKU-1": 1, "SKU-2": 2, "SKU-3": 1}
    states = pipeline.consume("customer.state", 10, timeout=15)
    state = [pipeline.codec.decode(m.value()) for m in states if m.key() == b"customer:C-1"][-1]
    assert state["updated_at_ms"] == journey[-1]["occurred_at_ms"], "the newest event time, as the read API says"

    # A replay of the same events (same event ids) changes nothing.
    version = cart["version"]
    pipeline.publish(journey)
    sentinel = _add(
        "tablet", _ids(customer="C-1"), _device("tablet-1", "tablet"), "SKU-4", 1, journey[-1]["occurred_at_ms"] + 1
    )
    pipeline.publish([sentinel])
    after = pipeline.wait_for(
        lambda: (c := pipeline.cart("customer:C-1")) and "SKU-4" in _lines(c) and c, what="the sentinel"
    )
    assert _lines(after) == {"SKU-1": 1, "SKU-2": 2, "SKU-3": 1, "SKU-4": 1}
    assert after["version"] == version + 1


def test_a_staff_tablet_in_store_never_links_two_shoppers(pipeline_factory: Callable[..., Pipeline]) -> None:
    pipeline = pipeline_factory()
    now = int(time.time() * 1000)
    kiosk = _device("store-tablet-7", "tablet", role="staff_operated")
    pipeline.publish(
        [
            _add("store", _ids(customer="C-A"), kiosk, "SKU-1", 1, now),
            _add("store", _ids(customer="C-B"), kiosk, "SKU-2", 1, now + 1),
        ]
    )
    cart_a = pipeline.wait_for(lambda: pipeline.cart("customer:C-A"), what="cart A")
    cart_b = pipeline.wait_for(lambda: pipeline.cart("customer:C-B"), what="cart B")
    assert _lines(cart_a) == {"SKU-1": 1}
    assert _lines(cart_b) == {"SKU-2": 1}


def test_poison_records_go_to_the_dead_letter_topic_and_processing_continues(
    pipeline_factory: Callable[..., Pipeline],
) -> None:
    pipeline = pipeline_factory()
    now = int(time.time() * 1000)
    pipeline.publish_raw("web", b"anonymous:x", b"not avro at all")
    bad = _add("web", _ids(customer="C-9"), _device("pc-1", "desktop"), "SKU-1", 1, now)
    bad["payload"]["quantity"] = -3
    # Valid Avro, but its payload is not its event type's: a quote_started re-labelled ticket_opened (names of
    # one length, so the bytes stay valid Avro).
    mismatched = sample_event("quote_started", channel="web", identities=_ids(customer="C-9"), occurred_at_ms=now)
    topic = pipeline.topic("channel.web.events")
    raw = pipeline.codec.encode(f"{topic}-value", EVENT_FULLNAME, mismatched)
    pipeline.publish([bad])
    pipeline.publish_raw("web", b"customer:C-9", raw.replace(b"quote_started", b"ticket_opened", 1))
    pipeline.publish([_add("web", _ids(customer="C-9"), _device("pc-1", "desktop"), "SKU-2", 2, now + 1)])

    cart = pipeline.wait_for(lambda: pipeline.cart("customer:C-9"), what="the good event")
    assert _lines(cart) == {"SKU-2": 2}
    failed = [pipeline.codec.decode(m.value()) for m in pipeline.consume("deadletter.events", 3)]
    rejected = {f["event_id"]: f for f in failed if f["event_id"]}
    assert "does not fit event_type 'ticket_opened'" in rejected[mismatched["event_id"]]["reason"]
    by_stage = {f["stage"]: f for f in failed if f["event_id"] != mismatched["event_id"]}
    assert by_stage["decode"]["raw_value"] == b"not avro at all"
    assert "magic byte" in by_stage["decode"]["reason"]
    assert by_stage["business-rule"]["event_id"] == bad["event_id"]
    assert "quantity" in by_stage["business-rule"]["reason"]


def test_journeys_produced_while_the_worker_is_stopped_apply_from_the_backlog(
    pipeline_factory: Callable[..., Pipeline],
) -> None:
    pipeline = pipeline_factory(start=False)
    now = int(time.time() * 1000)
    tokens = [f"b{n}" for n in range(30)]
    events = [e for n, token in enumerate(tokens) for e in point_one_journey(token, now + 10 * n)]
    pipeline.publish(events)  # the whole backlog waits in Kafka, every step "back to back" for the worker
    pipeline.worker.start()

    def carts() -> dict[str, dict[str, int]]:
        return {t: _lines(pipeline.cart(f"customer:C-{t}")) for t in tokens}

    expected = {t: {"SKU-A": 1, "SKU-D": 1} for t in tokens}
    pipeline.wait_for(lambda: carts() == expected, what="every backlog journey's cart")
    for token in tokens:  # the phone's anonymous basket was handed over whole at the login
        anonymous = pipeline.cart(f"anonymous:a-{token}")
        assert anonymous is not None and (anonymous["status"], anonymous["lines"]) == ("closed", [])


def test_end_to_end_latency_starts_at_the_channel_records_own_timestamp(
    pipeline_factory: Callable[..., Pipeline],
) -> None:
    # A record its connector produced five minutes ago (a backlog): the latency must say five minutes, not
    # the milliseconds since the worker read it.
    port = free_port()
    pipeline = pipeline_factory(start=False)
    pipeline.worker.argv_extra = ["--metrics-port", str(port)]
    pipeline.worker.start()
    event = _add("web", _ids(customer="C-L"), _device("pc-l", "desktop"), "SKU-1", 1, int(time.time() * 1000))
    topic = pipeline.topic("channel.web.events")
    produced_ms = int(time.time() * 1000) - 300_000
    value = pipeline.codec.encode(f"{topic}-value", EVENT_FULLNAME, event)
    pipeline.producer.produce(topic, key=b"customer:C-L", value=value, timestamp=produced_ms)
    assert pipeline.producer.flush(30) == 0
    pipeline.wait_for(lambda: pipeline.cart("customer:C-L"), what="the event")

    def buckets() -> dict[str, float]:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        found = {}
        for line in text.splitlines():
            if (
                line.startswith("omnichannel_processor_end_to_end_latency_seconds_bucket")
                and f'topic="{topic}"' in line
            ):
                found[line.split('le="')[1].split('"')[0]] = float(line.rsplit(" ", 1)[1])
        return found

    seen = pipeline.wait_for(lambda: (b := buckets()) and b.get("+Inf", 0) >= 1 and b, what="the latency metric")
    assert seen["60.0"] == 0 and seen["600.0"] >= 1  # measured from the record's time: about 300 s
