"""``async: true`` steps through a durable queue.

With a queue configured (on a cluster the runner uses the event bus, ``agents.events_url``), the
engine records an async step's run as ``QUEUED`` with its resolved inputs and publishes it on the
``linqra.async-steps`` topic instead of running it; the execution completes without waiting and
lists the step in ``pending_async_steps``. Workers (consumer group ``async-step-workers``) run
it, record the outcome, and only then acknowledge it: a worker that dies mid-step leaves the
message unacknowledged and the bus delivers it again to another worker. A delivery whose step
run is already finished is acknowledged and skipped, so nothing runs twice after it finished.

``pending_async_steps`` in a record is the queued steps whose latest run has not finished yet,
computed when the record is read (``ExecutionRepository.full_record``), so the workers never
rewrite the execution document and cannot race the engine.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Protocol

from linqra.clock import iso
from linqra.events.base import EventBus
from linqra.steps.base import StepCall, StepContext, TargetRegistry
from linqra.steps.runtime import run_step_call
from linqra.workflows.records import ExecutionRepository

__all__ = [
    "ASYNC_GROUP",
    "ASYNC_TOPIC",
    "FINISHED",
    "AsyncStepQueue",
    "BusAsyncStepQueue",
    "process_async_step",
]

ASYNC_TOPIC = "linqra.async-steps"
ASYNC_GROUP = "async-step-workers"
FINISHED = frozenset({"COMPLETED", "FAILED", "TIMEOUT", "CANCELLED", "SKIPPED"})


class AsyncStepQueue(Protocol):
    async def enqueue(self, team_id: str, record: Mapping[str, Any], call: StepCall) -> None: ...


class BusAsyncStepQueue:
    def __init__(self, bus: EventBus) -> None:
        self.bus = bus

    async def enqueue(self, team_id: str, record: Mapping[str, Any], call: StepCall) -> None:
        await self.bus.publish(
            ASYNC_TOPIC,
            {"team_id": team_id, "record": dict(record), "call": dataclasses.asdict(call)},
            key=call.execution_id,
            idempotency_key=str(record["id"]),
        )


async def process_async_step(
    payload: Mapping[str, Any],
    repo: ExecutionRepository,
    registry: TargetRegistry,
    ctx: StepContext,
    *,
    worker: str = "worker",
) -> str:
    """Run one queued step and record its outcome; ``"duplicate"`` when it had already finished."""
    team_id = str(payload["team_id"])
    record = dict(payload["record"])
    current = await repo.step_run(team_id, record["id"])
    if current is not None and current["status"] in FINISHED:
        return "duplicate"
    call = StepCall(**payload["call"])
    record.update(status="RUNNING", started_at=iso(), worker=worker)
    await repo.save_step_run(team_id, record)
    outcome = await run_step_call(call, registry, ctx)
    record.update(outcome.record_fields())
    await repo.save_step_run(team_id, record)
    return str(outcome.status)
