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
conversations  M conversations of an assistant on the OpenAI fake (its own process, not counted;
               ``slow-0-40``: 42 words, like B16's replies), then K messages more: memory per
               conversation actor, CPU per message (the driver, standing in for the
               orchestrator replica, counted).
executions     E executions of one 15 s ``wait`` step in flight: the runner's and I/O pool's
               memory and CPU per running execution; R one-step and R ten-step executions of
               ``wait 0`` (I/O pool): CPU per execution, per step (the difference over nine).
gateway        a team-scoped read (``GET /v1/workflows/{id}``), 8 clients, the app under
               uvicorn in its own process (B12's server, not Serve): CPU-ms per request.
events         B10's consumer (one group; the trigger router records a task execution per
               event; one process publishes and consumes) on Redis Streams and the ``ray://``
               bus actor: events/s per consumer, CPU-ms per event.

Results are printed and written to benchmarks/results/unit_costs.json, with the plan derived
from them (:func:`plan`). A full run takes 3-4 minutes, ``--quick`` under one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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

import psutil  # type: ignore[import-untyped]

from benchmarks.agents import _b10_one
from benchmarks.auth import _git, _server
from benchmarks.chat import _process, _serve_asgi
from benchmarks.compare import stamp
from benchmarks.run import NAMESPACE, _settings

RESULTS = Path(__file__).resolve().parent / "results" / "unit_costs.json"
TEAM = "bench-units"
MIB = 2**20
ROLES = {  # a Ray worker renames itself "ray::<Actor>.<method>"
    **{f"ray::{cls}": name for cls, name in (
        ("AgentActor", "agents"), ("ConversationActor", "conversations"),
        ("RunnerActor", "runner"), ("IOStepWorker", "io_pool"),
        ("SupervisorActor", "supervisor"), ("EventBusActor", "bus"),
    )},
    "gcs_server": "gcs", "raylet": "raylet", "redis-server": "redis",
}  # fmt: skip


@dataclass(frozen=True)
class Sizes:
    agents: int = 20
    conversations: int = 20
    messages: int = 60
    in_flight: int = 100
    runs: int = 40
    requests: int = 3000
    events: int = 2000


QUICK = Sizes(
    agents=3, conversations=3, messages=9, in_flight=30, runs=10, requests=400, events=300
)


# -- processes ---------------------------------------------------------------------------------
def role(proc: psutil.Process, named: dict[int, str]) -> str:
    """What a process of this cluster is, by its pid (``named``) or its command line."""
    if proc.pid in named:
        return named[proc.pid]
    try:
        line = " ".join(proc.cmdline())
    except psutil.Error:
        return "gone"
    for marker, name in ROLES.items():
        if marker in line:
            return name
    return "ray_other" if "ray" in line else "other"


def processes(named: dict[int, str] | None = None) -> dict[int, tuple[str, psutil.Process]]:
    """This process and its descendants (the cluster it started, the servers it spawned)."""
    me = psutil.Process()
    named = {me.pid: "driver", **(named or {})}
    return {p.pid: (role(p, named), p) for p in [me, *me.children(recursive=True)]}


def cpu_times(named: dict[int, str]) -> dict[int, tuple[str, float]]:
    out = {}
    for pid, (name, proc) in processes(named).items():
        with contextlib.suppress(psutil.Error):
            out[pid] = (name, sum(proc.cpu_times()[:2]))
    return out


class CpuMeter:
    """CPU seconds per role used between :meth:`start` and :meth:`stop`; a process born in
    between counts from zero, one that died in between is lost (none should: nothing
    passivates while measured)."""

    def __init__(self, named: dict[int, str] | None = None) -> None:  # pid: role
        self.named = named or {}
        self.before: dict[int, tuple[str, float]] = {}
        self.wall = 0.0

    def start(self) -> CpuMeter:
        self.before, self.wall = cpu_times(self.named), time.perf_counter()
        return self

    def stop(self) -> dict[str, float]:
        self.wall = time.perf_counter() - self.wall
        used: dict[str, float] = {}
        for pid, (name, seconds) in cpu_times(self.named).items():
            start = self.before.get(pid, (name, 0.0))[1]
            used[name] = used.get(name, 0.0) + seconds - start
        used["total"] = sum(used.values())
        return used


def per(used: dict[str, float], n: int, roles: tuple[str, ...] = ()) -> dict[str, float]:
    """CPU milliseconds per unit (``n`` units), in all and for ``roles``."""
    return {f"{r}_ms": round(used.get(r, 0.0) * 1000 / n, 3) for r in ("total", *roles)}


def memory(name: str) -> dict[str, float]:
    """Mean RSS, USS and PSS (MiB) of this cluster's processes of role ``name``, and how many."""
    rows = []
    for got, proc in processes({}).values():
        with contextlib.suppress(psutil.Error):
            if got == name:
                rows.append(proc.memory_full_info())
    if not rows:
        return {"processes": 0}
    kinds = ("rss", "uss", "pss")
    mean = {f"{k}_mib": round(sum(getattr(r, k) for r in rows) / MIB / len(rows), 1) for k in kinds}
    return {"processes": len(rows), **mean}


def total_memory(names: tuple[str, ...]) -> dict[str, float]:
    """Summed RSS/USS/PSS (MiB) of the processes of ``names``."""
    got = [memory(name) for name in names]
    kinds = ("rss_mib", "uss_mib", "pss_mib")
    return {k: round(sum(m.get(k, 0.0) * m["processes"] for m in got), 1) for k in kinds}


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 120.0) -> None:
    """Poll ``check`` (every 50 ms) until it holds; TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{check} did not hold within {timeout} s")
        await asyncio.sleep(0.05)


# -- the phases --------------------------------------------------------------------------------
async def agents_phase(system: Any, settings: Any, n: int) -> dict[str, Any]:
    from actors.handles import RayLauncher, agent_name
    from linqra.status import TASK_TERMINAL

    launcher = RayLauncher(settings)
    made = []
    for i in range(n):
        agent = await system.agents.create_agent(TEAM, {"name": f"unit{i}"})
        tasks = {}
        for name, seconds in (("short", 0), ("busy", 6)):
            tasks[name] = await system.agents.create_task(TEAM, agent.id, {
                "name": name, "type": "WORKFLOW_EMBEDDED",
                "config": {"steps": [{"step": 1, "target": "wait", "params": {"seconds": seconds}}]},
            })  # fmt: skip
        made.append((agent.id, tasks))
    agent_id, tasks = made[0]
    stored = [await system.agents.get_agent(TEAM, agent_id), tasks["short"]]
    passive_bytes = sum(len(doc.model_dump_json()) for doc in stored)

    async def dispatch(name: str, repeat: int = 1) -> list[str]:
        ids = []
        for agent_id, tasks in made:
            task = await system.agents.get_task(TEAM, tasks[name].id)
            for _ in range(repeat):
                tx, _ = await system.agents.new_task_execution(TEAM, task)
                await launcher.dispatch_task(TEAM, agent_id, tx["id"])
                ids.append(tx["id"])
        return ids

    async def statuses(ids: list[str]) -> list[str]:
        return [(await system.agents.get_task_execution(TEAM, i))["status"] for i in ids]

    async def ended(ids: list[str]) -> bool:
        return all(s in TASK_TERMINAL for s in await statuses(ids))

    meter = CpuMeter().start()
    first = await dispatch("short")
    await until(lambda: ended(first))
    cold = per(meter.stop(), n, ("agents", "runner", "supervisor"))
    idle = memory("agents")
    meter.start()
    warm_ids = await dispatch("short", 3)
    await until(lambda: ended(warm_ids))
    warm = per(meter.stop(), len(warm_ids), ("agents", "runner", "io_pool", "driver"))
    meter.start()
    await asyncio.sleep(3.0)  # a window of the idle actors' own upkeep (each polls its record)
    idle_upkeep = per({k: v / meter.wall for k, v in meter.stop().items()}, n, ("agents",))
    busy_ids = await dispatch("busy")

    async def all_running() -> bool:
        return all(s == "RUNNING" for s in await statuses(busy_ids))

    await until(all_running)
    busy = memory("agents")
    await until(lambda: ended(busy_ids))
    done = await statuses(first + warm_ids + busy_ids)
    stop_actors([agent_name(agent_id) for agent_id, _ in made], settings)
    return {
        "agents": n,
        "completed": done.count("COMPLETED"),
        "task_executions": len(done),
        "passive_agent_record_bytes": passive_bytes,
        "idle_actor": idle,
        "busy_actor": busy,
        "cpu_first_task_incl_actor_start": cold,
        "cpu_per_task_execution": warm,
        "cpu_ms_per_idle_actor_second": idle_upkeep,
    }


def stop_actors(names: list[str], settings: Any) -> None:
    """End measured actors now, so that their upkeep is not in the next phase's CPU."""
    import ray

    for name in names:
        ray.kill(ray.get_actor(name, namespace=settings.ray.namespace), no_restart=True)


async def conversations_phase(system: Any, settings: Any, m: int, k: int) -> dict[str, Any]:
    from actors.handles import conversation_name
    from linqra.assistants.chat import ChatRequest

    assistant = await system.assistants.create(TEAM, {
        "name": "units", "defaultModel": {"provider": "openai", "modelName": "slow-0-40"},
    })  # fmt: skip

    async def chat(conversation: str | None, text: str) -> tuple[str, str]:
        request = ChatRequest(message=text, conversationId=conversation)
        sent = await system.chat.send(TEAM, request, assistant_id=assistant.id)
        reply = await system.chat.reply(TEAM, sent["run"]["id"], timeout=60)
        return sent["conversation_id"], reply["status"]

    meter = CpuMeter().start()
    first = [await chat(None, f"hello {i}") for i in range(m)]
    cold = per(meter.stop(), m, ("conversations", "driver", "supervisor"))
    per_actor = memory("conversations")
    ids = [c for c, _ in first]
    meter.start()
    replies = await asyncio.gather(*(chat(ids[i % m], f"more {i}") for i in range(k)))
    warm = per(meter.stop(), k, ("conversations", "driver", "gcs", "raylet"))
    statuses = [s for _, s in first + list(replies)]
    stop_actors([conversation_name(c) for c in ids], settings)
    return {
        "conversations": m,
        "messages": len(statuses),
        "completed": statuses.count("completed"),
        "reply_words": 42,
        "actor": per_actor,
        "cpu_first_message_incl_actor_start": cold,
        "cpu_per_message": warm,
    }


async def executions_phase(runner: Any, e: int, r: int) -> dict[str, Any]:
    def body(steps: int, seconds: float) -> dict[str, Any]:
        wait = {"target": "wait", "params": {"seconds": seconds}}
        return {"mode": "sequential", "steps": [{"step": i + 1, **wait} for i in range(steps)]}

    async def run(steps: int, seconds: float) -> str:
        record = await runner.run_definition.remote(TEAM, body(steps, seconds), {}, timeout=300)
        return str(record["status"])

    holders = ("runner", "io_pool")
    before = total_memory(holders)
    waiting = [asyncio.ensure_future(run(1, 15.0)) for _ in range(e)]

    async def all_in_flight() -> bool:
        return len(await runner.running.remote()) >= e

    await until(all_in_flight)
    meter = CpuMeter().start()
    await asyncio.sleep(3.0)  # a window of the waiting executions' own upkeep
    upkeep, upkeep_wall = meter.stop(), meter.wall
    during = total_memory(holders)
    waited = await asyncio.gather(*waiting)

    async def batch(steps: int) -> tuple[dict[str, float], list[str]]:
        meter.start()
        got: list[str] = []
        for i in range(0, r, 10):  # ten at a time
            got += await asyncio.gather(*(run(steps, 0.0) for _ in range(min(10, r - i))))
        return meter.stop(), got

    one, ones = await batch(1)
    ten, tens = await batch(10)
    step = {k: (ten.get(k, 0.0) - one.get(k, 0.0)) / 9 for k in ("total", "runner", "io_pool")}
    return {
        "in_flight": e,
        "completed": (waited + ones + tens).count("COMPLETED"),
        "executions": len(waited) + len(ones) + len(tens),
        "runner_and_io_before": before,
        "runner_and_io_in_flight": during,
        "memory_per_running_execution_kib": {
            k.removesuffix("_mib"): round((during[k] - before[k]) * 1024 / e, 1) for k in before
        },
        "cpu_ms_per_running_execution_second": per(
            {k: v / upkeep_wall for k, v in upkeep.items()}, e, holders
        ),
        "cpu_per_one_step_execution": per(one, r, holders),
        "cpu_per_ten_step_execution": per(ten, r, holders),
        "cpu_per_step": per(step, r, ("runner", "io_pool")),
    }


async def gateway_phase(settings: Any, pid: int, url: str, n: int) -> dict[str, Any]:
    import aiohttp

    headers = {"X-Team-Id": TEAM}
    async with aiohttp.ClientSession(headers=headers) as http:
        body = {"name": "units-read", "steps": [{"step": 1, "target": "noop", "params": {}}]}
        async with http.post(f"{url}/v1/workflows", json=body) as made:
            assert made.status == 201, await made.text()
            read = f"{url}/v1/workflows/{(await made.json())['id']}"
        statuses: list[int] = []

        async def client(count: int) -> None:
            for _ in range(count):
                async with http.get(read) as answer:
                    await answer.read()
                    statuses.append(answer.status)

        await asyncio.gather(*(client(25) for _ in range(8)))  # warm-up
        statuses.clear()
        meter = CpuMeter({pid: "gateway"}).start()
        await asyncio.gather(*(client(n // 8) for _ in range(8)))
        used = meter.stop()
    done = len(statuses)
    return {
        "server": "deployments.app.create_app under uvicorn, one process (B12's), header auth",
        "requests": done,
        "ok": statuses.count(200),
        "requests_per_s": round(done / meter.wall, 1),
        "cpu_per_request": per(used, done, ("gateway", "driver")),
        "gateway_process": {
            "rss_mib": round(psutil.Process(pid).memory_info().rss / MIB, 1),
        },
    }


async def events_phase(bus: Any, n: int) -> dict[str, Any]:
    meter = CpuMeter().start()
    got = await _b10_one(bus, n, None)
    used = meter.stop()
    return {**got, "cpu_per_event": per(used, n, ("driver", "redis", "bus"))}


# -- the run -----------------------------------------------------------------------------------
@contextmanager
def cluster(data_dir: Path, fake_url: str) -> Iterator[tuple[Any, Any]]:
    """A local Ray cluster with Linqra's actors; yields (settings, ClusterActors)."""
    import ray

    from actors.cluster import start_cluster
    from linqra.config import LLMProviderConfig, LLMSettings

    settings = _settings(data_dir)
    providers = {
        **LLMSettings().providers,
        "openai": LLMProviderConfig(kind="openai", base_url=f"{fake_url}/v1"),
    }
    settings = settings.model_copy(update={
        "llm": settings.llm.model_copy(update={"providers": providers}),
        "agents": settings.agents.model_copy(update={"idle_seconds": 600.0}),
        "chat": settings.chat.model_copy(update={"idle_seconds": 600.0}),
    })  # fmt: skip
    ray.init(address="local", num_cpus=2, namespace=NAMESPACE, include_dashboard=False,
             log_to_driver=False)  # fmt: skip
    try:
        actors = start_cluster(settings)
        ray.get(actors.runner.ping.remote())
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
        fake, _ = stack.enter_context(_process(_serve_asgi, "benchmarks.chat:fake_app"))
        settings, actors = stack.enter_context(cluster(tmp / "cluster", fake))
        out.update(asyncio.run(on_cluster(settings, actors, sizes)))
        app_settings = _settings(tmp / "gateway")
        limits = app_settings.rate_limits.model_copy(update={"team": "100000000/minute"})
        app_settings = app_settings.model_copy(update={"rate_limits": limits})
        url, pid = stack.enter_context(_server(app_settings))
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
        "conversation_actor_mib": c["actor"]["pss_mib"],
        "chat_message_cpu_ms": c["cpu_per_message"]["total_ms"],
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
    "chats": 1_000,  # concurrent conversations, each with its actor
    "chat_seconds": 600.0,  # assumed life of a conversation's actor (chat.idle_seconds is 300)
    "messages_per_chat_per_min": 2.0,  # assumed
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
    consumers = math.ceil(load["events_per_s"] / (unit["redis_events_per_s_per_consumer"] * node["usable"]))  # fmt: skip
    parts = {  # name: (cores, GiB)
        "agent actors": (
            load["agent_tasks_per_s"] * unit["agent_task_cpu_ms"] / 1000
            + lingering * unit["agent_idle_cpu_ms_per_s"] / 1000,
            busy * unit["agent_busy_actor_mib"] * gib
            + lingering * unit["agent_idle_actor_mib"] * gib,
        ),
        "conversation actors": (
            messages * unit["chat_message_cpu_ms"] / 1000,
            load["chats"] * unit["conversation_actor_mib"] * gib,
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
    activations = load["agent_tasks_per_s"] + load["chats"] / load["chat_seconds"]
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
        "uncommitted_changes_in_tree": _git("status", "--porcelain", "--untracked-files=no"),
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
