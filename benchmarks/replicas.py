"""B20 — gateway replicas (issue 17 part 2): the gateway's throughput with 1, 2 and 4 replicas
on a three-node local cluster, and how long a replica takes to come up under load.

    python -m benchmarks.replicas [--seconds 8] [--rounds 2] [--replicas 1,2,4]

Three Ray nodes on this machine (``ray.cluster_utils.Cluster``: a head and two workers of one
CPU each, as the multi-node tests start them), Linqra's actors
and its gateway on Serve behind the HAProxy ingress (one proxy, on the head: every node's proxy
would want the same port of the one machine).

throughput  ``wrk`` (16 connections) on a team-scoped read (``GET /v1/workflows/{id}``), as
            ``benchmarks.compare_cluster`` measures it (``benchmarks._support.wrk``), with the
            gateway at a fixed 1, 2 and 4 replicas (``num_replicas``; replicas hold no CPU, Serve
            spreads them over the nodes); ``--rounds`` interleaved rounds, each ratio to one
            replica the median of the rounds' own ratios. Where each replica ran is recorded.
scale_up    the gateway autoscaled from one replica (at most two, ``target_ongoing_requests``
            2, ``upscale_delay_s`` 0.5, metrics every 0.5 s) and the same load applied: seconds
            from the start of the load until Serve reports the second replica RUNNING, and until
            it serves — the first 0.2 s in which its process spent 50 ms of CPU or more (a
            replica answers no requests before the proxy routes to it; idle it uses next to none).

Results are printed and written to benchmarks/results/replicas.json with the ``uptime`` load
before and after each part. On a two-core machine every replica, proxy and node shares the same
two cores as wrk itself: more replicas can only add what one replica leaves idle of them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from benchmarks._support import (
    BENCH_TEAM,
    NAMESPACE,
    bench_settings,
    free_port,
    stamp,
    uptime,
    wrk,
)
from deployments.serve_config import APP_NAME, apply_ingress_env, logging_config

RESULTS = Path(__file__).resolve().parent / "results" / "replicas.json"
QUICK = {"graceful_shutdown_timeout_s": 1, "graceful_shutdown_wait_loop_s": 0.2}
SCALE_UP = {
    "min_replicas": 1,
    "max_replicas": 2,
    "target_ongoing_requests": 2,
    "upscale_delay_s": 0.5,
    "downscale_delay_s": 600,
    "metrics_interval_s": 0.5,
    "look_back_period_s": 1,
}


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _until(what: str, check: Any, timeout: float, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:g}s")
        time.sleep(every)
    return value


class Nodes:
    """A head and two worker nodes of one CPU each; this process connected to the head."""

    def __init__(self) -> None:
        self.cluster: Any = None
        self.ids: dict[str, str] = {}

    def start(self) -> dict[str, float]:
        import ray
        from ray.cluster_utils import Cluster

        t0 = time.monotonic()
        head = {"num_cpus": 1, "include_dashboard": False}
        self.cluster = Cluster(initialize_head=True, head_node_args=head)
        nodes = {"head": self.cluster.head_node}
        nodes.update({label: self.cluster.add_node(num_cpus=1) for label in ("node_a", "node_b")})
        self.cluster.wait_for_nodes()
        ray.init(address=self.cluster.address, namespace=NAMESPACE, log_to_driver=False)
        self.ids = {label: node.node_id for label, node in nodes.items()}
        return {"nodes_s": round(time.monotonic() - t0, 2)}

    def label(self, node_id: str | None) -> str:
        return next((label for label, known in self.ids.items() if known == node_id), "?")

    def shutdown(self) -> None:
        import ray

        ray.shutdown()  # type: ignore[no-untyped-call]
        if self.cluster is not None:
            self.cluster.shutdown()  # type: ignore[no-untyped-call]


class Bench:
    def __init__(self, seconds: float, rounds: int) -> None:
        self.seconds, self.rounds = seconds, rounds
        self.nodes = Nodes()
        self.data = Path(tempfile.mkdtemp(prefix="linqra-b20-"))
        settings = bench_settings(self.data)
        # the limiter runs on every request as in production; its team limit is not the subject
        limits = settings.rate_limits.model_copy(update={"team": "100000000/minute"})
        self.settings = settings.model_copy(update={"rate_limits": limits})
        self.shipped = self.settings.model_dump_json()
        self.base = ""

    def start(self) -> dict[str, float]:
        from ray import serve

        from actors.cluster import start_cluster

        apply_ingress_env()
        started = self.nodes.start()
        start_cluster(self.settings)
        port = free_port()
        serve.start(
            proxy_location="HeadOnly",
            http_options={"host": "127.0.0.1", "port": port},
            logging_config=logging_config(),
        )
        self.base = f"http://127.0.0.1:{port}"
        return started

    def deploy(self, **options: Any) -> None:
        """The gateway (and the chat orchestrator) with ``options``; wait until it answers."""
        from ray import serve

        from deployments.gateway import Gateway
        from deployments.orchestrator import ChatOrchestrator

        if "num_replicas" in options:  # a fixed count: the shipped autoscaling_config would
            options.setdefault("autoscaling_config", None)  # keep it at its own (1 replica)
        orchestrator = ChatOrchestrator.options(**QUICK).bind(self.shipped)  # type: ignore[attr-defined]
        app = Gateway.options(**QUICK, **options).bind(self.shipped, orchestrator)  # type: ignore[attr-defined]
        serve.run(app, name=APP_NAME, route_prefix="/")
        want = options.get("num_replicas", 1)
        _until(f"{want} gateway replicas RUNNING", lambda: self.running() == want, 240, 0.2)
        _until("/healthz 200", self._healthy, 240, 0.2)

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.base}/healthz", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def running(self) -> int:
        from ray import serve

        app = serve.status().applications.get(APP_NAME)
        if app is None or "Gateway" not in app.deployments:
            return 0
        return int(app.deployments["Gateway"].replica_states.get("RUNNING", 0))

    def replicas(self) -> dict[str, dict[str, Any]]:
        """The live gateway replicas: actor id → node label and pid."""
        import ray

        table = ray._private.state.actors()  # type: ignore[attr-defined]
        return {
            actor_id: {"node": self.nodes.label(info["Address"]["NodeID"]),
                       "pid": info.get("Pid")}
            for actor_id, info in table.items()
            if info.get("State") == "ALIVE" and info.get("ActorClassName", "").endswith(":Gateway")
        }  # fmt: skip

    def workflow(self) -> str:
        body = {"name": "b20", "steps": [{"step": 1, "target": "noop", "params": {"a": 1}}]}
        response = httpx.post(f"{self.base}/v1/workflows", json=body,
                              headers={"X-Team-Id": BENCH_TEAM}, timeout=60)  # fmt: skip
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def throughput(self, counts: list[int]) -> dict[str, Any]:
        runs: dict[int, list[dict[str, float]]] = {n: [] for n in counts}
        where: dict[int, list[str]] = {}
        loads = [uptime()]
        url = ""
        for turn in range(self.rounds):
            for n in counts:
                self.deploy(num_replicas=n)
                url = url or f"{self.base}/v1/workflows/{self.workflow()}"
                where[n] = sorted(r["node"] for r in self.replicas().values())
                if turn == 0:
                    wrk(url, 2, 16, True)  # warm-up of this many replicas
                got = wrk(url, self.seconds, 16, True)
                got["load"] = _load()
                runs[n].append(got)
            loads.append(uptime())
        first = counts[0]
        out: dict[str, Any] = {
            str(n): {
                "rps": statistics.median(r["rps"] for r in runs[n]),
                "p50_ms": statistics.median(r["p50_ms"] for r in runs[n]),
                "rounds": [r["rps"] for r in runs[n]],
                "load_1min": [r["load"] for r in runs[n]],
                "replica_nodes": where[n],
            }
            for n in counts
        }
        out["ratio_to_one"] = {
            str(n): round(statistics.median(
                b["rps"] / a["rps"] for a, b in zip(runs[first], runs[n], strict=True)), 2)
            for n in counts
        }  # fmt: skip
        out["uptime"] = loads
        return out

    def scale_up(self) -> dict[str, Any]:
        self.deploy(num_replicas=1)  # from one replica (the autoscaler keeps what it finds)
        self.deploy(autoscaling_config=SCALE_UP)
        url = f"{self.base}/v1/workflows/{self.workflow()}"
        before = set(self.replicas())
        load_before = uptime()
        result: dict[str, Any] = {}
        done = threading.Event()

        def load() -> None:
            try:
                result["wrk"] = wrk(url, 40, 16, True)
            finally:
                done.set()

        thread = threading.Thread(target=load)
        t0 = time.monotonic()
        thread.start()
        _until("a second replica RUNNING", lambda: self.running() >= 2, 120, 0.1)
        result["to_running_s"] = round(time.monotonic() - t0, 2)
        new = _until("the new replica's actor", lambda: set(self.replicas()) - before, 30)
        info = self.replicas()[next(iter(new))]
        result["new_replica_node"] = info["node"]
        proc = psutil.Process(int(info["pid"]))
        last = sum(proc.cpu_times()[:2])
        while not done.is_set():
            time.sleep(0.2)
            now = sum(proc.cpu_times()[:2])
            if now - last >= 0.05:
                result["to_serving_s"] = round(time.monotonic() - t0, 2)
                break
            last = now
        thread.join()
        result["uptime"] = [load_before, uptime()]
        return result

    def shutdown(self) -> None:
        from ray import serve

        try:
            serve.shutdown()
        finally:
            self.nodes.shutdown()
            shutil.rmtree(self.data, ignore_errors=True)


def measure(seconds: float, rounds: int, counts: list[int]) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install -y wrk")
    bench = Bench(seconds, rounds)
    try:
        out: dict[str, Any] = {"cluster": bench.start()}
        out["throughput"] = bench.throughput(counts)
        out["scale_up"] = bench.scale_up()
        return out
    finally:
        bench.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.replicas")
    parser.add_argument("--seconds", type=float, default=8.0, help="each wrk run")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds")
    parser.add_argument("--replicas", default="1,2,4", help="replica counts, the first the base")
    args = parser.parse_args()
    counts = [int(n) for n in args.replicas.split(",")]
    result = {**stamp(), "uptime_before": uptime(), **measure(args.seconds, args.rounds, counts)}
    result["uptime_after"] = uptime()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
