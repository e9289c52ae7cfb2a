"""Journeys across channels through the real stack: a worker and the API processes, Kafka, the registry, Redis.

Follow-ups (S7), action-to-response attribution (S5, S2), channel typology (S6) and click and collect (S3).
Quiet periods are 3 s here (``OMNICHANNEL_CART_QUIET_SECONDS`` / ``..._QUOTE_...``); each test uses its own
customers, so the tests share one backbone.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from journeys_harness import QUIET_S, Journeys, event, ids, now_ms

QUIET_MS = int(QUIET_S * 1000)


def _token() -> str:
    return uuid.uuid4().hex[:8]


def _add(customer: str, channel: str, product: str, quantity: int, at: int) -> dict[str, Any]:
    payload = {"product_id": product, "quantity": quantity, "unit_price_cents": 1999, "currency": "EUR"}
    return event("cart_line_added", channel, ids(customer_id=customer), payload, at)


def _consent(customer: str, purpose: str, at: int, channel: str | None = None) -> dict[str, Any]:
    payload = {"purpose": purpose, "channel": channel, "granted": True}
    return event("consent_changed", "web", ids(customer_id=customer), payload, at)


def _order(
    customer: str,
    channel: str,
    at: int,
    *,
    order_id: str,
    fulfilment: str = "delivery",
    store: str | None = None,
    codes: tuple[str, ...] = (),
) -> dict[str, Any]:
    payload = {
        "order_id": order_id,
        "lines": [{"product_id": "SKU-1", "quantity": 1, "unit_price_cents": 1999}],
        "total_cents": 1999,
        "currency": "EUR",
        "fulfilment": fulfilment,
        "collect_store_id": store,
        "coupon_codes": list(codes),
    }
    return event("order_placed", channel, ids(customer_id=customer), payload, at)


def _touch(identities: dict[str, Any], channel: str, action: str, at: int, **extra: Any) -> dict[str, Any]:
    payload = {
        "campaign_id": extra.get("campaign", "CMP-1"),
        "action": action,
        "message_id": extra.get("message", f"m-{_token()}"),
        "promo_code": extra.get("code"),
        "url": None,
    }
    return event("campaign_touched", channel, identities, payload, at)


def _lines(record: dict[str, Any]) -> dict[str, int]:
    return {line["product_id"]: line["quantity"] for line in record["cart_lines"]}


# --------------------------------------------------------------------------------------------------------
# Follow-up triggers (S7)


def test_an_abandoned_cart_fires_one_trigger_after_the_quiet_period_with_no_further_traffic(
    journeys: Journeys,
) -> None:
    customer = f"C-cart-{_token()}"
    start = now_ms()
    journeys.publish(
        _consent(customer, "marketing_email", start),
        _add(customer, "web", "SKU-1", 2, start + 1),
        _add(customer, "mobile_app", "SKU-2", 1, start + 2),
    )
    [trigger] = journeys.wait_for(lambda: journeys.triggers_for(f"customer:{customer}"), "the abandoned-cart trigger")

    assert trigger["kind"] == "abandoned_cart"
    assert trigger["customer_id"] == customer
    assert trigger["action_channel"] == "email"  # consented; SMS was not
    assert _lines(trigger) == {"SKU-1": 2, "SKU-2": 1}
    assert (trigger["last_channel"], trigger["last_step"]) == ("mobile_app", "cart")
    assert trigger["quiet_since_ms"] == start + 2
    assert trigger["fired_at_ms"] - trigger["quiet_since_ms"] >= QUIET_MS
    # At most once per episode: nothing more comes, however long the cart stays abandoned.
    time.sleep(QUIET_S)
    assert len(journeys.triggers_for(f"customer:{customer}")) == 1


def test_an_order_on_any_channel_cancels_the_pending_cart_trigger(journeys: Journeys) -> None:
    token = _token()
    buyer, control = f"C-buy-{token}", f"C-ctl-{token}"
    start = now_ms()
    journeys.publish(
        _consent(buyer, "marketing_sms", start),
        _add(buyer, "mobile_app", "SKU-1", 1, start + 1),
        _consent(control, "marketing_sms", start),
    )
    journeys.wait_for(lambda: (c := journeys.customer(buyer)) and c["channels"], "the buyer's cart")
    # The buyer completes on another channel before the quiet period ends; the control customer's cart is
    # started later, so once its trigger fired, the buyer's would have fired too had it not been cancelled.
    journeys.publish(_order(buyer, "store", start + 500, order_id=f"O-{token}", fulfilment="in_store"))
    journeys.publish(_add(control, "web", "SKU-9", 1, now_ms()))
    journeys.wait_for(lambda: journeys.triggers_for(f"customer:{control}"), "the control customer's trigger")
    time.sleep(1)  # the buyer's check was claimed no later; its command may sit on the other partition

    assert journeys.triggers_for(f"customer:{buyer}") == []
    record = journeys.customer(buyer)
    assert record is not None
    assert [(o["order_id"], o["status"], o["channel"]) for o in record["recent_orders"]] == [
        (f"O-{token}", "placed", "store")
    ]


def test_an_unfinished_quote_is_routed_to_the_call_centre_and_a_submitted_one_is_not(journeys: Journeys) -> None:
    token = _token()
    prospect, finisher = f"C-quote-{token}", f"C-done-{token}"
    start = now_ms()

    def quote(customer: str, kind: str, step: str | None, fields: dict[str, str], at: int) -> dict[str, Any]:
        payload = {"quote_id": f"Q-{token}", "product": "home_insurance", "step": step, "fields": fields}
        if kind == "quote_submitted":
            payload = {"quote_id": f"Q-{token}", "product": "home_insurance"}
        return event(kind, "web", ids(customer_id=customer), payload, at)

    journeys.publish(
        quote(prospect, "quote_started", "property", {"rooms": "4", "postcode": "SW1A 1AA"}, start),
        quote(prospect, "quote_updated", "cover", {"cover": "buildings", "rooms": "5"}, start + 1),
        quote(finisher, "quote_started", "property", {"rooms": "2"}, start),
    )
    journeys.publish(
        event(
            "quote_submitted",
            "call_centre",
            ids(customer_id=finisher),
            {"quote_id": f"Q-{token}", "product": "home_insurance"},
            start + 2,
        )
    )
    [trigger] = journeys.wait_for(lambda: journeys.triggers_for(f"customer:{prospect}"), "the quote follow-up")

    assert trigger["kind"] == "quote_follow_up"
    assert trigger["action_channel"] == "call_centre"
    assert trigger["quote_id"] == f"Q-{token}"
    assert trigger["quote_product"] == "home_insurance"
    assert trigger["quote_fields"] == {"rooms": "5", "postcode": "SW1A 1AA", "cover": "buildings"}
    assert (trigger["last_channel"], trigger["last_step"]) == ("web", "cover")
    assert trigger["cart_lines"] == []
    assert journeys.triggers_for(f"customer:{finisher}") == []
    # Started on the web, submitted through the call centre: a cross-channel journey.
    finished = journeys.customer(finisher)
    assert finished is not None and finished["typology"] == "cross_channel"


def test_a_trigger_due_while_the_worker_is_down_fires_after_its_restart(journeys: Journeys) -> None:
    customer = f"C-restart-{_token()}"
    journeys.publish(
        _consent(customer, "marketing", now_ms(), channel="sms"), _add(customer, "web", "SKU-3", 1, now_ms())
    )
    journeys.wait_for(lambda: (c := journeys.customer(customer)) and c["channels"], "the cart to be applied")
    journeys.stop_worker()
    time.sleep(QUIET_S + 0.5)  # due while no worker runs
    assert journeys.triggers_for(f"customer:{customer}") == []
    journeys.start_worker()
    [trigger] = journeys.wait_for(
        lambda: journeys.triggers_for(f"customer:{customer}"), "the trigger after the restart", timeout=90
    )
    assert trigger["action_channel"] == "sms"


# --------------------------------------------------------------------------------------------------------
# Attribution (S5, S2), typology (S6)


def test_catalogue_to_web_and_sms_code_to_web_attributions_and_the_live_matrix(journeys: Journeys) -> None:
    token = _token()
    reader, texter, stranger = f"C-cat-{token}", f"C-sms-{token}", f"C-unk-{token}"
    phone = f"{token}".ljust(64, "0")
    start = now_ms() - 3_600_000
    catalogue = _touch(ids(customer_id=reader), "postal", "catalogue_mailed", start, campaign="CAT-SPRING")
    sms = _touch(ids(customer_id=texter), "sms", "sms_sent", start, campaign="SMS-SPRING", code="SMS10")
    email = _touch(ids(customer_id=texter), "email", "email_sent", start + 60_000, campaign="NEWSLETTER")
    unknown_sms = _touch(ids(phone_hash=phone), "sms", "sms_sent", start, campaign="SMS-SPRING", code="SMS10")
    journeys.publish(catalogue, sms, email, unknown_sms)
    journeys.wait_for(
        lambda: all(
            (c := journeys.customer(who)) and set(c["freshness"]) >= channels
            for who, channels in ((reader, {"postal"}), (texter, {"sms", "email"}), (f"phone:{phone}", {"sms"}))
        ),
        "the campaign touches to be applied",
    )
    # The unknown phone's owner logs in: the SMS sent to the phone follows the merge into the customer.
    journeys.publish(event("login", "web", ids(customer_id=stranger, phone_hash=phone), {"method": "password"}, start))
    journeys.wait_for(
        lambda: (c := journeys.customer(stranger)) and "sms" in c["freshness"], "the phone profile to merge"
    )
    journeys.publish(
        _order(reader, "web", start + 120_000, order_id=f"O-cat-{token}"),
        _order(
            texter,
            "web",
            start + 120_000,
            order_id=f"O-sms-{token}",
            fulfilment="click_and_collect",
            store="S0231",
            codes=("sms10",),
        ),
        _order(stranger, "web", start + 120_000, order_id=f"O-unk-{token}", codes=("SMS10",)),
    )
    by_customer = journeys.wait_for(
        lambda: (
            (found := {who: journeys.attributions_for(f"customer:{who}") for who in (reader, texter, stranger)})
            and all(found.values())
            and found
        ),
        "three attribution records",
    )
    credits = {who: [(c["action_channel"], c["weight"]) for c in r[0]["credits"]] for who, r in by_customer.items()}
    assert credits[reader] == [("postal", 1.0)]  # catalogue -> web
    assert credits[texter] == [("sms", 1.0)]  # the redeemed SMS code wins over the later e-mail (last touch)
    assert credits[stranger] == [("sms", 1.0)]  # attributed once the phone's owner was identified
    assert {r[0]["response_channel"] for r in by_customer.values()} == {"web"}
    assert {r[0]["model"] for r in by_customer.values()} == {"last_touch"}

    # The web order collected in store still credits the web, and makes the texter cross-channel (S2).
    journeys.publish(
        event(
            "order_collected",
            "store",
            ids(customer_id=texter),
            {"order_id": f"O-sms-{token}", "store_id": "S0231"},
            now_ms(),
        )
    )
    record = journeys.wait_for(
        lambda: (c := journeys.customer(texter)) and c["recent_orders"][0]["status"] == "collected" and c,
        "the collection to reach the customer record",
    )
    assert record["typology"] == "cross_channel"
    assert len(journeys.attributions_for(f"customer:{texter}")) == 1  # a collection is not a conversion

    matrix = journeys.get("/v1/attribution/matrix").json()
    cells = {(c["action_channel"], c["response_channel"]): c for c in matrix["cells"]}
    assert matrix["model"] == "last_touch" and matrix["window_days"] == 30
    assert matrix["exposed_customers"] == {"postal": 1, "sms": 2, "email": 1}
    assert matrix["responding_customers"]["web"] >= 3  # other tests' customers order too (unexposed)
    assert cells[("postal", "web")]["converting_customers"] == 1
    assert cells[("sms", "web")] == {
        "action_channel": "sms",
        "response_channel": "web",
        "exposed_customers": 2,
        "converting_customers": 2,
        "share": 1.0,
    }
    assert cells[("email", "web")]["converting_customers"] == 0
    assert cells.get(("sms", "store"), {"converting_customers": 0})["converting_customers"] == 0  # collected: web


def test_an_erased_customer_leaves_the_matrix_and_the_typology_counts(journeys: Journeys) -> None:
    customer = f"C-erase-{_token()}"
    start = now_ms() - 60_000
    journeys.publish(_touch(ids(customer_id=customer), "push", "push_sent", start))
    journeys.wait_for(lambda: (c := journeys.customer(customer)) and "push" in c["freshness"], "the push")
    journeys.publish(_order(customer, "mobile_app", start + 1, order_id=f"O-{customer}"))
    journeys.wait_for(lambda: journeys.attributions_for(f"customer:{customer}"), "the attribution")

    def pushed() -> tuple[int, int]:
        matrix = journeys.get("/v1/attribution/matrix").json()
        cells = {(c["action_channel"], c["response_channel"]): c for c in matrix["cells"]}
        converting = cells.get(("push", "mobile_app"), {"converting_customers": 0})["converting_customers"]
        return matrix["exposed_customers"].get("push", 0), converting

    # The record is written after the matrix and typology sets: once it shows the class, the sets hold it.
    journeys.wait_for(lambda: (c := journeys.customer(customer)) and c["typology"] == "mono_channel", "the record")
    assert pushed() == (1, 1)
    typology = journeys.get("/v1/typology").json()["customers"]
    journeys.publish(event("erasure_requested", "web", ids(customer_id=customer), {"request_id": "GDPR-1"}, now_ms()))
    journeys.wait_for(lambda: pushed() == (0, 0), "the erasure to reach the matrix")
    assert journeys.get("/v1/typology").json()["customers"] == typology - 1


def test_a_cart_filled_on_the_tablet_and_ordered_on_the_web_is_cross_channel(journeys: Journeys) -> None:
    token = _token()
    cross, mono = f"C-x-{token}", f"C-mono-{token}"
    start = now_ms()
    journeys.publish(
        _add(cross, "tablet", "SKU-1", 1, start),
        _add(mono, "web", "SKU-1", 1, start),
    )
    journeys.wait_for(lambda: journeys.customer(cross) and journeys.customer(mono), "the carts")
    journeys.publish(
        _order(cross, "web", start + 1, order_id=f"O-x-{token}"),
        _order(mono, "web", start + 1, order_id=f"O-m-{token}"),
    )
    records = journeys.wait_for(
        lambda: (
            (pair := (journeys.customer(cross), journeys.customer(mono)))
            and all(r and r["recent_orders"] for r in pair)
            and pair
        ),
        "the orders",
    )
    assert [r["typology"] for r in records] == ["cross_channel", "mono_channel"]
    counts = journeys.get("/v1/typology").json()["counts"]
    assert counts["cross_channel"] >= 1 and counts["mono_channel"] >= 1
    assert set(counts) == {"mono_channel", "multi_channel", "cross_channel", "unknown"}


# --------------------------------------------------------------------------------------------------------
# Click and collect (S3)


def test_store_availability_follows_the_stock_feed_in_sequence_order_and_checks_a_cart(journeys: Journeys) -> None:
    token = _token()
    store, customer = f"S-{token}", f"C-cc-{token}"

    def level(product: str, available: int, sequence: int, at: int) -> dict[str, Any]:
        payload = {"store_id": store, "product_id": product, "available": available, "sequence": sequence}
        return event("stock_level_changed", "back_office", ids(), payload, at)

    at = now_ms()
    journeys.publish(
        level("SKU-A", 3, 5, at),
        level("SKU-B", 0, 1, at),
        level("SKU-A", 9, 4, at + 10),  # older sequence, later time: ignored
        level("SKU-Z", 1, 1, at),  # sentinel: published last, on the same key
    )
    url = f"/v1/stores/{store}/availability"
    body = journeys.wait_for(
        lambda: (
            (a := journeys.get(url, products="SKU-A,SKU-B,SKU-C,SKU-Z")).status_code == 200
            and a.json()["products"][-1]["known"]
            and a.json()
        ),
        "the stock levels",
    )
    by_product = {p["product_id"]: p for p in body["products"]}
    assert (by_product["SKU-A"]["available"], by_product["SKU-A"]["sequence"]) == (3, 5)
    assert (by_product["SKU-B"]["available"], by_product["SKU-B"]["in_stock"]) == (0, False)
    assert by_product["SKU-C"] == {"product_id": "SKU-C", "known": False, "available": None, "in_stock": False}

    journeys.publish(_add(customer, "web", "SKU-A", 2, now_ms()))
    check = f"/v1/customers/{customer}/cart/availability"
    answer = journeys.wait_for(
        lambda: (a := journeys.get(check, store=store)).status_code == 200 and a.json()["lines"] and a.json(),
        "the cart check",
    )
    assert (answer["collectable"], answer["missing"]) == (True, [])
    journeys.publish(_add(customer, "web", "SKU-B", 1, now_ms()))
    answer = journeys.wait_for(
        lambda: len((a := journeys.get(check, store=store).json())["lines"]) == 2 and a, "the second line"
    )
    assert (answer["collectable"], answer["missing"]) == (False, ["SKU-B"])
    assert journeys.get(url).status_code == 400
    assert journeys.get(check).status_code == 400
    assert journeys.get("/v1/customers/C-nobody/cart/availability", store=store).status_code == 404
    assert journeys.http.get(url, params={"products": "SKU-A"}, headers={"X-Api-Key": "wrong"}).status_code == 401
