"""Agents and their tasks (``client.agents``, ``client.tasks``), and events, hooks and dead
letters (``client.events``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from linqra_client import models
from linqra_client._async.pagination import AsyncPager
from linqra_client._base import check_id, dump, validate

if TYPE_CHECKING:
    from linqra_client._async.client import AsyncLinqra

__all__ = ["AsyncAgents", "AsyncEvents", "AsyncTasks"]


class AsyncAgents:
    """Agents: each owns versioned tasks, run manually, on cron schedules or on events."""

    def __init__(self, client: AsyncLinqra) -> None:
        self._client = client

    def list(self, *, limit: int = 50) -> AsyncPager[models.Agent]:
        return AsyncPager(self._client, "/v1/agents", models.Agent, limit=limit)

    async def get(self, agent_id: str) -> models.Agent:
        return await self._client.call(
            models.Agent, "GET", f"/v1/agents/{check_id(agent_id, 'agent_id')}"
        )

    async def create(self, name: str | None = None, **fields: Any) -> models.Agent:
        """A new agent: ``name``, ``description``, ``enabled``, ``max_concurrency``."""
        body = validate(models.CreateAgentBody, {**({"name": name} if name else {}), **fields})
        return await self._client.call(models.Agent, "POST", "/v1/agents", json=dump(body))

    async def update(self, agent_id: str, **fields: Any) -> models.Agent:
        body = validate(models.UpdateAgentBody, fields)
        return await self._client.call(
            models.Agent, "PUT", f"/v1/agents/{check_id(agent_id, 'agent_id')}", json=dump(body)
        )

    async def delete(self, agent_id: str) -> None:
        await self._client.request("DELETE", f"/v1/agents/{check_id(agent_id, 'agent_id')}")

    def tasks(self, agent_id: str, *, limit: int = 50) -> AsyncPager[models.Task]:
        path = f"/v1/agents/{check_id(agent_id, 'agent_id')}/tasks"
        return AsyncPager(self._client, path, models.Task, limit=limit)

    async def create_task(
        self, agent_id: str, definition: dict[str, Any] | None = None, **fields: Any
    ) -> models.Task:
        """A new task of the agent (``name``, ``type``, ``config``, ``schedule``, ``triggers``,
        retries and timeout), given as a dict or as keywords."""
        body = validate(models.CreateTaskBody, {**(definition or {}), **fields})
        return await self._client.call(
            models.Task,
            "POST",
            f"/v1/agents/{check_id(agent_id, 'agent_id')}/tasks",
            json=dump(body),
        )

    def executions(self, agent_id: str, *, limit: int = 50) -> AsyncPager[models.TaskExecution]:
        path = f"/v1/agents/{check_id(agent_id, 'agent_id')}/executions"
        return AsyncPager(self._client, path, models.TaskExecution, limit=limit)


class AsyncTasks:
    """Agent tasks: run, enable and disable, versions; and their executions."""

    def __init__(self, client: AsyncLinqra) -> None:
        self._client = client

    async def get(self, task_id: str) -> models.Task:
        return await self._client.call(
            models.Task, "GET", f"/v1/tasks/{check_id(task_id, 'task_id')}"
        )

    async def update(self, task_id: str, definition: dict[str, Any]) -> models.Task:
        body = validate(models.UpdateTaskBody, definition)
        return await self._client.call(
            models.Task, "PUT", f"/v1/tasks/{check_id(task_id, 'task_id')}", json=dump(body)
        )

    async def delete(self, task_id: str) -> None:
        await self._client.request("DELETE", f"/v1/tasks/{check_id(task_id, 'task_id')}")

    async def enable(self, task_id: str) -> models.Task:
        return await self._client.call(
            models.Task, "POST", f"/v1/tasks/{check_id(task_id, 'task_id')}/enable"
        )

    async def disable(self, task_id: str) -> models.Task:
        return await self._client.call(
            models.Task, "POST", f"/v1/tasks/{check_id(task_id, 'task_id')}/disable"
        )

    async def versions(self, task_id: str) -> list[models.TaskVersion]:
        listed = await self._client.call(
            models.ItemListTaskVersion, "GET", f"/v1/tasks/{check_id(task_id, 'task_id')}/versions"
        )
        return list(listed.items)

    async def rollback(self, task_id: str, version: int) -> models.Task:
        return await self._client.call(
            models.Task,
            "POST",
            f"/v1/tasks/{check_id(task_id, 'task_id')}/versions/{int(version)}/rollback",
        )

    async def execute(
        self, task_id: str, input: dict[str, Any] | None = None, *, wait: bool = False
    ) -> models.TaskExecution:
        """Run the task now; with ``wait`` the finished task execution."""
        body = validate(models.ExecuteTaskRequest, {"input": input or {}})
        return await self._client.call(
            models.TaskExecution,
            "POST",
            f"/v1/tasks/{check_id(task_id, 'task_id')}/execute",
            json=dump(body),
            params={"wait": "true" if wait else None},
        )

    async def execute_adhoc(
        self, config: dict[str, Any], *, wait: bool = False, **fields: Any
    ) -> models.TaskExecution:
        """Run an embedded workflow once, without storing a task."""
        body = validate(models.AdhocRequest, {"config": config, **fields})
        return await self._client.call(
            models.TaskExecution,
            "POST",
            "/v1/tasks/execute-adhoc",
            json=dump(body),
            params={"wait": "true" if wait else None},
        )

    def executions(
        self,
        *,
        agent_id: str | None = None,
        task_id: str | None = None,
        status: str | None = None,
        limit: int = 50,
    ) -> AsyncPager[models.TaskExecution]:
        params = {"agent_id": agent_id, "task_id": task_id, "status": status}
        return AsyncPager(
            self._client, "/v1/task-executions", models.TaskExecution, params=params, limit=limit
        )

    async def execution(self, task_execution_id: str) -> models.TaskExecution:
        return await self._client.call(
            models.TaskExecution,
            "GET",
            f"/v1/task-executions/{check_id(task_execution_id, 'task_execution_id')}",
        )

    async def cancel_execution(self, task_execution_id: str) -> models.TaskExecution:
        return await self._client.call(
            models.TaskExecution,
            "POST",
            f"/v1/task-executions/{check_id(task_execution_id, 'task_execution_id')}/cancel",
        )

    async def next_fires(
        self, expression: str, *, timezone: str | None = None, count: int = 5
    ) -> models.CronPreview:
        """When a Quartz cron expression fires next (checks it without storing anything)."""
        return await self._client.call(
            models.CronPreview,
            "GET",
            "/v1/cron/next",
            params={"expression": expression, "timezone": timezone, "count": count},
        )


class AsyncEvents:
    """Events on the bus (they trigger tasks), signed webhooks, and dead letters."""

    def __init__(self, client: AsyncLinqra) -> None:
        self._client = client

    async def publish(
        self, topic: str, payload: Any = None, **fields: Any
    ) -> models.PublishedEvent:
        body = validate(models.PublishRequest, {"topic": topic, "payload": payload, **fields})
        return await self._client.call(models.PublishedEvent, "POST", "/v1/events", json=dump(body))

    async def hooks(self) -> list[models.Hook]:
        listed = await self._client.call(models.ItemListHook, "GET", "/v1/hooks")
        return list(listed.items)

    async def create_hook(self, **fields: Any) -> models.Hook:
        """A signed webhook that publishes what it receives to a topic."""
        body = validate(models.HookRequest, fields)
        return await self._client.call(models.Hook, "POST", "/v1/hooks", json=dump(body))

    async def delete_hook(self, hook_id: str) -> None:
        await self._client.request("DELETE", f"/v1/hooks/{check_id(hook_id, 'hook_id')}")

    def dead_letters(self, *, limit: int = 50) -> AsyncPager[models.DeadLetter]:
        return AsyncPager(self._client, "/v1/dead-letters", models.DeadLetter, limit=limit)

    async def replay(self, dead_letter_id: str) -> models.PublishedEvent:
        """Publish a dead letter's event again."""
        return await self._client.call(
            models.PublishedEvent,
            "POST",
            f"/v1/dead-letters/{check_id(dead_letter_id, 'dead_letter_id')}/replay",
        )

    async def delete_dead_letter(self, dead_letter_id: str) -> None:
        await self._client.request(
            "DELETE", f"/v1/dead-letters/{check_id(dead_letter_id, 'dead_letter_id')}"
        )
