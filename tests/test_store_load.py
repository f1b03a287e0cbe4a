"""Load in process: hundreds of store writers that give up after a few milliseconds.

Clients time out (an HTTP client gives up after 100 ms, a request is cancelled) all the
time; their writes are abandoned mid-flight. Issue 9: the embedded store's writer thread
answered one such abandoned waiter, died, and every later write of the process hung, for
every team. These tests abandon hundreds of writes at random and then prove that the
store still answers writes and reads for every team within normal time and that no write
was applied in part. Each final check runs under a deadline so a hang fails the test.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from linqra.errors import StoreError
from linqra.store import DocumentStore, IndexSpec, open_store
from linqra.system import System

TEAMS = [f"team-{i}" for i in range(8)]
WRITERS = 400
ROUNDS = 3


def _doc(i: int) -> dict[str, Any]:
    body = f"payload {i} " * 40
    return {
        "id": f"d{i}",
        "n": i,
        "body": body,
        "digest": hashlib.sha256(body.encode()).hexdigest(),
    }


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[DocumentStore]:
    store = open_store(f"sqlite:///{tmp_path}/load.db")
    await store.ensure_indexes([IndexSpec("items", ("n",))])
    for team in TEAMS:
        await store.insert("counters", team, {"id": f"c-{team}", "a": 0, "b": 0, "writes": 0})
    yield store
    await store.close()


async def test_hundreds_of_abandoned_writes_leave_the_store_answering_every_team(
    store: DocumentStore,
) -> None:
    rng = random.Random(20261202)
    outcome = {"done": 0, "gave_up": 0}

    async def client(i: int) -> None:
        team = TEAMS[i % len(TEAMS)]
        try:
            # half give up within a few ms, the rest within 100-200 ms (an HTTP client's patience)
            patience = rng.uniform(0.001, 0.005) if i % 2 else rng.uniform(0.1, 0.2)
            async with asyncio.timeout(patience):
                if i % 3 == 0:
                    await store.insert("items", team, _doc(i))
                elif i % 3 == 1:  # one update sets three fields: all or none
                    await store.update(
                        "counters", team, f"c-{team}", {"a": i, "b": -i, "writes": i}
                    )
                else:
                    await store.find("items", team, {"n": {"$gte": i - 30}}, limit=10)
            outcome["done"] += 1
        except (TimeoutError, StoreError):
            outcome["gave_up"] += 1

    t0 = time.monotonic()
    for round_ in range(ROUNDS):
        await asyncio.gather(*(client(round_ * WRITERS + i) for i in range(WRITERS)))
    storm = time.monotonic() - t0
    assert outcome["gave_up"] > 0 and outcome["done"] > 0, outcome  # both happened
    assert outcome["done"] + outcome["gave_up"] == ROUNDS * WRITERS

    t1 = time.monotonic()
    async with asyncio.timeout(30):  # the old writer thread was dead here: every call hung
        for k, team in enumerate(TEAMS):
            await store.insert("items", team, _doc(100_000 + k))
            assert await store.update("counters", team, f"c-{team}", {"a": 1, "b": -1, "writes": 1})
            assert await store.get("items", team, f"d{100_000 + k}") is not None
            items = await store.find("items", team, limit=10_000)
            assert await store.count("items", team) == len(items)
            for item in items:  # nothing applied in part
                assert hashlib.sha256(item["body"].encode()).hexdigest() == item["digest"]
                assert item["body"] == _doc(item["n"])["body"] and item["team_id"] == team
            counter = await store.get("counters", team, f"c-{team}")
            assert counter is not None
            assert counter["a"] == 1 and counter["b"] == -1 and counter["writes"] == 1
        await store.check(5)
    after = time.monotonic() - t1
    assert after < 10, f"the store answered slowly after the storm: {after:.1f}s"
    print(f"\nstore load: {ROUNDS * WRITERS} writers in {storm:.2f}s {outcome}; after {after:.2f}s")


async def test_abandoned_creates_and_executions_leave_every_team_executing(
    system: System,
) -> None:
    """The in-process analogue of 300 clients giving up on POST /v1/workflows."""
    rng = random.Random(9)
    body = {"name": "load", "steps": [{"step": 1, "target": "noop", "params": {"x": 1}}]}
    gave_up = 0

    async def client(i: int) -> None:
        nonlocal gave_up
        team = TEAMS[i % len(TEAMS)]
        try:
            async with asyncio.timeout(rng.uniform(0.001, 0.05)):
                wf = await system.workflows.create(team, body)
                await system.workflows.new_execution(team, workflow_id=wf.id)
        except (TimeoutError, StoreError):
            gave_up += 1

    await asyncio.gather(*(client(i) for i in range(300)))
    assert gave_up > 0

    runner = system.runner("load-runner")
    async with asyncio.timeout(60):
        for team in TEAMS:
            wf = await system.workflows.create(team, body)
            ex = await system.workflows.new_execution(team, workflow_id=wf.id, params={"t": team})
            await runner.submit(team, ex["id"])
            record = await runner.wait(team, ex["id"], 30)
            assert record["status"] == "COMPLETED", record
            assert record["steps"][0]["output"] == {"x": 1}
