"""The read API over a real worker and Redis: records, carts, identities, errors, live cart streams."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from api_harness import Backbone
from openapi_check import answer_problems

PHONE = {"X-Api-Key": "dev-mobile_app"}
TABLET = {"X-Api-Key": "dev-tablet"}
#: Reads need the read key: channel keys only publish.
READ = {"X-Api-Key": "dev-read"}


def _event(channel: str, event_type: str, payload: dict[str, Any], **ids: str) -> dict[str, Any]:
    return {
        "event_type": event_type,
        "occurred_at_ms": int(time.time() * 1000),
        "channel": channel,
        "source_system": "test",
        "identities": ids,
        "payload": payload,
    }


def _post(client: httpx.Client, headers: dict[str, str], event: dict[str, Any]) -> None:
    answer = client.post("/v1/events", json=event, headers=headers)
    assert answer.status_code == 202, answer.text


def _eventually(client: httpx.Client, url: str, headers: dict[str, str], check: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    body = None
    while time.monotonic() < deadline:
        answer = client.get(url, headers=headers)
        if answer.status_code == 200:
            body = answer.json()
            if check(body):
                return body
        time.sleep(0.2)
    pytest.fail(f"{url} never satisfied the check; last body: {body}")


def _email_hash(token: str) -> str:
    """The contract's email_hash of a test shopper (64 lowercase hex)."""
    return hashlib.sha256(f"{token}@example.com".encode()).hexdigest()


def test_a_logged_in_tablet_finds_the_phone_basket_and_its_freshness(backbone: Backbone) -> None:
    token = uuid.uuid4().hex[:8]
    with httpx.Client(base_url=backbone.base_url, timeout=10) as client:
        line = {"product_id": "SKU-1", "quantity": 2, "unit_price_cents": 1500, "currency": "EUR"}
        _post(
            client,
            PHONE,
            _event("mobile_app", "cart_line_added", line, anonymous_id=f"a-{token}", email_hash=_email_hash(token)),
        )
        _post(
            client,
            PHONE,
            _event("mobile_app", "search_performed", {"query": "lamp", "results_count": 3}, anonymous_id=f"a-{token}"),
        )
        _post(
            client,
            TABLET,
            _event("tablet", "login", {"method": "password"}, customer_id=f"C-{token}", email_hash=_email_hash(token)),
        )
        who = _eventually(
            client, f"/v1/identities/anonymous_id/a-{token}", READ, lambda b: b["customer_id"] == f"C-{token}"
        )
        assert who["profile"] == f"customer:C-{token}"
        cart = _eventually(client, f"/v1/customers/C-{token}/cart", READ, lambda b: b["cart"]["lines"])
        assert [(x["product_id"], x["quantity"]) for x in cart["cart"]["lines"]] == [("SKU-1", 2)]
        assert set(cart["freshness"]) >= {"mobile_app", "tablet"}
        record = _eventually(client, f"/v1/customers/C-{token}", READ, lambda b: b["customer"]["recent_searches"])
        assert record["customer"]["recent_searches"] == ["lamp"]
        assert "_internal" not in record["customer"]
        # The phone, still anonymous, reads the same basket through its own id.
        phone_view = client.get(f"/v1/customers/anonymous:a-{token}/cart", headers=READ).json()
        assert phone_view["profile"] == f"customer:C-{token}"


def test_every_answer_matches_the_openapi_document(backbone: Backbone) -> None:
    token = uuid.uuid4().hex[:8]
    with httpx.Client(base_url=backbone.base_url, timeout=10) as client:
        spec = client.get("/openapi.json").json()
        line = {"product_id": "SKU-1", "quantity": 2, "unit_price_cents": 1500, "currency": "EUR"}
        _post(client, PHONE, _event("mobile_app", "cart_line_added", line, anonymous_id=f"o-{token}"))
        _post(
            client,
            TABLET,
            _event("tablet", "login", {"method": "password"}, customer_id=f"C-{token}", anonymous_id=f"o-{token}"),
        )
        _eventually(client, f"/v1/customers/C-{token}/cart", READ, lambda b: b["cart"]["lines"])
        asked = [
            ("/v1/customers/{customer_id}", f"/v1/customers/C-{token}", READ, 200),
            ("/v1/customers/{customer_id}/cart", f"/v1/customers/anonymous:o-{token}/cart", READ, 200),
            ("/v1/identities/{identifier_type}/{value}", f"/v1/identities/anonymous_id/o-{token}", READ, 200),
            (
                "/v1/customers/{customer_id}/cart/availability",
                f"/v1/customers/C-{token}/cart/availability?store=S0231",
                READ,
                200,
            ),
            ("/v1/stores/{store_id}/availability", "/v1/stores/S0231/availability?products=SKU-1,SKU-2", PHONE, 200),
            ("/v1/typology", "/v1/typology", READ, 200),
            ("/v1/attribution/matrix", "/v1/attribution/matrix", READ, 200),
            ("/readyz", "/readyz", {}, 200),
            ("/healthz", "/healthz", {}, 200),
            ("/v1/customers/{customer_id}", "/v1/customers/C-never-seen", READ, 404),
            ("/v1/customers/{customer_id}", "/v1/customers/C-1", PHONE, 403),
            ("/v1/customers/{customer_id}/cart", "/v1/customers/C-1/cart", {}, 401),
            ("/v1/identities/{identifier_type}/{value}", "/v1/identities/shoe_size/42", READ, 400),
            ("/v1/stores/{store_id}/availability", "/v1/stores/S0231/availability", PHONE, 400),
            (
                "/v1/customers/{customer_id}/cart/availability",
                "/v1/customers/C-never-seen/cart/availability?store=S1",
                READ,
                404,
            ),
        ]
        for documented, url, headers, status in asked:
            answer = client.get(url, headers=headers)
            assert answer.status_code == status, (url, answer.text)
            assert not answer_problems(spec, documented, "get", status, answer.json()), (url, answer.text)


@pytest.mark.parametrize(
    ("url", "status", "error"),
    [
        ("/v1/customers/C-never-seen", 404, "unknown_customer"),
        ("/v1/customers/C-never-seen/cart", 404, "unknown_customer"),
        ("/v1/identities/anonymous_id/nobody", 404, "unknown_identifier"),
        ("/v1/identities/shoe_size/42", 400, "unknown_identifier_type"),
    ],
)
def test_unknown_things_get_a_clear_error(backbone: Backbone, url: str, status: int, error: str) -> None:
    answer = httpx.get(backbone.base_url + url, headers=READ)
    assert answer.status_code == status
    assert answer.json()["error"] == error
    assert answer.json()["detail"]


@pytest.mark.parametrize("headers", [{}, {"X-Api-Key": "wrong"}, {"Authorization": "Bearer nope"}])
def test_reads_need_a_valid_key(backbone: Backbone, headers: dict[str, str]) -> None:
    for url in (
        "/v1/customers/C-1",
        "/v1/customers/C-1/cart",
        "/v1/identities/customer_id/C-1",
        "/v1/customers/C-1/cart/stream",
    ):
        answer = httpx.get(backbone.base_url + url, headers=headers)
        assert answer.status_code == 401, url
        assert "API key" in answer.json()["detail"]


def test_channel_keys_publish_but_only_read_and_admin_keys_read(backbone: Backbone) -> None:
    urls = ("/v1/customers/C-1", "/v1/customers/C-1/cart", "/v1/identities/customer_id/C-1", "/v1/typology")
    for url in urls:
        answer = httpx.get(backbone.base_url + url, headers=PHONE)
        assert answer.status_code == 403, url
        assert "read key (OMNICHANNEL_READ_KEYS)" in answer.json()["detail"]
        assert httpx.get(backbone.base_url + url, headers={"X-Api-Key": "dev-admin"}).status_code in (200, 404), url
    stream = httpx.get(f"{backbone.base_url}/v1/customers/C-1/cart/stream", params={"api_key": "dev-tablet"})
    assert stream.status_code == 403, "a channel key in ?api_key= does not open the live cart either"
    event = _event("mobile_app", "page_viewed", {"url": "app://home", "title": None, "referrer": None})
    published = httpx.post(f"{backbone.base_url}/v1/events", json=event, headers=READ)
    assert (published.status_code, published.json()["error"]) == (403, "forbidden_scope")


def _first_sse_data(lines: Iterator[str]) -> dict[str, Any]:
    for line in lines:
        if line.startswith("data:"):
            data: dict[str, Any] = json.loads(line[5:])
            return data
    raise AssertionError("the stream ended without an event")


def test_the_live_stream_pushes_each_change_and_follows_a_login(backbone: Backbone) -> None:
    token = uuid.uuid4().hex[:8]
    with (
        httpx.Client(base_url=backbone.base_url, timeout=30) as client,
        client.stream("GET", f"/v1/customers/anonymous:p-{token}/cart/stream", headers=READ) as response,
    ):
        stream = response.iter_lines()
        first = _first_sse_data(stream)
        assert first["cart"]["lines"] == []
        line = {"product_id": "SKU-9", "quantity": 1, "unit_price_cents": 100, "currency": "EUR"}
        _post(client, PHONE, _event("mobile_app", "cart_line_added", line, anonymous_id=f"p-{token}"))
        change = _first_sse_data(stream)
        assert [x["product_id"] for x in change["cart"]["lines"]] == ["SKU-9"]
        _post(
            client,
            TABLET,
            _event("tablet", "login", {"method": "password"}, customer_id=f"C-{token}", anonymous_id=f"p-{token}"),
        )
        tablet_line = {"product_id": "SKU-10", "quantity": 3, "unit_price_cents": 100, "currency": "EUR"}
        _post(client, TABLET, _event("tablet", "cart_line_added", tablet_line, customer_id=f"C-{token}"))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            change = _first_sse_data(stream)
            if change["profile"] == f"customer:C-{token}" and len(change["cart"]["lines"]) == 2:
                break
        assert {x["product_id"]: x["quantity"] for x in change["cart"]["lines"]} == {"SKU-9": 1, "SKU-10": 3}


def test_clients_that_disconnect_leave_no_subscription_behind(backbone: Backbone) -> None:
    assert backbone.settings.redis_url is not None
    client = redis.Redis.from_url(backbone.settings.redis_url, decode_responses=True)
    # Only this test's customers: other tests' readers may still be closing while it runs.
    pattern = f"{backbone.namespace}:cart-updates:*C-leak-*"

    def subscriptions() -> int:
        return len(client.pubsub_channels(pattern))

    for i in range(40):
        with httpx.stream(
            "GET", f"{backbone.base_url}/v1/customers/C-leak-{i}/cart/stream", headers=READ, timeout=10
        ) as stream:
            lines = stream.iter_lines()  # held: an abandoned line iterator closes the connection
            assert _first_sse_data(lines)["cart"]["lines"] == []
            if i == 0:  # the pattern does match an open reader's channel
                seen = time.monotonic() + 5
                while subscriptions() == 0 and time.monotonic() < seen:
                    time.sleep(0.05)
                assert subscriptions() == 1
    deadline = time.monotonic() + 20
    while subscriptions() > 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert subscriptions() == 0
    client.close()
