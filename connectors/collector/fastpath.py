"""The hot routes, served without the framework's per-request layers.

FastAPI resolves dependencies, checks for a telemetry hook and runs its exception and exit-stack layers for
every request: about half of the collector's CPU for a single event. :class:`FastRoutes` sits inside the
request guard (so body and request timeouts still apply) and hands an exact ``(method, path)`` match straight
to its endpoint; every other request goes on to the FastAPI app unchanged (other methods on the same path
still answer 405 there, and the route stays in the OpenAPI document). An :class:`HttpError` is rendered as
the app's handler would; any other exception propagates to the server-error handler (500, logged), as before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from connectors.http import HttpError

__all__ = ["Endpoint", "FastRoutes"]

Endpoint = Callable[[Request], Awaitable[Response]]


class FastRoutes:
    """ASGI middleware: ``routes[(method, path)]`` answers exact matches, ``app`` everything else."""

    def __init__(self, app: ASGIApp, routes: Mapping[tuple[str, str], Endpoint]) -> None:
        self.app = app
        self.routes = dict(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self.routes.get((scope.get("method", ""), scope["path"])) if scope["type"] == "http" else None
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        try:
            response = await endpoint(Request(scope, receive))
        except HttpError as exc:
            response = exc.response()
        await response(scope, receive, send)
