"""``agent`` and ``workflow`` steps: a workflow starts a task of an agent, or another workflow.

``{"target": "agent", "action": "execute", "params": {"taskId": "tk_…", "input": {…}, "wait": true,
"timeoutSeconds": 300}}`` creates a task execution (trigger ``WORKFLOW``) and, with ``wait``
(the default), returns ``{task_execution_id, status, result}`` when it ends; a failed task fails
the step. ``{"target": "workflow", "action": "execute", "params": {"workflowId": "wf_…",
"params": {…}}}`` runs a stored workflow and returns its result.

Each hop adds one to the nesting depth recorded on executions; past
:data:`linqra.agents.service.MAX_TRIGGER_DEPTH` the step fails (not retried) — a task that
triggers itself through workflows stops there instead of running forever. The process running
the step supplies a :class:`Launcher` as the ``launcher`` resource of its step context (the Ray
workers do; see ``actors/agent.py``).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Protocol

from linqra.errors import LinqraError, StepError, ValidationError
from linqra.steps.base import ExecutorKind, StepCall, StepContext

if TYPE_CHECKING:
    from linqra.agents.service import AgentService
    from linqra.workflows.definition import Step

# linqra.agents.service imports the workflow service, which imports the step registry: the
# agent service is imported where it is used, not here.

__all__ = ["AgentStepTarget", "Launcher", "WorkflowStepTarget"]


class Launcher(Protocol):
    async def dispatch(self, team_id: str, agent_id: str | None, tx_id: str, priority: int) -> None:
        """Start a task execution on its agent."""

    async def submit(self, team_id: str, execution_id: str) -> None: ...

    async def wait(self, team_id: str, execution_id: str, timeout: float) -> dict[str, Any]: ...


def _services(ctx: StepContext) -> tuple[AgentService, Launcher]:
    launcher = ctx.resources.get("launcher")
    if launcher is None:
        raise StepError(
            "agent and workflow steps run on a cluster (no launcher in this process)",
            non_retryable=True,
            code="unsupported",
        )
    from linqra.agents.service import AgentService
    from linqra.steps import default_registry
    from linqra.steps.llm import llm_service
    from linqra.workflows.service import WorkflowService

    def build() -> AgentService:
        store = llm_service(ctx).usage.store
        return AgentService(store, WorkflowService(store, default_registry(ctx.settings)))

    agents: AgentService = ctx.resource("agents.service", build)
    return agents, launcher


class _Orchestration:
    name = ""
    kind: ExecutorKind = "io"
    url_intent = False
    required = ""

    def validate(self, step: Step, field: str) -> None:
        if step.action not in (None, "execute"):
            raise ValidationError("action must be 'execute'", field=f"{field}.action")
        if not step.params.get(self.required):
            raise ValidationError(
                f"params.{self.required} is required", field=f"{field}.params.{self.required}"
            )

    async def run(self, call: StepCall, ctx: StepContext) -> Any:
        from linqra.agents.service import MAX_TRIGGER_DEPTH

        agents, launcher = _services(ctx)
        current = await agents.workflows.executions.get(call.team_id, call.execution_id)
        depth = int(current.get("depth") or 0) + 1
        if depth > MAX_TRIGGER_DEPTH:
            raise StepError(
                f"nested task/workflow runs deeper than {MAX_TRIGGER_DEPTH}: a trigger cycle?",
                non_retryable=True,
                code="trigger_cycle",
            )
        try:
            return await self._run(agents, launcher, call, depth)
        except LinqraError as exc:
            if isinstance(exc, StepError):
                raise
            raise StepError(
                exc.message, field=exc.field, non_retryable=exc.status < 500, code=exc.code
            ) from exc

    async def _run(
        self, agents: AgentService, launcher: Launcher, call: StepCall, depth: int
    ) -> Any:
        raise NotImplementedError


class AgentStepTarget(_Orchestration):
    name = "agent"
    required = "taskId"

    async def _run(
        self, agents: AgentService, launcher: Launcher, call: StepCall, depth: int
    ) -> Any:
        p = call.params
        task = await agents.get_task(call.team_id, str(p["taskId"]))
        trigger = {"type": "WORKFLOW", "execution_id": call.execution_id, "step": call.step}
        tx, created = await agents.new_task_execution(
            call.team_id, task, input=p.get("input") or {}, trigger=trigger, depth=depth,
            idempotency_key=f"step:{call.execution_id}:{call.step}:{p['taskId']}",
        )  # fmt: skip
        if created:
            await launcher.dispatch(call.team_id, task["agent_id"], tx["id"], int(task["priority"]))
        if p.get("wait", True) is False:
            return {"task_execution_id": tx["id"], "status": tx["status"]}
        from linqra.agents.service import TERMINAL

        deadline = asyncio.get_running_loop().time() + float(p.get("timeoutSeconds", call.timeout))
        while tx["status"] not in TERMINAL:
            if asyncio.get_running_loop().time() > deadline:
                raise StepError(f"task execution {tx['id']} did not finish in time", code="timeout")
            await asyncio.sleep(0.2)
            tx = await agents.get_task_execution(call.team_id, tx["id"])
        out = {"task_execution_id": tx["id"], "status": tx["status"], "result": tx["result"]}
        if tx["status"] != "COMPLETED":
            message = (tx.get("error") or {}).get("message") or tx["status"]
            raise StepError(f"task {task['name']!r} {tx['status']}: {message}", non_retryable=True)
        return out


class WorkflowStepTarget(_Orchestration):
    name = "workflow"
    required = "workflowId"

    async def _run(
        self, agents: AgentService, launcher: Launcher, call: StepCall, depth: int
    ) -> Any:
        p = call.params
        execution = await agents.workflows.new_execution(
            call.team_id, workflow_id=str(p["workflowId"]), params=p.get("params") or {},
            executed_by=f"execution:{call.execution_id}", source="workflow", depth=depth,
        )  # fmt: skip
        await launcher.submit(call.team_id, execution["id"])
        record = await launcher.wait(call.team_id, execution["id"], call.timeout)
        if record["status"] != "COMPLETED":
            message = (record.get("error") or {}).get("message") or record["status"]
            raise StepError(
                f"workflow {p['workflowId']} {record['status']}: {message}", non_retryable=True
            )
        return {
            "execution_id": execution["id"],
            "status": record["status"],
            "result": record.get("result"),
        }
