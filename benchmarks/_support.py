"""What more than one benchmark uses: the record of a run (commit, load, when), percentiles, the
settings and the local Ray cluster the benchmarks start, ``wrk``, py-spy's raw stacks, the
tables written into docs/benchmarks.md, and B10's event → task path (the unit costs reuse it).

The servers the benchmarks start in processes of their own are in :mod:`benchmarks._servers`.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from linqra.config import ExecutionSettings, ServiceConfig, Settings
from linqra.testing.servers import free_port

__all__ = [
    "BENCH_TEAM",
    "DOCS",
    "NAMESPACE",
    "ROOT",
    "Stacks",
    "bench_settings",
    "event_to_task",
    "frame",
    "free_port",
    "git",
    "init_local_ray",
    "parse_stacks",
    "percentile",
    "publish",
    "pyspy_binary",
    "stamp",
    "uptime",
    "wrk",
]

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks.md"
NAMESPACE = "linqra-bench"
"""The Ray namespace of the clusters the benchmarks start (:func:`bench_settings`)."""
BENCH_TEAM = "bench"
"""The team of B1-B3, B8-B10, the side-by-side runs and :func:`wrk`'s ``X-Team-Id``."""


# -- the record of a run -----------------------------------------------------------------------
def git(*args: str) -> str:
    """``git ARGS…`` in this checkout: what it printed, stripped."""
    done = subprocess.run(["git", *args], capture_output=True, text=True, cwd=ROOT)
    return done.stdout.strip()


def uptime() -> str:
    """``uptime``'s line: the load averages a figure was measured under."""
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def stamp() -> dict[str, str]:
    """When, at which commit and under what load a side-by-side run was measured."""
    return {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "commit": git("rev-parse", "--short", "HEAD"),
        "load": uptime().rsplit("load average:", 1)[-1].split(",")[0].strip(),
    }


def publish(
    result: dict[str, Any], results: Path, markers: tuple[str, str], table: str, docs: bool
) -> None:
    """Print ``result``, keep it in ``results`` and (``docs``) put ``table`` between
    ``markers`` in docs/benchmarks.md."""
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    if docs:
        page = DOCS.read_text()
        begin, end = markers
        if begin not in page:
            raise SystemExit(f"docs/benchmarks.md has no {begin!r} marker")
        head, _, rest = page.partition(begin)
        _, _, tail = rest.partition(end)
        DOCS.write_text(head + table + tail)


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0-1) of ``values`` by nearest rank; 0.0 of no values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


# -- the cluster -------------------------------------------------------------------------------
def bench_settings(data_dir: Path, services: dict[str, ServiceConfig] | None = None) -> Settings:
    """The embedded defaults under ``data_dir`` with ``services``, 512 I/O steps at a time, in
    the :data:`NAMESPACE` namespace; portable (they cross to Ray workers)."""
    base = Settings(
        data_dir=data_dir,
        services=services or {},
        execution=ExecutionSettings(io_concurrency=512),
    )
    return base.model_copy(
        update={"ray": base.ray.model_copy(update={"namespace": NAMESPACE})}
    ).portable()


def init_local_ray() -> None:
    """A Ray cluster of this process's own (2 CPUs, :data:`NAMESPACE`, no dashboard), even when
    another one runs on this machine (``ray.init()`` would join it)."""
    import ray

    ray.init(
        address="local",
        num_cpus=2,
        namespace=NAMESPACE,
        include_dashboard=False,
        log_to_driver=False,
    )


def wait_steady(cluster: Any, timeout: float = 120) -> None:
    """Until every actor of ``cluster`` (a :class:`~actors.cluster.ClusterActors`: the event
    bus, alerts and span exporter where the settings have them) answers, and each runner's warm
    CPU-step workers are up: their processes start after ``start_cluster`` returns, and two
    cores starting them would slow the first measurements. Only the runners' ping starts
    workers (``warm=True``); the others' is plain."""
    import ray

    others = [cluster.scheduler, cluster.supervisor, *cluster.io_pool, *cluster.async_workers]
    runners = cluster.runners or (cluster.runner,)
    pings = [r.ping.remote(warm=True) for r in runners] + [a.ping.remote() for a in others]
    optional = (cluster.events, cluster.alerts, cluster.spans)  # where the settings have them
    pings += [actor.__ray_ready__.remote() for actor in optional if actor is not None]
    ray.get(pings, timeout=timeout)


# -- load and profiles -------------------------------------------------------------------------
def wrk(url: str, seconds: float, connections: int, team: bool) -> dict[str, float]:
    """``wrk`` (one thread) on ``url`` — as :data:`BENCH_TEAM` with ``team`` — for ``seconds``:
    requests/s and p50 (ms); ``RuntimeError`` if any answer was not a 2xx."""
    header = ["-H", f"X-Team-Id: {BENCH_TEAM}"] if team else []
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", *header, url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    if "Non-2xx" in out:
        raise RuntimeError(f"{url} answered errors under load:\n{out}")
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    assert p50 is not None, out
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p50.group(2)]
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert rps is not None, out
    return {"rps": float(rps.group(1)), "p50_ms": round(float(p50.group(1)) * scale, 2)}


_FRAME = re.compile(r"^(?P<fn>.*?) \((?P<file>.*?)(?::\d+)?\)$")
Stacks = list[tuple[list[tuple[str, str]], int]]
"""py-spy's samples: each stack (outermost frame first, as (function, file)) and its count."""


def frame(text: str) -> tuple[str, str]:
    """``fn (path/to/file.py:12)`` → (fn, file relative to the repo or site-packages)."""
    match = _FRAME.match(text)
    if match is None:
        return text, ""
    file = match["file"]
    for root in (f"{ROOT}/", "site-packages/", "lib/python3.11/"):
        file = file.split(root, 1)[-1]
    return match["fn"], file


def parse_stacks(raw: str) -> Stacks:
    """The stacks of py-spy's ``--format raw`` output (``frame;frame;… count`` a line)."""
    stacks: Stacks = []
    for line in raw.splitlines():
        text, _, samples = line.rpartition(" ")
        stacks.append(([frame(f) for f in text.split(";")], int(samples)))
    return stacks


def pyspy_binary() -> str:
    """py-spy on the ``PATH``, else the one beside this Python (it may not exist)."""
    return shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))


# -- B10's event → task start ------------------------------------------------------------------
async def event_to_task(bus: Any, events: int, rate: float | None) -> dict[str, Any]:
    """``events`` events published on a team topic of ``bus`` and consumed by one consumer group
    through the trigger router, which records a task execution per event: latency from publish
    to the record, events/s. ``rate`` events/s paced (latency without a backlog), or ``None``:
    a burst (throughput)."""
    from linqra.scheduling.triggers import EventRouter, publish_team_event, team_topic
    from linqra.system import System

    settings = Settings(data_dir=Path(tempfile.mkdtemp(prefix="linqra-b10-"))).portable()
    system = await System.open(settings)
    agent = await system.agents.create_agent(BENCH_TEAM, {"name": "b10"})
    started: dict[str, float] = {}

    async def dispatch(team: str, agent_id: str, tx: str, priority: int) -> None:
        started[tx] = time.time()

    router = EventRouter(system.agents, dispatch)
    topic = f"ticks{uuid.uuid4().hex[:8]}"  # a fresh topic and group per run
    await system.agents.create_task(BENCH_TEAM, agent.id, {
        "name": "on event", "type": "DATA_PROCESSING", "config": {"expression": "@"},
        "triggers": [{"type": "EVENT_DRIVEN", "topic": topic}],
    })  # fmt: skip
    subscription = await bus.subscribe(team_topic(BENCH_TEAM, topic), f"g{topic}", "bench")
    await publish_team_event(bus, BENCH_TEAM, topic, {"warmup": True})  # joins the group
    while not (warm := await subscription.fetch(10, 1.0)):
        pass
    for delivery in warm:
        await subscription.ack(delivery)
    done = 0

    async def consume() -> None:
        nonlocal done
        while done < events:
            for delivery in await subscription.fetch(100, 0.5):
                await router.handle(delivery.event)
                await subscription.ack(delivery)
                done += 1

    consumer = asyncio.create_task(consume())
    t0 = time.perf_counter()
    published: dict[str, float] = {}
    for i in range(events):
        published[str(i)] = time.time()
        await publish_team_event(bus, BENCH_TEAM, topic, {"n": i}, idempotency_key=str(i))
        if rate is not None:
            await asyncio.sleep(max(0.0, t0 + (i + 1) / rate - time.perf_counter()))
        elif i % 50 == 49:
            await asyncio.sleep(0)  # let the consumer run beside the producer
    await asyncio.wait_for(consumer, 300)
    elapsed = time.perf_counter() - t0
    records = await system.store.find("task_executions", BENCH_TEAM, limit=1_000_000)
    latency = [
        (started[r["id"]] - published[str(r["input"]["n"])]) * 1000
        for r in records
        if "n" in r["input"] and r["id"] in started
    ]
    await subscription.close()
    await system.close()
    return {
        "events": events,
        "paced_at_per_s": rate,
        "task_executions": len(latency),
        "latency_p50_ms": round(percentile(latency, 0.5), 1),
        "latency_p99_ms": round(percentile(latency, 0.99), 1),
        "events_per_s": round(events / elapsed, 1),
    }
