"""Slow and broken requests cannot hold the server: an ASGI middleware in front of every route.

- **Body read timeout**: the whole body must arrive within ``body_timeout_s`` of the request's start (a
  deadline, not an idle timer, so a client trickling one byte at a time cannot stretch it) -> 408.
- **Request timeout**: the response must start within ``request_timeout_s`` -> 408. Streams already answering
  (the live cart's server-sent events) are not cut: the deadline ends when the response starts.
- **Slow bodies bounded**: at most ``max_pending_bodies`` requests may be waiting for body bytes at once; one more
  is answered 503 with ``Retry-After`` at once instead of tying up another connection.
- A client that disconnects mid-body is dropped without an answer.

Each aborted request logs exactly one line (reason, method, path, client, bytes received of those declared),
never a traceback: the handler is cancelled, so no exception travels through the error handlers.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Literal

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connectors.http import json_response, problem_body
from omnichannel.logs import kv

__all__ = ["GuardLimits", "RequestGuard"]

log = logging.getLogger(__name__)

Abort = Literal["body_timeout", "request_timeout", "too_many_slow_bodies", "client_disconnected"]


@dataclass(frozen=True)
class GuardLimits:
    """The guard's limits (from :class:`connectors.config.CollectorConfig`)."""

    body_timeout_s: float = 10.0
    request_timeout_s: float = 30.0
    max_pending_bodies: int = 64
    retry_after_s: int = 5


class RequestGuard:
    """ASGI middleware enforcing :class:`GuardLimits` on every HTTP request (see the module docstring)."""

    def __init__(self, app: ASGIApp, limits: GuardLimits) -> None:
        self.app = app
        self.limits = limits
        self.pending_bodies = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await _Exchange(self, scope, receive, send).run()


class _Exchange:
    """One request's state: what has arrived, whether the answer started, why it was aborted."""

    def __init__(self, guard: RequestGuard, scope: Scope, receive: Receive, send: Send) -> None:
        self.guard, self.scope, self._receive, self._send = guard, scope, receive, send
        self.loop = asyncio.get_running_loop()
        self.body_deadline = self.loop.time() + guard.limits.body_timeout_s
        self.body_done = False
        self.counted = False
        self.received = 0
        self.response_started = False
        self.aborted: Abort | None = None
        self.timeout: asyncio.Timeout | None = None

    async def run(self) -> None:
        try:
            async with asyncio.timeout(self.guard.limits.request_timeout_s) as self.timeout:
                await self.guard.app(self.scope, self.receive, self.send)
        except TimeoutError:
            await self._answer_abort(self.aborted or "request_timeout")
        finally:
            self._stop_counting()

    async def receive(self) -> Message:
        if self.body_done:
            return await self._receive()
        if not self.counted:
            if self.guard.pending_bodies >= self.guard.limits.max_pending_bodies:
                return await self._abort("too_many_slow_bodies")
            self.guard.pending_bodies += 1
            self.counted = True
        try:
            async with asyncio.timeout_at(self.body_deadline):
                message = await self._receive()
        except TimeoutError:
            return await self._abort("body_timeout")
        if message["type"] == "http.disconnect":
            return await self._abort("client_disconnected")
        self.received += len(message.get("body", b""))
        if not message.get("more_body", False):
            self.body_done = True
            self._stop_counting()
        return message

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.response_started = True
            if self.timeout is not None:
                self.timeout.reschedule(None)  # a started answer (e.g. an event stream) may run on
        await self._send(message)

    async def _abort(self, reason: Abort) -> Message:
        """Cancel the handler where it waits: the enclosing timeout turns that into the abort answer."""
        self.aborted = reason
        assert self.timeout is not None
        self.timeout.reschedule(self.loop.time())
        await asyncio.Future()  # cancelled right away by the rescheduled timeout
        raise AssertionError("unreachable")

    async def _answer_abort(self, reason: Abort) -> None:
        headers = dict(self.scope.get("headers") or [])
        log.warning(
            "request aborted",
            extra=kv(
                reason=reason,
                method=self.scope.get("method"),
                path=self.scope.get("path"),
                client=":".join(str(part) for part in self.scope.get("client") or ()),
                received_bytes=self.received,
                content_length=headers.get(b"content-length", b"-").decode("latin-1"),
            ),
        )
        if self.response_started or reason == "client_disconnected":
            return
        limits = self.guard.limits
        status, detail, extra_headers = {
            "body_timeout": (408, f"the request body did not arrive within {limits.body_timeout_s:g} s", {}),
            "request_timeout": (408, f"the request was not answered within {limits.request_timeout_s:g} s", {}),
            "too_many_slow_bodies": (
                503,
                f"{limits.max_pending_bodies} requests are already sending their bodies; retry later",
                {"Retry-After": str(limits.retry_after_s)},
            ),
        }[reason]
        # The body was not read to its end, so the connection cannot carry another request.
        response = json_response(status, problem_body(reason, detail), headers={**extra_headers, "Connection": "close"})
        await response(self.scope, self._receive_nothing, self._send)

    async def _receive_nothing(self) -> Message:
        return {"type": "http.disconnect"}

    def _stop_counting(self) -> None:
        if self.counted:
            self.guard.pending_bodies -= 1
            self.counted = False
