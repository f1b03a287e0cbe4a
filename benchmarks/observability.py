"""B17 — what metrics and tracing cost (issue 16): B1 and B2 with both on against both off, in
one run, on one Ray cluster.

    python -m benchmarks.observability [--rounds 12] [--sample-ratio 1.0] [--write-docs]

Five sets of Linqra's actors share the cluster, each in its own namespace: ``off`` with
``metrics.enabled: false`` and no ``tracing.otlp_url``; ``off_again``, the same (a control);
``metrics`` with metrics through Ray's export (team labels on, the costlier choice);
``tracing`` with spans (``--sample-ratio`` of the traces) exported over OTLP/HTTP to a local sink
that reads and drops them; ``on`` with both. The sides take turns, so drift in the machine's
load falls on all; the figure is the ratio of medians (target for ``on``: at most 1.03).

B1  20 sequential ``noop`` steps pinned to ``executor: task`` (the warm CPU-step workers).
B2  100 parallel ``http`` steps to a local server that answers after 200 ms (the I/O pool).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import ray
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from actors.cluster import start_cluster
from benchmarks._servers import quotes_server
from benchmarks._support import bench_settings, publish, stamp
from linqra.config import MetricsSettings, ServiceConfig, Settings, TracingSettings
from linqra.testing.servers import AppServer

RESULTS = Path(__file__).resolve().parent / "results" / "observability.json"
BEGIN = "<!-- b17: written by python -m benchmarks.observability -->"
END = "<!-- end of b17 -->"


class _Sink(AppServer):
    """An OTLP/HTTP endpoint that reads every export and drops it (counting spans' bytes)."""

    def __init__(self) -> None:
        self.bytes = 0
        super().__init__(Starlette(routes=[Route("/v1/traces", self._take, methods=["POST"])]))

    async def _take(self, request: Request) -> Response:
        self.bytes += len(await request.body())
        return Response(b"", media_type="application/x-protobuf")


SIDES = ("off", "off_again", "metrics", "tracing", "on")
"""``off_again`` is a second set of actors with both off: how far two identical sides differ
(their processes land on the cores differently) is the floor of what this can tell apart."""


def _side(base: Settings, name: str, sink_url: str, ratio: float) -> Settings:
    metrics = name in ("metrics", "on")
    traced = name in ("tracing", "on")
    return base.model_copy(
        update={
            "metrics": MetricsSettings(enabled=metrics, team_labels=metrics),
            "tracing": TracingSettings(otlp_url=sink_url if traced else "", sample_ratio=ratio),
            "ray": base.ray.model_copy(update={"namespace": f"b17-{name}"}),
        }
    )


def measure(rounds: int, ratio: float) -> dict[str, Any]:
    with quotes_server() as quotes_url, _Sink() as sink:
        base = bench_settings(
            Path(tempfile.mkdtemp(prefix="linqra-b17-")),
            {"quotes-service": ServiceConfig(urls=[quotes_url])},
        )
        sides = {name: _side(base, name, f"{sink.url}/v1/traces", ratio) for name in SIDES}
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            runners = {}
            for name, settings in sides.items():
                cluster = start_cluster(settings)
                actors = [cluster.runner, cluster.scheduler, cluster.supervisor, *cluster.io_pool]
                ray.get([actor.ping.remote() for actor in actors], timeout=180)
                runners[name] = cluster.runner
            chain = {"steps": [
                {"step": i, "target": "noop", "executor": "task", "params": {"i": i}}
                for i in range(1, 21)]}  # fmt: skip
            fan = {"mode": "dag", "steps": [
                {"step": i, "target": "quotes-service", "action": "fetch",
                 "intent": "/api/sleep", "params": {"ms": 200}} for i in range(1, 101)]}  # fmt: skip

            def once(runner: Any, body: dict[str, Any]) -> float:
                t0 = time.perf_counter()
                record = ray.get(runner.run_definition.remote("bench", body, {}, timeout=120))
                assert record["status"] == "COMPLETED", record.get("error")
                return time.perf_counter() - t0

            out: dict[str, Any] = {}
            for label, body, per_round in (("B1", chain, 4), ("B2", fan, 1)):
                times: dict[str, list[float]] = {name: [] for name in SIDES}
                for turn in range(rounds + 1):
                    order = SIDES if turn % 2 else SIDES[::-1]
                    for name in order:
                        for _ in range(per_round):
                            elapsed = once(runners[name], body)
                            if turn:  # the first round warms every side up
                                times[name].append(elapsed)
                medians = {name: statistics.median(values) for name, values in times.items()}
                out[label] = {
                    **{f"{name}_ms": round(medians[name] * 1000, 2) for name in SIDES},
                    **{
                        f"{name}_over_off": round(medians[name] / medians["off"], 3)
                        for name in SIDES[1:]
                    },
                    "runs_per_side": len(times["on"]),
                }
            out["otlp_bytes_received"] = sink.bytes  # so far: the last batch may be on its way
            return out
        finally:
            ray.shutdown()


def _table(r: dict[str, Any]) -> str:
    rows = [
        BEGIN,
        "",
        f"{r['when']}, commit {r['commit']}, load {r['load']}: `python -m benchmarks.observability"
        f" --sample-ratio {r['sample_ratio']}` (one cluster, 2 CPUs; the sides take turns; medians).",
        "",
        "| measure | both off | both off again (control) | metrics only | tracing only | both on | on / off |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *(
            f"| {what} | {b['off_ms']} ms | {b['off_again_ms']} ms ({b['off_again_over_off']}) |"
            f" {b['metrics_ms']} ms ({b['metrics_over_off']}) |"
            f" {b['tracing_ms']} ms ({b['tracing_over_off']}) | {b['on_ms']} ms |"
            f" **{b['on_over_off']}** |"
            for what, b in (
                ("B1: 20 `task` steps", r["B1"]),
                ("B2: 100 parallel 200 ms `http` steps", r["B2"]),
            )
        ),
        "",
        END,
    ]  # fmt: skip
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.observability")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument(
        "--sample-ratio", type=float, default=1.0, help="tracing.sample_ratio of the traced sides"
    )
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    result = {
        **stamp(),
        "sample_ratio": args.sample_ratio,
        **measure(args.rounds, args.sample_ratio),
    }
    publish(result, RESULTS, (BEGIN, END), _table(result), args.write_docs)


if __name__ == "__main__":
    main()
