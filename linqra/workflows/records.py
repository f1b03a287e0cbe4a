"""Execution records: one document per execution, one per step run.

An execution goes ``PENDING → RUNNING → COMPLETED | FAILED | CANCELLED | TIMEOUT``
(``resume`` takes a FAILED, TIMEOUT or CANCELLED one back to RUNNING). Each
step run is its own document, written when the step starts and again when it
ends, so results are checkpointed as they finish and a resumed execution
reuses them. Status changes are compare-and-set on the current status (and
the owning runner), so a runner that lost its claim cannot overwrite a newer
state.

**Claims are numbered** (the execution's ``claim``: 1 when first started, one more at every
resume, adoption or reclaim). A runner writes its step runs stamped with its claim and only
over records of the same or an earlier claim, and keeps its heartbeat and its end only while
the execution still holds its claim: a runner that went on working after another took the
execution over — the same runner id restarted by Ray on another node while the lost node's
process still ran — is refused at its next write (:class:`ClaimLost`) and stops, so no step
completes twice across a failover (issue 17).

Size: an execution's params and a step's resolved inputs are each at most
:data:`MAX_RECORD_BYTES` (4 MiB) as JSON, a step's output at most
``execution.max_step_output_bytes``; so every record stays far below what a store
accepts (MongoDB: 16 MB a document). A larger execution is refused before anything
is written (413, field ``params``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from linqra.clock import iso
from linqra.errors import Conflict, NotFound, PayloadTooLarge, ValidationError
from linqra.jobs import JobKind, Jobs
from linqra.status import (
    EXECUTION_ACTIVE,
    EXECUTION_RESUMABLE,
    EXECUTION_TERMINAL,
    STEP_FINISHED,
    ExecutionStatus,
    StepStatus,
)
from linqra.steps.runtime import json_size
from linqra.store import Document, DocumentStore, IndexSpec

__all__ = [
    "ACTIVE",
    "EXECUTIONS",
    "INDEXES",
    "MAX_RECORD_BYTES",
    "STEP_RUNS",
    "TERMINAL",
    "ClaimLost",
    "ExecutionRepository",
    "check_record_size",
]

EXECUTIONS = "executions"
STEP_RUNS = "step_runs"
TERMINAL = EXECUTION_TERMINAL
ACTIVE = EXECUTION_ACTIVE
RESUMABLE = EXECUTION_RESUMABLE
EXECUTION_JOBS = JobKind(
    EXECUTIONS,
    ExecutionStatus.PENDING,
    ExecutionStatus.RUNNING,
    EXECUTION_TERMINAL,
    owner_field="runner_id",
)
ASYNC_STEP_JOBS = JobKind(
    STEP_RUNS,
    StepStatus.QUEUED,
    StepStatus.RUNNING,
    frozenset({StepStatus.COMPLETED, StepStatus.FAILED, StepStatus.TIMEOUT}),
    owner_field="worker",
    clock_field="queued_at",
)
"""Queued async steps: alive while their queue message is younger than the limit."""
MAX_RECORD_BYTES = 4 * 1024 * 1024
"""Largest params of an execution, and resolved inputs of a step, as compact JSON."""

INDEXES = [
    IndexSpec(EXECUTIONS, ("created_at",)),
    IndexSpec(EXECUTIONS, ("workflow_id", "created_at")),
    IndexSpec(EXECUTIONS, ("status", "created_at")),
    IndexSpec(EXECUTIONS, ("status", "heartbeat_at"), name="ix_executions_liveness"),
    IndexSpec(STEP_RUNS, ("execution_id", "step", "run"), unique=True),
    IndexSpec(STEP_RUNS, ("status", "queued_at")),
]


class ClaimLost(Exception):
    """The execution was claimed again since this runner claimed it: stop working on it."""

    def __init__(self, execution_id: str) -> None:
        super().__init__(f"execution {execution_id!r} was claimed by a newer runner")
        self.execution_id = execution_id

    def __reduce__(self) -> tuple[Any, ...]:  # pickled (across Ray) from its id, not its text
        return (ClaimLost, (self.execution_id,))


def _claimed(claim: int) -> dict[str, Any]:
    """The execution still holds claim number ``claim`` (0: claimed before claims had numbers)."""
    return {"claim": claim} if claim else {"claim": {"$in": [None, 0]}}


def _not_newer(claim: int) -> dict[str, Any]:
    """A step run written under claim ``claim`` or an earlier one (or before claims had
    numbers): what a runner holding ``claim`` may write over."""
    return {"claim": {"$in": [None, *range(claim + 1)]}}


class ExecutionRepository:
    """Reads and writes execution records for one store; every call names the team."""

    def __init__(self, store: DocumentStore) -> None:
        self.store = store
        self.jobs = Jobs(store, EXECUTION_JOBS)
        self.queued_steps = Jobs(store, ASYNC_STEP_JOBS)

    async def create(self, team_id: str, execution: Document) -> Document:
        check_record_size(execution.get("params"), "params")
        now = iso()
        doc = {
            "status": ExecutionStatus.PENDING,
            "created_at": now,
            "heartbeat_at": now,
            "resumes": 0,
            "cancel_requested": False,
            **execution,
        }
        await self.store.insert(EXECUTIONS, team_id, doc)
        return {**doc, "team_id": team_id}

    async def get(self, team_id: str, execution_id: str) -> Document:
        doc = await self.store.get(EXECUTIONS, team_id, execution_id)
        if doc is None:
            raise NotFound(f"execution {execution_id!r} not found", field="execution_id")
        return doc

    async def page(
        self,
        team_id: str,
        *,
        workflow_id: str | None = None,
        status: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[Document], int]:
        where: dict[str, Any] = {}
        if workflow_id:
            where["workflow_id"] = workflow_id
        if status:
            where["status"] = status
        items = await self.store.find(
            EXECUTIONS, team_id, where, sort=[("created_at", -1)], limit=limit, skip=offset
        )
        total = await self.store.count(EXECUTIONS, team_id, where)
        return items, total

    async def transition(
        self,
        team_id: str,
        execution_id: str,
        changes: dict[str, Any],
        *,
        from_status: Sequence[str],
        runner_id: str | None = None,
        claim: int | None = None,
    ) -> bool:
        """Apply ``changes`` only if the status is one of ``from_status`` (and the runner and
        its claim match)."""
        where: dict[str, Any] = {"status": {"$in": list(from_status)}}
        if runner_id is not None:
            where["runner_id"] = runner_id
        if claim is not None:
            where.update(_claimed(claim))
        return await self.store.update(EXECUTIONS, team_id, execution_id, changes, where=where)

    async def compare_and_set(
        self, team_id: str, execution_id: str, changes: dict[str, Any], *, where: dict[str, Any]
    ) -> bool:
        return await self.store.update(EXECUTIONS, team_id, execution_id, changes, where=where)

    async def heartbeat(
        self, team_id: str, execution_id: str, runner_id: str, claim: int | None = None
    ) -> bool:
        where = None if claim is None else _claimed(claim)
        return await self.jobs.heartbeat(team_id, execution_id, owner=runner_id, where=where)

    async def request_cancel(self, team_id: str, execution_id: str) -> bool:
        return await self.transition(
            team_id, execution_id, {"cancel_requested": True}, from_status=list(ACTIVE)
        )

    async def set_pending_async(self, team_id: str, execution_id: str, pending: list[int]) -> None:
        await self.store.update(EXECUTIONS, team_id, execution_id, {"pending_async_steps": pending})

    async def save_step_run(self, team_id: str, run: Document, claim: int | None = None) -> None:
        """Insert a step run, or update it when it already exists (same id); with ``claim``, as
        the runner holding that claim (:class:`ClaimLost` over a newer claim's record)."""
        if claim is not None:
            await self.put_step_runs(team_id, [run], claim)
            return
        try:
            await self.store.insert(STEP_RUNS, team_id, run)
        except Conflict:
            await self.store.update(
                STEP_RUNS,
                team_id,
                run["id"],
                {k: v for k, v in run.items() if k not in ("id", "team_id")},
            )

    async def put_step_runs(
        self, team_id: str, runs: list[Document], claim: int | None = None
    ) -> None:
        """Write step runs whole (inserted, or over their earlier record) in one store call;
        with ``claim``, each stamped with it and only over records of that claim or an earlier
        one — :class:`ClaimLost` if a newer claim's runner has written one of them."""
        if claim is None:
            await self.store.put_many(STEP_RUNS, team_id, runs)
            return
        stamped = [{**run, "claim": claim} for run in runs]
        if await self.store.put_many(STEP_RUNS, team_id, stamped, where=_not_newer(claim)):
            raise ClaimLost(str(runs[0]["execution_id"]))

    async def interrupt_step_run(self, team_id: str, run: Document, claim: int | None) -> Document:
        """Write ``run``'s end over its record only while that is still RUNNING (under no newer
        claim); the record as it then stands — the one a runner that was still alive ended first
        (COMPLETED, say) is kept. :class:`ClaimLost` if a newer claim's runner wrote it."""
        where: dict[str, Any] = {"status": StepStatus.RUNNING}
        stamped = dict(run)
        if claim is not None:
            where.update(_not_newer(claim))
            stamped["claim"] = claim
        if not await self.store.put_many(STEP_RUNS, team_id, [stamped], where=where):
            return stamped
        current = await self.store.get(STEP_RUNS, team_id, run["id"])
        if current is None or (claim is not None and int(current.get("claim") or 0) > claim):
            raise ClaimLost(str(run["execution_id"]))
        return current

    async def update_step_run(self, team_id: str, run: Document) -> None:
        """Write a step run over the record it already has (its RUNNING one): one write."""
        await self.store.update(
            STEP_RUNS,
            team_id,
            run["id"],
            {k: v for k, v in run.items() if k not in ("id", "team_id")},
        )

    async def step_run(self, team_id: str, run_id: str) -> Document | None:
        return await self.store.get(STEP_RUNS, team_id, run_id)

    async def claim_step_run(
        self, team_id: str, run_id: str, changes: dict[str, Any], *, from_status: str
    ) -> bool:
        """Compare-and-set on a step run's status (a queued async step is run by one worker)."""
        return await self.store_update_step_run(
            team_id, run_id, changes, where={"status": from_status}
        )

    async def store_update_step_run(
        self, team_id: str, run_id: str, changes: dict[str, Any], *, where: dict[str, Any]
    ) -> bool:
        return await self.store.update(STEP_RUNS, team_id, run_id, changes, where=where)

    async def queued_step_runs(self, older_than_seconds: float, limit: int = 100) -> list[Document]:
        """Async step runs QUEUED for longer than that (any team): the reaper's list."""
        return await self.queued_steps.stale(
            older_than_seconds, statuses=[StepStatus.QUEUED], limit=limit
        )

    async def step_runs(self, team_id: str, execution_id: str) -> list[Document]:
        return await self.store.find(
            STEP_RUNS,
            team_id,
            {"execution_id": execution_id},
            sort=[("step", 1), ("run", 1)],
            limit=100_000,
        )

    async def latest_step_runs(self, team_id: str, execution_id: str) -> dict[int, Document]:
        latest: dict[int, Document] = {}
        for run in await self.step_runs(team_id, execution_id):
            latest[int(run["step"])] = run
        return latest

    async def stale(self, older_than_seconds: float, limit: int = 100) -> list[Document]:
        """Maintenance: active executions of any team whose heartbeat is older than that."""
        return await self.jobs.stale(older_than_seconds, limit=limit)

    async def owned_by(self, runner_id: str, *, limit: int = 1000) -> list[Document]:
        """Maintenance: active executions of any team claimed by ``runner_id``."""
        return await self.store.scan_all_teams(
            EXECUTIONS, {"status": {"$in": sorted(ACTIVE)}, "runner_id": runner_id}, limit=limit
        )

    async def full_record(
        self, team_id: str, execution_id: str, *, history: bool = False
    ) -> Document:
        """The execution with its steps: the latest run of each (every run with ``history``)."""
        execution = await self.get(team_id, execution_id)
        runs = await self.step_runs(team_id, execution_id)
        if history:
            steps = runs
        else:
            latest: dict[int, Document] = {}
            counts: dict[int, int] = {}
            for run in runs:
                latest[int(run["step"])] = run
                counts[int(run["step"])] = counts.get(int(run["step"]), 0) + 1
            steps = [{**latest[n], "runs": counts[n]} for n in sorted(latest)]
        last = {int(r["step"]): r for r in runs}
        finished = STEP_FINISHED
        pending = [  # async steps still queued or running (workers finish them after the execution)
            n
            for n in execution.get("pending_async_steps") or []
            if last.get(n, {}).get("status") not in finished
        ]
        return {
            **execution,
            "pending_async_steps": pending,
            "steps": [_public_run(r) for r in steps],
        }


def check_record_size(value: Any, field: str) -> None:
    """413 naming ``field`` if ``value`` is over :data:`MAX_RECORD_BYTES`; 400 if not JSON."""
    try:
        size = json_size(value, MAX_RECORD_BYTES)
    except (ValueError, TypeError) as exc:
        raise ValidationError(
            f"{field} must be JSON with finite numbers: {exc}", field=field
        ) from None
    if size is None:
        raise PayloadTooLarge(
            f"{field} is larger than {MAX_RECORD_BYTES:,} bytes as JSON", field=field
        )


def _public_run(run: Document) -> Document:
    return {k: v for k, v in run.items() if k not in _INTERNAL_RUN_FIELDS}


_INTERNAL_RUN_FIELDS = frozenset({"team_id", "execution_id", "queued_call", "claim"})
