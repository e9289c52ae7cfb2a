"""``POST /v1/events`` is answered by the fast path; everything else about the route behaves as before."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import Receive, Scope, Send

from connectors.collector import create_app
from connectors.collector.fastpath import FastRoutes
from connectors.config import CollectorConfig
from connectors.http import HttpError
from connectors.publisher import Outcome, Publisher
from schemas.samples import sample_event

WEB = {"X-Api-Key": "web-key-0123456789"}


async def _inner(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse("inner", status_code=299)(scope, receive, send)


async def _fast(request: Request) -> Response:
    if request.headers.get("x-fail"):
        raise HttpError(418, "teapot", "refused on purpose", headers={"X-Why": "test"})
    return PlainTextResponse(f"fast {await request.body()!r}")


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("POST", "/v1/events", (200, "fast b'hi'")),
        ("GET", "/v1/events", (299, "inner")),  # other methods: the app (405 there)
        ("POST", "/v1/events/", (299, "inner")),  # not an exact match: the app (a redirect there)
        ("POST", "/v1/other", (299, "inner")),
    ],
)
def test_only_exact_matches_take_the_fast_path(method: str, path: str, expected: tuple[int, str]) -> None:
    client = TestClient(FastRoutes(_inner, {("POST", "/v1/events"): _fast}))  # no lifespan: plain requests
    response = client.request(method, path, content=b"hi", follow_redirects=False)
    assert (response.status_code, response.text) == expected


def test_an_http_error_of_the_fast_endpoint_is_rendered_with_its_headers() -> None:
    client = TestClient(FastRoutes(_inner, {("POST", "/v1/events"): _fast}))
    response = client.post("/v1/events", headers={"X-Fail": "1"})
    assert response.status_code == 418
    assert response.headers["X-Why"] == "test"
    assert response.json() == {"error": "teapot", "detail": "refused on purpose", "problems": []}


def test_the_collector_answers_other_methods_405_and_documents_the_route(client: TestClient) -> None:
    response = client.get("/v1/events", headers=WEB)
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"
    assert "post" in client.get("/openapi.json").json()["paths"]["/v1/events"]


def test_an_unexpected_error_is_a_logged_500_with_the_error_body(
    dead_publisher: Publisher, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(events: Sequence[Any]) -> list[Outcome]:
        raise RuntimeError("a bug in publishing")

    monkeypatch.setattr(dead_publisher, "publish_many_async", broken)
    config = CollectorConfig(hash_key=b"k" * 32, keys={"web-key-0123456789": frozenset({"web"})})
    event = sample_event("cart_line_added", channel="web")
    with (
        caplog.at_level(logging.ERROR),
        TestClient(create_app(config, dead_publisher), raise_server_exceptions=False) as client,
    ):
        response = client.post("/v1/events", json=event, headers=WEB)
    assert response.status_code == 500
    assert response.json()["error"] == "internal_error"
    assert any(r.getMessage() == "unexpected error" and r.exc_info for r in caplog.records)
