"""Agents and their versioned tasks, and what a task compiles to.

Every task type compiles to a workflow definition and runs as an ordinary execution through the
runner, so a task's steps are recorded, cancellable and resumable like any workflow's:

* ``WORKFLOW_EMBEDDED`` — ``config = {steps, mode?, timeoutSeconds?}`` (stored with the task);
* ``WORKFLOW_EMBEDDED_ADHOC`` — the same, run once and not stored (``POST /v1/tasks/execute-adhoc``);
* ``WORKFLOW_TRIGGER`` — ``config = {workflow_id, params?}``: the stored workflow's current version;
* ``API_CALL`` — ``config = {method, url | service + path, headers?, query?, body?}``: one HTTP step
  (templates such as ``{{params.id}}`` read the task input);
* ``DATA_PROCESSING`` — ``config = {expression}``: a JMESPath transform of the task input.

Every change of a task is a new version (``task_versions``); the task record points at the
current one, and a task can be rolled back to an earlier version. Task executions — the runs
a trigger or a caller creates — are the other half of :class:`AgentService`, in
:mod:`linqra.agents.executions`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from linqra.agents.executions import TASK_EXECUTIONS, TASK_JOBS, TaskExecutions
from linqra.agents.models import Agent, AgentInput, Task, TaskInput, TaskVersion
from linqra.clock import iso, new_id
from linqra.errors import Conflict, NotFound, ValidationError
from linqra.jobs import Jobs
from linqra.store import DocumentStore, IndexSpec
from linqra.validation import fields_moved, parse_model
from linqra.workflows.definition import WorkflowDefinition
from linqra.workflows.service import WorkflowService

__all__ = [
    "AGENTS",
    "AGENT_INDEXES",
    "TASKS",
    "TASK_EXECUTIONS",
    "AgentService",
]

AGENTS = "agents"
TASKS = "tasks"
TASK_VERSIONS = "task_versions"
AGENT_INDEXES = [
    IndexSpec(AGENTS, ("created_at",)),
    IndexSpec(TASKS, ("agent_id", "created_at")),
    IndexSpec(TASK_VERSIONS, ("task_id", "version"), unique=True),
    IndexSpec(TASK_EXECUTIONS, ("idempotency_key",), unique=True),
    IndexSpec(TASK_EXECUTIONS, ("agent_id", "created_at")),
    IndexSpec(TASK_EXECUTIONS, ("task_id", "created_at")),
    IndexSpec(TASK_EXECUTIONS, ("status", "heartbeat_at")),
]
METHOD_ACTIONS = {"GET": "fetch", "POST": "create", "PUT": "update", "DELETE": "delete"}


class TaskTriggers(Protocol):
    """What becomes of a task's triggers (``linqra.scheduling.book.TriggerBook``: schedules and
    event triggers). Agents own tasks; scheduling owns what fires them."""

    def validate(self, triggers: list[dict[str, Any]]) -> None:
        """Raise ``ValidationError`` naming ``triggers[i].…`` for a trigger that cannot fire."""

    async def task_changed(self, team_id: str, task: Mapping[str, Any]) -> dict[str, Any]:
        """Bring the task's triggers up to date; what to show with the task."""
        ...

    async def task_removed(self, team_id: str, task_id: str) -> None: ...


class NoTriggers:
    """Tasks whose triggers never fire (tests of agents alone)."""

    def validate(self, triggers: list[dict[str, Any]]) -> None:
        return None

    async def task_changed(self, team_id: str, task: Mapping[str, Any]) -> dict[str, Any]:
        return {}

    async def task_removed(self, team_id: str, task_id: str) -> None:
        return None


class AgentService(TaskExecutions):
    """Agents, their versioned tasks, and (inherited) their task executions."""

    def __init__(
        self,
        store: DocumentStore,
        workflows: WorkflowService,
        triggers: TaskTriggers | None = None,
        on_agent_changed: Callable[[str, str], None] | None = None,
    ) -> None:
        self.store = store
        self.workflows = workflows
        self.triggers: TaskTriggers = triggers or NoTriggers()
        self._agent_changed = on_agent_changed or (lambda team_id, agent_id: None)
        self.jobs = Jobs(store, TASK_JOBS)

    async def init(self) -> None:
        await self.store.ensure_indexes(AGENT_INDEXES)

    # -- agents ------------------------------------------------------------------------------
    async def create_agent(self, team_id: str, body: Any) -> Agent:
        data: AgentInput = parse_model(AgentInput, body)
        now = iso()
        doc = {
            "id": new_id("ag"),
            **data.model_dump(),
            "created_at": now,
            "updated_at": now,
            "deleted_at": None,
        }
        await self.store.insert(AGENTS, team_id, doc)
        return Agent.model_validate(doc)

    async def get_agent(self, team_id: str, agent_id: str) -> Agent:
        doc = await self.store.get(AGENTS, team_id, agent_id)
        if doc is None or doc.get("deleted_at"):
            raise NotFound(f"agent {agent_id!r} not found", field="agent_id")
        return Agent.model_validate(doc)

    async def list_agents(
        self, team_id: str, *, limit: int = 50, offset: int = 0
    ) -> tuple[list[Agent], int]:
        where = {"deleted_at": None}
        docs = await self.store.find(
            AGENTS, team_id, where, sort=[("created_at", -1)], limit=limit, skip=offset
        )
        items = [Agent.model_validate(d) for d in docs]
        return items, await self.store.count(AGENTS, team_id, where)

    async def update_agent(self, team_id: str, agent_id: str, body: Any) -> Agent:
        await self.get_agent(team_id, agent_id)
        data: AgentInput = parse_model(AgentInput, body)
        await self.store.update(
            AGENTS, team_id, agent_id, {**data.model_dump(), "updated_at": iso()}
        )
        self._agent_changed(team_id, agent_id)  # its actor takes a new concurrency now
        return await self.get_agent(team_id, agent_id)

    async def delete_agent(self, team_id: str, agent_id: str) -> None:
        """Delete the agent and its tasks (schedules and event triggers too) and cancel its
        task executions: PENDING ones at once, RUNNING ones by request. Its actor is told
        (``on_agent_changed``), sees the agent gone and exits (:mod:`actors.agent`); nothing left
        PENDING or RUNNING would make the reaper bring it back."""
        await self.get_agent(team_id, agent_id)
        await self.store.update(AGENTS, team_id, agent_id, {"deleted_at": iso(), "enabled": False})
        for task in await self.store.find(
            TASKS, team_id, {"agent_id": agent_id, "deleted_at": None}, limit=10_000
        ):
            await self.store.update(
                TASKS, team_id, task["id"], {"deleted_at": iso(), "enabled": False}
            )
            await self.triggers.task_removed(team_id, task["id"])
        await self.cancel_agent_executions(team_id, agent_id)
        self._agent_changed(team_id, agent_id)

    # -- tasks ---------------------------------------------------------------------------------
    async def _validated_task(self, team_id: str, body: Any) -> dict[str, Any]:
        data: TaskInput = parse_model(TaskInput, body)
        if data.type == "WORKFLOW_EMBEDDED_ADHOC":
            raise ValidationError(
                "WORKFLOW_EMBEDDED_ADHOC tasks are not stored: POST /v1/tasks/execute-adhoc",
                field="type",
            )
        await self.compile(team_id, data.type, data.config)  # 4xx now, not at run time
        spec = data.model_dump()
        self.triggers.validate(spec["triggers"])
        return spec

    async def create_task(
        self, team_id: str, agent_id: str, body: Any, *, created_by: str | None = None
    ) -> Task:
        await self.get_agent(team_id, agent_id)
        spec = await self._validated_task(team_id, body)
        task_id = new_id("tk")
        now = iso()
        await self.store.insert(TASK_VERSIONS, team_id, _version(task_id, 1, spec, now, created_by))
        await self.store.insert(
            TASKS, team_id,
            {"id": task_id, "agent_id": agent_id, "created_at": now, "updated_at": now,
             "deleted_at": None, "enabled": spec["enabled"], "version": 1, "paused": False},
        )  # fmt: skip
        return await self._changed(team_id, task_id)

    async def _task(self, team_id: str, task_id: str) -> dict[str, Any]:
        doc = await self.store.get(TASKS, team_id, task_id)
        if doc is None or doc.get("deleted_at"):
            raise NotFound(f"task {task_id!r} not found", field="task_id")
        return doc

    async def get_task(self, team_id: str, task_id: str, version: int | None = None) -> Task:
        """The task at ``version`` (default: its current one), without its triggers' state."""
        return Task.model_validate(await self._task_view(team_id, task_id, version))

    async def _task_view(
        self, team_id: str, task_id: str, version: int | None = None
    ) -> dict[str, Any]:
        head = await self._task(team_id, task_id)
        number = version or head["version"]
        spec = await self.store.get(TASK_VERSIONS, team_id, f"{task_id}@{number}")
        if spec is None:
            raise NotFound(f"task {task_id!r} has no version {number}", field="version")
        # the version's spec, then the task's live state: enable/disable/pause change the head only
        return {
            **{k: v for k, v in spec.items() if k not in ("id", "task_id", "version", "team_id")},
            "id": task_id, "agent_id": head["agent_id"], "version": number,
            "enabled": head["enabled"], "paused": head.get("paused", False),
            "created_at": head["created_at"], "updated_at": head["updated_at"],
            "version_created_at": spec.get("created_at"),
        }  # fmt: skip

    async def list_tasks(
        self, team_id: str, agent_id: str, *, limit: int = 50, offset: int = 0
    ) -> tuple[list[Task], int]:
        await self.get_agent(team_id, agent_id)
        where = {"agent_id": agent_id, "deleted_at": None}
        heads = await self.store.find(
            TASKS, team_id, where, sort=[("created_at", -1)], limit=limit, skip=offset
        )
        return [await self.get_task(team_id, h["id"]) for h in heads], await self.store.count(
            TASKS, team_id, where
        )

    async def update_task(
        self, team_id: str, task_id: str, body: Any, *, created_by: str | None = None
    ) -> Task:
        head = await self._task(team_id, task_id)
        spec = await self._validated_task(team_id, body)
        number = head["version"] + 1
        await self.store.insert(
            TASK_VERSIONS, team_id, _version(task_id, number, spec, iso(), created_by)
        )
        changed = await self.store.update(
            TASKS, team_id, task_id, {"version": number, "enabled": spec["enabled"], "updated_at": iso()},
            where={"version": head["version"]},
        )  # fmt: skip
        if not changed:
            raise Conflict("the task changed meanwhile; read it again", field="task_id")
        return await self._changed(team_id, task_id)

    async def rollback_task(self, team_id: str, task_id: str, version: int) -> Task:
        old = await self._task_view(team_id, task_id, version)
        body = {k: old[k] for k in TaskInput.model_fields if k in old}
        updated = await self.update_task(team_id, task_id, body)
        await self.store.update(
            TASK_VERSIONS, team_id, f"{task_id}@{updated.version}", {"rolled_back_from": version}
        )
        return await self.get_task(team_id, task_id)

    async def task_versions(self, team_id: str, task_id: str) -> list[TaskVersion]:
        await self._task(team_id, task_id)
        docs = await self.store.find(
            TASK_VERSIONS, team_id, {"task_id": task_id}, sort=[("version", -1)], limit=100
        )
        return [
            TaskVersion.model_validate({k: v for k, v in d.items() if k not in ("id", "team_id")})
            for d in docs
        ]

    async def set_enabled(
        self, team_id: str, task_id: str, *, enabled: bool | None = None, paused: bool | None = None
    ) -> Task:
        await self._task(team_id, task_id)
        changes: dict[str, Any] = {"updated_at": iso()}
        if enabled is not None:
            changes["enabled"] = enabled
        if paused is not None:
            changes["paused"] = paused
        await self.store.update(TASKS, team_id, task_id, changes)
        return await self._changed(team_id, task_id)

    async def delete_task(self, team_id: str, task_id: str) -> None:
        await self._task(team_id, task_id)
        await self.store.update(TASKS, team_id, task_id, {"deleted_at": iso(), "enabled": False})
        await self.triggers.task_removed(team_id, task_id)

    async def describe_task(self, team_id: str, task_id: str) -> Task:
        """The task's current version with what its triggers became (schedules, event
        triggers), brought up to date first."""
        return await self._changed(team_id, task_id)

    async def _changed(self, team_id: str, task_id: str) -> Task:
        task = await self._task_view(team_id, task_id)
        return Task.model_validate({**task, **await self.triggers.task_changed(team_id, task)})

    # -- compiling a task to a workflow --------------------------------------------------------
    async def compile(
        self, team_id: str, kind: str, config: Mapping[str, Any]
    ) -> tuple[WorkflowDefinition | None, str | None]:
        """``(definition, workflow_id)`` for a task's type and config; 4xx naming ``config.…``."""
        if kind in ("WORKFLOW_EMBEDDED", "WORKFLOW_EMBEDDED_ADHOC"):
            body = {
                k: v
                for k, v in config.items()
                if k in ("steps", "mode", "timeoutSeconds", "params")
            }
            unknown = set(config) - set(body)
            if unknown:
                raise ValidationError(
                    f"unknown field {sorted(unknown)[0]!r}", field=f"config.{sorted(unknown)[0]}"
                )
            return self.workflows.validate_definition(body, prefix="config."), None
        if kind == "WORKFLOW_TRIGGER":
            workflow_id = config.get("workflow_id")
            if not isinstance(workflow_id, str) or not workflow_id:
                raise ValidationError("config.workflow_id is required", field="config.workflow_id")
            # not the team's (or none): 404, naming the task's field
            with fields_moved({"workflow_id": "config.workflow_id"}):
                await self.workflows.get(team_id, workflow_id)
            return None, workflow_id
        if kind == "API_CALL":
            method = str(config.get("method", "GET")).upper()
            if method not in METHOD_ACTIONS:
                raise ValidationError(
                    f"method is one of {', '.join(METHOD_ACTIONS)}", field="config.method"
                )
            step: dict[str, Any] = {"step": 1, "action": METHOD_ACTIONS[method]}
            if config.get("service"):
                step.update(target=config["service"], intent=config.get("path") or "/")
            elif config.get("url"):
                step.update(target="http", intent=config["url"])
            else:
                raise ValidationError("give url, or service and path", field="config.url")
            intent = "config.path" if config.get("service") else "config.url"
            moves = {"config.steps[0].target": "config.service", "config.steps[0].intent": intent}
            for key, name in (("headers", "headers"), ("query", "params"), ("body", "payload")):
                moves[f"config.steps[0].{name}"] = f"config.{key}"
                if config.get(key) is not None:
                    step[name] = config[key]
            with fields_moved(moves):
                definition = self.workflows.validate_definition({"steps": [step]}, prefix="config.")
            return definition, None
        if kind == "DATA_PROCESSING":
            expression = config.get("expression")
            if not isinstance(expression, str) or not expression:
                raise ValidationError(
                    "config.expression (JMESPath) is required", field="config.expression"
                )
            step = {
                "step": 1,
                "target": "transform",
                "params": {"expression": expression, "input": "{{params}}"},
            }
            with fields_moved({"config.steps[0].params.expression": "config.expression"}):
                definition = self.workflows.validate_definition({"steps": [step]}, prefix="config.")
            return definition, None
        raise ValidationError(f"unknown task type {kind!r}", field="type")


def _version(
    task_id: str, number: int, spec: dict[str, Any], now: str, created_by: str | None
) -> dict[str, Any]:
    return {
        "id": f"{task_id}@{number}",
        "task_id": task_id,
        "version": number,
        **spec,
        "created_at": now,
        "created_by": created_by,
    }
