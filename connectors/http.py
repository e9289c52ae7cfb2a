"""HTTP plumbing shared by the collector and the webhook routers: bounded bodies, JSON, error bodies, publishing.

Every error answer has one shape, ``{"error": <code>, "detail": <sentence>, "problems": [{"path", "reason"}]}``,
so a client (or a person reading logs) sees what was wrong and where.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response

from connectors.errors import ConnectorError, PublishUnavailableError
from connectors.publisher import Delivery, Outcome
from schemas.validation import Problem

__all__ = [
    "HttpError",
    "json_response",
    "parse_json",
    "problem_body",
    "problems_json",
    "read_body",
    "require_published",
]


class HttpError(ConnectorError):
    """An answer other than success, raised by handlers and rendered by the collector's exception handler."""

    def __init__(
        self,
        status: int,
        error: str,
        detail: str,
        problems: Sequence[Problem] = (),
        *,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.problems = list(problems)
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def response(self) -> Response:
        body = problem_body(self.error, self.detail, self.problems) | self.extra
        return json_response(self.status, body, headers=self.headers)


def problems_json(problems: Sequence[Problem]) -> list[dict[str, str]]:
    """``[{"path": ..., "reason": ...}]``; an empty path (the whole document) is shown as ``""``."""
    return [{"path": p.path, "reason": p.reason} for p in problems]


def problem_body(error: str, detail: str, problems: Sequence[Problem] = ()) -> dict[str, Any]:
    """The error body every endpoint uses."""
    return {"error": error, "detail": detail, "problems": problems_json(problems)}


def json_response(status: int, body: Any, *, headers: Mapping[str, str] | None = None) -> Response:
    """A JSON response serialised with orjson (the collector's hot path)."""
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) more than ``limit`` bytes before reading it all into memory."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise HttpError(400, "bad_request", f"Content-Length {declared!r} is not a number of bytes")
        if int(declared) > limit:
            raise _too_large(int(declared), limit)
        return await request.body()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(size, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(size: int, limit: int) -> HttpError:
    return HttpError(
        413,
        "body_too_large",
        f"the request body ({size} bytes) exceeds the limit of {limit} bytes (OMNICHANNEL_MAX_BODY_BYTES); "
        "send smaller batches",
        extra={"limit": limit},
    )


def parse_json(body: bytes) -> Any:
    """The JSON document in ``body``; 400 naming the parse error (with line and column) otherwise."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise HttpError(400, "malformed_json", f"the body is not valid JSON: {exc}") from exc


def require_published(outcomes: Sequence[Outcome], retry_after_s: int) -> list[Delivery]:
    """The deliveries; 503 with ``Retry-After`` if Kafka did not acknowledge one, 502 if it refused one."""
    for outcome in outcomes:
        if isinstance(outcome, PublishUnavailableError):
            raise unavailable(outcome, retry_after_s)
    for outcome in outcomes:
        if not isinstance(outcome, Delivery):
            raise HttpError(502, "kafka_refused", str(outcome))
    return [o for o in outcomes if isinstance(o, Delivery)]


def unavailable(exc: Exception, retry_after_s: int) -> HttpError:
    """503 for an event that Kafka did not acknowledge in time: retry after ``retry_after_s`` seconds."""
    return HttpError(
        503,
        "kafka_unavailable",
        f"{exc}. Nothing was reported as published; retry after {retry_after_s} s with the same event ids.",
        headers={"Retry-After": str(retry_after_s)},
    )
