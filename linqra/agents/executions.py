"""Task executions: creating, reading and cancelling them, and running them to their end.

A task execution (``task_executions``) is the unit a trigger creates: its input, trigger, status
``PENDING → RUNNING → COMPLETED | FAILED | CANCELLED``, attempts (each a workflow execution, with
exponential backoff between them up to ``max_retries``) and result. Its ``idempotency_key`` is
unique per team, so a cron fire or an event delivered twice creates one execution.

Running one (:meth:`TaskExecutions.run_task_execution`) claims it through :mod:`linqra.jobs`
(``TASK_JOBS``), compiles the task to a workflow definition, and starts one workflow execution
per attempt through the :class:`~linqra.launcher.Launcher`, forwarding a cancel request and
enforcing the task's timeout while it waits. This is the half of
:class:`~linqra.agents.service.AgentService` that runs things; agents and their versioned tasks
are the other half, in :mod:`linqra.agents.service`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from linqra.agents.models import Task
from linqra.clock import iso, new_id
from linqra.errors import Conflict, NotFound, Unavailable, ValidationError
from linqra.jobs import JobKind, Jobs
from linqra.status import (
    EXECUTION_TERMINAL,
    MAX_TRIGGER_DEPTH,
    TASK_ACTIVE,
    TASK_TERMINAL,
    ExecutionStatus,
    TaskStatus,
)
from linqra.store import DocumentStore
from linqra.workflows.definition import WorkflowDefinition
from linqra.workflows.records import check_record_size
from linqra.workflows.service import WorkflowService

if TYPE_CHECKING:
    from linqra.launcher import Launcher

__all__ = ["TASK_EXECUTIONS", "TaskExecutions"]

log = logging.getLogger(__name__)

TASK_EXECUTIONS = "task_executions"
TASK_JOBS = JobKind(TASK_EXECUTIONS, TaskStatus.PENDING, TaskStatus.RUNNING, TASK_TERMINAL)
ACTIVE = TASK_ACTIVE
TERMINAL = TASK_TERMINAL


class TaskExecutions(ABC):
    """The task executions of :class:`~linqra.agents.service.AgentService` (its base class, whose
    ``__init__`` sets the attributes declared here); what they need of tasks is abstract here."""

    store: DocumentStore
    workflows: WorkflowService
    jobs: Jobs

    @abstractmethod
    async def get_task(self, team_id: str, task_id: str, version: int | None = None) -> Task:
        """The task as it was at ``version`` (default: its current one)."""

    @abstractmethod
    async def compile(
        self, team_id: str, kind: str, config: Mapping[str, Any]
    ) -> tuple[WorkflowDefinition | None, str | None]:
        """``(definition, workflow_id)`` for a task's type and config."""

    async def cancel_agent_executions(self, team_id: str, agent_id: str) -> int:
        """Cancel every PENDING or RUNNING task execution of the agent; how many there were."""
        active = await self.store.find(
            TASK_EXECUTIONS, team_id,
            {"agent_id": agent_id, "status": {"$in": list(ACTIVE)}}, limit=100_000,
        )  # fmt: skip
        for tx in active:
            with contextlib.suppress(Conflict, NotFound):  # it ended meanwhile
                await self.request_cancel(team_id, tx["id"])
        return len(active)

    async def new_task_execution(
        self,
        team_id: str,
        task: Task | Mapping[str, Any],
        *,
        input: Mapping[str, Any] | None = None,
        trigger: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        depth: int = 0,
    ) -> tuple[dict[str, Any], bool]:
        """A PENDING task execution of a stored task or an ad hoc one (a mapping without ``id``),
        and whether it is new (a known key returns the first). An ``input`` over 4 MiB (it
        becomes the run's params) is refused before anything is written (413 naming ``input``)."""
        if isinstance(task, Task):
            task = task.model_dump()
        check_record_size(input, "input")
        if depth > MAX_TRIGGER_DEPTH:
            raise ValidationError(
                f"tasks triggering tasks nest deeper than {MAX_TRIGGER_DEPTH}: a trigger cycle?",
                field="depth",
            )
        if input is not None and not isinstance(input, Mapping):
            raise ValidationError("input is a JSON object", field="input")
        now = iso()
        doc = {
            "id": new_id("tx"),
            "task_id": task.get("id"),
            "task_version": task.get("version"),
            "task_name": task.get("name"),
            "agent_id": task.get("agent_id"),
            "type": task["type"],
            "config": dict(task["config"]) if task.get("id") is None else None,  # ad hoc: kept here
            "priority": task.get("priority", 5),
            "max_attempts": int(task.get("max_retries", 0)) + 1,
            "backoff_seconds": float(task.get("backoff_seconds", 1.0)),
            "timeout_seconds": float(task.get("timeout_seconds", 300.0)),
            "status": TaskStatus.PENDING,
            "input": dict(input or {}),
            "trigger": dict(trigger or {"type": "MANUAL"}),
            "idempotency_key": idempotency_key or new_id("once"),
            "depth": depth,
            "attempts": 0,
            "execution_ids": [],
            "result": None,
            "error": None,
            "cancel_requested": False,
            "created_at": now,
            "started_at": None,
            "finished_at": None,
            "heartbeat_at": now,
        }
        try:
            await self.store.insert(TASK_EXECUTIONS, team_id, doc)
        except Conflict:
            found = await self.store.find(
                TASK_EXECUTIONS, team_id, {"idempotency_key": doc["idempotency_key"]}, limit=1
            )
            return found[0], False
        return doc, True

    async def get_task_execution(self, team_id: str, tx_id: str) -> dict[str, Any]:
        doc = await self.store.get(TASK_EXECUTIONS, team_id, tx_id)
        if doc is None:
            raise NotFound(f"task execution {tx_id!r} not found", field="task_execution_id")
        return doc

    async def list_task_executions(
        self,
        team_id: str,
        *,
        agent_id: str | None = None,
        task_id: str | None = None,
        status: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[dict[str, Any]], int]:
        where: dict[str, Any] = {}
        if agent_id:
            where["agent_id"] = agent_id
        if task_id:
            where["task_id"] = task_id
        if status:
            where["status"] = status
        items = await self.store.find(
            TASK_EXECUTIONS, team_id, where, sort=[("created_at", -1)], limit=limit, skip=offset
        )
        return items, await self.store.count(TASK_EXECUTIONS, team_id, where)

    async def request_cancel(self, team_id: str, tx_id: str) -> dict[str, Any]:
        doc = await self.get_task_execution(team_id, tx_id)
        if doc["status"] in TERMINAL:
            raise Conflict(
                f"the task execution is already {doc['status']}", field="task_execution_id"
            )
        if doc["status"] == TaskStatus.PENDING:
            done = await self.store.update(
                TASK_EXECUTIONS, team_id, tx_id,
                {"status": TaskStatus.CANCELLED, "cancel_requested": True, "finished_at": iso(), "error": {"code": "cancelled", "message": "cancelled before it started"}},
                where={"status": TaskStatus.PENDING},
            )  # fmt: skip
            if done:
                return await self.get_task_execution(team_id, tx_id)
        await self.store.update(TASK_EXECUTIONS, team_id, tx_id, {"cancel_requested": True})
        return await self.get_task_execution(team_id, tx_id)

    async def run_task_execution(
        self, team_id: str, tx_id: str, runner: Launcher, *, owner: str = "agent"
    ) -> dict[str, Any]:
        """Run a PENDING task execution to its end: attempts with backoff, cancel honoured."""
        claimed = await self.jobs.claim(team_id, tx_id, owner, {"started_at": iso()})
        tx = await self.get_task_execution(team_id, tx_id)
        if not claimed:
            return tx
        try:
            return await self._attempts(team_id, tx, runner)
        except asyncio.CancelledError:
            await self._finish(
                team_id,
                tx_id,
                TaskStatus.CANCELLED,
                error={"code": "cancelled", "message": "the agent stopped"},
            )
            raise
        except Exception as exc:  # anything unexpected still ends the record
            message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            return await self._finish(
                team_id,
                tx_id,
                TaskStatus.FAILED,
                error={"code": getattr(exc, "code", "error"), "message": message},
            )

    async def _attempts(self, team_id: str, tx: dict[str, Any], runner: Launcher) -> dict[str, Any]:
        tx_id = tx["id"]
        if tx["task_id"] is not None:
            task = await self.get_task(team_id, tx["task_id"], tx["task_version"])
            kind, config = task.type, task.config
        else:
            kind, config = tx["type"], tx["config"]
        definition, workflow_id = await self.compile(team_id, kind, config)
        params = (
            {**(config.get("params") or {}), **tx["input"]}
            if kind == "WORKFLOW_TRIGGER"
            else tx["input"]
        )
        record: dict[str, Any] = {"status": ExecutionStatus.FAILED, "error": None}
        first = int(tx["attempts"]) + 1
        if tx["attempts"] and tx["execution_ids"]:  # adopted mid-attempt: follow that execution
            record = await self._wait(
                team_id, tx_id, tx["execution_ids"][-1], runner, tx["timeout_seconds"]
            )
            if record["status"] == ExecutionStatus.COMPLETED:
                return await self._finish(
                    team_id, tx_id, TaskStatus.COMPLETED, result=record.get("result")
                )
            if record["status"] == ExecutionStatus.CANCELLED:
                return await self._finish(
                    team_id, tx_id, TaskStatus.CANCELLED, error=record.get("error")
                )
        for attempt in range(first, tx["max_attempts"] + 1):
            current = await self.get_task_execution(team_id, tx_id)
            if current["cancel_requested"]:
                return await self._finish(
                    team_id,
                    tx_id,
                    TaskStatus.CANCELLED,
                    error={"code": "cancelled", "message": "cancelled"},
                )
            execution = await self.workflows.new_execution(
                team_id, workflow_id=workflow_id, definition=definition, params=dict(params),
                executed_by=f"task:{tx['task_id'] or 'adhoc'}", source="task", depth=tx["depth"],
            )  # fmt: skip
            await self.jobs.heartbeat(
                team_id, tx_id,
                changes={"attempts": attempt, "execution_ids": [*current["execution_ids"], execution["id"]]},
            )  # fmt: skip
            try:
                await runner.submit(team_id, execution["id"])
            except Unavailable:  # it stays PENDING: the supervisor's reaper starts it
                log.warning("runner unavailable submitting %s; left to the reaper", execution["id"])
            record = await self._wait(
                team_id, tx_id, execution["id"], runner, tx["timeout_seconds"]
            )
            if record["status"] == ExecutionStatus.COMPLETED:
                return await self._finish(
                    team_id, tx_id, TaskStatus.COMPLETED, result=record.get("result")
                )
            if record["status"] == ExecutionStatus.CANCELLED:
                return await self._finish(
                    team_id, tx_id, TaskStatus.CANCELLED, error=record.get("error")
                )
            if attempt < tx["max_attempts"]:
                await asyncio.sleep(tx["backoff_seconds"] * 2 ** (attempt - 1))
        return await self._finish(
            team_id,
            tx_id,
            TaskStatus.FAILED,
            error=record.get("error") or {"message": record["status"]},
        )

    async def stale_task_executions(
        self,
        older_than_seconds: float,
        *,
        team_id: str | None = None,
        agent_id: str | None = None,
        limit: int = 200,
    ) -> list[dict[str, Any]]:
        """PENDING or RUNNING task executions nobody has touched for a while (the reaper's list)."""
        where = {"agent_id": agent_id} if agent_id else None
        return await self.jobs.stale(older_than_seconds, team_id=team_id, where=where, limit=limit)

    async def release_stale(self, team_id: str, tx_id: str, heartbeat_at: str) -> bool:
        """Put a stale RUNNING (or PENDING) task execution back to PENDING for a new owner (CAS)."""
        return await self.jobs.release(team_id, tx_id, heartbeat_at)

    async def _wait(
        self, team_id: str, tx_id: str, execution_id: str, runner: Launcher, timeout: float
    ) -> dict[str, Any]:
        """Wait for the execution, forwarding a cancel request and enforcing the task's timeout.
        While the runner is unreachable (Ray restarting it) the store is read instead: the
        execution goes on once it is back, and so does this wait."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            record = await self._wait_once(
                team_id, execution_id, runner, min(1.0, max(0.05, deadline - loop.time()))
            )
            if record["status"] in EXECUTION_TERMINAL:
                return record
            current = await self.get_task_execution(team_id, tx_id)
            await self.jobs.heartbeat(team_id, tx_id)
            if current["cancel_requested"] or loop.time() >= deadline:
                try:
                    await runner.cancel(team_id, execution_id)
                except Unavailable:  # its runner's heartbeat finds the request in the store
                    await self.workflows.executions.request_cancel(team_id, execution_id)
                record = await self._wait_once(team_id, execution_id, runner, 30)
                if not current["cancel_requested"]:
                    record = {
                        **record,
                        "status": ExecutionStatus.TIMEOUT,
                        "error": {
                            "code": "timeout",
                            "message": f"the task took longer than {timeout:g}s",
                        },
                    }
                return record

    async def _wait_once(
        self, team_id: str, execution_id: str, runner: Launcher, timeout: float
    ) -> dict[str, Any]:
        try:
            return await runner.wait(team_id, execution_id, timeout)
        except Unavailable:
            log.warning("runner unavailable while waiting for %s; reading the store", execution_id)
        executions = self.workflows.executions
        await executions.jobs.wait(team_id, execution_id, timeout)
        return await executions.full_record(team_id, execution_id)

    async def _finish(
        self, team_id: str, tx_id: str, status: TaskStatus, *, result: Any = None, error: Any = None
    ) -> dict[str, Any]:
        await self.jobs.finish(team_id, tx_id, status, {"result": result, "error": error})
        return await self.get_task_execution(team_id, tx_id)
