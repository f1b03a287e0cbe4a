"""Servers the benchmarks start, each in a process of its own (its CPU is not the driver's) on a
free loopback port, stopped when its ``with`` block ends:

* :func:`app_server` — Linqra's HTTP app under uvicorn, as ``uvicorn deployments.app:…`` runs it;
* :func:`server_process` — any ``target(*args, port)``, e.g. :func:`serve_app` or
  :func:`serve_asgi` with an app factory such as :func:`fake_openai_app`;
* :func:`script_server` — ``python ARGS… PORT``, e.g. :func:`quotes_server` (the demo service).

Targets run in processes started with ``spawn``: they import this module, not the caller's.
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx

from benchmarks._support import ROOT, free_port

__all__ = [
    "FAKE_OPENAI",
    "app_server",
    "fake_openai_app",
    "quotes_server",
    "script_server",
    "serve_app",
    "serve_asgi",
    "server_process",
]


def serve_app(settings: Any, port: int) -> None:
    """In a child process: the HTTP app under uvicorn, as ``uvicorn deployments.app:…`` would."""
    import uvicorn

    from deployments.app import create_app

    uvicorn.run(
        create_app(settings=settings),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
    )


@contextlib.contextmanager
def app_server(settings: Any) -> Iterator[tuple[str, int]]:
    """The app of ``settings`` in its own process; yields its URL and process id."""
    with server_process(serve_app, settings) as served:
        yield served


def serve_asgi(factory: str, port: int) -> None:
    """In a child process: the ASGI app ``module:function()`` under uvicorn."""
    import uvicorn

    module, _, name = factory.partition(":")
    app = getattr(importlib.import_module(module), name)()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


@contextlib.contextmanager
def server_process(target: Any, *args: Any) -> Iterator[tuple[str, int]]:
    """``target(*args, port)`` — a server — in its own process; yields its URL and process id.
    A server that exits before it listens fails at once (another session's half-made edit in
    the shared tree, say), not after a timeout."""
    port = free_port()
    proc = multiprocessing.get_context("spawn").Process(
        target=target, args=(*args, port), daemon=True
    )
    proc.start()
    try:
        deadline = time.monotonic() + 180
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
                break
            if not proc.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{getattr(target, '__name__', target)}{args[:1]} did not start")
            time.sleep(0.05)
        assert proc.pid is not None
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        proc.terminate()  # SIGTERM: uvicorn shuts down, the app's lifespan closes its system
        proc.join(30)
        if proc.is_alive():
            proc.kill()


def fake_openai_app() -> Any:
    """The OpenAI fake, plus ``GET /_bench/streams?tag=…``: the ``stream`` record (words sent,
    ``closed_at``) of each streamed request with ``tag`` in one of its messages. Served by
    ``server_process(serve_asgi, "benchmarks._servers:fake_openai_app")``."""
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from linqra.testing.fake_openai import fake_openai_app as openai_app

    requests: list[dict[str, Any]] = []
    app = openai_app(requests)

    async def streams(request: Request) -> JSONResponse:
        tag = request.query_params["tag"]
        return JSONResponse(
            [
                r["stream"]
                for r in requests
                if "stream" in r and any(tag in (m["content"] or "") for m in r["body"]["messages"])
            ]
        )

    app.router.routes.append(Route("/_bench/streams", streams))
    return app


FAKE_OPENAI = "benchmarks._servers:fake_openai_app"
""":func:`fake_openai_app` as :func:`serve_asgi` takes it."""


@contextlib.contextmanager
def script_server(args: list[str], probe: str) -> Iterator[str]:
    """``python ARGS… PORT`` serving on a free loopback port until the block ends; yields its
    URL once ``probe`` answers."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, *args, str(port)], cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}{probe}", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, f"{args} did not start"
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


def quotes_server() -> Any:
    """The demo service in a process of its own (its CPU is not the driver's); yields its URL."""
    return script_server(["-m", "deployments.demo", "--port"], "/api/sleep?ms=0")
