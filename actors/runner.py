"""The ``linqra-runner`` actor: runs workflow executions, one named, detached, restartable async
actor per cluster — or ``execution.runners`` of them (``linqra-runner``, ``linqra-runner-1`` …),
sharing the executions in the store: the launcher sends each execution to one of them
(``actors.handles.runner_for``), each claims what it is sent under its own runner id (its name),
and a stale execution of any runner is adopted by whichever reaper gets to it first.

It wraps :class:`linqra.workflows.runner.ExecutionRunner` with the Ray step executor.
``max_restarts=-1``: when its process dies Ray starts it again under the same name, and it
reclaims the executions it owned (resuming them from their checkpointed steps), so none is left
RUNNING. Ad hoc task executions (no agent) run on its loop too. Finding other lost work is the
supervisor's job (``actors/supervisor.py``); it asks ``linqra-runner`` to reap, and every other
runner reaps by itself, so executions are adopted while any runner is up.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from actors._context import process_system
from actors.executor import RayExecutor
from actors.handles import RUNNER, call, runner_names
from linqra.config import Settings
from linqra.errors import Conflict, Unavailable
from linqra.status import ExecutionStatus
from linqra.workflows.async_steps import BusAsyncStepQueue
from linqra.workflows.runner import ExecutionRunner

__all__ = ["RunnerActor"]

log = logging.getLogger(__name__)


class RunnerActor:
    def __init__(self, settings_json: str, name: str = RUNNER) -> None:
        self.settings = Settings.model_validate_json(settings_json)
        self.name = name
        self._runner: ExecutionRunner | None = None
        self._executor = RayExecutor(self.settings)
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        # An async actor's constructor runs on its event loop: start at once, so that a
        # restarted runner reclaims its executions without waiting for a caller.
        self._boot = asyncio.get_running_loop().create_task(self._ready())

    async def _ready(self) -> ExecutionRunner:
        async with self._lock:
            if self._runner is None:
                system = await process_system(self.settings)
                await system.init()  # once per cluster start: the indexes every process uses
                queue = None
                if self.settings.agents.async_step_workers > 0:  # async steps via a durable queue
                    queue = BusAsyncStepQueue(system.bus())
                self._executor.start()  # warm CPU-step workers before the first CPU step
                runner = system.runner(self.name, self._executor, queue)
                # the supervisor asks linqra-runner to reap; the others reap by themselves
                await runner.start(reap=self.name != RUNNER)
                self._runner = runner
                log.info("runner ready; reclaimed %d executions", len(runner.running()))
        return self._runner

    async def ping(self, *, warm: bool = False) -> dict[str, Any]:
        """Answers once the runner is up. With ``warm`` (the readiness warm-up) its warm
        CPU-step workers are started too where there are fewer than the pool's size (stopped
        while idle, or killed with a cancelled step), and it answers once they are up (at most
        30 s). A plain ping — a health probe's, once a second — starts nothing and waits for
        nothing: one that waited for a worker process to start timed out on a busy machine,
        and one that started them undid their stop after ``cpu_pool_idle_seconds`` (a CPU step
        that finds no warm worker runs as a Ray task and starts one in the background)."""
        runner = await self._ready()
        if warm:
            self._executor.start()
            await self._executor.ready()
        return {"runner_id": runner.runner_id, "running": len(runner.running())}

    async def submit(self, team_id: str, execution_id: str) -> None:
        await (await self._ready()).submit(team_id, execution_id)

    async def resume(self, team_id: str, execution_id: str) -> dict[str, Any]:
        return await (await self._ready()).resume(team_id, execution_id)

    async def cancel(self, team_id: str, execution_id: str) -> dict[str, Any]:
        """Cancel ``execution_id``; one another runner adopted (this one was lost while it ran
        it) is passed on to that owner, which stops it at once rather than at its next
        heartbeat, when it would read the cancel request recorded here."""
        runner = await self._ready()
        record = await runner.cancel(team_id, execution_id)
        owner = record.get("runner_id")
        if record.get("status") != ExecutionStatus.RUNNING or owner == self.name:
            return record
        if owner not in runner_names(self.settings):
            return record
        try:
            forwarded: dict[str, Any] = await call(
                self.settings, owner, "cancel", team_id, execution_id
            )
        except (Conflict, Unavailable):  # it ended meanwhile, or the owner is restarting
            return await runner.repo.get(team_id, execution_id)
        return forwarded

    async def wait(self, team_id: str, execution_id: str, timeout: float) -> dict[str, Any]:
        return await (await self._ready()).wait(team_id, execution_id, timeout)

    async def run(self, team_id: str, execution_id: str, timeout: float) -> dict[str, Any]:
        """Submit and wait: one call for a ``wait=true`` request."""
        return await (await self._ready()).run(team_id, execution_id, timeout)

    async def run_definition(
        self,
        team_id: str,
        body: dict[str, Any],
        params: dict[str, Any],
        *,
        executed_by: str | None = None,
        timeout: float = 3600.0,
    ) -> dict[str, Any]:
        """Validate an inline definition, run it as a new execution, and wait for the record
        (driver scripts)."""
        runner = await self._ready()
        system = await process_system(self.settings)
        definition = system.workflows.validate_definition(body)
        execution = await system.workflows.new_execution(
            team_id, definition=definition, params=params, executed_by=executed_by, source="driver"
        )
        return await runner.run(team_id, execution["id"], timeout)  # here: no call to itself

    async def running(self) -> list[str]:
        return (await self._ready()).running()

    async def reap(self) -> int:
        return await (await self._ready()).reap()

    async def run_task(self, team_id: str, tx_id: str) -> None:
        """Run an ad hoc task execution (no agent) on this actor's loop."""
        await self._ready()
        system = await process_system(self.settings)
        task = asyncio.get_running_loop().create_task(
            system.agents.run_task_execution(team_id, tx_id, system.launcher, owner=self.name)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
