"""A real Milvus standalone server (PyPI ``milvus`` 2.3.5, "Embedded Milvus": the server binary
with its etcd and local storage) for the tests of the Milvus adapter against a server.

One per test session: its etcd always binds 127.0.0.1:2379/2380. Starting takes about 10 s
(``default_server.start()`` returns once the server answers); stopping about 1 s.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def milvus_standalone(base_dir: Path) -> Iterator[str]:
    """Start the server with its data under ``base_dir``; yield its URI; stop it."""
    from milvus import default_server

    default_server.set_base_dir(str(base_dir))
    default_server.start()
    try:
        yield f"http://127.0.0.1:{default_server.listen_port}"
    finally:
        default_server.stop()
