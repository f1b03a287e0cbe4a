"""A real Alertmanager (Debian's ``prometheus-alertmanager``, installed by
``scripts/ensure-prometheus.sh``) on a free loopback port, not clustered, routing every alert to
webhook receivers the test names."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from linqra.testing.servers import free_port, wait_port

__all__ = ["Alertmanager"]


class Alertmanager:
    """``with Alertmanager(webhook_url) as am: … am.url …``: one route to one webhook receiver
    (``send_resolved``), grouped per rule, with short waits so a test sees notifications soon."""

    def __init__(self, webhook_url: str, *, group_wait: str = "100ms", group_interval: str = "1s"):
        binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
        if binary is None:
            raise RuntimeError(
                "prometheus-alertmanager is not installed: run scripts/ensure-prometheus.sh"
            )
        self.binary = binary
        self.config: dict[str, Any] = {
            "route": {
                "receiver": "linqra-test",
                "group_by": ["alertname", "rule_id"],
                "group_wait": group_wait,
                "group_interval": group_interval,
                "repeat_interval": "1h",
            },
            "receivers": [
                {
                    "name": "linqra-test",
                    "webhook_configs": [{"url": webhook_url, "send_resolved": True}],
                }
            ],
        }
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self._dir = Path(tempfile.mkdtemp(prefix="alertmanager-"))
        self.http = httpx.Client(base_url=self.url, timeout=10)

    def __enter__(self) -> Alertmanager:
        path = self._dir / "alertmanager.yml"
        path.write_text(yaml.safe_dump(self.config))
        self.proc = subprocess.Popen(
            [self.binary, f"--config.file={path}", f"--storage.path={self._dir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address=",
             "--log.level=warn"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_port(self.port, timeout=30, proc=self.proc)
        deadline = time.monotonic() + 30
        while self.http.get("/-/ready").status_code != 200:
            if time.monotonic() > deadline:
                raise TimeoutError("Alertmanager did not become ready")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.http.close()
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self._dir, ignore_errors=True)

    def alerts(self) -> list[dict[str, Any]]:
        """``GET /api/v2/alerts``: the alerts it holds now."""
        answer: list[dict[str, Any]] = self.http.get("/api/v2/alerts").json()
        return answer
