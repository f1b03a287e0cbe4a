"""``async: true`` steps through a durable queue.

With a queue configured (on a cluster the runner uses the event bus, ``agents.events_url``), the
engine records an async step's run as ``QUEUED`` with its resolved inputs and publishes it on the
``linqra.async-steps`` topic instead of running it; the execution completes without waiting and
lists the step in ``pending_async_steps``. Workers (consumer group ``async-step-workers``) run
it, record the outcome, and only then acknowledge it: a worker that dies mid-step leaves the
message unacknowledged and the bus delivers it again to another worker. A delivery whose step
run is already finished is acknowledged and skipped, so nothing runs twice after it finished.

A worker running a step renews the run's ``heartbeat_at`` every ``heartbeat_seconds``; another
worker takes a RUNNING step over only when that heartbeat is older than ``stale_after_seconds``
(its worker or node died), compare-and-set on the heartbeat it saw — not after the step's whole
timeout as before (issue 17: a step on a lost node waited its timeout plus a minute). A worker
records its outcome only while the run is still RUNNING under its name: one that was taken over,
or whose run was closed meanwhile, drops its outcome, so a step never completes twice. A runner
that adopts the execution leaves a queued run to the queue and its workers: it does not queue
the step again.

``pending_async_steps`` in a record is the queued steps whose latest run has not finished yet,
computed when the record is read (``ExecutionRepository.full_record``), so the workers never
rewrite the execution document and cannot race the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Mapping
from typing import Any, Protocol

from linqra import tracing
from linqra.clock import iso, parse_iso, utcnow
from linqra.events.base import EventBus
from linqra.metrics import record_step
from linqra.status import STEP_FINISHED, StepStatus
from linqra.steps.base import StepCall, StepContext, TargetRegistry
from linqra.steps.runtime import StepOutcome, run_step_call
from linqra.workflows.records import ExecutionRepository

__all__ = [
    "ASYNC_GROUP",
    "ASYNC_TOPIC",
    "FINISHED",
    "AsyncStepQueue",
    "BusAsyncStepQueue",
    "process_async_step",
]

log = logging.getLogger(__name__)

ASYNC_TOPIC = "linqra.async-steps"
ASYNC_GROUP = "async-step-workers"
FINISHED = STEP_FINISHED
STALE_MARGIN_SECONDS = 60.0
"""A RUNNING step without a heartbeat (recorded by an earlier version) is taken over after its
timeout times its attempts plus this."""


class AsyncStepQueue(Protocol):
    async def enqueue(self, team_id: str, record: Mapping[str, Any], call: StepCall) -> None: ...


class BusAsyncStepQueue:
    def __init__(self, bus: EventBus) -> None:
        self.bus = bus

    async def enqueue(self, team_id: str, record: Mapping[str, Any], call: StepCall) -> None:
        await self.bus.publish(
            ASYNC_TOPIC,
            queued_message(team_id, record, dataclasses.asdict(call)),
            key=call.execution_id,
            idempotency_key=str(record["id"]),
        )

    async def requeue_lost(self, repo: ExecutionRepository, older_than_seconds: float) -> int:
        """Publish again the async steps QUEUED for longer than ``older_than_seconds`` — a queue
        that lost them (the embedded bus's actor restarted) or a message nobody took. A step
        that is taken meanwhile is claimed by one worker only (the claim is a compare-and-set)."""
        count = 0
        for run in await repo.queued_step_runs(older_than_seconds):
            call = run.get("queued_call")
            if not call:
                continue
            record = {k: v for k, v in run.items() if k != "team_id"}
            await self.bus.publish(
                ASYNC_TOPIC, queued_message(run["team_id"], record, call),
                key=str(run["execution_id"]), idempotency_key=str(run["id"]),
            )  # fmt: skip
            await repo.claim_step_run(
                run["team_id"], run["id"], {"queued_at": iso(), "requeued": run.get("requeued", 0) + 1},
                from_status=StepStatus.QUEUED,
            )  # fmt: skip
            count += 1
        return count


def queued_message(
    team_id: str, record: Mapping[str, Any], call: Mapping[str, Any]
) -> dict[str, Any]:
    return {"team_id": team_id, "record": dict(record), "call": dict(call)}


async def process_async_step(
    payload: Mapping[str, Any],
    repo: ExecutionRepository,
    registry: TargetRegistry,
    ctx: StepContext,
    *,
    worker: str = "worker",
    heartbeat_seconds: float = 5.0,
    stale_after_seconds: float = 30.0,
) -> str:
    """Run one queued step and record its outcome (its status); ``"duplicate"`` when it had
    already finished (acknowledge it); ``"busy"`` when another worker runs it now (do not
    acknowledge: it comes back, and is taken over if that worker's heartbeat stops)."""
    team_id = str(payload["team_id"])
    record = dict(payload["record"])
    current = await repo.step_run(team_id, record["id"])
    if current is not None and current["status"] in FINISHED:
        return "duplicate"
    call = StepCall(**payload["call"])
    now = iso()
    running = {
        "status": StepStatus.RUNNING,
        "started_at": now,
        "heartbeat_at": now,
        "worker": worker,
    }
    if current is not None and current["status"] == StepStatus.RUNNING:
        # another worker has it; if its heartbeat stopped, it died: take over
        seen = {k: current.get(k) for k in ("started_at", "heartbeat_at")}
        if current.get("heartbeat_at"):
            allowed, last = stale_after_seconds, parse_iso(current["heartbeat_at"])
        else:  # an earlier version's worker: no heartbeat, only the step's own time limit
            allowed = call.timeout * call.max_attempts + STALE_MARGIN_SECONDS
            last = parse_iso(current["started_at"])
        if (utcnow() - last).total_seconds() < allowed:
            return "busy"  # leave the message unacknowledged: it comes back later
        claimed = await repo.store_update_step_run(
            team_id, record["id"], running, where={"status": StepStatus.RUNNING, **seen}
        )
    else:
        claimed = await repo.claim_step_run(
            team_id, record["id"], running, from_status=StepStatus.QUEUED
        )
    if not claimed:
        return "busy"  # a re-queued copy is being run by another worker
    record.update(running)
    mine = {"status": StepStatus.RUNNING, "worker": worker, "started_at": now}  # this take only
    beat = asyncio.create_task(_heartbeat(repo, team_id, record["id"], mine, heartbeat_seconds))
    try:
        outcome = await _run_traced(call, registry, ctx)
    finally:
        beat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beat
    record.update(outcome.record_fields())
    record_step(ctx.system.metrics, call, outcome)
    ended = await repo.store_update_step_run(
        team_id,
        record["id"],
        {k: v for k, v in record.items() if k not in ("id", "team_id")},
        where=mine,
    )
    if not ended:  # taken over (this worker looked dead) or interrupted by a resume meanwhile
        log.warning("async step run_id=%s ended elsewhere; its outcome here dropped", record["id"])
        return "duplicate"
    return str(outcome.status)


async def _heartbeat(
    repo: ExecutionRepository, team_id: str, run_id: str, mine: dict[str, Any], every: float
) -> None:
    """Renew the step run's ``heartbeat_at`` while this worker runs it (a failed renewal is
    retried at the next beat; a step taken over meanwhile is no longer renewed)."""
    while True:
        await asyncio.sleep(every)
        try:
            held = await repo.store_update_step_run(
                team_id, run_id, {"heartbeat_at": iso()},
                where=mine,
            )  # fmt: skip
        except Exception:
            log.warning("async step heartbeat failed run_id=%s", run_id, exc_info=True)
            continue
        if not held:
            return


async def _run_traced(call: StepCall, registry: TargetRegistry, ctx: StepContext) -> StepOutcome:
    """``call`` run in a span of its own under its step's: the step's span ended when the step
    was queued, so the run needs one to show in the trace (a step run at once has none: its
    step's span covers it)."""
    if call.trace is None or not tracing.enabled():
        return await run_step_call(call, registry, ctx)
    attributes = {"linqra.step": call.step, "linqra.target": call.target}
    with tracing.span(f"run {call.target}", parent=call.trace, attributes=attributes):
        outcome = await run_step_call(
            dataclasses.replace(call, trace=tracing.traceparent()), registry, ctx
        )
        tracing.annotate(
            {"linqra.status": str(outcome.status), "linqra.attempts": outcome.attempts}
        )
        return outcome
