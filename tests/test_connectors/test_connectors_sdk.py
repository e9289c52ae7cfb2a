"""The Python SDK against a real collector (uvicorn on a free port) and the real Kafka."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import uvicorn

from connectors.collector import create_app
from connectors.config import CollectorConfig
from connectors.errors import AuthenticationError, DeliveryError, EventsRejectedError, InvalidEventError
from connectors.publisher import Publisher
from connectors.sdk import Tracker

ReadBack = Callable[..., list[tuple[str, dict[str, Any], int]]]
KEY = "web-key-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(config: CollectorConfig, publisher: Publisher) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(config, publisher), port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(5)


@pytest.fixture
def url(config: CollectorConfig, publisher: Publisher) -> Iterator[str]:
    yield from _serve(config, publisher)


@pytest.fixture
def dead_url(dead_publisher: Publisher) -> Iterator[str]:
    yield from _serve(
        CollectorConfig(hash_key=b"k" * 32, keys={KEY: frozenset({"web"})}, retry_after_s=2), dead_publisher
    )


def test_tracked_events_are_batched_and_stored(url: str, topic_for: Callable[[str], str], read_back: ReadBack) -> None:
    with Tracker(url, KEY, "web", anonymous_id="anon-1", batch_size=3, flush_interval_s=60) as tracker:
        ids = [
            tracker.track("page_viewed", {"url": "https://shop.example/"}),
            tracker.identify("C-42", {"tier": "gold"}),
            tracker.add_to_cart("SKU-1", 2, 4999, "EUR", customer_id="C-42"),
            tracker.set_quantity("SKU-1", 3, customer_id="C-42"),
            tracker.remove_from_cart("SKU-1", customer_id="C-42", session_id="s-1"),
        ]
    records = read_back(topic_for("web"), 5)
    assert [event["event_id"] for _, event, _ in records] == ids
    assert [event["event_type"] for _, event, _ in records] == [
        "page_viewed",
        "identify",
        "cart_line_added",
        "cart_quantity_set",
        "cart_line_removed",
    ]
    assert records[0][0] == "anonymous:anon-1"
    assert records[2][0] == "customer:C-42"
    assert records[2][1]["identities"]["anonymous_id"] == "anon-1", "the tracker's default identity is kept"
    assert records[3][1]["payload"] == {
        "product_id": "SKU-1",
        "quantity": 3,
        "unit_price_cents": None,
        "currency": None,
    }
    assert all(event["source_system"] == "python-sdk" for _, event, _ in records)


def test_the_interval_sends_without_an_explicit_flush(
    url: str, topic_for: Callable[[str], str], read_back: ReadBack
) -> None:
    tracker = Tracker(url, KEY, "web", batch_size=100, flush_interval_s=0.1)
    try:
        event_id = tracker.track("logout", {}, customer_id="C-7")
        ((_, event, _),) = read_back(topic_for("web"), 1, timeout_s=10)
        assert event["event_id"] == event_id
        assert tracker.queued == 0
    finally:
        tracker.close()


def test_an_invalid_event_fails_at_the_call_site(url: str) -> None:
    with Tracker(url, KEY, "web") as tracker, pytest.raises(InvalidEventError, match=r"payload\.quantity"):
        tracker.add_to_cart("SKU-1", "two", 4999, "EUR")  # type: ignore[arg-type]


def test_a_wrong_key_is_an_authentication_error(url: str) -> None:
    tracker = Tracker(url, "mobile-key-0123456789", "web", max_retries=0)
    tracker.track("logout", {})
    with pytest.raises(AuthenticationError, match="403"):
        tracker.flush()
    tracker.close()


def test_503_is_retried_honouring_retry_after_then_reported(dead_url: str) -> None:
    waits: list[float] = []
    tracker = Tracker(dead_url, KEY, "web", max_retries=2, sleep=waits.append, timeout_s=10)
    event_id = tracker.track("logout", {})
    with pytest.raises(DeliveryError) as caught:
        tracker.flush()
    assert waits == [2.0, 2.0], "Retry-After from the collector's 503, once per retry"
    assert caught.value.event_ids == [event_id]
    assert "kafka_unavailable" in str(caught.value) or "did not acknowledge" in str(caught.value)
    tracker.close()


def test_an_unreachable_collector_is_retried_with_backoff() -> None:
    waits: list[float] = []
    tracker = Tracker(f"http://127.0.0.1:{free_port()}", KEY, "web", max_retries=3, sleep=waits.append)
    tracker.track("logout", {})
    with pytest.raises(DeliveryError, match="unreachable"):
        tracker.flush()
    assert len(waits) == 3 and all(0 <= w <= 0.25 * 2**i for i, w in enumerate(waits))
    tracker.close()


def test_rejections_come_back_as_events_rejected_error(url: str) -> None:
    tracker = Tracker(url, KEY, "web")
    event_id = tracker.track("logout", {})
    tracker._queue[-1]["payload"] = {"unexpected": 1}  # as if an older SDK sent a field the contract dropped
    with pytest.raises(EventsRejectedError) as caught:
        tracker.flush()
    assert [p.path for p in caught.value.rejected[event_id]] == ["payload.unexpected"]
    tracker.close()
