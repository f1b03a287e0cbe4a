"""The production topology on one machine (docs/operations.md, "Production topology"): two
gateway replicas (two apps, each its own System, as two Serve replicas are two processes) and
two runner actors on the session's Ray cluster, sharing one MongoDB-wire server (SecantusDB),
one redis-server, one Kafka broker (tansu) and one Milvus (Lite) server, each client sized by
``connections``."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from deployments.app import create_app
from linqra.config import Settings
from linqra.events import ProcessedEvents
from linqra.system import System

pytestmark = pytest.mark.ray

TEAM = "team-topology"
NAMESPACE = "linqra-topology"
WORKFLOW = {
    "name": "two-steps",
    "steps": [
        {"step": 1, "target": "wait", "params": {"seconds": "{{params.seconds}}"}},
        {"step": 2, "target": "transform", "params": {"expression": "`2`", "input": {}}},
    ],
}


@pytest.fixture(scope="module")
def topology(
    ray_cluster: Any,
    ray_settings: Settings,
    mongo_url: str,
    redis_url: str,
    kafka_bootstrap: str,
    milvus_uri: str,
) -> Iterator[Settings]:
    """Linqra's actors in a namespace of their own, two runners among them, on real servers."""
    import ray

    from actors.cluster import Readiness, start_cluster

    data = ray_settings.model_dump(mode="json")
    db = f"topology_{uuid.uuid4().hex[:8]}"
    data.update(
        store_url=f"{mongo_url.rsplit('/', 1)[0]}/{db}?maxPoolSize=7",  # the pool in the URL
        cache_url=redis_url,
        connections={
            "mongodb": {"min_pool_size": 1},
            "redis": {"max_connections": 9},
            "kafka": {"session_timeout_ms": 2000, "linger_ms": 5},
            "milvus": {"max_concurrent_calls": 3},
        },
        rate_limits={"team": "30/minute"},
        alerts={"enabled": False},
    )
    data["ray"]["namespace"] = NAMESPACE
    data["agents"].update(events_url=f"kafka://{kafka_bootstrap}", async_step_workers=0)
    data["execution"].update(runners=2, io_pool_size=1, cpu_pool_size=0, stale_after_seconds=2)
    settings = Settings.model_validate(data)
    actors = start_cluster(settings)
    try:
        asyncio.run(_eventually(lambda: _answers(Readiness(settings).check()), timeout=60))
        yield settings
    finally:
        for actor in [*actors.runners, actors.supervisor, actors.scheduler, *actors.io_pool]:
            ray.kill(actor, no_restart=True)


async def _eventually(check: Callable[[], Awaitable[Any]], timeout: float = 30) -> Any:
    """``check()``'s first truthy answer (an exception counts as not yet), polled with back-off."""
    deadline, pause, error = time.monotonic() + timeout, 0.02, None
    while time.monotonic() < deadline:
        try:
            if answer := await check():
                return answer
        except Exception as exc:
            error = exc
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.25)
    raise AssertionError(f"not true within {timeout:g}s (last error: {error!r})")


async def _answers(call: Awaitable[Any]) -> bool:
    await call
    return True


@asynccontextmanager
async def replicas(settings: Settings) -> AsyncIterator[list[tuple[System, httpx.AsyncClient]]]:
    """Two gateway replicas: each its own System (its own clients and pools) and app."""
    from actors.handles import RayLauncher

    pairs = []
    for name in ("a", "b"):
        system = await System.open(settings, launcher=RayLauncher(settings))
        transport = httpx.ASGITransport(app=create_app(system))
        http = httpx.AsyncClient(
            transport=transport, base_url=f"http://{name}", headers={"X-Team-Id": TEAM}
        )
        pairs.append((system, http))
    try:
        yield pairs
    finally:
        for system, http in pairs:
            await http.aclose()
            await system.close()


async def _submit(http: httpx.AsyncClient, workflow_id: str, seconds: float) -> str:
    answer = await http.post(
        f"/v1/workflows/{workflow_id}/execute", json={"params": {"seconds": seconds}}
    )
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


async def _step_runs(system: System, execution_id: str) -> Counter[tuple[int, str]]:
    runs = await system.workflows.executions.step_runs(TEAM, execution_id)
    return Counter((int(r["step"]), str(r["status"])) for r in runs)


def test_pool_sizes_configured_are_the_ones_the_clients_use(topology: Settings) -> None:
    from linqra.events import open_event_bus

    async def check() -> None:
        async with replicas(topology) as pairs:
            for system, _http in pairs:
                assert system.store.pool_size == (7, 1)  # type: ignore[attr-defined]
                assert system.cache.pool.max_connections == 9  # type: ignore[attr-defined]
                assert system.limiter.pool.max_connections == 9
                bus: Any = system.bus()
                assert (bus.session_timeout_ms, bus.linger_ms) == (2000, 5)
                producer = await bus._producer_started()
                assert producer._message_accumulator._linger_time == 0.005
                vectors: Any = system.knowledge.vectors
                await vectors.create_collection(f"lq_pool_{uuid.uuid4().hex[:6]}", 4, {})
                assert vectors._threads._max_workers == 3
            redis_bus: Any = open_event_bus(topology.cache_url, connections=topology.connections)
            assert redis_bus.redis.connection_pool.max_connections == 9
            await redis_bus.close()

    assert topology.connections.mongodb.max_pool_size == 7  # adopted from store_url
    asyncio.run(check())


def test_executions_through_two_gateways_complete_once_on_both_runners(
    topology: Settings,
) -> None:
    from actors.handles import runner_for, runner_names

    async def check() -> None:
        async with replicas(topology) as pairs:
            (a, http_a), (_, http_b) = pairs
            created = await http_a.post("/v1/workflows", json=WORKFLOW)
            workflow_id = created.json()["id"]
            ids: list[str] = []
            while len(ids) < 8 or len({runner_for(topology, i) for i in ids}) < 2:
                ids.append(await _submit((http_a, http_b)[len(ids) % 2], workflow_id, 0.05))
            records = [await a.workflows.executions.jobs.wait(TEAM, i, 30) for i in ids]
            assert [r["status"] for r in records if r] == ["COMPLETED"] * len(ids)
            assert {r["runner_id"] for r in records if r} == set(runner_names(topology))
            for execution_id in ids:
                assert await _step_runs(a, execution_id) == {
                    (1, "COMPLETED"): 1,
                    (2, "COMPLETED"): 1,
                }

    asyncio.run(check())


def test_rate_limits_in_redis_are_shared_by_the_replicas(topology: Settings) -> None:
    async def check() -> None:
        async with replicas(topology) as pairs:
            team = {"X-Team-Id": f"team-rl-{uuid.uuid4().hex[:8]}"}
            answers = [
                (await pairs[i % 2][1].get("/v1/workflows", headers=team)).status_code
                for i in range(40)
            ]
            assert Counter(answers) == {200: 30, 429: 10}  # 30/minute in all, not per replica

    asyncio.run(check())


def test_events_through_kafka_are_handled_once_by_a_group_over_two_replicas(
    topology: Settings,
) -> None:
    async def check() -> None:
        async with replicas(topology) as pairs:
            topic, group = f"topo-{uuid.uuid4().hex[:8]}", "topology-consumers"
            subs = [
                await s.bus().subscribe(topic, group, f"c{i}") for i, (s, _) in enumerate(pairs)
            ]
            processed = ProcessedEvents(pairs[0][0].store)
            sent = [
                (await pairs[i % 2][0].bus().publish(topic, {"n": i}, idempotency_key=f"k{i}")).id
                for i in range(20)
            ]
            handled: list[str] = []

            async def consume(sub: Any, owner: str) -> None:
                while len(handled) < len(sent):
                    for delivery in await sub.fetch(10, timeout=0.5):
                        key = delivery.event.idempotency_key
                        if await processed.claim(TEAM, key, owner):
                            handled.append(delivery.event.id)
                            await processed.done(TEAM, key)
                        await sub.ack(delivery)

            await asyncio.wait_for(
                asyncio.gather(*(consume(s, str(i)) for i, s in enumerate(subs))), 30
            )
            assert sorted(handled) == sorted(sent)  # every event once, none twice
            for sub in subs:
                await sub.close()

    asyncio.run(check())


def test_a_cancel_reaches_the_runner_that_owns_the_execution(topology: Settings) -> None:
    """An execution run by another runner than the one its id hashes to (as one adopted after
    its runner was lost) stops at the cancel, not at its owner's next heartbeat."""
    from actors.handles import RUNNER, call, runner_for, runner_name

    async def check() -> None:
        async with replicas(topology) as pairs:
            (a, http_a), _ = pairs
            workflow_id = (await http_a.post("/v1/workflows", json=WORKFLOW)).json()["id"]
            params = {"seconds": 60}
            execution = await a.workflows.new_execution(
                TEAM, workflow_id=workflow_id, params=params
            )
            while runner_for(topology, execution["id"]) != runner_name(1):
                cancelled = await http_a.post(f"/v1/executions/{execution['id']}/cancel")
                assert cancelled.json()["status"] == "CANCELLED"  # PENDING: none runs later
                execution = await a.workflows.new_execution(
                    TEAM, workflow_id=workflow_id, params=params
                )
            execution_id = execution["id"]
            await call(topology, RUNNER, "submit", TEAM, execution_id)  # the adopter's claim

            async def step_one_running() -> bool:
                return (1, "RUNNING") in await _step_runs(a, execution_id)

            await _eventually(step_one_running)
            answer = await http_a.post(f"/v1/executions/{execution_id}/cancel")
            assert answer.status_code == 200, answer.text
            assert answer.json()["status"] == "CANCELLED"  # at once: the owner stopped it
            stored = await a.workflows.executions.get(TEAM, execution_id)
            assert (stored["status"], stored["runner_id"]) == ("CANCELLED", RUNNER)
            assert (1, "CANCELLED") in await _step_runs(a, execution_id)

    asyncio.run(check())


def test_a_stopped_runners_executions_are_adopted_by_the_other(topology: Settings) -> None:
    """Last in this module: ``linqra-runner-1`` is killed for good."""
    import ray

    from actors.handles import RUNNER, runner_for, runner_name

    async def check() -> None:
        async with replicas(topology) as pairs:
            (a, _), (_, http_b) = pairs
            workflow_id = (await http_b.post("/v1/workflows", json=WORKFLOW)).json()["id"]
            victim = runner_name(1)
            execution_id = await _submit(http_b, workflow_id, 3)
            while runner_for(topology, execution_id) != victim:  # the first ones just complete
                execution_id = await _submit(http_b, workflow_id, 3)

            async def step_one_running() -> bool:
                return (1, "RUNNING") in await _step_runs(a, execution_id)

            await _eventually(step_one_running)
            assert (await a.workflows.executions.get(TEAM, execution_id))["runner_id"] == victim
            ray.kill(ray.get_actor(victim, namespace=NAMESPACE), no_restart=True)
            record = await a.workflows.executions.jobs.wait(TEAM, execution_id, 30)
            assert record is not None
            assert (record["status"], record["runner_id"]) == ("COMPLETED", RUNNER)
            assert record["auto_resumes"] == 1
            runs = await _step_runs(a, execution_id)
            assert runs[(1, "COMPLETED")] == 1 and runs[(2, "COMPLETED")] == 1
            assert runs[(1, "CANCELLED")] == 1  # the run the stopped runner left, interrupted

    asyncio.run(check())


def test_the_documented_production_example_is_valid_settings() -> None:
    import re
    from pathlib import Path

    import yaml

    page = (Path(__file__).parent.parent / "docs" / "operations.md").read_text()
    section = page[page.index("## Production topology") :]
    example = yaml.safe_load(re.findall(r"```yaml\n(.*?)```", section, re.S)[0])
    settings = Settings.model_validate(example)
    assert settings.execution.runners == 2
    assert settings.connections.mongodb.max_pool_size == 20
    assert "replicaSet=rs0" in settings.store_url


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"connections": {"mongodb": {"max_pool_size": 0}}}, "connections.mongodb.max_pool_size"),
        ({"connections": {"mongodb": {"min_pool_size": 9, "max_pool_size": 3}}}, "min_pool_size"),
        (
            {"connections": {"redis": {"max_connections": "many"}}},
            "connections.redis.max_connections",
        ),
        ({"connections": {"milvus": {"max_concurrent_calls": 0}}}, "connections.milvus"),
        ({"execution": {"runners": 0}}, "execution.runners"),
        (
            {
                "store_url": "mongodb://db/x?maxPoolSize=5",
                "connections": {"mongodb": {"max_pool_size": 7}},
            },
            "connections.mongodb.max_pool_size is 7",
        ),
    ],
)
def test_a_bad_pool_size_is_an_error_naming_the_setting(values: dict[str, Any], named: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=named.replace(".", r"\.")):
        Settings.model_validate(values)
