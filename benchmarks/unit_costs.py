"""Unit costs (issue 17, part 6): what one agent, conversation, execution, gateway request and
consumed event costs in memory and CPU, measured on a local Ray cluster — the inputs of the plan
for 10,000 teams in docs/scaling.md (derived by :func:`plan`).

    python -m benchmarks.unit_costs [--quick]

One local Ray cluster (2 CPUs) with Linqra's actors as ``linqra up`` starts them (SQLite store,
``ray://`` bus), nothing passivated while measured. Memory: psutil per actor process — RSS, USS
(pages only it has) and PSS (shared pages split among their sharers: the one that adds up).
CPU: user + system seconds of the driver and its descendants (this cluster, the servers it
spawned) by role, as deltas around each phase.

agents         N agents given a short task each (actors created), 3 more each (warm), a 3 s
               window idle, one 6 s task each (busy): memory per actor idle and busy, CPU per
               task execution (all processes), per idle actor-second. A passive agent has no
               process: its records' JSON bytes.
conversations  one conversation of an assistant on the OpenAI fake (its own process, not
               counted; ``slow-0-40``: 42 words, like B16's replies), which starts the chat
               host (``chat.hosts`` 1), M conversations more, then K messages more: the host's
               memory, what each conversation and each further run (its event log kept)
               adds to it, CPU per first message and per message (the driver, standing in
               for the orchestrator replica, counted).
executions     E executions of one 15 s ``wait`` step in flight: the runner's and I/O pool's
               memory and CPU per running execution; R one-step and R ten-step executions of
               ``wait 0`` (I/O pool): CPU per execution, per step (the difference over nine).
gateway        a team-scoped read (``GET /v1/workflows/{id}``), 8 clients, the app under
               uvicorn in its own process (B12's server, not Serve): CPU-ms per request.
events         B10's consumer (one group; the trigger router records a task execution per
               event; one process publishes and consumes) on Redis Streams and the ``ray://``
               bus actor: events/s per consumer, CPU-ms per event.

Results are printed and written to benchmarks/results/unit_costs.json, with the plan derived
from them (:func:`plan`). A full run takes 3-4 minutes, ``--quick`` under one. The phases
are in :mod:`benchmarks._unit_phases`, the process accounting in :mod:`benchmarks._unit_meter`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks._servers import FAKE_OPENAI, app_server, serve_asgi, server_process
from benchmarks._support import bench_settings, git, init_local_ray, stamp, wait_steady
from benchmarks._unit_meter import CpuMeter, memory, per
from benchmarks._unit_phases import (
    agents_phase,
    conversations_phase,
    events_phase,
    executions_phase,
    gateway_phase,
)

__all__ = [
    "LOAD",
    "NODE",
    "QUICK",
    "RESULTS",
    "CpuMeter",
    "Sizes",
    "measure",
    "memory",
    "per",
    "plan",
    "units",
]

RESULTS = Path(__file__).resolve().parent / "results" / "unit_costs.json"


@dataclass(frozen=True)
class Sizes:
    """How many units each phase measures (:data:`QUICK`: ``--quick``)."""

    agents: int = 20
    conversations: int = 100
    messages: int = 60
    in_flight: int = 100
    runs: int = 40
    requests: int = 3000
    events: int = 2000


QUICK = Sizes(
    agents=3, conversations=3, messages=9, in_flight=30, runs=10, requests=400, events=300
)


# -- the run -----------------------------------------------------------------------------------
@contextmanager
def cluster(data_dir: Path, fake_url: str) -> Iterator[tuple[Any, Any]]:
    """A local Ray cluster with Linqra's actors; yields (settings, ClusterActors)."""
    import ray

    from actors.cluster import start_cluster
    from linqra.config import LLMProviderConfig, LLMSettings

    settings = bench_settings(data_dir)
    providers = {
        **LLMSettings().providers,
        "openai": LLMProviderConfig(kind="openai", base_url=f"{fake_url}/v1"),
    }
    settings = settings.model_copy(update={
        "llm": settings.llm.model_copy(update={"providers": providers}),
        "agents": settings.agents.model_copy(update={"idle_seconds": 600.0}),
        "chat": settings.chat.model_copy(update={"idle_seconds": 600.0, "hosts": 1}),
    })  # fmt: skip
    init_local_ray()
    try:
        actors = start_cluster(settings)
        wait_steady(actors)
        yield settings, actors
    finally:
        ray.shutdown()


async def on_cluster(settings: Any, actors: Any, sizes: Sizes) -> dict[str, Any]:
    from actors.events import open_bus
    from actors.handles import RayLauncher
    from linqra.system import System

    system = await System.open(settings, launcher=RayLauncher(settings), events=open_bus(settings))
    try:
        out: dict[str, Any] = {
            "base": {k: memory(k) for k in ("runner", "io_pool", "raylet", "gcs")}
        }
        phases: dict[str, Callable[[], Awaitable[dict[str, Any]]]] = {
            "agents": lambda: agents_phase(system, settings, sizes.agents),
            "conversations": lambda: conversations_phase(
                system, settings, sizes.conversations, sizes.messages
            ),
            "executions": lambda: executions_phase(actors.runner, sizes.in_flight, sizes.runs),
            "events_ray": lambda: events_phase(open_bus(settings), sizes.events),
        }
        for name, phase in phases.items():
            out[name] = await phase()
            print(name, json.dumps(out[name]), flush=True)
        return out
    finally:
        await system.close()


def measure(sizes: Sizes) -> dict[str, Any]:
    from linqra.events.redis_streams import RedisEventBus
    from linqra.testing.servers import redis_server

    out: dict[str, Any] = {"sizes": asdict(sizes)}
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="linqra-units-")))
        fake, _ = stack.enter_context(server_process(serve_asgi, FAKE_OPENAI))
        settings, actors = stack.enter_context(cluster(tmp / "cluster", fake))
        out.update(asyncio.run(on_cluster(settings, actors, sizes)))
        app_settings = bench_settings(tmp / "gateway")
        limits = app_settings.rate_limits.model_copy(update={"team": "100000000/minute"})
        app_settings = app_settings.model_copy(update={"rate_limits": limits})
        url, pid = stack.enter_context(app_server(app_settings))
        out["gateway"] = asyncio.run(gateway_phase(app_settings, pid, url, sizes.requests))
        print("gateway", json.dumps(out["gateway"]), flush=True)
        redis_url = stack.enter_context(redis_server())

        async def redis_events() -> dict[str, Any]:
            bus = RedisEventBus(redis_url)
            try:
                return await events_phase(bus, sizes.events)
            finally:
                await bus.close()

        out["events_redis"] = asyncio.run(redis_events())
        print("events_redis", json.dumps(out["events_redis"]), flush=True)
    return out


def units(measured: dict[str, Any]) -> dict[str, float]:
    """The unit costs the plan takes, from a run's measurements: PSS per process (it adds up
    over processes), USS for what executions add to the runner's (PSS moves as sharers die)."""
    a, c, x = measured["agents"], measured["conversations"], measured["executions"]
    g, r, b = measured["gateway"], measured["events_redis"], measured["events_ray"]
    return {
        "agent_passive_bytes": a["passive_agent_record_bytes"],
        "agent_idle_actor_mib": a["idle_actor"]["pss_mib"],
        "agent_busy_actor_mib": a["busy_actor"]["pss_mib"],
        "agent_task_cpu_ms": round(  # not the driver: it polls the records, a gateway's part
            a["cpu_per_task_execution"]["total_ms"] - a["cpu_per_task_execution"]["driver_ms"], 3
        ),
        "agent_idle_cpu_ms_per_s": a["cpu_ms_per_idle_actor_second"]["agents_ms"],
        "activation_supervisor_cpu_ms": a["cpu_first_task_incl_actor_start"]["supervisor_ms"],
        "chat_host_mib": c["host"]["pss_mib"],
        "conversation_kib": c["memory_per_conversation_kib"],
        "chat_run_kib": c["memory_per_run_kib"],
        "chat_message_cpu_ms": c["cpu_per_message"]["total_ms"],
        "chat_message_host_cpu_ms": c["cpu_per_message"]["chat_hosts_ms"],
        "running_execution_kib": x["memory_per_running_execution_kib"]["uss"],
        "running_execution_cpu_ms_per_s": sum(
            x["cpu_ms_per_running_execution_second"][f"{k}_ms"] for k in ("runner", "io_pool")
        ),
        "running_execution_runner_cpu_ms_per_s": x["cpu_ms_per_running_execution_second"][
            "runner_ms"
        ],
        "execution_cpu_ms": x["cpu_per_one_step_execution"]["total_ms"],
        "execution_runner_cpu_ms": x["cpu_per_one_step_execution"]["runner_ms"],
        "step_cpu_ms": x["cpu_per_step"]["total_ms"],
        "step_runner_cpu_ms": x["cpu_per_step"]["runner_ms"],
        "gateway_request_cpu_ms": g["cpu_per_request"]["gateway_ms"],
        "redis_events_per_s_per_consumer": r["events_per_s"],
        "redis_event_cpu_ms": r["cpu_per_event"]["total_ms"],
        "ray_bus_events_per_s_per_consumer": b["events_per_s"],
        "ray_bus_event_cpu_ms": b["cpu_per_event"]["bus_ms"],
        "gateway_rss_mib": g["gateway_process"]["rss_mib"],
    }


# -- the plan ----------------------------------------------------------------------------------
NODE = {"cores": 16, "memory_gib": 64.0, "usable": 0.7}
"""An assumed worker node, planned to 70 % of its cores and memory."""
LOAD = {
    "teams": 10_000,
    "agents": 100_000,
    "agent_tasks_per_s": 50.0,  # assumed; each task lasts agent_task_seconds
    "agent_task_seconds": 40.0,  # assumed: 50/s x 40 s = 2,000 agents busy at a time (2 %)
    "agent_idle_seconds": 60.0,  # agents.idle_seconds: an actor lingers this long after its work
    "chats": 1_000,  # concurrent conversations, each with its worker in a chat host
    "messages_per_chat_per_min": 2.0,  # assumed
    "run_log_seconds": 3600.0,  # chat.run_log_ttl_seconds: how long a run's events are kept
    "chat_hosts_at_least": 2.0,  # chat.hosts
    "executions_per_s": 1_000.0,
    "execution_seconds": 10.0,  # assumed mean duration: in flight = rate x duration
    "steps_per_execution": 5,  # assumed
    "other_requests_per_s": 1_000.0,  # assumed reads beside execution starts and chat messages
    "serve_over_uvicorn": 0.71,  # docs/benchmarks.md side by side: the read through Serve
    "events_per_s": 1_000.0,  # assumed: every execution started by an event
}


def plan(unit: dict[str, float], load: dict[str, float] = LOAD, node: dict[str, float] = NODE) -> dict[str, Any]:  # fmt: skip
    """Cores and memory of each part at ``load`` from the unit costs, the nodes they need, and
    the singleton actors' share of the one core a process can use (> 1: it cannot keep up)."""
    gib = 1 / 1024
    busy = load["agent_tasks_per_s"] * load["agent_task_seconds"]
    lingering = min(load["agents"] - busy, load["agent_tasks_per_s"] * load["agent_idle_seconds"])
    messages = load["chats"] * load["messages_per_chat_per_min"] / 60
    steps = load["steps_per_execution"] - 1  # past the first, which the execution's cost holds
    exec_ms = unit["execution_cpu_ms"] + steps * unit["step_cpu_ms"]
    runner_ms = unit["execution_runner_cpu_ms"] + steps * unit["step_runner_cpu_ms"]
    in_flight = load["executions_per_s"] * load["execution_seconds"]
    requests = load["executions_per_s"] + messages + load["other_requests_per_s"]
    gateway_cores = requests * unit["gateway_request_cpu_ms"] / 1000 / load["serve_over_uvicorn"]
    replicas = math.ceil(gateway_cores / node["usable"])
    hosts = max(  # a host is one process: one core at most
        int(load["chat_hosts_at_least"]),
        math.ceil(messages * unit["chat_message_host_cpu_ms"] / 1000 / node["usable"]),
    )
    run_logs = messages * load["run_log_seconds"]  # in the hosts (memory://) or in Redis
    consumers = math.ceil(load["events_per_s"] / (unit["redis_events_per_s_per_consumer"] * node["usable"]))  # fmt: skip
    parts = {  # name: (cores, GiB)
        "agent actors": (
            load["agent_tasks_per_s"] * unit["agent_task_cpu_ms"] / 1000
            + lingering * unit["agent_idle_cpu_ms_per_s"] / 1000,
            busy * unit["agent_busy_actor_mib"] * gib
            + lingering * unit["agent_idle_actor_mib"] * gib,
        ),
        "chat hosts": (
            messages * unit["chat_message_cpu_ms"] / 1000,
            hosts * unit["chat_host_mib"] * gib
            + load["chats"] * unit["conversation_kib"] * gib * gib
            + run_logs * unit["chat_run_kib"] * gib * gib,
        ),
        "executions": (
            load["executions_per_s"] * exec_ms / 1000
            + in_flight * unit["running_execution_cpu_ms_per_s"] / 1000,
            in_flight * unit["running_execution_kib"] * gib * gib,
        ),
        "gateway": (gateway_cores, replicas * unit["gateway_rss_mib"] * gib),
        "event consumers": (load["events_per_s"] * unit["redis_event_cpu_ms"] / 1000, 0.0),
    }
    cores = sum(c for c, _ in parts.values())
    memory = sum(m for _, m in parts.values())
    by_cores = math.ceil(cores / (node["cores"] * node["usable"]))
    by_memory = math.ceil(memory / (node["memory_gib"] * node["usable"]))
    activations = load["agent_tasks_per_s"]  # a chat host is made once, not per conversation
    singletons = {  # cores asked of one process
        "runner": load["executions_per_s"] * runner_ms / 1000
        + in_flight * unit["running_execution_runner_cpu_ms_per_s"] / 1000,
        "scheduler (event consumers)": load["events_per_s"] * unit["redis_event_cpu_ms"] / 1000,
        "supervisor (activations)": activations * unit["activation_supervisor_cpu_ms"] / 1000,
        "ray:// bus actor": load["events_per_s"] * unit["ray_bus_event_cpu_ms"] / 1000,
    }
    first = max(singletons, key=lambda k: singletons[k])
    return {
        "load": load,
        "node": node,
        "derived": {
            "busy_agents": busy,
            "lingering_idle_agent_actors": lingering,
            "passive_agents_store_mib": round(
                load["agents"] * unit["agent_passive_bytes"] / 2**20, 1
            ),
            "chat_messages_per_s": round(messages, 1),
            "chat_hosts": hosts,
            "chat_run_logs_kept": round(run_logs),
            "executions_in_flight": in_flight,
            "cpu_ms_per_execution": round(exec_ms, 2),
            "runner_cpu_ms_per_execution": round(runner_ms, 2),
            "gateway_requests_per_s": round(requests),
            "gateway_replicas": replicas,
            "event_consumer_processes": consumers,
        },
        "parts": {
            k: {"cores": round(c, 1), "memory_gib": round(m, 1)} for k, (c, m) in parts.items()
        },
        "cores": round(cores, 1),
        "memory_gib": round(memory, 1),
        "worker_nodes_by_cores": by_cores,
        "worker_nodes_by_memory": by_memory,
        "worker_nodes": max(by_cores, by_memory),
        "nodes": max(by_cores, by_memory) + 1,  # and the head (GCS), which runs no work
        "singleton_cores": {k: round(v, 2) for k, v in singletons.items()},
        "first_bottleneck": first,
        "runner_max_executions_per_s": round(1000 / runner_ms),
        # execution.runners spreads executions over runner actors by a hash of their id
        "runners_needed": math.ceil(singletons["runner"] / node["usable"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.unit_costs")
    parser.add_argument("--quick", action="store_true", help="small sizes, under a minute")
    args = parser.parse_args()
    sizes = QUICK if args.quick else Sizes()
    t0, before = time.monotonic(), stamp()
    measured = measure(sizes)
    unit = units(measured)
    result = {
        **before,
        "load_after": os.getloadavg()[0],
        "command": "python -m benchmarks.unit_costs" + (" --quick" if args.quick else ""),
        "uncommitted_changes_in_tree": git("status", "--porcelain", "--untracked-files=no"),
        "cluster": "local Ray, num_cpus=2, one 2-core machine, SQLite store, ray:// bus",
        "measured": measured,
        "units": unit,
        "plan": plan(unit),
        "seconds": round(time.monotonic() - t0, 1),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("units", "plan", "seconds")}, indent=2))


if __name__ == "__main__":
    main()
