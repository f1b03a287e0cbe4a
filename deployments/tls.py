"""HTTPS for the gateway: ``http.tls_certfile`` and ``http.tls_keyfile`` handed to whichever
server terminates TLS.

* On Ray Serve, Serve's proxy does: :func:`serve_http_options` is the ``http_options`` of
  ``serve.start`` (Serve's own ``ssl_certfile`` / ``ssl_keyfile``, see
  ``ray.serve.config.HTTPOptions``). Serve's proxy on every node reads the files, so they must
  exist at the same path on each node.
* In process (tests, ``uvicorn``), uvicorn does: :func:`uvicorn_tls_options` are the keyword
  arguments of ``uvicorn.Config`` / ``uvicorn.run``.

Serve's HAProxy ingress (``RAY_SERVE_ENABLE_HA_PROXY=1``, the default for a cluster Linqra
starts, see :mod:`deployments.serve_config`) serves plain HTTP only: its frontend binds without
TLS and health-checks the replicas over HTTP, so with certificates configured the replicas
never pass and ``serve.run`` waits forever (ray-project/ray#64260). :func:`check_tls_ingress`
refuses that combination before anything starts, with one line saying what to do.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, TypedDict

from linqra.config import HttpSettings

__all__ = [
    "HAPROXY_ENV",
    "TlsFiles",
    "check_tls_ingress",
    "haproxy_ingress",
    "serve_http_options",
    "tls_ingress_problem",
    "uvicorn_tls_options",
]

HAPROXY_ENV = "RAY_SERVE_ENABLE_HA_PROXY"


class TlsFiles(TypedDict, total=False):
    """The two files, named as Serve's ``HTTPOptions`` and uvicorn both name them."""

    ssl_certfile: str
    ssl_keyfile: str


def haproxy_ingress(environ: Mapping[str, str] | None = None) -> bool:
    """Whether Serve's ingress is HAProxy: ``RAY_SERVE_ENABLE_HA_PROXY=1``, or unset (what
    :func:`deployments.serve_config.apply_ingress_env` then chooses for a cluster Linqra starts)."""
    env = os.environ if environ is None else environ
    return env.get(HAPROXY_ENV, "1") == "1"


def tls_ingress_problem(http: HttpSettings, environ: Mapping[str, str] | None = None) -> str | None:
    """The one-line refusal when TLS is configured and the ingress is HAProxy, else ``None``."""
    if not http.tls or not haproxy_ingress(environ):
        return None
    env = os.environ if environ is None else environ
    chosen = f"{HAPROXY_ENV}=1" if HAPROXY_ENV in env else f"{HAPROXY_ENV} unset (Linqra's default)"
    return (
        f"http.tls_certfile/http.tls_keyfile need Serve's proxy ingress, but {chosen} selects "
        "HAProxy, which serves plain HTTP only: start with RAY_SERVE_ENABLE_HA_PROXY=0 so "
        "Serve's proxy serves HTTPS, or unset http.tls_certfile/http.tls_keyfile and "
        "terminate TLS in front of HAProxy (a load balancer or reverse proxy)"
    )


def check_tls_ingress(http: HttpSettings, environ: Mapping[str, str] | None = None) -> None:
    """Exit with :func:`tls_ingress_problem`'s line (status 1, no traceback) when there is one."""
    problem = tls_ingress_problem(http, environ)
    if problem is not None:
        raise SystemExit(problem)


def serve_http_options(
    http: HttpSettings, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """``serve.start(http_options=...)``: host, port and, with TLS, the certificate and key.

    Refuses TLS behind HAProxy (:func:`check_tls_ingress`) first.
    """
    check_tls_ingress(http, environ)
    return {"host": http.host, "port": http.port, **_tls_files(http)}


def uvicorn_tls_options(http: HttpSettings) -> TlsFiles:
    """``uvicorn.Config(app, ..., **uvicorn_tls_options(http))``: empty without TLS."""
    return _tls_files(http)


def _tls_files(http: HttpSettings) -> TlsFiles:
    if http.tls_certfile is None or http.tls_keyfile is None:
        return {}
    return {"ssl_certfile": str(http.tls_certfile), "ssl_keyfile": str(http.tls_keyfile)}
