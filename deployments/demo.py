"""A tiny offline quotes service for the examples, the notebook, the benchmarks and the README tour.

``python -m deployments.demo --port 8100`` serves ``GET /api/people/random``,
``GET /api/people`` and ``GET /api/sleep?ms=200`` (an I/O-bound call for
parallelism demos). Starlette + uvicorn, which Ray Serve already installs.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import socket
import threading
import time
from collections.abc import Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

__all__ = ["PEOPLE", "quotes_app", "serve_quotes"]

PEOPLE = [
    {"fullName": "Marcus Aurelius", "born": 121, "school": "stoic", "language": "Greek"},
    {"fullName": "Seneca", "born": -4, "school": "stoic", "language": "Latin"},
    {"fullName": "Epictetus", "born": 50, "school": "stoic", "language": "Greek"},
    {"fullName": "Confucius", "born": -551, "school": "confucian", "language": "Chinese"},
]


async def _random_person(request: Request) -> JSONResponse:
    index = request.query_params.get("i", "")
    pick = int(index) if index.isdigit() else random.randrange(len(PEOPLE))
    return JSONResponse(PEOPLE[pick % len(PEOPLE)])


async def _people(request: Request) -> JSONResponse:
    return JSONResponse({"people": PEOPLE})


async def _sleep(request: Request) -> JSONResponse:
    try:
        ms = min(float(request.query_params.get("ms", "200")), 10_000.0)
    except ValueError:
        return JSONResponse({"error": "ms must be a number"}, status_code=400)
    await asyncio.sleep(ms / 1000)
    return JSONResponse({"slept_ms": ms})


def quotes_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/api/people/random", _random_person),
            Route("/api/people", _people),
            Route("/api/sleep", _sleep),
        ]
    )


def serve_quotes(port: int = 0, host: str = "127.0.0.1") -> tuple[str, Callable[[], None]]:
    """Start the service in a background thread; returns its base URL and a stop function."""
    import uvicorn

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    config = uvicorn.Config(quotes_app(), log_level="warning", access_log=False, backlog=2048)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)

    def stop() -> None:
        server.should_exit = True
        thread.join(10)

    return f"http://{host}:{sock.getsockname()[1]}", stop


def main() -> None:
    parser = argparse.ArgumentParser(description="offline quotes service for Linqra examples")
    parser.add_argument("--port", type=int, default=8100)
    args = parser.parse_args()
    url, _ = serve_quotes(args.port)
    print(f"quotes service on {url}  (GET /api/people/random)", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
