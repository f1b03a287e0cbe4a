"""The execution runner: owns running executions, recovers orphans, never leaves one RUNNING.

One runner per process that runs workflows: the ``linqra-runner`` Ray actor
in a cluster, or a driver script. A runner *claims* an execution by setting
``runner_id`` with a compare-and-set, keeps the claim alive with a heartbeat
(the engine's), and reaps executions whose heartbeat went stale — because
their runner process died — by resuming them from their checkpointed steps
(``orphan_policy: resume``, at most ``max_auto_resumes`` times) or failing
them (``orphan_policy: fail``). A runner that restarts under the same id
reclaims its own executions at once. Every claim has a number (the record's ``claim``, one more
each time), which fences the claimant's writes: a process that still runs an execution claimed
again since — under the same runner id too — is refused and gives it up
(:mod:`linqra.workflows.records`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from linqra.clock import iso
from linqra.config import ExecutionSettings
from linqra.errors import Conflict
from linqra.metrics.catalogue import EXECUTION_DURATION, EXECUTIONS, EXECUTIONS_STARTED
from linqra.status import ExecutionStatus
from linqra.workflows.engine import WorkflowEngine
from linqra.workflows.records import ACTIVE, RESUMABLE, TERMINAL, ClaimLost, ExecutionRepository

__all__ = ["ExecutionRunner"]

log = logging.getLogger(__name__)


class ExecutionRunner:
    def __init__(self, engine: WorkflowEngine, settings: ExecutionSettings) -> None:
        self.engine = engine
        self.repo: ExecutionRepository = engine.repo
        self.settings = settings
        self.runner_id = engine.runner_id
        self.metrics = engine.ctx.system.metrics
        self._tasks: dict[str, asyncio.Task[dict[str, Any]]] = {}
        self._claims: dict[asyncio.Task[dict[str, Any]], int] = {}  # the claim each runs under
        self._reaper: asyncio.Task[None] | None = None

    async def start(self, *, reap: bool = True) -> None:
        """Reclaim this runner's own orphans (after a restart) and start the reaper; idempotent."""
        if self._reaper is not None:
            return
        for doc in await self.repo.owned_by(self.runner_id):
            if doc["id"] not in self._tasks:
                await self._adopt(doc, reason="runner restarted")
        if reap:
            self._reaper = asyncio.create_task(self._reap_forever(), name="linqra-reaper")

    async def stop(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None

    async def close(self) -> None:
        """Stop reaping and give up the executions running here (their records stay RUNNING
        until a runner reaps them: closing a process is not cancelling its runs)."""
        await self.stop()
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)

    # -- commands -----------------------------------------------------------------
    async def submit(self, team_id: str, execution_id: str) -> None:
        """Claim a PENDING execution and start it. One that is no longer PENDING was started
        meanwhile — the supervisor adopts PENDING executions whose starter went quiet, and on a
        loaded machine it can get there first — and is left as it is; a missing one is 404."""
        now = iso()
        claimed = await self.repo.transition(
            team_id,
            execution_id,
            {
                "status": ExecutionStatus.RUNNING,
                "runner_id": self.runner_id,
                "started_at": now,
                "heartbeat_at": now,
                "claim": 1,  # a PENDING execution was never claimed
            },
            from_status=[ExecutionStatus.PENDING],
        )
        if not claimed:
            doc = await self.repo.get(team_id, execution_id)  # NotFound for an unknown id
            log.info("execution %s was already %s when submitted", execution_id, doc["status"])
            return
        self._spawn(team_id, execution_id, 1, fresh=True, reason="submitted")

    async def resume(self, team_id: str, execution_id: str) -> dict[str, Any]:
        """Re-run a FAILED, TIMEOUT or CANCELLED execution from its unfinished steps."""
        doc = await self.repo.get(team_id, execution_id)
        if doc["status"] not in RESUMABLE:
            raise Conflict(
                f"execution {execution_id!r} is {doc['status']}; only FAILED, TIMEOUT or CANCELLED ones resume",
                field="execution_id",
            )
        now = iso()
        claim = int(doc.get("claim") or 0) + 1
        claimed = await self.repo.transition(
            team_id,
            execution_id,
            {
                "status": ExecutionStatus.RUNNING,
                "runner_id": self.runner_id,
                "claim": claim,
                "heartbeat_at": now,
                "error": None,
                "finished_at": None,
                "cancel_requested": False,
                "resumes": int(doc.get("resumes", 0)) + 1,
                "started_at": doc.get("started_at") or now,
            },
            from_status=[doc["status"]],
        )
        if not claimed:
            raise Conflict(
                f"execution {execution_id!r} changed while resuming; try again",
                field="execution_id",
            )
        self._spawn(team_id, execution_id, claim, reason="resumed")
        return await self.repo.get(team_id, execution_id)

    async def cancel(self, team_id: str, execution_id: str) -> dict[str, Any]:
        """Stop a running execution: its running steps are cancelled and recorded CANCELLED."""
        doc = await self.repo.get(team_id, execution_id)
        if doc["status"] in TERMINAL:
            raise Conflict(
                f"execution {execution_id!r} is already {doc['status']}", field="execution_id"
            )
        await self.repo.request_cancel(team_id, execution_id)
        task = self._tasks.get(execution_id)
        if task is not None:
            claim = self._claims.get(task, 0)
            task.cancel()
            await asyncio.wait({task}, timeout=30)
            if task.done():  # stopped before its engine began (a cancel right after a resume):
                await self._end_cancelled(  # nothing else would end it
                    team_id, execution_id, ExecutionStatus.RUNNING, self.runner_id, claim
                )
        elif doc["status"] == ExecutionStatus.PENDING:
            await self._end_cancelled(team_id, execution_id, ExecutionStatus.PENDING)
        # else another runner owns it: on Ray, RunnerActor.cancel passes the cancel on to it;
        # its heartbeat would also see cancel_requested within heartbeat_seconds
        return await self.repo.get(team_id, execution_id)

    async def _end_cancelled(
        self,
        team_id: str,
        execution_id: str,
        status: ExecutionStatus,
        runner_id: str | None = None,
        claim: int | None = None,
    ) -> None:
        """Record CANCELLED an execution cancelled before its engine began (the engine records
        its own end): one still ``status`` — PENDING, or RUNNING under ``runner_id``'s
        ``claim`` after that runner's task ended."""
        ended = await self.repo.transition(
            team_id,
            execution_id,
            {
                "status": ExecutionStatus.CANCELLED,
                "finished_at": iso(),
                "error": {"code": "cancelled", "message": "cancelled before it started"},
            },
            from_status=[status],
            runner_id=runner_id,
            claim=claim,
        )
        if ended:
            self.metrics.add(EXECUTIONS, team=team_id, status=ExecutionStatus.CANCELLED)

    async def run(self, team_id: str, execution_id: str, timeout: float) -> dict[str, Any]:
        """:meth:`submit`, then :meth:`wait` (one call for a caller in another process)."""
        await self.submit(team_id, execution_id)
        return await self.wait(team_id, execution_id, timeout)

    async def wait(self, team_id: str, execution_id: str, timeout: float) -> dict[str, Any]:
        """The full record once the execution is terminal, or as it is after ``timeout`` seconds."""
        task = self._tasks.get(execution_id)
        if task is not None:
            deadline = asyncio.get_running_loop().time() + timeout
            await asyncio.wait({task}, timeout=timeout)
            ended = task.done() and not task.cancelled() and task.exception() is None
            if ended and (record := task.result()):  # what the engine read as it ended the run
                return dict(record)
            left = deadline - asyncio.get_running_loop().time()
            if ended and left > 0:  # given up here (claimed again): follow the newer claimant
                await self.repo.jobs.wait(team_id, execution_id, left)
        else:  # another runner has it: read the store with back-off
            await self.repo.jobs.wait(team_id, execution_id, timeout)
        return await self.repo.full_record(team_id, execution_id)

    def running(self) -> list[str]:
        return sorted(self._tasks)

    # -- internals ----------------------------------------------------------------
    def _spawn(
        self, team_id: str, execution_id: str, claim: int, *, reason: str, fresh: bool = False
    ) -> None:
        """Run it here under claim number ``claim``; ``fresh``: claimed from PENDING, so no step
        of it has run yet."""
        self.metrics.add(EXECUTIONS_STARTED, team=team_id, reason=reason)
        task = asyncio.create_task(
            self._run(team_id, execution_id, claim, fresh), name=f"execution-{execution_id}"
        )
        self._tasks[execution_id] = task
        self._claims[task] = claim
        task.add_done_callback(functools.partial(self._forget, execution_id))

    def _forget(self, execution_id: str, task: asyncio.Task[Any]) -> None:
        """``task`` ended: drop it, unless a newer run of the same execution (a resume right
        after a cancel) has taken its place — that one must stay reachable by ``cancel``."""
        self._claims.pop(task, None)
        if self._tasks.get(execution_id) is task:
            del self._tasks[execution_id]

    async def _run(
        self, team_id: str, execution_id: str, claim: int, fresh: bool
    ) -> dict[str, Any]:
        try:
            record = await self.engine.run(team_id, execution_id, fresh=fresh, claim=claim)
        except asyncio.CancelledError:
            log.info("execution %s stopped on this runner (cancelled or closing)", execution_id)
            return {}
        except ClaimLost:
            log.warning("execution %s given up by this runner (claim lost)", execution_id)
            return {}
        self._ended(team_id, record)
        return record

    def _ended(self, team_id: str, record: dict[str, Any]) -> None:
        status = str(record.get("status"))
        self.metrics.add(EXECUTIONS, team=team_id, status=status)
        if record.get("duration_ms") is not None:
            seconds = float(record["duration_ms"]) / 1000
            self.metrics.observe(EXECUTION_DURATION, seconds, team=team_id, status=status)

    async def _reap_forever(self) -> None:
        interval = max(0.5, self.settings.stale_after_seconds / 3)
        while True:
            try:
                await self.reap()
            except Exception:
                log.warning("reaper pass failed", exc_info=True)
            await asyncio.sleep(interval)

    async def reap(self) -> int:
        """Adopt every active execution whose heartbeat is stale; how many were adopted."""
        adopted = 0
        for doc in await self.repo.stale(self.settings.stale_after_seconds):
            if doc["id"] in self._tasks:
                continue
            if await self._adopt(
                doc, reason=f"heartbeat older than {self.settings.stale_after_seconds:g}s"
            ):
                adopted += 1
        return adopted

    async def _adopt(self, doc: dict[str, Any], *, reason: str) -> bool:
        team_id, execution_id = doc["team_id"], doc["id"]
        where: dict[str, Any] = {
            "status": {"$in": sorted(ACTIVE)},
            "runner_id": doc.get("runner_id"),
            "heartbeat_at": doc.get("heartbeat_at"),
        }
        auto = int(doc.get("auto_resumes", 0))
        claim = int(doc.get("claim") or 0) + 1  # the old claimant's writes are refused from now
        now = iso()
        if (
            doc.get("cancel_requested")
            or self.settings.orphan_policy == "fail"
            or auto >= self.settings.max_auto_resumes
        ):
            cancelled = bool(doc.get("cancel_requested"))
            changes: dict[str, Any] = {
                "status": ExecutionStatus.CANCELLED if cancelled else ExecutionStatus.FAILED,
                "finished_at": now,
                "runner_id": self.runner_id,
                "claim": claim,
                "error": {
                    "code": "cancelled" if cancelled else "runner_lost",
                    "message": f"the runner of this execution stopped ({reason})",
                },
            }
            ok = await self.repo.compare_and_set(team_id, execution_id, changes, where=where)
            if ok:
                self.metrics.add(EXECUTIONS, team=team_id, status=changes["status"])
                await self.engine.interrupt_running_steps(team_id, execution_id, claim)
                log.warning(
                    "orphan run_id=%s marked %s (%s)", execution_id, changes["status"], reason
                )
            return ok
        changes = {
            "status": ExecutionStatus.RUNNING,
            "runner_id": self.runner_id,
            "claim": claim,
            "heartbeat_at": now,
            "auto_resumes": auto + 1,
            "started_at": doc.get("started_at") or now,
        }
        if not await self.repo.compare_and_set(team_id, execution_id, changes, where=where):
            return False  # another runner adopted it first
        log.warning("orphan run_id=%s adopted by %s (%s)", execution_id, self.runner_id, reason)
        self._spawn(team_id, execution_id, claim, reason="adopted")
        return True
