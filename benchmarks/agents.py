"""Benchmarks B8 and B9 of agents and the scheduler.

    python -m benchmarks.agents b8 [TRIGGERS SECONDS]   # default 1000 triggers, 60 s
    python -m benchmarks.agents idle [SECONDS]          # default 10 s a side
    python -m benchmarks.agents b9
    python -m benchmarks.agents b10 [EVENTS]              # default 2000

B8  N cron triggers firing every second for S seconds through the scheduler actor's loop
    (:meth:`linqra.scheduling.scheduler.Scheduler.run_forever`: it sleeps until the next fire,
    SQLite store, task executions created, dispatch counted): fire lateness p50/p99 (fired_at -
    scheduled time), missed fires (expected minus distinct fired), doubled fires, and the
    store's cross-team reads a second.
idle What the scheduler's loop costs with nothing due, beside the loop it replaced (a look every
    20 ms): CPU ms and the store's cross-team reads per second, in process, SQLite.
B10 Event → task start: events published on a team topic (Kafka via tansu, Redis Streams via
    redis-server, both started by the benchmark) are consumed by one consumer group through the
    trigger router, which records a task execution per event; latency from publish to the record
    p50/p99, and events/s through the group.
B9  1,000 registered agents of which 10 are busy (each running a 20 s task) on a local Ray
    cluster: Ray worker processes and their total RSS while busy.

Results are printed and written to benchmarks/results/agents.json.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks._support import BENCH_TEAM, event_to_task, percentile
from linqra.config import AgentSettings, Settings
from linqra.scheduling.scheduler import Scheduler, parse_instant
from linqra.system import System

RESULTS = Path(__file__).resolve().parent / "results"
TEAM = BENCH_TEAM


def _count_scans(system: System) -> list[int]:
    """Count the store's cross-team reads (the scheduler's looks) from now: ``[n]``."""
    scans, scan = [0], system.store.scan_all_teams

    async def counted(*args: Any, **kwargs: Any) -> Any:
        scans[0] += 1
        return await scan(*args, **kwargs)

    system.store.scan_all_teams = counted  # type: ignore[method-assign]
    return scans


async def b8(triggers: int = 1000, seconds: int = 60) -> dict[str, Any]:
    settings = Settings(data_dir=Path(tempfile.mkdtemp(prefix="linqra-b8-"))).portable()
    system = await System.open(settings)
    agents = system.agents
    dispatched = 0

    async def dispatch(team: str, agent: str, tx: str, priority: int) -> None:
        nonlocal dispatched
        dispatched += 1

    agent = await agents.create_agent(TEAM, {"name": "b8"})
    for i in range(triggers):
        await agents.create_task(TEAM, agent.id, {
            "name": f"t{i}", "type": "DATA_PROCESSING", "config": {"expression": "@"},
            "triggers": [{"type": "CRON", "cron": "* * * * * ?"}],
        })  # fmt: skip
    scheduler = Scheduler(agents, AgentSettings(misfire_threshold_seconds=3600), dispatch)
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    end = start + timedelta(seconds=seconds)
    # every schedule starts at the same second
    for doc in await system.store.find("schedules", TEAM, limit=100_000):
        await system.store.update(
            "schedules", TEAM, doc["id"], {"next_fire_at": start.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
        )
    scans = _count_scans(system)
    began = time.monotonic()
    loop = asyncio.create_task(scheduler.run_forever())
    await asyncio.sleep((end - datetime.now(UTC)).total_seconds() + 1)
    loop.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await loop
    reads_per_second = scans[0] / (time.monotonic() - began)
    # finish what is due up to the end, so that late fires are counted as late, not missed
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and await scheduler.tick(end):
        pass
    records = await system.store.find("task_executions", TEAM, limit=1_000_000)
    in_window = [r for r in records if parse_instant(r["trigger"]["scheduled_at"]) < end]
    lateness = [
        (
            parse_instant(r["trigger"]["fired_at"]) - parse_instant(r["trigger"]["scheduled_at"])
        ).total_seconds()
        * 1000
        for r in in_window
    ]
    keys = [(r["task_id"], r["trigger"]["scheduled_at"]) for r in in_window]
    expected = triggers * seconds
    await system.close()
    return {
        "triggers": triggers,
        "seconds": seconds,
        "expected_fires": expected,
        "fired": len(set(keys)),
        "missed": expected - len(set(keys)),
        "doubled": len(keys) - len(set(keys)),
        "lateness_p50_ms": round(percentile(lateness, 0.5), 1),
        "lateness_p99_ms": round(percentile(lateness, 0.99), 1),
        "lateness_max_ms": round(max(lateness, default=0), 1),
        "dispatched": dispatched,
        "store_scans_per_second": round(reads_per_second, 1),
    }


async def idle(seconds: float = 10) -> dict[str, Any]:
    settings = Settings(data_dir=Path(tempfile.mkdtemp(prefix="linqra-idle-"))).portable()
    system = await System.open(settings)

    async def dispatch(team: str, agent: str, tx: str, priority: int) -> None:
        return None

    scheduler = Scheduler(system.agents, system.settings.agents, dispatch)
    scans = _count_scans(system)

    async def polling() -> None:  # the loop before: a look every 20 ms
        while True:
            await scheduler.tick()
            await asyncio.sleep(0.02)

    out: dict[str, Any] = {"seconds": seconds}
    for name, loop in (("polling_20ms", polling), ("run_forever", scheduler.run_forever)):
        scans[0] = 0
        cpu, began = time.process_time(), time.monotonic()
        task = asyncio.create_task(loop())
        await asyncio.sleep(seconds)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        elapsed = time.monotonic() - began
        out[name] = {
            "cpu_ms_per_second": round((time.process_time() - cpu) / elapsed * 1000, 1),
            "store_reads_per_second": round(scans[0] / elapsed, 1),
        }
    await system.close()
    return out


def b9(agents_count: int = 1000, busy: int = 10) -> dict[str, Any]:
    import psutil  # type: ignore[import-untyped]
    import ray

    from actors.cluster import start_cluster
    from actors.handles import RayLauncher

    settings = Settings(data_dir=Path(tempfile.mkdtemp(prefix="linqra-b9-"))).portable()
    settings = settings.model_copy(
        update={"ray": settings.ray.model_copy(update={"namespace": "linqra-b9"})}
    )
    ray.init(
        address="local",
        num_cpus=2,
        namespace="linqra-b9",
        include_dashboard=False,
        log_to_driver=False,
    )
    start_cluster(settings)  # the supervisor creates the agents' actors

    async def setup() -> list[tuple[str, str]]:
        system = await System.open(settings)
        made = []
        for i in range(agents_count):
            agent = await system.agents.create_agent(TEAM, {"name": f"a{i}"})
            task = await system.agents.create_task(TEAM, agent.id, {
                "name": "work", "type": "WORKFLOW_EMBEDDED",
                "config": {"steps": [{"step": 1, "target": "wait", "params": {"seconds": 20}}]},
            })  # fmt: skip
            made.append((agent.id, task.id))
        runs = []
        for agent_id, task_id in made[:busy]:
            task = await system.agents.get_task(TEAM, task_id)
            tx, _ = await system.agents.new_task_execution(TEAM, task)
            await RayLauncher(settings).dispatch_task(TEAM, agent_id, tx["id"])
            runs.append(tx["id"])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            states = [(await system.agents.get_task_execution(TEAM, r))["status"] for r in runs]
            if all(s == "RUNNING" for s in states):
                break
            await asyncio.sleep(0.5)
        await system.close()
        return made

    t0 = time.monotonic()
    asyncio.run(setup())

    def is_worker(cmdline: list[str]) -> bool:  # workers rename themselves "ray::<Actor>…"
        return any(part.startswith("ray::") or "default_worker.py" in part for part in cmdline)

    workers = [
        p for p in psutil.process_iter(["cmdline", "memory_info"])
        if is_worker(p.info["cmdline"] or [])
    ]  # fmt: skip
    names = sorted(" ".join(p.info["cmdline"])[:40] for p in workers)
    rss = sum(p.info["memory_info"].rss for p in workers)
    ray.shutdown()
    return {
        "registered_agents": agents_count,
        "busy_agents": busy,
        "ray_worker_processes": len(workers),
        "worker_rss_mib": round(rss / 2**20),
        "workers": names,
        "setup_seconds": round(time.monotonic() - t0, 1),
    }


async def b10(events: int = 2000) -> dict[str, Any]:
    from linqra.events.kafka import KafkaEventBus
    from linqra.events.redis_streams import RedisEventBus
    from linqra.testing.servers import redis_server, tansu_broker

    out: dict[str, Any] = {}
    with redis_server() as url:
        bus = RedisEventBus(url)
        out["redis_streams_paced"] = await event_to_task(bus, 500, 100.0)
        out["redis_streams_burst"] = await event_to_task(bus, events, None)
        await bus.close()
    with tansu_broker() as bootstrap:
        kafka = KafkaEventBus(bootstrap, session_timeout_ms=2000)
        out["kafka_tansu_paced"] = await event_to_task(kafka, 500, 100.0)
        out["kafka_tansu_burst"] = await event_to_task(kafka, events, None)
        await kafka.close()
    return out


def main() -> None:
    which = sys.argv[1] if len(sys.argv) > 1 else "b9"
    results: dict[str, Any] = {}
    if which == "b8":
        args = [int(a) for a in sys.argv[2:4]]
        results["B8"] = asyncio.run(b8(*args))
    elif which == "idle":
        results["scheduler_idle"] = asyncio.run(idle(*[float(a) for a in sys.argv[2:3]]))
    elif which == "b10":
        results["B10"] = asyncio.run(b10(*[int(a) for a in sys.argv[2:3]]))
    else:
        results["B9"] = b9()
    print(json.dumps(results), flush=True)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "agents.json"
    previous = json.loads(path.read_text()) if path.is_file() else {}
    previous.update(results)
    path.write_text(json.dumps(previous, indent=2) + "\n")


if __name__ == "__main__":
    main()
