"""The phases of :mod:`benchmarks.unit_costs` (its docstring says what each measures): each
takes the system or actors of the cluster it runs on and returns its figures.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import psutil  # type: ignore[import-untyped]

from benchmarks._support import event_to_task
from benchmarks._unit_meter import MIB, CpuMeter, memory, per, total_memory, until

__all__ = [
    "TEAM",
    "agents_phase",
    "conversations_phase",
    "events_phase",
    "executions_phase",
    "gateway_phase",
    "stop_actors",
]

TEAM = "bench-units"


async def agents_phase(system: Any, settings: Any, n: int) -> dict[str, Any]:
    """``agents``: ``n`` agents' actors idle and busy, CPU per task execution and idle second."""
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
    """``conversations``: the chat host started by a first conversation, ``m`` conversations
    more on it, then ``k`` messages more; memory and CPU (``chat.hosts`` is 1 here)."""
    import ray

    from actors.handles import CHAT_PREFIX
    from linqra.assistants.chat import ChatRequest

    assistant = await system.assistants.create(TEAM, {
        "name": "units", "defaultModel": {"provider": "openai", "modelName": "slow-0-40"},
    })  # fmt: skip

    async def chat(conversation: str | None, text: str) -> tuple[str, str]:
        request = ChatRequest(message=text, conversationId=conversation)
        sent = await system.chat.send(TEAM, request, assistant_id=assistant.id)
        reply = await system.chat.reply(TEAM, sent["run"]["id"], timeout=60)
        return sent["conversation_id"], reply["status"]

    roles = ("chat_hosts", "driver", "supervisor")
    meter = CpuMeter().start()
    t = time.monotonic()
    started = [await chat(None, "hello, host")]
    host_answer_s = round(time.monotonic() - t, 3)
    host_start = per(meter.stop(), 1, roles)
    host = memory("chat_hosts")  # one conversation in it
    meter.start()
    first, answered_s = [], []
    for i in range(m):  # one at a time: how long a new conversation's first answer takes
        t = time.monotonic()
        first.append(await chat(None, f"hello {i}"))
        answered_s.append(time.monotonic() - t)
    cold = per(meter.stop(), m, roles)
    held = memory("chat_hosts")
    ids = [c for c, _ in first]
    meter.start()
    replies = await asyncio.gather(*(chat(ids[i % m], f"more {i}") for i in range(k)))
    warm = per(meter.stop(), k, ("chat_hosts", "driver", "gcs", "raylet"))
    # k runs more, one at a time, for what a run's event log keeps in the host (memory://):
    # the k at once above also leave what their peak took in the allocator's arenas
    before_runs = memory("chat_hosts")
    more = [await chat(ids[i % m], f"again {i}") for i in range(k)]
    after = memory("chat_hosts")
    statuses = [s for _, s in started + first + list(replies) + more]
    stop_actors([n for n in ray.util.list_named_actors() if n.startswith(CHAT_PREFIX)], settings)
    return {
        "conversations": m + 1,
        "messages": len(statuses),
        "completed": statuses.count("completed"),
        "reply_words": 42,
        "first_answer_incl_host_start_s": host_answer_s,
        "first_answer_s": {
            "p50": round(statistics.median(answered_s), 3),
            "max": round(max(answered_s), 3),
        },
        "host": host,
        "host_with_all": held,
        "host_after_messages": after,
        # USS: what the conversations added to the host's own pages (PSS moves as sharers die);
        # each with its first run, whose event log the host keeps chat.run_log_ttl_seconds
        "memory_per_conversation_kib": round((held["uss_mib"] - host["uss_mib"]) * 1024 / m, 1),
        "host_before_runs": before_runs,
        "memory_per_run_kib": round((after["uss_mib"] - before_runs["uss_mib"]) * 1024 / k, 1),
        "cpu_first_message_incl_host_start": host_start,
        "cpu_first_message": cold,
        "cpu_per_message": warm,
    }


async def executions_phase(runner: Any, e: int, r: int) -> dict[str, Any]:
    """``executions``: ``e`` in flight, then ``r`` one-step and ``r`` ten-step executions."""

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
    """``gateway``: ``n`` team-scoped reads from the app at ``url`` (process ``pid``)."""
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
    """``events``: ``n`` events through B10's consumer on ``bus``, CPU per event."""
    meter = CpuMeter().start()
    got = await event_to_task(bus, n, None)
    used = meter.stop()
    return {**got, "cpu_per_event": per(used, n, ("driver", "redis", "bus"))}
