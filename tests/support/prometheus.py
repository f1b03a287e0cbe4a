"""A real Prometheus (Debian's ``prometheus``, ``scripts/ensure-prometheus.sh``) on a free
loopback port, and its HTTP query API: what a test asserts metrics through."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import httpx
import yaml

from linqra.testing.servers import free_port, wait_port

__all__ = ["Daemon", "Prometheus", "shipped_config"]

ROOT = Path(__file__).resolve().parents[2]


def shipped_config(discovery_file: Path, interval: str = "1s") -> dict[str, Any]:
    """``configs/prometheus.yml`` as shipped, scraping ``discovery_file`` every ``interval``."""
    config: dict[str, Any] = yaml.safe_load((ROOT / "configs/prometheus.yml").read_text())
    config["global"] = {"scrape_interval": interval, "evaluation_interval": interval}
    [job] = config["scrape_configs"]
    job["file_sd_configs"] = [{"files": [str(discovery_file)], "refresh_interval": "1s"}]
    return config


class Daemon:
    """A daemon of the Prometheus family (Prometheus, Alertmanager): its YAML config written to
    a private directory, on a free loopback port, ready once ``/-/ready`` answers 200; stopped
    and its files removed at the end of the ``with``."""

    binaries: tuple[str, ...] = ()
    """The program's names on PATH, the first found is run."""

    def __init__(self, config: dict[str, Any]) -> None:
        binary = next((found for name in self.binaries if (found := shutil.which(name))), None)
        if binary is None:
            raise RuntimeError(
                f"{self.binaries[0]} is not installed: run scripts/ensure-prometheus.sh"
            )
        self.binary, self.config = binary, config
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self._dir = Path(tempfile.mkdtemp(prefix=f"{self.binaries[0]}-"))
        self.http = httpx.Client(base_url=self.url, timeout=10)

    def arguments(self, config_file: Path, data: Path) -> list[str]:
        """The program's flags beside its config file, data directory and listen address."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        path = self._dir / "config.yml"
        path.write_text(yaml.safe_dump(self.config))
        self.proc = subprocess.Popen(
            [self.binary, *self.arguments(path, self._dir / "data"), "--log.level=warn"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_port(self.port, timeout=30, proc=self.proc)
        self.wait(lambda: self.http.get("/-/ready").status_code == 200, f"{self.binary} ready")
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

    def wait(self, check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
        """Poll ``check`` until it returns something true (returned), at most ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            got = check()
            if got:
                return got
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {timeout:g}s for {what}")
            time.sleep(0.1)


class Prometheus(Daemon):
    """``with Prometheus(config) as prom: prom.value('sum(up)')``."""

    binaries = ("prometheus",)

    def arguments(self, config_file: Path, data: Path) -> list[str]:
        return [f"--config.file={config_file}", f"--storage.tsdb.path={data}",
                f"--web.listen-address=127.0.0.1:{self.port}"]  # fmt: skip

    # -- the HTTP API -------------------------------------------------------------------
    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """``GET /api/v1/query``: the result vector (``AssertionError`` with Prometheus's
        message when the expression does not parse)."""
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = at
        body = self.http.get("/api/v1/query", params=params).json()
        assert body["status"] == "success", f"{expr}: {body.get('error')}"
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def value(self, expr: str) -> float | None:
        """The value of an expression that yields one sample (``sum(…)``), ``None`` for none."""
        result = self.query(expr)
        assert len(result) <= 1, f"{expr} gave {len(result)} series"
        return float(result[0]["value"][1]) if result else None

    def metric_names(self) -> set[str]:
        return set(self.http.get("/api/v1/label/__name__/values").json()["data"])

    def wait_value(self, expr: str, want: float, timeout: float = 30.0) -> None:
        """Poll until ``expr`` is ``want``; on timeout, say what it was."""
        seen: list[float | None] = []

        def check() -> bool:
            seen.append(self.value(expr))
            return seen[-1] == want

        try:
            self.wait(check, f"{expr} == {want}", timeout)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}; last value {seen[-1] if seen else None}") from None
