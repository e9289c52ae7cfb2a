"""HTTP face of ``omnichannel lag serve``: Prometheus metrics, the JSON API and the live page.

==============================  ===================================================================
``GET /metrics``                Prometheus text format (names in :mod:`omnichannel.lag.metrics`)
``GET /v1/ops/lag[?group=G]``   the latest report (:func:`omnichannel.lag.model.report_to_json`);
                                503 with the last figures while Kafka does not answer; 404 for an
                                unknown group
``GET /v1/ops/lag/history``     the last hour per group (``?group=`` filters), for the page
``GET /ops/lag[?group=G]``      the page: one static HTML file with inline SVG, no external assets
``GET /healthz``                200 while the process runs (broker health is in the body)
``GET /v3/kafka/...``           Burrow's read-only API (:mod:`omnichannel.lag.burrow`): ``/v3/kafka``,
                                ``/{cluster}``, ``/{cluster}/consumer``,
                                ``/{cluster}/consumer/{group}/lag`` and ``.../status``
==============================  ===================================================================

The monitor polls in a daemon thread started with the application (confluent-kafka calls block, so they stay
off the event loop); handlers only read the monitor's latest report.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Annotated

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from omnichannel.lag import burrow
from omnichannel.lag.metrics import lag_registry
from omnichannel.lag.model import GroupStatus, LagReport, notfound_group_json, report_to_json
from omnichannel.lag.monitor import LagMonitor
from omnichannel.logs import kv

__all__ = ["create_app", "page_html", "serve"]

log = logging.getLogger(__name__)


def page_html() -> str:
    """The lag page (``page.html`` shipped in this package)."""
    return resources.files("omnichannel.lag").joinpath("page.html").read_text(encoding="utf-8")


def create_app(monitor: LagMonitor, *, poll: bool = True) -> FastAPI:
    """The application; with ``poll`` it runs ``monitor.run`` in a thread for its lifetime."""
    registry = lag_registry(monitor)
    page = page_html()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        thread = threading.Thread(target=monitor.run, args=(stop,), name="lag-poller", daemon=True)
        if poll:
            thread.start()
        try:
            yield
        finally:
            stop.set()
            if poll:
                # A poll in flight finishes within the admin timeout; do not hang shutdown much longer.
                thread.join(timeout=monitor.interval_seconds + 15)
            monitor.close()

    app = FastAPI(title="omnichannel lag monitor", lifespan=lifespan, docs_url=None, redoc_url=None)

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/ops/lag")
    def lag(group: Annotated[str | None, Query(description="one consumer group")] = None) -> JSONResponse:
        report = monitor.latest()
        if report is None:
            return JSONResponse(
                {"error": "no reading yet: the monitor is still reading Kafka for the first time", "groups": []},
                status_code=503,
            )
        found = None if group is None else report.group(group)
        if group is not None and report.broker_ok and (found is None or found.status is GroupStatus.NOTFOUND):
            body = report_to_json(report.only(set()))
            body["groups"] = [notfound_group_json(group, report.bootstrap)]
            body["error"] = f"consumer group {group!r} does not exist on {report.bootstrap}"
            return JSONResponse(body, status_code=404)
        body = report_to_json(report if group is None else report.only({group}))
        # Outage: the figures are the last ones read (broker.last_success_at); say so with the status code.
        return JSONResponse(body, status_code=200 if report.broker_ok else 503)

    @app.get("/v1/ops/lag/history")
    def history(group: Annotated[str | None, Query(description="one consumer group")] = None) -> JSONResponse:
        return JSONResponse(monitor.history(None if group is None else {group}))

    @app.get("/ops/lag", response_class=HTMLResponse)
    def lag_page() -> HTMLResponse:
        return HTMLResponse(page, headers={"Cache-Control": "no-cache"})

    @app.get("/")
    def root() -> RedirectResponse:
        return RedirectResponse("/ops/lag")

    _burrow_routes(app, monitor)

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        report = monitor.latest()
        return JSONResponse(
            {
                "ok": True,
                "polled": report is not None,
                "broker_ok": report is not None and report.broker_ok,
                "error": None if report is None else report.error,
            }
        )

    return app


def _burrow_routes(app: FastAPI, monitor: LagMonitor) -> None:
    """Burrow's read-only ``/v3/kafka`` endpoints; 503 with Burrow's error envelope while Kafka does not answer
    (Burrow has no notion of stale figures, so a script must not mistake the last ones for current)."""
    host = socket.gethostname()

    def current(request: Request, cluster: str | None) -> JSONResponse | LagReport:
        path = request.url.path
        report = monitor.latest()
        if report is None or not report.broker_ok:
            why = "no reading yet" if report is None else f"Kafka does not answer: {report.error}"
            return JSONResponse(burrow.error_body(why, path, host), status_code=503)
        if cluster is not None and cluster != report.cluster_name:
            return JSONResponse(burrow.error_body("cluster not found", path, host), status_code=404)
        return report

    @app.get("/v3/kafka")
    def clusters(request: Request) -> JSONResponse:
        report = current(request, None)
        if isinstance(report, JSONResponse):
            return report
        return JSONResponse(burrow.cluster_list(report, request.url.path, host))

    @app.get("/v3/kafka/{cluster}")
    def cluster_detail(request: Request, cluster: str) -> JSONResponse:
        report = current(request, cluster)
        if isinstance(report, JSONResponse):
            return report
        client_id = getattr(monitor.source, "client_id", "")
        return JSONResponse(burrow.cluster_detail(report, client_id, request.url.path, host))

    @app.get("/v3/kafka/{cluster}/consumer")
    def consumers(request: Request, cluster: str) -> JSONResponse:
        report = current(request, cluster)
        if isinstance(report, JSONResponse):
            return report
        return JSONResponse(burrow.consumer_list(report, request.url.path, host))

    def status(request: Request, cluster: str, group: str, show_all: bool) -> JSONResponse:
        report = current(request, cluster)
        if isinstance(report, JSONResponse):
            return report
        window = monitor.window(group)
        code, body = burrow.consumer_status(report, group, window, request.url.path, host, show_all=show_all)
        return JSONResponse(body, status_code=code)

    @app.get("/v3/kafka/{cluster}/consumer/{group}/lag")
    def consumer_lag(request: Request, cluster: str, group: str) -> JSONResponse:
        return status(request, cluster, group, show_all=True)

    @app.get("/v3/kafka/{cluster}/consumer/{group}/status")
    def consumer_status(request: Request, cluster: str, group: str) -> JSONResponse:
        return status(request, cluster, group, show_all=False)


def serve(monitor: LagMonitor, host: str, port: int) -> None:
    """Run the application with uvicorn until SIGINT/SIGTERM (quiet: uvicorn logs warnings only)."""
    import uvicorn

    log.info("lag monitor serving", extra=kv(host=host, port=port, bootstrap=monitor.source.bootstrap))
    config = uvicorn.Config(create_app(monitor), host=host, port=port, log_level="warning", access_log=False)
    uvicorn.Server(config).run()
