"""A real Alertmanager (Debian's ``prometheus-alertmanager``, installed by
``scripts/ensure-prometheus.sh``) on a free loopback port, not clustered, routing every alert to
webhook receivers the test names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.prometheus import Daemon

__all__ = ["Alertmanager"]


class Alertmanager(Daemon):
    """``with Alertmanager(webhook_url) as am: … am.url …``: one route to one webhook receiver
    (``send_resolved``), grouped per rule, with short waits so a test sees notifications soon."""

    binaries = ("prometheus-alertmanager", "alertmanager")

    def __init__(self, webhook_url: str, *, group_wait: str = "100ms", group_interval: str = "1s"):
        config: dict[str, Any] = {
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
        super().__init__(config)

    def arguments(self, config_file: Path, data: Path) -> list[str]:
        return [f"--config.file={config_file}", f"--storage.path={data}",
                f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address="]  # fmt: skip

    def alerts(self) -> list[dict[str, Any]]:
        """``GET /api/v2/alerts``: the alerts it holds now."""
        answer: list[dict[str, Any]] = self.http.get("/api/v2/alerts").json()
        return answer
