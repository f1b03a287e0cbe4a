"""``agent`` and ``workflow`` steps: a workflow starts a task of an agent, or another workflow.

``{"target": "agent", "action": "execute", "params": {"taskId": "tk_…", "input": {…}, "wait": true,
"timeoutSeconds": 300}}`` creates a task execution (trigger ``WORKFLOW``) and, with ``wait``
(the default), returns ``{task_execution_id, status, result}`` when it ends; a failed task fails
the step. ``{"target": "workflow", "action": "execute", "params": {"workflowId": "wf_…",
"params": {…}}}`` runs a stored workflow and returns its result.

Each hop adds one to the nesting depth recorded on executions; past
:data:`linqra.status.MAX_TRIGGER_DEPTH` the step fails (not retried) — a task that
triggers itself through workflows stops there instead of running forever. Both start their run
through the system's :class:`~linqra.runs.RunService`, the same rules as an HTTP request (a
disabled task does not run), on whatever launcher the process has (in-process or Ray).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from linqra.errors import LinqraError, StepError, ValidationError
from linqra.status import MAX_TRIGGER_DEPTH, TASK_TERMINAL, ExecutionStatus, TaskStatus
from linqra.steps.base import ExecutorKind, StepCall, StepContext

if TYPE_CHECKING:
    from linqra.system import System
    from linqra.workflows.definition import Step

__all__ = ["AgentStepTarget", "WorkflowStepTarget"]


class _Orchestration:
    name = ""
    kind: ExecutorKind = "io"
    url_intent = False
    pure = False
    required = ""

    def validate(self, step: Step, field: str) -> None:
        if step.action not in (None, "execute"):
            raise ValidationError("action must be 'execute'", field=f"{field}.action")
        if not step.params.get(self.required):
            raise ValidationError(
                f"params.{self.required} is required", field=f"{field}.params.{self.required}"
            )

    async def run(self, call: StepCall, ctx: StepContext) -> Any:
        system = ctx.system
        current = await system.workflows.executions.get(call.team_id, call.execution_id)
        depth = int(current.get("depth") or 0) + 1
        if depth > MAX_TRIGGER_DEPTH:
            raise StepError(
                f"nested task/workflow runs deeper than {MAX_TRIGGER_DEPTH}: a trigger cycle?",
                non_retryable=True,
                code="trigger_cycle",
            )
        try:
            return await self._run(system, call, depth)
        except LinqraError as exc:
            if isinstance(exc, StepError):
                raise
            raise StepError(
                exc.message, field=exc.field, non_retryable=exc.status < 500, code=exc.code
            ) from exc

    async def _run(self, system: System, call: StepCall, depth: int) -> Any:
        raise NotImplementedError


class AgentStepTarget(_Orchestration):
    name = "agent"
    required = "taskId"

    async def _run(self, system: System, call: StepCall, depth: int) -> Any:
        p = call.params
        task_id = str(p["taskId"])
        tx = await system.runs.run_task(
            call.team_id,
            task_id,
            input=p.get("input") or {},
            trigger={"type": "WORKFLOW", "execution_id": call.execution_id, "step": call.step},
            idempotency_key=f"step:{call.execution_id}:{call.step}:{task_id}",
            depth=depth,
            nested=True,
        )
        if p.get("wait", True) is False:
            return {"task_execution_id": tx["id"], "status": tx["status"]}
        timeout = float(p.get("timeoutSeconds", call.timeout))
        tx = await system.runs.wait_task_execution(call.team_id, tx["id"], timeout)
        if tx["status"] not in TASK_TERMINAL:
            raise StepError(f"task execution {tx['id']} did not finish in time", code="timeout")
        out = {"task_execution_id": tx["id"], "status": tx["status"], "result": tx["result"]}
        if tx["status"] != TaskStatus.COMPLETED:
            message = (tx.get("error") or {}).get("message") or tx["status"]
            raise StepError(
                f"task {tx['task_name']!r} {tx['status']}: {message}", non_retryable=True
            )
        return out


class WorkflowStepTarget(_Orchestration):
    name = "workflow"
    required = "workflowId"

    async def _run(self, system: System, call: StepCall, depth: int) -> Any:
        p = call.params
        record = await system.runs.run_execution(
            call.team_id, call.timeout, workflow_id=str(p["workflowId"]),
            params=p.get("params") or {}, executed_by=f"execution:{call.execution_id}",
            source="workflow", depth=depth,
        )  # fmt: skip
        if record["status"] != ExecutionStatus.COMPLETED:
            message = (record.get("error") or {}).get("message") or record["status"]
            raise StepError(
                f"workflow {p['workflowId']} {record['status']}: {message}", non_retryable=True
            )
        return {
            "execution_id": record["id"],
            "status": record["status"],
            "result": record.get("result"),
        }
