"""Ray's cluster autoscaler, for real, on this machine: a head started with
``provider: type: fake_multinode``, whose autoscaler (the head's monitor process) starts and
stops worker nodes as local processes (``ray._private.node.Node``) as the demand says.

:class:`FakeAutoscalingCluster` sets up what ``ray.cluster_utils.AutoscalingCluster`` does (see
Ray's ``python/ray/tests/test_autoscaler_fake_multinode.py``) with three differences it needs
here: that class runs ``ray stop --force`` first and last, which ends *every* Ray cluster on the
machine (the test session's, another process's); it starts the GCS on port 6379, which a Redis
may hold; and it reads ``fake_multi_node/example.yaml``, which Ray's wheel does not ship. So the
head is ``ray start --head --block`` in a process of its own, on a free port (told to the fake
provider as ``gcs_address``), under a temporary directory of its own; shutting down ends that
process and then, by process id, whatever process still names that directory or port (a worker
node's raylet, which the provider starts detached).

Run as a driver (a Ray process joins one cluster only, and the pytest session has its own)::

    python -m tests.support.autoscaler --out result.json [--vector-uri http://…]

A Linqra cluster of actors on a head with no CPU; a workflow with a CPU step (``executor:
task``, a Ray task wanting one CPU) waits until the autoscaler adds a worker node, runs there,
and once the node has been idle ``idle_timeout_minutes`` the autoscaler removes it. Prints (and
writes) a JSON result: the times from submitting to the node being up, to the execution's end,
and to the node being gone; ``tests/test_cluster_autoscaler.py`` asserts on it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from linqra.testing.servers import free_port
from tests.support.multinode import wait_for

__all__ = ["WORKER_RESOURCE", "FakeAutoscalingCluster", "main"]

NAMESPACE = "linqra-autoscaler"
WORKER_RESOURCE = "linqra_burst"
"""The custom resource of the worker node type: tells its nodes apart from the head."""
WORKER_TYPES = {
    "burst": {
        "resources": {"CPU": 1, WORKER_RESOURCE: 1, "object_store_memory": 100 * 1024 * 1024},
        "node_config": {},
        "min_workers": 0,
        "max_workers": 2,
    }
}


class FakeAutoscalingCluster:
    """``start()`` the head (``head_cpus`` CPUs) with the autoscaler, ``address`` to connect,
    ``shutdown()`` everything it started."""

    def __init__(
        self,
        worker_types: dict[str, Any],
        *,
        head_cpus: int = 0,
        idle_timeout_minutes: float = 0.05,
    ) -> None:
        self.worker_types = worker_types
        self.head_cpus = head_cpus
        self.idle_timeout_minutes = idle_timeout_minutes
        self.port = free_port()
        self.ip = "127.0.0.1"
        self.address = f"{self.ip}:{self.port}"
        self.temp_dir = tempfile.mkdtemp(prefix="lqas-")  # short: Ray's socket paths are long
        self.head: subprocess.Popen[bytes] | None = None

    def config(self) -> dict[str, Any]:
        """The cluster config: Ray's fake_multi_node/example.yaml with our node types."""
        return {
            "cluster_name": "linqra-fake",
            "max_workers": sum(t["max_workers"] for t in self.worker_types.values()),
            "provider": {
                "type": "fake_multinode",
                "use_node_id_as_ip": True,
                "disable_node_updaters": True,
                "disable_launch_config_check": True,
                "gcs_address": self.address,
            },
            "available_node_types": {
                **self.worker_types,
                "ray.head.default": {
                    "resources": {"CPU": self.head_cpus},
                    "node_config": {},
                    "max_workers": 0,
                },
            },
            "head_node_type": "ray.head.default",
            "auth": {},
            "upscaling_speed": 1.0,
            "idle_timeout_minutes": self.idle_timeout_minutes,
            "docker": {},
            **{key: [] for key in ("initialization_commands", "setup_commands",
                                   "head_setup_commands", "worker_setup_commands",
                                   "head_start_ray_commands", "worker_start_ray_commands",
                                   "cluster_synced_files", "rsync_exclude", "rsync_filter")},
            "file_mounts": {},
            "file_mounts_sync_continuously": False,
        }  # fmt: skip

    def start(self) -> float:
        """Start the head and wait for its GCS; the seconds it took."""
        t0 = time.monotonic()
        config = Path(self.temp_dir) / "autoscaling.json"
        config.write_text(json.dumps(self.config()))
        ray_cli = str(Path(sys.executable).with_name("ray"))
        env = {
            **os.environ,
            "RAY_FAKE_CLUSTER": "1",
            "AUTOSCALER_UPDATE_INTERVAL_S": "1",
            "RAY_AUTH_MODE": "disabled",
            "RAY_USAGE_STATS_ENABLED": "0",
        }
        self.head = subprocess.Popen(
            [ray_cli, "start", "--head", "--block", f"--port={self.port}",
             f"--node-ip-address={self.ip}", f"--num-cpus={self.head_cpus}",
             f"--autoscaling-config={config}", f"--temp-dir={self.temp_dir}",
             "--include-dashboard=false", f"--dashboard-agent-listen-port={free_port()}",
             f"--ray-client-server-port={free_port()}", "--disable-usage-stats"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        )  # fmt: skip

        def up() -> bool:
            assert self.head is not None
            if self.head.poll() is not None:
                raise RuntimeError(f"ray start exited: {self.head.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            with socket.socket() as s:
                return s.connect_ex((self.ip, self.port)) == 0

        wait_for("the head's GCS", up, 60)
        return round(time.monotonic() - t0, 2)

    def processes(self) -> list[psutil.Process]:
        """Every process of this cluster still running: those naming its directory or port."""
        port = re.compile(rf"(?<![\d.]){re.escape(self.ip)}:{self.port}(?!\d)")
        found = []
        for proc in psutil.process_iter(["cmdline"]):
            line = " ".join(proc.info.get("cmdline") or ())
            if proc.pid != os.getpid() and (self.temp_dir in line or port.search(line)):
                found.append(proc)
        return found

    def shutdown(self) -> None:
        """End ``ray start`` and every process of the cluster at once (SIGTERM, then SIGKILL
        after 3 s): waiting for ``ray start --block`` to stop its node took 30 s here."""
        procs = self.processes()
        if self.head is not None and self.head.poll() is None:
            procs.append(psutil.Process(self.head.pid))
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                proc.terminate()
        _, alive = psutil.wait_procs(procs, timeout=3)
        for proc in alive:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        if self.head is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.head.wait(10)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _burst_nodes() -> list[str]:
    import ray

    return [
        node["NodeID"]
        for node in ray.nodes()  # type: ignore[no-untyped-call]
        if node["Alive"] and WORKER_RESOURCE in node["Resources"]
    ]


def scenario(settings: Any, cluster: FakeAutoscalingCluster) -> dict[str, Any]:
    """Linqra's actors on the CPU-less head, then a workflow whose CPU step needs a node."""
    import ray

    from actors.cluster import Readiness, start_cluster

    out: dict[str, Any] = {}
    t = time.monotonic()
    actors = start_cluster(settings)
    wait_for("Linqra's actors answering", lambda: _ready(Readiness(settings)), 120, 0.5)
    out["actors_s"] = round(time.monotonic() - t, 2)
    out["nodes_before"] = len(_burst_nodes())
    body = {"mode": "sequential", "steps": [  # an I/O step (the head), then a CPU step
        {"step": 1, "target": "wait", "params": {"seconds": 0.1}},
        {"step": 2, "target": "wait", "executor": "task", "params": {"seconds": 1}},
    ]}  # fmt: skip
    t0 = time.monotonic()
    ref = actors.runner.run_definition.remote("autoscaler", body, {}, timeout=120)
    seen: list[str] = []

    def record_or_node() -> Any:
        seen.extend(n for n in _burst_nodes() if n not in seen)
        ready, _ = ray.wait([ref], timeout=0)
        return ready

    node_up = None
    while not record_or_node():
        if seen and node_up is None:
            node_up = round(time.monotonic() - t0, 2)
        assert time.monotonic() - t0 < 120, "the execution did not end within 120 s"
        time.sleep(0.2)
    record = ray.get(ref)
    out["ended_s"] = round(time.monotonic() - t0, 2)
    out["node_up_s"] = node_up if node_up is not None else out["ended_s"]
    out["status"] = record["status"]
    out["execution_error"] = record.get("error")
    out["steps"] = {str(s["step"]): s["status"] for s in record["steps"]}
    out["nodes_added"] = len(seen)
    out["nodes_at_end"] = len(_burst_nodes())
    wait_for("the idle node removed", lambda: not _burst_nodes(), 90, 0.5)
    out["node_gone_s"] = round(time.monotonic() - t0, 2)
    return out


def _ready(readiness: Any) -> bool:
    try:
        asyncio.run(asyncio.wait_for(readiness.check(), 10))
    except Exception:
        return False
    return True


def build_settings(data_dir: Path, vector_uri: str) -> Any:
    from linqra._config_alerts import AlertSettings
    from linqra.config import (
        AgentSettings,
        ExecutionSettings,
        KnowledgeSettings,
        MetricsSettings,
        Settings,
    )

    base = Settings(
        data_dir=data_dir,
        execution=ExecutionSettings(
            io_pool_size=1, cpu_pool_size=0, heartbeat_seconds=0.5, stale_after_seconds=3
        ),
        agents=AgentSettings(async_step_workers=0, events_url="memory://"),
        knowledge=KnowledgeSettings(vector_uri=vector_uri),
        metrics=MetricsSettings(enabled=False),
        alerts=AlertSettings(enabled=False),
    )
    ray_section = base.ray.model_copy(update={"namespace": NAMESPACE})
    return base.model_copy(update={"ray": ray_section}).portable()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m tests.support.autoscaler")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--vector-uri", help="a running Milvus (Lite) server; else one is started")
    args = parser.parse_args(argv)
    t0 = time.monotonic()
    data_dir = Path(tempfile.mkdtemp(prefix="linqra-autoscaler-"))
    os.environ["RAY_AUTH_MODE"] = "disabled"  # the head was started without a token
    root = str(Path(__file__).resolve().parents[2])  # the actors import this checkout
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    milvus = None
    if args.vector_uri is None:
        from linqra.vectors import EmbeddedMilvus

        milvus = EmbeddedMilvus(data_dir / "milvus").start()
    vector_uri = args.vector_uri or milvus.uri  # type: ignore[union-attr]
    cluster = FakeAutoscalingCluster(WORKER_TYPES)
    result: dict[str, Any] = {"worker_types": WORKER_TYPES}
    try:
        import ray

        result["head_s"] = cluster.start()
        ray.init(address=cluster.address, namespace=NAMESPACE, log_to_driver=False)
        result.update(scenario(build_settings(data_dir, vector_uri), cluster))
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        with contextlib.suppress(Exception):
            import ray

            ray.shutdown()  # type: ignore[no-untyped-call]
        t = time.monotonic()
        cluster.shutdown()
        result["shutdown_s"] = round(time.monotonic() - t, 2)
        result["left_running"] = len(cluster.processes())
        if milvus is not None:
            milvus.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    result["total_s"] = round(time.monotonic() - t0, 2)
    text = json.dumps(result, indent=2, default=str)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return result


if __name__ == "__main__":
    sys.exit(1 if "error" in main() else 0)
