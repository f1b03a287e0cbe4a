"""The embedded Milvus Lite server ``linqra up`` starts stops when what started it is gone, also
when that was killed and could not stop it (``linqra.vectors.lite_server.exit_with_parent``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parents[1]

STARTER = """
import sys
from pathlib import Path
from linqra.vectors.embedded import EmbeddedMilvus

server = EmbeddedMilvus(Path(sys.argv[1])).start()
print(server._proc.pid, flush=True)
sys.stdin.read()  # until the test kills this process
"""


def test_a_killed_starter_leaves_no_milvus_server_behind(tmp_path: Path) -> None:
    starter = subprocess.Popen(
        [sys.executable, "-c", STARTER, str(tmp_path / "milvus")],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert starter.stdout is not None
        server = psutil.Process(int(starter.stdout.readline()))
        assert server.is_running() and "lite_server" in " ".join(server.cmdline())
        os.kill(starter.pid, signal.SIGKILL)  # no chance to stop its server
        starter.wait(10)
        deadline = time.monotonic() + 30
        while server.is_running() and server.status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline, "the Milvus Lite server outlived its starter"
            time.sleep(0.1)
    finally:
        starter.kill()
        starter.wait(10)
