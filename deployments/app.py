"""The HTTP API as a FastAPI app: :func:`create_app` mounts the routers of ``deployments.routers``
on the error table (:mod:`deployments.errors`) behind one middleware, :class:`deployments.edge.Edge`
(security headers, CORS, request limits, audit trail, error boundary).

The app serves one :class:`~linqra.system.System`: the one handed in (a Serve replica builds it
with the cluster's launcher, see :mod:`deployments.gateway`), or — without one — a system its
lifespan opens from the settings and closes on shutdown, whose runs execute in this process
(what tests and ``uvicorn`` use). Nothing here imports Ray.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from deployments.auth import document_principal, route_permission
from deployments.console import mount_console
from deployments.docs_ui import mount_docs
from deployments.edge import Edge
from deployments.errors import install_error_handlers
from deployments.limits import UPLOAD_ENVELOPE_BYTES
from deployments.routers import ROUTERS
from deployments.schemas import ErrorResponse
from linqra import __version__
from linqra.config import Settings, load_settings
from linqra.system import System

__all__ = ["DESCRIPTION", "api_routes", "create_app"]

DESCRIPTION = """
Linqra on Ray: multi-step AI workflows for many teams, on a Ray cluster.

**Sign in** with `Authorization: Bearer <OIDC access token>` or a team API key
(`Authorization: Bearer lq_…` or `X-API-Key: lq_…`); `X-Team-Id` chooses among your teams.
In the embedded profile's *header mode* `X-Team-Id` alone names the team (no sign-in; not for
shared deployments). Each operation lists the permission it needs (`x-linqra-permission`):
viewer reads, member writes and runs, admin manages keys, members, secrets, budgets and prices.
Errors are `{"error": {"code", "message", "field"?}}` with a 4xx status for bad input, 401 for a
missing or bad credential, 403 for a missing role, 404 for ids that are not your team's.
Request bodies are limited to 1 MiB and 32 levels of JSON nesting by default.
"""
ERRORS: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorResponse, "description": "bad input, unknown id, conflict, …"},
    "5XX": {"model": ErrorResponse, "description": "a dependency is down (503, Retry-After)"},
}


def create_app(
    system: System | None = None,
    *,
    settings: Settings | None = None,
    request_id_header: bool = True,
) -> FastAPI:
    """The API serving ``system``; without one, a system opened from ``settings`` (default: the
    configured ones) for the app's lifetime. ``request_id_header=False`` under a server that
    puts ``X-Request-Id`` on every answer itself (Ray Serve)."""
    if system is not None:
        settings = system.settings
    elif settings is None:
        settings = load_settings()
    owned = system is None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not owned:
            yield
            return
        app.state.system = await System.open(settings)
        try:
            yield
        finally:
            opened, app.state.system = app.state.system, None
            await opened.close()

    app = FastAPI(
        title="Linqra on Ray",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # mount_docs serves /docs and /redoc with local assets (no CDN)
        redoc_url=None,
    )
    app.state.system = system
    install_error_handlers(app, boundary=False)  # the boundary is Edge's
    app.add_middleware(
        Edge,  # security headers, CORS, body limits, audit trail, error boundary: one pass
        cors_origins=settings.http.cors_origins,
        hsts=settings.http.tls,
        max_body_bytes=settings.http.max_body_bytes,
        max_json_depth=settings.http.max_json_depth,
        max_upload_bytes=settings.knowledge.max_upload_bytes + UPLOAD_ENVELOPE_BYTES,
        request_id_header=request_id_header,
    )
    for router in ROUTERS:
        app.include_router(router, responses=ERRORS)
    # the API's routes first: a request is matched against the routes in order (by FastAPI,
    # and again by Serve to name the route in its metrics), and the docs and console pages,
    # whose paths no API route shares, are the rare ones
    mount_docs(app)
    mount_console(app)
    _answer_400_not_422(app)
    return app


def api_routes(app: FastAPI) -> list[APIRoute]:
    """Every API route of ``app``: its own (the docs pages) and those of :data:`ROUTERS`."""
    own = [route for route in app.routes if isinstance(route, APIRoute)]
    return own + [
        route for router in ROUTERS for route in router.routes if isinstance(route, APIRoute)
    ]


def _answer_400_not_422(app: FastAPI) -> None:
    """Request validation errors are 400 here (see :mod:`deployments.errors`), so the schema
    does not list FastAPI's 422."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            document_principal(schema, api_routes(app))
            permissions = {
                (method.lower(), route.path): route_permission(route)
                for route in api_routes(app)
                for method in route.methods or ()
            }
            for path, operations in schema.get("paths", {}).items():
                for method, operation in operations.items():
                    operation.get("responses", {}).pop("422", None)
                    permission = permissions.get((method, path))
                    operation["x-linqra-permission"] = permission or "public"
                    if permission is None:
                        operation["security"] = []
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
