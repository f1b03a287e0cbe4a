"""Milvus Lite as ``linqra up`` runs it: one server process per data directory, on loopback."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from pathlib import Path

from linqra.vectors.base import VectorStoreError

__all__ = ["EmbeddedMilvus"]


class EmbeddedMilvus:
    """One Milvus Lite server on loopback for a data directory (Milvus Lite allows one process
    per directory; every Linqra process connects to this one by URI): ``milvus-lite server``
    with the search fast paths of :mod:`linqra.vectors.lite_server`.

    Started by ``linqra up`` (and the test fixtures); stopped with :meth:`stop`.
    """

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or _free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> EmbeddedMilvus:
        self.spawn()
        return self.wait_ready(timeout)

    def spawn(self) -> None:
        """Start the server's process (``linqra up`` does it on its main thread, before Ray:
        a fork in a thread racing ``ray.init``'s threads once failed with EFAULT)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.data_dir.parent / "milvus-lite.log", "ab")  # noqa: SIM115 - the child owns it
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "linqra.vectors.lite_server", "server", "--data-dir", str(self.data_dir),
             "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in a terminal reaches us, and we stop it in order
        )  # fmt: skip
        log.close()

    def wait_ready(self, timeout: float = 60.0) -> EmbeddedMilvus:
        """Wait, at most ``timeout`` seconds, until the spawned server listens."""
        assert self._proc is not None, "spawn() first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise VectorStoreError(
                    f"milvus-lite exited with {self._proc.returncode}; see "
                    f"{self.data_dir.parent / 'milvus-lite.log'}"
                )
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.5),
            ):
                return self
            time.sleep(0.1)
        self.stop()
        raise VectorStoreError(f"milvus-lite did not listen on port {self.port} in {timeout:.0f}s")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
