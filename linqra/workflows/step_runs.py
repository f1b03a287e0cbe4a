"""What the engine writes as an execution runs: step-run records, the claim's heartbeat, the end.

The half of :class:`~linqra.workflows.engine.WorkflowEngine` that records; the engine module
decides what runs when. Every step run is a record written when it starts and when it ends
(or once, when it is skipped or fails before it starts), numbered per step so resumes and jumps
back add runs rather than overwrite them; a resumed execution reuses finished results. A
heartbeat keeps the claim on the execution alive and watches for cancel requests made through
the store; the execution's final record names its result step. Storage itself is
:class:`~linqra.workflows.records.ExecutionRepository`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from linqra.clock import iso, parse_iso, utcnow
from linqra.config import ExecutionSettings
from linqra.metrics import count_step
from linqra.status import EXECUTION_ACTIVE, ExecutionStatus, StepStatus
from linqra.steps.base import StepContext
from linqra.tracing import span
from linqra.workflows.definition import Step, WorkflowDefinition
from linqra.workflows.records import ClaimLost, ExecutionRepository

__all__ = [
    "PureRecords",
    "RecordBatch",
    "RunState",
    "RunningRecord",
    "StepRunRecorder",
    "cancel_record",
]

log = logging.getLogger(__name__)


def cancel_record(record: dict[str, Any]) -> None:
    """End a running step's ``record`` as cancelled now, with how long it ran (from its
    ``started_at``)."""
    finished = utcnow()
    record.update(
        status=StepStatus.CANCELLED,
        finished_at=iso(finished),
        duration_ms=_ms_between(record.get("started_at"), finished),
        error={"code": "cancelled", "message": "step cancelled while running"},
    )


def _ms_between(started: str | None, finished: datetime) -> float | None:
    """Milliseconds from ``started`` (ISO text) to ``finished``; ``None`` if it never started."""
    return round((finished - parse_iso(started)).total_seconds() * 1000, 3) if started else None


@dataclass
class RunState:
    """One execution as the engine drives it: results so far, run numbers, the failure."""

    team_id: str
    execution_id: str
    definition: WorkflowDefinition
    params: dict[str, Any]
    results: dict[int, Any] = field(default_factory=dict)
    reused: set[int] = field(default_factory=set)
    queued: set[int] = field(default_factory=set)  # async steps still queued or with a worker
    run_counts: dict[int, int] = field(default_factory=dict)
    step_runs: int = 0
    failure: dict[str, Any] | None = None
    background: set[asyncio.Task[Any]] = field(default_factory=set)
    async_done: set[int] = field(default_factory=set)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    lost_claim: bool = False
    last_completed: int | None = None
    executed_by: str | None = None  # who started it: a user id or ``key:<id>`` (budgets)
    started_at: str | None = None  # as its claim recorded it (the end's duration is from it)
    claim: int = 0  # the claim's number: every write of this run is fenced by it (records.py)
    behind: PureRecords | None = None  # end records of pure steps not yet written
    writes: RecordBatch | None = None  # RUNNING and end records, one store call per loop turn


def _write_span(records: int) -> AbstractContextManager[Any]:
    """The span of one store call writing ``records`` step runs (issue 16's store writes)."""
    attributes = {"db.operation.name": "put_many", "linqra.records": records}
    return span("store write step runs", attributes=attributes)


WRITE_BEHIND_SECONDS = 0.05
"""The longest a pure step's end record waits to be written (so progress stays visible)."""


class PureRecords:
    """End records of *pure* steps (``transform``, ``noop``: no side effect, the same result
    from the same inputs; inline or run by a worker), written together instead of one commit
    each.

    The engine writes them before anything outside the runner can depend on them: before any
    step with an effect starts, before any other record is written, before the execution's
    end, and at the latest :data:`WRITE_BEHIND_SECONDS` after the first of them. A runner
    killed in between loses only records of steps that re-run from recorded inputs to the same
    results; no step with an effect ever runs on an unrecorded result. Run numbers have no gap:
    a lost record's number was never written, so the re-run takes it again."""

    def __init__(self, repo: ExecutionRepository, team_id: str, claim: int) -> None:
        self._repo, self._team_id, self._claim = repo, team_id, claim
        self._records: list[dict[str, Any]] = []
        self._lock = asyncio.Lock()
        self._lost: ClaimLost | None = None  # a write was refused: claimed again since
        self._timer: asyncio.TimerHandle | None = None
        self._flushers: set[asyncio.Task[None]] = set()  # timer flushes under way

    def add(self, record: dict[str, Any]) -> None:
        self._records.append(record)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(
                WRITE_BEHIND_SECONDS, self._flush_soon
            )

    def _flush_soon(self) -> None:
        self._timer = None
        task = asyncio.create_task(self._flush_quietly())
        self._flushers.add(task)
        task.add_done_callback(self._flushers.discard)

    async def _flush_quietly(self) -> None:
        try:
            await self.flush()
        except ClaimLost:  # the engine's heartbeat or next write finds it too
            log.warning("pure steps' records refused: the execution was claimed again")
        except Exception:  # the engine's own flush raises it again, with the records kept
            log.warning(
                "writing pure steps' records failed; retried at the next step", exc_info=True
            )

    async def flush(self) -> None:
        """Write every buffered record (grouped into one commit where the store can)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        async with self._lock:
            if self._lost is not None:
                raise self._lost
            if not self._records:
                return
            records, self._records = self._records, []
            try:
                with _write_span(len(records)):
                    await self._repo.put_step_runs(self._team_id, records, self._claim)
            except ClaimLost as exc:
                self._lost = exc  # nothing to keep: the newer claim's runner writes these
                raise
            except BaseException:
                self._records[:0] = records  # kept for the next flush (each write is an upsert)
                raise

    def drop(self) -> None:
        """The claim is lost: another runner re-runs these steps and records them."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._records = []


class RecordBatch:
    """Step-run records of one execution written together: every record put in the same turn
    of the event loop goes to the store in one call, and each :meth:`put` returns once its
    record is written. A scheduling round of 1,000 parallel steps writes their RUNNING records,
    and later their end records, in a few store calls instead of 2,000 (issue 15)."""

    def __init__(self, repo: ExecutionRepository, team_id: str, claim: int) -> None:
        self._repo, self._team_id, self._claim = repo, team_id, claim
        self._lost: ClaimLost | None = None  # once refused, every later write is refused too
        self._pending: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._writers: set[asyncio.Task[None]] = set()

    async def put(self, record: dict[str, Any]) -> None:
        """Write ``record`` (as it is now) with the others of this turn; a caller that stops
        waiting does not stop the write."""
        if self._lost is not None:
            raise self._lost
        loop = asyncio.get_running_loop()
        written: asyncio.Future[None] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._send)
        self._pending.append((dict(record), written))
        await written

    def _send(self) -> None:
        batch, self._pending = self._pending, []
        task = asyncio.get_running_loop().create_task(self._write(batch))
        self._writers.add(task)
        task.add_done_callback(self._writers.discard)

    async def _write(self, batch: list[tuple[dict[str, Any], asyncio.Future[None]]]) -> None:
        try:
            with _write_span(len(batch)):
                records = [record for record, _ in batch]
                await self._repo.put_step_runs(self._team_id, records, self._claim)
        except Exception as exc:
            if isinstance(exc, ClaimLost):
                self._lost = exc
            for _, written in batch:
                if not written.done():
                    written.set_exception(exc)
            return
        except BaseException:  # cancelled (the loop is closing): so are the waiters
            for _, written in batch:
                written.cancel()
            raise
        for _, written in batch:
            if not written.done():
                written.set_result(None)


RUNNING_RECORD_GRACE_SECONDS = 0.02
"""How long a step runs before its RUNNING record is written: one that ends sooner (an inline
``transform``, a cache-free ``noop``) costs one write, its end record, instead of three."""


class RunningRecord:
    """A step's RUNNING record, written only once the step has run for
    :data:`RUNNING_RECORD_GRACE_SECONDS` — and then while it runs, so a step never waits on the
    store to start. A runner that dies after the grace leaves the record for recovery to mark
    interrupted; one that dies within it leaves none, and the step runs again all the same."""

    def __init__(
        self,
        writes: RecordBatch,
        record: dict[str, Any],
        *,
        before: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._writes, self._record, self._before = writes, record, before
        self._write: asyncio.Task[None] | None = None
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(RUNNING_RECORD_GRACE_SECONDS, self._start)

    def _start(self) -> None:
        self._write = asyncio.create_task(self._put())

    async def _put(self) -> None:
        if self._before is not None:  # what must be recorded first (pure steps held back)
            await self._before()
        await self._writes.put(self._record)

    async def settle(self) -> None:
        """No RUNNING record from now on; the one being written is written."""
        self._timer.cancel()
        if self._write is not None:
            await self._write

    async def end(self, record: dict[str, Any]) -> None:
        """The step's end record: over its RUNNING record, or the one record of a quick step."""
        await self.settle()
        await self._writes.put(record)


class StepRunRecorder:
    """Writes step runs and the execution's end; a base class of ``WorkflowEngine``, whose
    ``__init__`` sets the attributes declared here."""

    repo: ExecutionRepository
    settings: ExecutionSettings
    runner_id: str
    ctx: StepContext

    async def interrupt_running_steps(
        self, team_id: str, execution_id: str, claim: int | None = None
    ) -> dict[int, dict[str, Any]]:
        """Close step runs left RUNNING by a runner that died (recorded CANCELLED, code
        ``interrupted``, as the holder of ``claim``: its old runner can no longer end them);
        returns the latest run of every step, as it now stands. A queued async step's run is
        not the runner's: its worker (or the queue's redelivery) still ends it."""
        latest = await self.repo.latest_step_runs(team_id, execution_id)
        for number, prior in latest.items():
            if prior["status"] == StepStatus.RUNNING and not prior.get("queued_call"):
                ended = {
                    **prior,
                    "status": StepStatus.CANCELLED,
                    "finished_at": iso(),
                    "error": {
                        "code": "interrupted",
                        "message": "the runner stopped while this step ran",
                    },
                }
                latest[number] = await self.repo.interrupt_step_run(team_id, ended, claim)
        return latest

    @staticmethod
    def _new_run(run: RunState, step: Step) -> dict[str, Any]:
        """The record of the next run of ``step`` (run numbers count resumes and jumps back)."""
        number = run.run_counts.get(step.step, 0) + 1
        run.run_counts[step.step] = number
        return {
            "id": f"{run.execution_id}:{step.step}:{number}",
            "execution_id": run.execution_id,
            "claim": run.claim,
            "step": step.step,
            "run": number,
            "target": step.target,
            "action": step.action,
            "async": step.async_,
            "description": step.description,
        }

    @staticmethod
    def _final_step(run: RunState) -> int | None:
        """Whose output is the execution's result: in sequential mode the last step that
        completed (jumps decide which); in DAG mode the highest-numbered completed step, so the
        answer does not depend on which branch happened to finish last. Async steps never count."""
        if run.definition.mode == "sequential":
            return run.last_completed
        synchronous = {s.step for s in run.definition.steps if not s.async_}
        done = [n for n in run.results if n in synchronous]
        return max(done) if done else None

    @staticmethod
    def _pending_async(run: RunState) -> list[int]:
        return sorted(
            s.step for s in run.definition.steps if s.async_ and s.step not in run.async_done
        )

    @staticmethod
    async def _write_behind(run: RunState) -> None:
        """Write the pure steps' records held back so far (before anything depends on them)."""
        if run.behind is not None:
            await run.behind.flush()

    async def _fail_before_start(
        self, run: RunState, record: dict[str, Any], code: str, message: str, field_name: str | None
    ) -> StepStatus:
        await self._write_behind(run)
        now = iso()
        error = {"code": code, "message": message, **({"field": field_name} if field_name else {})}
        record.update(
            status=StepStatus.FAILED,
            error=error,
            attempts=0,
            started_at=now,
            finished_at=now,
            duration_ms=0.0,
        )
        await self.repo.save_step_run(run.team_id, record, run.claim)
        self._count(run, record, StepStatus.FAILED)
        run.failure = {"step": record["step"], **error}
        return StepStatus.FAILED

    def _count(
        self, run: RunState, record: dict[str, Any], status: str, executor: str | None = None
    ) -> None:
        executor = executor or record.get("executor") or "none"
        count_step(self.ctx.system.metrics, run.team_id, record["target"], executor, status)

    async def _record_skip(
        self,
        run: RunState,
        step: Step,
        reason: str,
        message: str,
        record: dict[str, Any] | None = None,
    ) -> None:
        await self._write_behind(run)
        if record is None:
            record = self._new_run(run, step)
        now = iso()
        record.update(
            status=StepStatus.SKIPPED,
            skip_reason=reason,
            message=message,
            started_at=now,
            finished_at=now,
            duration_ms=0.0,
            attempts=0,
        )
        await self.repo.save_step_run(run.team_id, record, run.claim)
        self._count(run, record, StepStatus.SKIPPED)

    # -- heartbeat, cancel, finish ------------------------------------------------
    async def _heartbeat(self, run: RunState, main: asyncio.Task[Any]) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_seconds)
            try:
                alive = await self.repo.heartbeat(
                    run.team_id, run.execution_id, self.runner_id, run.claim
                )
                doc = await self.repo.get(run.team_id, run.execution_id)
            except Exception:
                log.warning("heartbeat failed run_id=%s", run.execution_id, exc_info=True)
                continue
            if not alive and doc.get("status") in EXECUTION_ACTIVE:
                log.warning(
                    "lost the claim on run_id=%s to %s", run.execution_id, doc.get("runner_id")
                )
                run.lost_claim = True
                main.cancel()
                return
            if doc.get("cancel_requested") or doc.get("status") not in EXECUTION_ACTIVE:
                main.cancel()
                return

    async def _finish(
        self, run: RunState, status: ExecutionStatus, error: dict[str, Any] | None
    ) -> dict[str, Any]:
        final = self._final_step(run)
        finished = utcnow()
        started = run.started_at
        completed = status == ExecutionStatus.COMPLETED
        changes: dict[str, Any] = {
            "status": status,
            "finished_at": iso(finished),
            "error": error,
            "result": run.results.get(final) if final is not None else None,
            "last_completed_step": final,
            "pending_async_steps": self._pending_async(run) if completed else [],
            "duration_ms": _ms_between(started, finished),
        }
        if not completed:
            for task in list(run.background):
                task.cancel()
        await self._write_behind(run)  # every step record before the end (D2)
        async with run.lock:
            ok = await self.repo.transition(
                run.team_id,
                run.execution_id,
                changes,
                from_status=[ExecutionStatus.RUNNING],
                runner_id=self.runner_id,
                claim=run.claim,
            )
        if not ok:
            log.warning("execution %s changed under us; not overwriting", run.execution_id)
        else:
            log.info(
                "execution end team=%s run_id=%s status=%s", run.team_id, run.execution_id, status
            )
        return await self.repo.full_record(run.team_id, run.execution_id)
