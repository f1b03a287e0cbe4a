"""The work of the multi-node scenario, and counting it in the store afterwards.

Everything goes through a :class:`~linqra.system.System` opened on the driver with the Ray
launcher, as the gateway does: executions to the runner actor, task executions to agent actors,
documents to the supervisor's ingestion tasks. The counts read the records themselves (the store
is one SQLite file in a data directory every node of the one-machine cluster shares).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from linqra.agents.executions import TASK_EXECUTIONS
from linqra.knowledge.collections import DOCUMENTS
from linqra.status import (
    EXECUTION_TERMINAL,
    STEP_FINISHED,
    TASK_TERMINAL,
    DocumentStatus,
    StepStatus,
)
from linqra.system import System
from linqra.workflows.records import EXECUTIONS, STEP_RUNS

__all__ = [
    "TEAM",
    "Batch",
    "Fixtures",
    "audit",
    "ended",
    "fixtures",
    "in_flight",
    "settled",
    "start_batch",
]

TEAM = "team-multinode"
ASYNC_STEP = 6
DOC_TERMINAL = {DocumentStatus.READY, DocumentStatus.FAILED}


@dataclass
class Fixtures:
    adder_task: str  # DATA_PROCESSING: sum(values), on agent "adder"
    sleeper_task: str  # WORKFLOW_EMBEDDED: one wait step, on agent "sleeper"
    echo_task: str  # DATA_PROCESSING: its input, on agent "echo"
    agents: dict[str, str]  # agent name -> id
    collection: str


@dataclass
class Batch:
    """What one round of work started (ids), to count afterwards."""

    executions: list[str] = field(default_factory=list)
    task_executions: list[str] = field(default_factory=list)
    documents: list[str] = field(default_factory=list)


async def fixtures(system: System, sleeper_seconds: float) -> Fixtures:
    agents = system.agents
    adder = await agents.create_agent(TEAM, {"name": "adder", "max_concurrency": 50})
    sleeper = await agents.create_agent(TEAM, {"name": "sleeper", "max_concurrency": 50})
    add = await agents.create_task(TEAM, adder.id, {
        "name": "add", "type": "DATA_PROCESSING", "config": {"expression": "sum(values)"}})  # fmt: skip
    sleep = await agents.create_task(TEAM, sleeper.id, {
        "name": "sleep", "type": "WORKFLOW_EMBEDDED", "max_retries": 0,
        "config": {"steps": [{"step": 1, "target": "wait", "params": {"seconds": sleeper_seconds}}]}})  # fmt: skip
    echo = await agents.create_agent(TEAM, {"name": "echo"})
    say = await agents.create_task(TEAM, echo.id, {
        "name": "say", "type": "DATA_PROCESSING", "config": {"expression": "@"}})  # fmt: skip
    col = await system.knowledge.create_collection(TEAM, {"name": "multinode-notes"})
    ids = {"adder": adder.id, "sleeper": sleeper.id, "echo": echo.id}
    return Fixtures(add.id, sleep.id, say.id, ids, col.id)


def fan(io_seconds: float, async_seconds: float, adder_task: str) -> dict[str, Any]:
    """Four parallel I/O steps (the pool), an agent's task (its actor), an ``async: true`` step
    (the async-step workers) and a CPU step (a Ray task): every kind of work an execution makes."""
    steps: list[dict[str, Any]] = [
        {"step": i, "target": "wait", "params": {"seconds": io_seconds}} for i in range(1, 5)
    ]
    steps += [
        {"step": 5, "target": "agent", "action": "execute",
         "params": {"taskId": adder_task, "input": {"values": [20, 22]}}},
        {"step": ASYNC_STEP, "target": "wait", "params": {"seconds": async_seconds},
         "async": True, "timeoutSeconds": 20},
        {"step": 7, "target": "transform", "executor": "task",
         "params": {"expression": "`7`", "input": {}}},
    ]  # fmt: skip
    return {"mode": "dag", "steps": steps}


async def start_batch(
    system: System,
    fx: Fixtures,
    *,
    executions: int,
    io_seconds: float,
    async_seconds: float,
    sleepers: int,
    documents: list[bytes],
    echoes: int = 0,
) -> Batch:
    """Start everything at once; return the ids (nothing is awaited past its start)."""
    name = f"fan-{io_seconds:g}-{async_seconds:g}"
    wf = await system.workflows.create(
        TEAM, {"name": name, **fan(io_seconds, async_seconds, fx.adder_task)}
    )
    batch = Batch()

    async def one_execution() -> None:
        ex = await system.runs.start_execution(TEAM, workflow_id=wf.id)
        batch.executions.append(ex["id"])

    async def one_task(task_id: str) -> None:
        tx = await system.runs.run_task(TEAM, task_id, trigger={"type": "MANUAL"})
        batch.task_executions.append(tx["id"])

    async def one_document(i: int, data: bytes) -> None:
        doc, _ = await system.knowledge.add_document(
            TEAM, fx.collection, data, file_name=f"note-{i}.txt"
        )
        await system.runs.ingest(TEAM, doc["id"])
        batch.documents.append(doc["id"])

    await asyncio.gather(
        *(one_execution() for _ in range(executions)),
        *(one_task(fx.sleeper_task) for _ in range(sleepers)),
        *(one_task(fx.echo_task) for _ in range(echoes)),
        *(one_document(i, data) for i, data in enumerate(documents)),
    )
    return batch


async def _executions(system: System, ids: list[str]) -> list[dict[str, Any]]:
    return await system.store.find(EXECUTIONS, TEAM, {"id": {"$in": ids}}, limit=10_000)


async def _step_runs(system: System, ids: list[str]) -> list[dict[str, Any]]:
    return await system.store.find(STEP_RUNS, TEAM, {"execution_id": {"$in": ids}}, limit=100_000)


async def in_flight(system: System, batch: Batch) -> dict[str, int]:
    """How much of ``batch`` is running now (what a node loss would cut)."""
    execs = await _executions(system, batch.executions)
    runs = await _step_runs(system, batch.executions)
    txs = await system.store.find(TASK_EXECUTIONS, TEAM, {"id": {"$in": batch.task_executions}})
    docs = await system.store.find(DOCUMENTS, TEAM, {"id": {"$in": batch.documents}})
    return {
        "executions_running": sum(e["status"] == "RUNNING" for e in execs),
        "steps_running": sum(r["status"] == StepStatus.RUNNING for r in runs),
        "async_steps_waiting_or_running": sum(
            r["step"] == ASYNC_STEP and r["status"] in (StepStatus.QUEUED, StepStatus.RUNNING)
            for r in runs
        ),
        "task_executions_running": sum(t["status"] == "RUNNING" for t in txs),
        "documents_processing": sum(d["status"] != DocumentStatus.READY for d in docs),
    }


async def ended(system: System, batch: Batch) -> dict[str, bool]:
    """Which kinds of ``batch``'s records have all reached their end: the executions, their
    step runs (async ones included), every task execution of the team (the batch's and those
    its executions started), the documents."""
    execs = await _executions(system, batch.executions)
    runs = await _step_runs(system, batch.executions)
    txs = await system.store.find(TASK_EXECUTIONS, TEAM, {}, limit=10_000)
    docs = await system.store.find(DOCUMENTS, TEAM, {"id": {"$in": batch.documents}})
    return {
        "executions": len(execs) == len(batch.executions)
        and all(e["status"] in EXECUTION_TERMINAL for e in execs),
        "steps": all(r["status"] in STEP_FINISHED for r in runs),
        "task_executions": all(t["status"] in TASK_TERMINAL for t in txs),
        "documents": len(docs) == len(batch.documents)
        and all(d["status"] in DOC_TERMINAL for d in docs),
    }


async def settled(system: System, batch: Batch) -> bool:
    """Whether every record of ``batch`` reached its end (:func:`ended`)."""
    return all((await ended(system, batch)).values())


async def audit(system: System, batch: Batch, fx: Fixtures) -> dict[str, Any]:
    """Count ``batch`` in the store: what ended how, what is missing (lost), what ran to its end
    more than once (doubled)."""
    execs = await _executions(system, batch.executions)
    runs = await _step_runs(system, batch.executions)
    completed_runs = Counter(
        (r["execution_id"], r["step"]) for r in runs if r["status"] == StepStatus.COMPLETED
    )
    by_status = Counter(e["status"] for e in execs)
    errors = Counter(_where_failed(e.get("error")) for e in execs if e["status"] != "COMPLETED")
    steps_of = {e["id"]: len(e.get("definition", {}).get("steps", [])) or 7 for e in execs}
    missing_steps = sum(
        1
        for e in execs
        if e["status"] == "COMPLETED"
        for step in range(1, steps_of[e["id"]] + 1)
        if completed_runs[(e["id"], step)] == 0
    )
    async_runs = [r for r in runs if r["step"] == ASYNC_STEP]
    txs = await system.store.find(TASK_EXECUTIONS, TEAM, {"id": {"$in": batch.task_executions}})
    nested = await system.store.find(
        TASK_EXECUTIONS, TEAM, {"task_id": fx.adder_task}, limit=10_000
    )
    nested_in_batch = [t for t in nested if _parent(t) in set(batch.executions)]
    docs = []
    for doc_id in batch.documents:
        doc = await system.knowledge.get_document(TEAM, fx.collection, doc_id, chunks=True)
        indices = [c["index"] for c in doc.get("chunks", [])]
        docs.append(
            {
                "status": doc["status"],
                "chunks": len(indices),
                "chunks_total": doc.get("chunks_total"),
                "doubled_chunks": len(indices) - len(set(indices)),
            }
        )
    return {
        "executions": {
            "started": len(batch.executions),
            "found": len(execs),
            "lost": len(set(batch.executions) - {e["id"] for e in execs})
            + sum(e["status"] not in EXECUTION_TERMINAL for e in execs),
            "by_status": dict(by_status),
            "errors": dict(errors),
            "auto_resumed": sum(int(e.get("auto_resumes", 0)) > 0 for e in execs),
            "steps_completed_twice": sum(n > 1 for n in completed_runs.values()),
            "unfinished_step_runs": dict(
                Counter(
                    f"step {r['step']} {r['status']} {r.get('worker', '')}".strip()
                    for r in runs
                    if r["status"] not in STEP_FINISHED
                )
            ),
            "completed_without_a_step": missing_steps,
            "step_runs": len(runs),
        },
        "async_steps": {
            "expected": len(batch.executions),
            "completed": sum(r["status"] == StepStatus.COMPLETED for r in async_runs),
            "unfinished": sum(r["status"] not in STEP_FINISHED for r in async_runs),
            "by_status": dict(Counter(r["status"] for r in async_runs)),
            "workers": dict(Counter(r.get("worker", "?") for r in async_runs)),
        },
        "task_executions": {
            "started": len(batch.task_executions),
            "found": len(txs),
            "by_status": dict(Counter(t["status"] for t in txs)),
            "errors": dict(
                Counter(_where_failed(t.get("error")) for t in txs if t["status"] != "COMPLETED")
            ),
            "attempts": dict(Counter(int(t.get("attempts", 0)) for t in txs)),
            "nested": len(nested_in_batch),
            "nested_by_status": dict(Counter(t["status"] for t in nested_in_batch)),
            "nested_per_execution_max": max(
                Counter(_parent(t) for t in nested_in_batch).values(), default=0
            ),
        },
        "documents": {
            "started": len(batch.documents),
            "by_status": dict(Counter(d["status"] for d in docs)),
            "doubled_chunks": sum(d["doubled_chunks"] for d in docs),
            "chunks_match": all(d["chunks"] == d["chunks_total"] for d in docs),
        },
    }


def _where_failed(error: dict[str, Any] | None) -> str:
    """``code`` of an execution's error, ``code@step`` when a step failed it."""
    error = error or {}
    code = str(error.get("code", "?"))
    return f"{code}@{error['step']}" if error.get("step") is not None else code


def _parent(tx: dict[str, Any]) -> str | None:
    trigger = tx.get("trigger") or {}
    return trigger.get("execution_id") or trigger.get("parent_execution_id")
