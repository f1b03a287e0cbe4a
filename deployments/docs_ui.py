"""``/docs`` (Swagger UI) and ``/redoc`` served with their JavaScript and CSS from this server.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, so they are blank on a machine
without internet access. ``mount_docs(app)`` serves the same pages with the assets that the
``fastapi-offline`` package ships (the Swagger UI and ReDoc distribution files, kept current by
that package), at ``/docs-assets/<file>``; the pages reference nothing outside this server.

The app must be built without FastAPI's pages, which would take the same paths::

    app = FastAPI(title=..., docs_url=None, redoc_url=None)
    mount_docs(app)

The OpenAPI document stays where FastAPI serves it (``app.openapi_url``, ``/openapi.json``), and
the OAuth2 redirect page at ``app.swagger_ui_oauth2_redirect_url`` as FastAPI would serve it.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import FileResponse, HTMLResponse

from deployments.auth import PUBLIC

__all__ = ["ASSETS_PATH", "mount_docs"]

ASSETS_PATH = "/docs-assets"
_ASSETS = {  # file -> media type; nothing else in the folder is served
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}
_CACHE = {"Cache-Control": "public, max-age=86400"}


def _assets_dir() -> Path:
    folder = Path(str(files("fastapi_offline").joinpath("static")))
    missing = [name for name in _ASSETS if not (folder / name).is_file()]
    if missing:
        raise RuntimeError(
            f"the fastapi-offline package lacks {', '.join(missing)} in {folder}: reinstall it"
        )
    return folder


def mount_docs(app: FastAPI, *, docs_url: str = "/docs", redoc_url: str | None = "/redoc") -> None:
    """Serve Swagger UI at ``docs_url`` and ReDoc at ``redoc_url`` with local assets only.

    Build ``app`` with ``docs_url=None, redoc_url=None``. Paths honour the ASGI ``root_path``,
    as FastAPI's own pages do, so they work behind a proxy that mounts the app under a prefix.
    """
    if app.openapi_url is None:
        raise ValueError("mount_docs needs the OpenAPI document: the app has openapi_url=None")
    openapi_url = app.openapi_url
    folder = _assets_dir()
    redirect_url = app.swagger_ui_oauth2_redirect_url

    @app.get(f"{ASSETS_PATH}/{{name}}", include_in_schema=False, dependencies=[PUBLIC])
    async def docs_asset(name: str) -> FileResponse:
        media_type = _ASSETS.get(name)
        if media_type is None:
            raise HTTPException(status_code=404, detail="not found")
        return FileResponse(folder / name, media_type=media_type, headers=_CACHE)

    @app.get(docs_url, include_in_schema=False, dependencies=[PUBLIC])
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = str(request.scope.get("root_path", "")).rstrip("/")
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=root + redirect_url if redirect_url else None,
            init_oauth=app.swagger_ui_init_oauth,
            swagger_ui_parameters=app.swagger_ui_parameters,
            swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
        )

    if redirect_url:

        @app.get(redirect_url, include_in_schema=False, dependencies=[PUBLIC])
        async def swagger_ui_redirect() -> HTMLResponse:
            return get_swagger_ui_oauth2_redirect_html()

    if redoc_url:

        @app.get(redoc_url, include_in_schema=False, dependencies=[PUBLIC])
        async def redoc(request: Request) -> HTMLResponse:
            root = str(request.scope.get("root_path", "")).rstrip("/")
            return get_redoc_html(
                openapi_url=root + openapi_url,
                title=f"{app.title} - ReDoc",
                redoc_js_url=f"{root}{ASSETS_PATH}/redoc.standalone.js",
                redoc_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
                with_google_fonts=False,
            )
