"""B17 — what metrics and tracing cost (issue 16): B1 and B2 with both on against both off, in
one run, on Ray clusters started one after another (``--blocks``).

    python -m benchmarks.observability [--rounds 100] [--blocks 4]
                                       [--sides off_again,on,on_full] [--write-docs]

Each side is a set of Linqra's actors in its own namespace, on the same cluster as the others:

* ``off``: ``metrics.enabled: false``, no ``tracing.otlp_url``;
* ``off_again``: the same, a control — how far two identical sides differ is the floor of what
  this can tell apart;
* ``on``: metrics through Ray's export (team labels on, the costlier choice) and tracing as
  shipped (``tracing.sample_ratio`` left at its default), spans exported over OTLP/HTTP to a
  local sink (a process of its own, as a collector is) that reads and drops them;
* ``on_full``: the same with every trace recorded (``sample_ratio: 1.0``);
* ``on_none`` (not run unless named): both on with no trace recorded (``sample_ratio: 0``) — the
  floor under any sampling ratio: metrics, and the context of traces that are not recorded;
* ``metrics`` and ``tracing`` (not run unless named): each alone, tracing at the default ratio;
* ``unsampled`` (not run unless named): tracing alone with ``sample_ratio: 0`` — what carrying
  the context of a trace that is not recorded costs.

The rounds are split among ``--blocks`` blocks, each a Ray cluster of its own on which every
side's actors are started afresh, a different side first each block: two identical sides differ
by a few percent for as long as their actors live (see :func:`measure`), and fresh actors each
block average that out. Within a block, the sides take turns round by round, in an order that
alternates, so drift in the machine's load falls on all. A side's figure is the median over
rounds of its ratio to ``off`` *in the same round* (paired, which cancels slow drift), with the
spread of those ratios (interquartile) beside it. Target for ``on``: at most 1.03. Beside the
time, what a side's runs cost the machine: the CPU seconds of the Ray processes (workers,
actors, raylet, GCS; not the other sides' actors) during its turns, per run, and the ratio of
its total to ``off``'s.

B1  20 sequential ``noop`` steps pinned to ``executor: task`` (the warm CPU-step workers).
B2  100 parallel ``http`` steps to a local server that answers after 200 ms (the I/O pool).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil  # type: ignore[import-untyped]
import ray
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from actors.cluster import start_cluster
from benchmarks._servers import quotes_server, serve_asgi, server_process
from benchmarks._support import bench_settings, publish, stamp, wait_steady
from linqra.config import MetricsSettings, ServiceConfig, Settings, TracingSettings

RESULTS = Path(__file__).resolve().parent / "results" / "observability.json"
BEGIN = "<!-- b17: written by python -m benchmarks.observability -->"
END = "<!-- end of b17 -->"


def sink_app() -> Starlette:
    """An OTLP/HTTP endpoint that reads every export and drops it; ``GET /bytes``: how many
    bytes of spans it took. Served in a process of its own (``server_process(serve_asgi,
    SINK)``), as a collector would be: in the driver's process, reading exports took the GIL
    from the loop timing the runs, which then charged a receiver's work to the side exporting."""
    taken = [0]

    async def take(request: Request) -> Response:
        taken[0] += len(await request.body())
        return Response(b"", media_type="application/x-protobuf")

    async def count(request: Request) -> Response:
        return Response(str(taken[0]), media_type="text/plain")

    return Starlette(routes=[Route("/v1/traces", take, methods=["POST"]), Route("/bytes", count)])


SINK = "benchmarks.observability:sink_app"

SIDES = ("off", "off_again", "on", "on_full", "on_none", "metrics", "tracing", "unsampled")
DEFAULT_SIDES = ("off", "off_again", "on", "on_full")
SHIPPED_RATIO = TracingSettings().sample_ratio
# the sides whose sampling is not the shipped one
_RATIOS = {"on_full": 1.0, "on_none": 0.0, "unsampled": 0.0}


def _side(base: Settings, name: str, sink_url: str) -> Settings:
    metrics = name in ("metrics", "on", "on_full", "on_none")
    traced = name in ("tracing", "unsampled", "on", "on_full", "on_none")
    tracing = TracingSettings(otlp_url=sink_url) if traced else TracingSettings()
    if name in _RATIOS:
        tracing = tracing.model_copy(update={"sample_ratio": _RATIOS[name]})
    return base.model_copy(
        update={
            "metrics": MetricsSettings(enabled=metrics, team_labels=metrics),
            "tracing": tracing,
            "ray": base.ray.model_copy(update={"namespace": f"b17-{name}"}),
        }
    )


def _decile(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[0]


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    q1, q2, q3 = statistics.quantiles(values, n=4)
    return q1, q2, q3


def _ray_cpu() -> dict[int, tuple[str, float]]:
    """CPU seconds used so far by each of this machine's Ray processes — workers and actors
    (``ray::``), the raylet and the GCS — with what the process is (an actor's class, the
    raylet, …)."""
    used: dict[int, tuple[str, float]] = {}
    for proc in psutil.process_iter(["name", "cmdline"]):
        command = " ".join(proc.info["cmdline"] or ())
        if "ray::" in command or proc.info["name"] in ("raylet", "gcs_server"):
            with contextlib.suppress(psutil.Error):
                cpu = proc.cpu_times()
                what = command.split()[0].split(".")[0] if "ray::" in command else proc.info["name"]
                used[proc.pid] = (what, cpu.user + cpu.system)
    return used


def _cpu_since(before: dict[int, tuple[str, float]], others: set[int]) -> dict[str, float]:
    """CPU seconds the Ray processes used since ``before``, by what they are, but for
    ``others`` (the processes of the sides not running): a process started meanwhile counts
    whole; one that ended meanwhile (an idle CPU-step worker stopped) is not counted. Read
    between a side's runs, what the side's runs cost the machine — steadier than their wall
    time on two shared cores. The other sides' actors, idle but for their timers, added a few
    ms a run of noise to every side."""
    used: dict[str, float] = {}
    for pid, (what, cpu) in _ray_cpu().items():
        if pid not in others:
            since = cpu - before[pid][1] if pid in before else cpu
            used[what] = used.get(what, 0.0) + max(0.0, since)
    return used


CHAIN = {"steps": [
    {"step": i, "target": "noop", "executor": "task", "params": {"i": i}}
    for i in range(1, 21)]}  # fmt: skip
FAN = {"mode": "dag", "steps": [
    {"step": i, "target": "quotes-service", "action": "fetch",
     "intent": "/api/sleep", "params": {"ms": 200}} for i in range(1, 101)]}  # fmt: skip


def _start_sides(
    base: Settings, names: list[str], sink_url: str
) -> tuple[dict[str, Any], dict[str, set[int]]]:
    """Each side's actors, started in the order given and run once each way: its runner, and
    the processes that appeared as it started and ran (its actors and CPU-step workers), by
    side."""
    runners: dict[str, Any] = {}
    owned: dict[str, set[int]] = {}
    for name in names:
        before = set(_ray_cpu())
        cluster = start_cluster(_side(base, name, sink_url))
        wait_steady(cluster, timeout=180)
        runners[name] = cluster.runner
        _once(cluster.runner, CHAIN)
        _once(cluster.runner, FAN)
        owned[name] = set(_ray_cpu()) - before - set().union(*owned.values())
    return runners, owned


def _once(runner: Any, body: dict[str, Any]) -> float:
    t0 = time.perf_counter()
    record = ray.get(runner.run_definition.remote("bench", body, {}, timeout=120))
    assert record["status"] == "COMPLETED", record.get("error")
    return time.perf_counter() - t0


def measure(rounds: int, names: tuple[str, ...], blocks: int = 4) -> dict[str, Any]:
    """B1 and B2 for each side, ``rounds`` rounds in all over ``blocks`` blocks; each block a
    Ray cluster of its own with every side's actors started afresh, the first side to start
    turning from block to block.

    Why blocks: two sides that are the same settings differ by up to 3-5 % in time and CPU for
    as long as their actors live (four identical sides on one cluster, 100 rounds: paired
    ratios 1.00, 1.007, 0.987, 0.972, CPU 1.00, 0.999, 0.968, 0.949) — which processes a side
    got, not drift, so more rounds do not average it away; new actors for every side, block by
    block, do."""
    per_block = rounds // blocks
    per: dict[str, dict[str, list[float]]] = {}  # per measure, per side: each round's median
    every: dict[str, dict[str, list[float]]] = {}  # every run
    cpu: dict[str, dict[str, list[float]]] = {}  # CPU a run, per round
    by_process: dict[str, dict[str, dict[str, float]]] = {}  # CPU in all, by what used it
    for label in ("B1", "B2"):
        per[label] = {n: [] for n in names}
        every[label] = {n: [] for n in names}
        cpu[label] = {n: [] for n in names}
        by_process[label] = {n: {} for n in names}
    with quotes_server() as quotes_url, server_process(serve_asgi, SINK) as (sink_url, _):
        for block in range(blocks):
            base = bench_settings(
                Path(tempfile.mkdtemp(prefix="linqra-b17-")),
                {"quotes-service": ServiceConfig(urls=[quotes_url])},
            )
            first = block % len(names)
            ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
            try:
                starting = [*names[first:], *names[:first]]
                runners, owned = _start_sides(base, starting, f"{sink_url}/v1/traces")
                for label, body, per_round in (("B1", CHAIN, 4), ("B2", FAN, 1)):
                    for turn in range(per_block + 1):
                        order = names if turn % 2 else names[::-1]
                        for name in order:
                            others = set().union(*(owned[n] for n in names if n != name))
                            before = _ray_cpu()
                            runs = [_once(runners[name], body) for _ in range(per_round)]
                            if turn:  # the first round of a block warms every side up
                                used = _cpu_since(before, others)
                                cpu[label][name].append(sum(used.values()) / per_round)
                                for what, seconds in used.items():
                                    totals = by_process[label][name]
                                    totals[what] = totals.get(what, 0.0) + seconds
                                per[label][name].append(statistics.median(runs))
                                every[label][name].extend(runs)
            finally:
                ray.shutdown()
        out: dict[str, Any] = {
            label: _summary(per[label], every[label], cpu[label], names) for label in per
        }
        for label in out:
            out[label]["rounds"] = per_block * blocks
            out[label]["runs_per_side"] = len(every[label]["off"])
            out[label]["cpu_ms_by_process"] = {  # a run's CPU, by what used it
                name: {
                    what: round(seconds * 1000 / len(every[label][name]), 2)
                    for what, seconds in sorted(
                        by_process[label][name].items(), key=lambda item: -item[1]
                    )
                }
                for name in names
            }
        out["blocks"] = blocks
        # so far: the last batch may be on its way
        out["otlp_bytes_received"] = int(httpx.get(f"{sink_url}/bytes").text)
        return out


def _summary(
    per: dict[str, list[float]],
    every: dict[str, list[float]],
    cpu: dict[str, list[float]],
    names: tuple[str, ...],
) -> dict[str, Any]:
    result: dict[str, Any] = {
        f"{name}_ms": round(statistics.median(per[name]) * 1000, 2) for name in names
    }
    for name in names:  # a mean: the OS counts CPU in 10 ms ticks, a run is less
        result[f"{name}_cpu_ms"] = round(statistics.fmean(cpu[name]) * 1000, 2)
    for name in names[1:]:
        ratios = [side / off for side, off in zip(per[name], per["off"], strict=True)]
        q1, q2, q3 = _quartiles(ratios)
        result[f"{name}_over_off"] = round(q2, 3)
        result[f"{name}_iqr"] = [round(q1, 3), round(q3, 3)]
        # the fastest tenth of each side's runs: what it costs when nothing else on the
        # machine got in its way (noise only ever adds time)
        fast = _decile(every[name]) / _decile(every["off"])
        result[f"{name}_fastest_tenth_over_off"] = round(fast, 3)
        # the mean: what the side adds to the time of all its runs (a cost that falls on one
        # run in ten, a recorded trace, moves a median less than a mean)
        result[f"{name}_mean_over_off"] = round(sum(every[name]) / sum(every["off"]), 3)
        result[f"{name}_cpu_over_off"] = round(sum(cpu[name]) / sum(cpu["off"]), 3)
    return result


LABELS = {
    "off_again": "both off again (control)",
    "on": "both on, as shipped",
    "on_full": "both on, every trace recorded",
    "on_none": "both on, no trace recorded",
    "metrics": "metrics only",
    "tracing": "tracing only, as shipped",
    "unsampled": "tracing only, no trace sampled",
}


def _table(r: dict[str, Any]) -> str:
    names = [name for name in SIDES[1:] if name in r["sides"]]
    cell = "{ms} ms, **{ratio}** [{lo}-{hi}], {fast}, mean {mean}"
    rows = [
        BEGIN,
        "",
        f"{r['when']}, commit {r['commit']}, load {r['load']} → {r['load_after']}: `python -m"
        f" benchmarks.observability --rounds {r['B1']['rounds']} --blocks {r.get('blocks', 1)}"
        f" --sides {','.join(r['sides'][1:])}` ({r.get('blocks', 1)} clusters in turn, 2 CPUs;"
        " shipped"
        f" `tracing.sample_ratio` {r['shipped_sample_ratio']}). Each cell: the median time, then"
        " the median over rounds of the ratio to both off in the same round [its interquartile"
        " range], then the ratio of the fastest tenth of the runs (what noise adds least to), then"
        " the ratio of the mean times of all runs.",
        "",
        "| measure | both off | " + " | ".join(LABELS[name] for name in names) + " |",
        "| --- | --- | " + " | ".join("---" for _ in names) + " |",
        *(
            f"| {what} | {b['off_ms']} ms | "
            + " | ".join(
                cell.format(
                    ms=b[f"{name}_ms"], ratio=b[f"{name}_over_off"],
                    lo=b[f"{name}_iqr"][0], hi=b[f"{name}_iqr"][1],
                    fast=b[f"{name}_fastest_tenth_over_off"],
                    mean=b.get(f"{name}_mean_over_off", "n/a"),
                )
                for name in names
            )
            + " |"
            for what, b in (
                ("B1: 20 `task` steps", r["B1"]),
                ("B2: 100 parallel 200 ms `http` steps", r["B2"]),
            )
        ),
        *(
            f"| {what}, CPU of the Ray processes a run | {b['off_cpu_ms']} ms | "
            + " | ".join(
                f"{b[f'{name}_cpu_ms']} ms, **{b[f'{name}_cpu_over_off']}**" for name in names
            )
            + " |"
            for what, b in (("B1", r["B1"]), ("B2", r["B2"]))
            if "off_cpu_ms" in b
        ),
        "",
        "The CPU rows: the CPU seconds this machine's Ray processes (workers, actors, raylet,"
        " GCS; not the other sides' actors) used during a side's runs, per run (the mean: the"
        " OS counts in 10 ms ticks), and the ratio of the side's total to both off's — what a"
        " side costs the machine, steadier than wall time on two shared cores.",
        "",
        END,
    ]  # fmt: skip
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.observability")
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument(
        "--sides",
        default=",".join(DEFAULT_SIDES),
        help=f"which of {', '.join(SIDES)} to run (off always runs, first)",
    )
    parser.add_argument(
        "--blocks",
        type=int,
        default=4,
        help="clusters started afresh, one after another, the rounds split among them",
    )
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    if args.blocks < 1:
        parser.error("--blocks: at least 1")
    if args.rounds < 2 * args.blocks:
        parser.error("--rounds: at least 2 a block (a spread needs two)")
    names = ("off", *(n for n in args.sides.split(",") if n and n != "off"))
    unknown = set(names) - set(SIDES)
    if unknown:
        parser.error(f"--sides: unknown {sorted(unknown)}; known: {', '.join(SIDES)}")
    result = {**stamp(), "sides": list(names), "shipped_sample_ratio": SHIPPED_RATIO}
    result.update(measure(args.rounds, names, args.blocks))
    result["load_after"] = stamp()["load"]
    publish(result, RESULTS, (BEGIN, END), _table(result), args.write_docs)


if __name__ == "__main__":
    main()
