"""``GET /readyz``: whether Kafka, the Schema Registry and Redis answer now, each reported on its own.

``/healthz`` (the collector's) stays a liveness probe: a restart does not fix an outage of a dependency,
so an orchestrator should stop routing traffic on ``/readyz`` (503) and restart only on ``/healthz``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping

import httpx
from fastapi import APIRouter
from fastapi.responses import Response
from redis.asyncio import Redis
from redis.exceptions import RedisError

from api import examples
from api.openapi import ok
from connectors.http import json_response
from connectors.publisher import Publisher

__all__ = ["Probe", "kafka_probe", "readiness_router", "redis_probe", "registry_probe"]

Probe = Callable[[], Awaitable[str | None]]
"""Checks one dependency: ``None`` when it answers, else what is wrong (a sentence for the operator)."""

_UNREADY = examples.READINESS | {
    "status": "unavailable",
    "checks": examples.READINESS["checks"]
    | {"redis": {"ok": False, "detail": "Redis did not answer PING: ConnectionError"}},
    "ms": 1003,
}

#: Each probe's budget: a readiness check must answer well inside an orchestrator's probe timeout.
_PROBE_TIMEOUT_S = 2.0


def kafka_probe(publisher: Publisher) -> Probe:
    """Kafka answers a metadata request on the publisher's own connection."""

    async def probe() -> str | None:
        if await asyncio.to_thread(publisher.kafka_answers, _PROBE_TIMEOUT_S):
            return None
        return f"no broker of {publisher.bootstrap} answered within {_PROBE_TIMEOUT_S:g} s"

    return probe


def registry_probe(url: str, auth: httpx.Auth | None = None) -> Probe:
    """The Schema Registry lists its subjects (``GET <url>/subjects``)."""

    async def probe() -> str | None:
        try:
            async with httpx.AsyncClient(timeout=_PROBE_TIMEOUT_S, auth=auth) as client:
                answer = await client.get(f"{url.rstrip('/')}/subjects")
        except httpx.HTTPError as exc:
            return f"{url} could not be reached: {exc.__class__.__name__}"
        return None if answer.status_code == 200 else f"{url} answered HTTP {answer.status_code}"

    return probe


def redis_probe(client: Redis) -> Probe:
    """Redis answers PING."""

    async def probe() -> str | None:
        try:
            await asyncio.wait_for(client.ping(), _PROBE_TIMEOUT_S)
        except (RedisError, TimeoutError) as exc:
            return f"Redis did not answer PING: {exc.__class__.__name__}"
        return None

    return probe


def readiness_router(probes: Mapping[str, Probe]) -> APIRouter:
    """``GET /readyz``: 200 when every probe passes, 503 naming each dependency that does not."""
    router = APIRouter(tags=["operations"])

    @router.get(
        "/readyz",
        summary="Readiness: Kafka, registry and Redis, each checked",
        response_class=Response,
        responses={
            200: ok("Every dependency answers.", "Readiness", examples.READINESS),
            503: ok("At least one dependency does not answer (named in `checks`).", "Readiness", _UNREADY),
        },
        openapi_extra={"security": []},
    )
    async def readyz() -> Response:
        """`{"status": "ready"|"unavailable", "checks": {"kafka": {"ok", "detail"}, ...}}`; 503 while one is down."""
        names = list(probes)
        started = time.perf_counter()
        results = await asyncio.gather(*(probes[name]() for name in names))
        elapsed_ms = round((time.perf_counter() - started) * 1000)
        checks = {
            name: {"ok": problem is None, "detail": problem or "answers"}
            for name, problem in zip(names, results, strict=True)
        }
        ready = all(problem is None for problem in results)
        body = {"status": "ready" if ready else "unavailable", "checks": checks, "ms": elapsed_ms}
        return json_response(200 if ready else 503, body)

    return router
