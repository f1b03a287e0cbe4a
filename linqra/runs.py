"""Starting, waiting for, cancelling and resuming runs: the rules every entry point shares.

The gateway's routes, ``/linq``, workflow and agent steps, triggers and driver scripts all start
work here, so each rule is written once: a disabled task does not run, an idempotency key
returns the first execution, a launcher that is down leaves the record PENDING for the
supervisor instead of failing the request, and a waiter whose launcher restarted reads the
store instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from linqra.errors import Conflict, Unavailable, ValidationError
from linqra.status import TASK_TERMINAL

if TYPE_CHECKING:
    from linqra.agents.service import AgentService
    from linqra.launcher import Launcher
    from linqra.workflows.definition import WorkflowDefinition
    from linqra.workflows.service import WorkflowService

__all__ = ["ExecutionSpec", "RunService"]

log = logging.getLogger(__name__)


class ExecutionSpec(TypedDict, total=False):
    """What an execution runs and on whose behalf (``WorkflowService.new_execution``'s words)."""

    workflow_id: str | None
    definition: WorkflowDefinition | None
    params: dict[str, Any] | None
    executed_by: str | None
    intent: str | None
    source: str
    depth: int


class RunService:
    def __init__(
        self, workflows: WorkflowService, agents: AgentService, launcher: Launcher
    ) -> None:
        self.workflows = workflows
        self.agents = agents
        self.launcher = launcher

    # -- workflow executions ----------------------------------------------------------------
    async def start_execution(self, team_id: str, **spec: Unpack[ExecutionSpec]) -> dict[str, Any]:
        """Record a PENDING execution and hand it to the launcher; the PENDING record."""
        execution = await self._new_execution(team_id, spec)
        await self.submit(team_id, execution["id"])
        return execution

    async def run_execution(
        self, team_id: str, timeout: float, **spec: Unpack[ExecutionSpec]
    ) -> dict[str, Any]:
        """:meth:`start_execution` and :meth:`wait_execution` with one call to the launcher (one
        round trip to the runner actor on a cluster): the full record once terminal, or as it is
        after ``timeout`` seconds. A runner that is down leaves the record PENDING for the
        supervisor, and the wait reads the store."""
        execution = await self._new_execution(team_id, spec)
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            return await self.launcher.run(team_id, execution["id"], timeout)
        except Unavailable:
            log.warning("runner unavailable; reading execution %s from the store", execution["id"])
        return await self._wait_in_store(team_id, execution["id"], deadline)

    async def _new_execution(self, team_id: str, spec: ExecutionSpec) -> dict[str, Any]:
        return await self.workflows.new_execution(team_id, **spec)

    async def submit(self, team_id: str, execution_id: str) -> None:
        try:
            await self.launcher.submit(team_id, execution_id)
        except Unavailable:
            # The record stays PENDING; the supervisor starts it when the runner is back.
            log.warning("runner unavailable; execution %s left PENDING", execution_id)

    async def wait_execution(
        self, team_id: str, execution_id: str, timeout: float
    ) -> dict[str, Any]:
        """The full record once terminal, or as it is after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            return await self.launcher.wait(team_id, execution_id, timeout)
        except Unavailable:  # the runner restarted while we waited: read the store instead
            log.warning("runner unavailable while waiting for %s; reading the store", execution_id)
        return await self._wait_in_store(team_id, execution_id, deadline)

    async def _wait_in_store(
        self, team_id: str, execution_id: str, deadline: float
    ) -> dict[str, Any]:
        executions = self.workflows.executions
        remaining = max(0.0, deadline - asyncio.get_running_loop().time())
        await executions.jobs.wait(team_id, execution_id, remaining)
        return await executions.full_record(team_id, execution_id)

    async def cancel_execution(self, team_id: str, execution_id: str) -> dict[str, Any]:
        await self.workflows.executions.get(team_id, execution_id)  # 404 for another team's id
        await self.launcher.cancel(team_id, execution_id)
        return await self.workflows.executions.full_record(team_id, execution_id)

    async def resume_execution(self, team_id: str, execution_id: str) -> dict[str, Any]:
        await self.workflows.executions.get(team_id, execution_id)
        return await self.launcher.resume(team_id, execution_id)

    # -- task executions --------------------------------------------------------------------
    async def run_task(
        self,
        team_id: str,
        task_id: str,
        *,
        input: Mapping[str, Any] | None = None,
        trigger: Mapping[str, Any],
        idempotency_key: str | None = None,
        depth: int = 0,
        nested: bool = False,
    ) -> dict[str, Any]:
        """Create a task execution of an enabled task and dispatch it to its agent; the record
        (the first one again when ``idempotency_key`` was seen before)."""
        task = await self.agents.get_task(team_id, task_id)
        if not task.enabled:
            raise Conflict("the task is disabled", field="task_id")
        tx, created = await self.agents.new_task_execution(
            team_id,
            task,
            input=dict(input or {}),
            trigger=dict(trigger),
            idempotency_key=idempotency_key,
            depth=depth,
        )
        if created:
            await self.dispatch(team_id, tx, nested=nested)
        return tx

    async def run_adhoc(
        self, team_id: str, task: Mapping[str, Any], *, input: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Run a task that is not stored (``WORKFLOW_EMBEDDED_ADHOC``) once."""
        if task.get("type") != "WORKFLOW_EMBEDDED_ADHOC":
            raise ValidationError("execute-adhoc runs WORKFLOW_EMBEDDED_ADHOC tasks", field="type")
        await self.agents.compile(team_id, task["type"], task["config"])
        tx, _ = await self.agents.new_task_execution(
            team_id, dict(task), input=dict(input or {}), trigger={"type": "MANUAL", "adhoc": True}
        )
        await self.dispatch(team_id, tx)
        return tx

    async def dispatch(self, team_id: str, tx: Mapping[str, Any], *, nested: bool = False) -> None:
        try:
            await self.launcher.dispatch_task(
                team_id, tx["agent_id"], tx["id"], int(tx.get("priority") or 5), nested=nested
            )
        except Unavailable:
            log.warning("launcher unavailable; task execution %s left PENDING", tx["id"])

    async def wait_task_execution(self, team_id: str, tx_id: str, timeout: float) -> dict[str, Any]:
        """The task execution once terminal, or as it is after ``timeout`` seconds: told by the
        agent that runs it when it can, else read from the store with back-off."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        tx = await self.agents.get_task_execution(team_id, tx_id)  # 404 for another team's id
        if tx["status"] not in TASK_TERMINAL:
            with contextlib.suppress(Unavailable):
                await self.launcher.watch_task(team_id, tx.get("agent_id"), tx_id, timeout)
        doc = await self.agents.jobs.wait(team_id, tx_id, max(0.0, deadline - loop.time()))
        if doc is None:  # unknown, or another team's: the same 404 as a read
            return await self.agents.get_task_execution(team_id, tx_id)
        return doc

    # -- documents --------------------------------------------------------------------------
    async def ingest(self, team_id: str, doc_id: str) -> None:
        try:
            await self.launcher.ingest(team_id, doc_id)
        except Unavailable:  # the supervisor re-submits PENDING documents
            log.warning("launcher unavailable; document %s left PENDING", doc_id)
