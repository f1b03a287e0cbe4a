"""The ``linqra-runner`` actor: one named, detached, restartable async actor per cluster.

It wraps :class:`linqra.workflows.runner.ExecutionRunner` with the Ray step
executor. ``max_restarts=-1``: when its process dies Ray starts it again under
the same name, and it reclaims the executions it owned (resuming them from
their checkpointed steps), so none is left RUNNING.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import ray

from actors.executor import RayExecutor
from linqra.config import Settings
from linqra.system import System
from linqra.workflows.runner import ExecutionRunner

RUNNER_NAME = "linqra-runner"
log = logging.getLogger(__name__)


class RunnerActor:
    def __init__(self, settings_json: str) -> None:
        self.settings = Settings.model_validate_json(settings_json)
        self._system: System | None = None
        self._runner: ExecutionRunner | None = None
        self._lock = asyncio.Lock()
        # An async actor's constructor runs on its event loop: start at once, so that a
        # restarted runner reclaims its executions without waiting for a caller.
        self._boot = asyncio.get_running_loop().create_task(self._ready())

    async def _ready(self) -> ExecutionRunner:
        async with self._lock:
            if self._runner is None:
                self._system = await System.open(self.settings)
                runner = self._system.runner(RUNNER_NAME, RayExecutor(self.settings))
                await runner.start()
                self._runner = runner
                log.info("runner ready; reclaimed %d executions", len(runner.running()))
        return self._runner

    async def ping(self) -> dict[str, Any]:
        runner = await self._ready()
        return {"runner_id": runner.runner_id, "running": len(runner.running())}

    async def submit(self, team_id: str, execution_id: str) -> None:
        await (await self._ready()).submit(team_id, execution_id)

    async def resume(self, team_id: str, execution_id: str) -> dict[str, Any]:
        return await (await self._ready()).resume(team_id, execution_id)

    async def cancel(self, team_id: str, execution_id: str) -> dict[str, Any]:
        return await (await self._ready()).cancel(team_id, execution_id)

    async def wait(self, team_id: str, execution_id: str, timeout: float) -> dict[str, Any]:
        return await (await self._ready()).wait(team_id, execution_id, timeout)

    async def run_definition(
        self,
        team_id: str,
        body: dict[str, Any],
        params: dict[str, Any],
        *,
        executed_by: str | None = None,
        timeout: float = 3600.0,
    ) -> dict[str, Any]:
        """Validate an inline definition, run it as a new execution, and wait for the record (drivers)."""
        runner = await self._ready()
        assert self._system is not None
        service = self._system.service
        definition = service.validate_definition(body)
        execution = await service.new_execution(
            team_id, definition=definition, params=params, executed_by=executed_by, source="driver"
        )
        await runner.submit(team_id, execution["id"])
        return await runner.wait(team_id, execution["id"], timeout)

    async def running(self) -> list[str]:
        return (await self._ready()).running()

    async def reap(self) -> int:
        return await (await self._ready()).reap()


def get_runner(settings: Settings) -> Any:
    """The cluster's runner actor, created on first use."""
    return (
        ray.remote(RunnerActor)
        .options(  # type: ignore[attr-defined]
            name=RUNNER_NAME,
            namespace=settings.ray.namespace,
            get_if_exists=True,
            lifetime="detached",
            num_cpus=0,
            max_concurrency=10_000,
            max_restarts=-1,
            max_task_retries=0,
        )
        .remote(settings.model_dump_json())
    )
