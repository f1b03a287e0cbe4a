"""The web console and the chat widget, served by the gateway as static files.

The console is a single-page app (TypeScript, React; its source in ``console/``) built into
``deployments/console_dist`` and shipped inside the Python package, as Ray's dashboard and
MLflow's UI ship theirs: ``make run`` serves it without Node. ``mount_console(app)`` serves:

* ``/console/assets/<file>`` — the build's content-hashed bundles, cached for a year (gzipped
  when the browser accepts it: the build leaves a ``.gz`` copy of each script and style sheet);
* ``/console/widget.js`` — the embeddable chat widget, cached for five minutes (a page embeds it
  by this stable name);
* ``/console/config.json`` — what the app needs to know before its first API call (how to sign
  in); public, holds no secret;
* every other ``/console/…`` path — ``index.html``, so a reload or a shared link to a page of the
  app (``/console/executions/ex_…``) opens that page; never cached, so a new build is picked up;
  with a Content-Security-Policy that lets the page load and call only this server (and the
  OIDC provider).

The console talks to the gateway only through the public API (``/v1/…``, SSE, WebSocket). When
the package was installed without a build (a source checkout before ``npm run build``),
``/console`` answers 404 with how to build it.
"""

from __future__ import annotations

import mimetypes
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse

from deployments.auth import PUBLIC

__all__ = ["CONSOLE_DIR", "CONSOLE_PATH", "mount_console"]

CONSOLE_PATH = "/console"
CONSOLE_DIR = Path(
    os.environ.get("LINQRA_CONSOLE_DIR") or Path(__file__).resolve().parent / "console_dist"
)  # LINQRA_CONSOLE_DIR: serve another build (``vite build --outDir …`` while developing)
_IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}
_SHORT = {"Cache-Control": "public, max-age=300"}
_NO_CACHE = {"Cache-Control": "no-cache"}


def mount_console(app: FastAPI, *, folder: Path = CONSOLE_DIR) -> None:
    """Serve the console's build in ``folder`` at :data:`CONSOLE_PATH` (see the module doc)."""
    root = folder.resolve()

    @app.get(CONSOLE_PATH, include_in_schema=False, dependencies=[PUBLIC])
    async def console_root() -> RedirectResponse:
        return RedirectResponse(f"{CONSOLE_PATH}/", status_code=308)

    @app.get(f"{CONSOLE_PATH}/config.json", include_in_schema=False, dependencies=[PUBLIC])
    async def console_config(request: Request) -> JSONResponse:
        return JSONResponse(_config(request), headers=_NO_CACHE)

    @app.get(f"{CONSOLE_PATH}/{{path:path}}", include_in_schema=False, dependencies=[PUBLIC])
    async def console_file(path: str, request: Request) -> FileResponse:
        index = root / "index.html"
        if not index.is_file():
            raise HTTPException(
                status_code=404,
                detail="the console is not built: cd console && npm ci && npm run build",
            )
        target = _file_in(root, path)
        if target is not None and target.name != "index.html":
            headers = dict(_IMMUTABLE if path.startswith("assets/") else _SHORT)
            return _maybe_gzipped(target, request, headers)
        if path.startswith("assets/") or (target is None and "." in path.rsplit("/", 1)[-1]):
            raise HTTPException(status_code=404, detail="not found")  # a missing file, not a page
        headers = {**_NO_CACHE, "Content-Security-Policy": _policy(request)}
        return FileResponse(index, media_type="text/html", headers=headers)


def _file_in(root: Path, path: str) -> Path | None:
    """The file ``path`` names inside ``root``; None when there is none — a path that leaves
    ``root`` (``..``, a symbolic link), or one the file system refuses (a NUL byte, too long)."""
    if not path:
        return None
    try:
        target = (root / path).resolve()
        return target if target.is_relative_to(root) and target.is_file() else None
    except (OSError, ValueError):
        return None


def _maybe_gzipped(target: Path, request: Request, headers: dict[str, str]) -> FileResponse:
    """The build's gzip copy of ``target`` (``<file>.gz``, made by ``console/build-info.mjs``)
    to a browser that accepts gzip; the file itself otherwise."""
    headers["Vary"] = "Accept-Encoding"
    packed = target.with_name(target.name + ".gz")
    if "gzip" in request.headers.get("accept-encoding", "") and packed.is_file():
        media_type = mimetypes.guess_type(target.name)[0]  # the original's type, not gzip's
        headers["Content-Encoding"] = "gzip"
        return FileResponse(packed, media_type=media_type, headers=headers)
    return FileResponse(target, headers=headers)


def _policy(request: Request) -> str:
    """The console page's Content-Security-Policy: scripts, styles and requests from this
    server only — and, signed in with OIDC, requests to the provider (discovery, tokens) — so
    an injected script could neither load nor send the page's token elsewhere. Styles allow
    inline ``style`` (Mantine's CSS variables and component styles)."""
    connect = "'self'"
    issuer = (_config(request).get("oidc") or {}).get("issuer")
    if issuer:
        parts = urlsplit(issuer)
        connect += f" {parts.scheme}://{parts.netloc}"
    return (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        f"img-src 'self' data:; connect-src {connect}; frame-ancestors 'none'; "
        "base-uri 'self'; form-action 'self'; object-src 'none'"
    )


def _config(request: Request) -> dict[str, Any]:
    system = request.app.state.system
    auth = system.settings.auth if system is not None else None
    mode = auth.mode if auth is not None else "header"
    out: dict[str, Any] = {"authMode": mode}
    if auth is not None and mode == "oidc":
        out["oidc"] = {
            "issuer": auth.oidc.issuer,
            "clientId": auth.oidc.console_client_id,
            "scopes": auth.oidc.console_scopes,
        }
    return out
