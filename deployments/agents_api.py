"""Agents, tasks and task executions over HTTP (routes on the gateway, logic here)."""

import asyncio
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from linqra.agents.service import TERMINAL, AgentService
from linqra.errors import ValidationError

__all__ = [
    "AdhocRequest",
    "ExecuteTaskRequest",
    "HookRequest",
    "PublishRequest",
    "wait_task_execution",
]


class PublishRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    topic: str = Field(min_length=1, max_length=150)
    payload: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)


class HookRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    topic: str = Field(min_length=1, max_length=150)
    description: str = Field(default="", max_length=500)


class ExecuteTaskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)


class AdhocRequest(BaseModel):
    """A ``WORKFLOW_EMBEDDED_ADHOC`` task, run once and not stored."""

    model_config = ConfigDict(extra="forbid")
    type: str = "WORKFLOW_EMBEDDED_ADHOC"
    name: str = Field(default="ad hoc", max_length=200)
    config: dict[str, Any]
    input: dict[str, Any] = Field(default_factory=dict)
    max_retries: int = Field(default=0, ge=0, le=20)
    backoff_seconds: float = Field(default=1.0, ge=0, le=3600)
    timeout_seconds: float = Field(default=300.0, gt=0, le=86_400)

    def task(self) -> dict[str, Any]:
        if self.type != "WORKFLOW_EMBEDDED_ADHOC":
            raise ValidationError("execute-adhoc runs WORKFLOW_EMBEDDED_ADHOC tasks", field="type")
        return {
            "id": None, "agent_id": None, "version": None, "name": self.name, "type": self.type,
            "config": self.config, "max_retries": self.max_retries,
            "backoff_seconds": self.backoff_seconds, "timeout_seconds": self.timeout_seconds,
        }  # fmt: skip


async def wait_task_execution(
    agents: AgentService, team_id: str, tx_id: str, timeout: float
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        doc = await agents.get_task_execution(team_id, tx_id)
        if doc["status"] in TERMINAL or loop.time() >= deadline:
            return doc
        await asyncio.sleep(0.1)
