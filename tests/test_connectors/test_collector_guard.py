"""Slow or broken requests against the served collector: bounded answers (408/503), one log line each.

The collector runs under uvicorn as `omnichannel serve` runs it, and requests are written on raw sockets,
so a Content-Length larger than the body really leaves the server waiting for bytes that never come.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
import uvicorn
from starlette.types import Message, Receive, Scope, Send

from connectors.collector import create_app
from connectors.collector.guard import GuardLimits, RequestGuard
from connectors.config import CollectorConfig
from connectors.publisher import Publisher

BODY_TIMEOUT_S = 1.0


@pytest.fixture
def served(config: CollectorConfig, publisher: Publisher, now_ms: int) -> Iterator[int]:
    """The collector on a free port (body timeout 1 s, at most 2 pending bodies); yields the port."""
    guarded = replace(config, body_timeout_s=BODY_TIMEOUT_S, request_timeout_s=5.0, max_pending_bodies=2)
    app = create_app(guarded, publisher, clock=lambda: now_ms)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield port
    server.should_exit = True
    thread.join(timeout=10)


def _short_body(port: int, path: str, headers: str = "") -> socket.socket:
    """Open a request declaring 100 bytes of body and send only 1."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: 100\r\n{headers}\r\n"
    )
    sock.sendall(head.encode() + b"{")
    return sock


def _status(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return int(data.split(b" ", 2)[1]), data


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/v1/events", "Authorization: Bearer web-key-0123456789\r\n"),
        ("/v1/webhooks/email", ""),
        ("/v1/webhooks/sms", ""),
    ],
    ids=["events", "email-webhook", "sms-webhook"],
)
def test_a_body_shorter_than_its_content_length_is_answered_408_in_time_with_one_log_line(
    served: int, path: str, headers: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    started = time.monotonic()
    with _short_body(served, path, headers) as sock:
        status, raw = _status(sock)
        elapsed = time.monotonic() - started
        rest = sock.recv(4096)
        while rest:  # the server closes the connection: the unread body makes it unusable
            rest = sock.recv(4096)
    assert status == 408
    assert b"body_timeout" in raw or b"408" in raw
    assert BODY_TIMEOUT_S - 0.1 <= elapsed < BODY_TIMEOUT_S + 2
    time.sleep(0.2)  # let the server thread finish logging
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in noisy] == ["request aborted"], [r.getMessage() for r in noisy]
    assert noisy[0].exc_info is None
    assert getattr(noisy[0], "reason", None) == "body_timeout" and getattr(noisy[0], "path", None) == path


def test_more_slow_bodies_than_the_bound_are_refused_at_once(served: int) -> None:
    slow = [_short_body(served, "/v1/webhooks/email") for _ in range(2)]
    try:
        time.sleep(0.3)  # both are now waiting for their bodies
        started = time.monotonic()
        with _short_body(served, "/v1/webhooks/sms") as third:
            status, raw = _status(third)
        assert status == 503
        assert b"retry-after" in raw.lower()
        assert time.monotonic() - started < 0.5
        assert [_status(sock)[0] for sock in slow] == [408, 408]
    finally:
        for sock in slow:
            sock.close()


def test_a_complete_request_still_gets_its_answer(served: int) -> None:
    body = b'{"events": []}'
    with socket.create_connection(("127.0.0.1", served), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/events HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer web-key-0123456789\r\n" + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
        )
        status, _ = _status(sock)
    assert status not in (408, 503)


async def _call(app: RequestGuard, *, body_chunks: list[bytes]) -> tuple[list[Message], float]:
    scope: Scope = {"type": "http", "method": "POST", "path": "/slow", "headers": [], "client": ("127.0.0.1", 1)}
    chunks = list(body_chunks)

    async def receive() -> Message:
        if chunks:
            return {"type": "http.request", "body": chunks.pop(0), "more_body": bool(chunks)}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    started = time.monotonic()
    await app(scope, receive, send)
    return sent, time.monotonic() - started


def test_a_handler_slower_than_the_request_timeout_is_answered_408() -> None:
    async def slow_handler(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await asyncio.sleep(3600)

    guard = RequestGuard(slow_handler, GuardLimits(body_timeout_s=5, request_timeout_s=0.3))
    sent, elapsed = asyncio.run(_call(guard, body_chunks=[b"{}"]))
    assert sent[0]["status"] == 408 and b"request_timeout" in sent[1]["body"]
    assert elapsed < 1.5
    assert guard.pending_bodies == 0


def test_an_answer_already_streaming_is_not_cut_by_the_request_timeout() -> None:
    async def stream(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await asyncio.sleep(0.6)  # longer than the request timeout
        await send({"type": "http.response.body", "body": b"done", "more_body": False})

    guard = RequestGuard(stream, GuardLimits(body_timeout_s=5, request_timeout_s=0.3))
    sent, _ = asyncio.run(_call(guard, body_chunks=[b""]))
    assert [m.get("status") or m.get("body") for m in sent] == [200, b"done"]
