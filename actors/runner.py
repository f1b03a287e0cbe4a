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

from actors._context import named_actor
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
        self._ingesting: dict[str, asyncio.Task[None]] = {}
        self._async_queue: Any = None
        self._doc_reaper = asyncio.get_running_loop().create_task(self._reap_documents_forever())

    async def _ready(self) -> ExecutionRunner:
        async with self._lock:
            if self._runner is None:
                self._system = await System.open(self.settings)
                queue = None
                if self.settings.agents.async_step_workers > 0:  # async steps via a durable queue
                    from actors.async_steps import start_async_workers
                    from actors.events import open_bus
                    from linqra.workflows.async_steps import BusAsyncStepQueue

                    queue = BusAsyncStepQueue(open_bus(self.settings))
                    self._async_queue = queue
                    self._async_workers = start_async_workers(self.settings)
                runner = self._system.runner(RUNNER_NAME, RayExecutor(self.settings), queue)
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

    # -- document ingestion --------------------------------------------------------------
    async def ingest(self, team_id: str, doc_id: str) -> None:
        """Start ingesting a document as a Ray task (once: a document in flight is not doubled)."""
        if doc_id in self._ingesting:
            return
        from actors.ingest import ingest_document

        ref = ingest_document.remote(self.settings.model_dump_json(), team_id, doc_id)
        self._ingesting[doc_id] = asyncio.get_running_loop().create_task(self._await(doc_id, ref))

    async def _await(self, doc_id: str, ref: Any) -> None:
        try:
            await ref
        except Exception:  # the task died past its retries: the document reaper tries again
            log.warning("ingestion of %s failed", doc_id, exc_info=True)
        finally:
            self._ingesting.pop(doc_id, None)

    async def ingesting(self) -> list[str]:
        return sorted(self._ingesting)

    async def reap_documents(self) -> int:
        """Re-submit documents left PENDING or PROCESSING with a stale heartbeat; how many."""
        await self._ready()
        assert self._system is not None
        stale = await self._system.knowledge.stale_documents(
            self.settings.knowledge.stale_after_seconds
        )
        started = 0
        for doc in stale:
            if doc["id"] not in self._ingesting:
                log.warning("re-submitting stale ingestion of %s (%s)", doc["id"], doc["status"])
                await self.ingest(doc["team_id"], doc["id"])
                started += 1
        return started

    async def run_task(self, team_id: str, tx_id: str) -> None:
        """Run an ad hoc task execution (no agent) on this actor's loop."""
        from actors.agent import RayExecutionPort

        await self._ready()
        assert self._system is not None
        port = RayExecutionPort(get_runner(self.settings))
        asyncio.get_running_loop().create_task(
            self._system.agents.run_task_execution(team_id, tx_id, port, owner=RUNNER_NAME)
        )

    async def requeue_async_steps(self) -> int:
        """Publish again async steps left QUEUED too long (a lost queue message)."""
        await self._ready()
        if self._async_queue is None or self._system is None:
            return 0
        requeued = await self._async_queue.requeue_lost(
            self._system.service.executions, self.settings.agents.stale_after_seconds
        )
        return int(requeued)

    async def reap_task_executions(self) -> int:
        """Dispatch task executions nobody is running: PENDING ones never started (their agent
        was passivating, a gateway died) and RUNNING ones whose agent actor went silent."""
        from actors.agent import dispatch

        await self._ready()
        assert self._system is not None
        agents = self._system.agents
        started = 0
        for tx in await agents.stale_task_executions(self.settings.agents.stale_after_seconds):
            team_id = tx["team_id"]
            if tx["agent_id"] is None:  # ad hoc: run here
                if tx["status"] == "PENDING" or await agents.release_stale(
                    team_id, tx["id"], tx["heartbeat_at"]
                ):
                    await self.run_task(team_id, tx["id"])
                    started += 1
                continue
            if tx["status"] == "RUNNING" and not await agents.release_stale(
                team_id, tx["id"], tx["heartbeat_at"]
            ):
                continue
            log.warning("dispatching stale task execution %s (%s)", tx["id"], tx["status"])
            await dispatch(self.settings, team_id, tx["agent_id"], tx["id"], tx.get("priority", 5))
            started += 1
        return started

    async def _reap_documents_forever(self) -> None:
        interval = max(1.0, self.settings.knowledge.stale_after_seconds / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.reap_documents()
            except Exception:
                log.warning("document reaper pass failed", exc_info=True)
            try:
                await self.reap_task_executions()
            except Exception:
                log.warning("task execution reaper pass failed", exc_info=True)
            try:
                await self.requeue_async_steps()
            except Exception:
                log.warning("async step reaper pass failed", exc_info=True)

    async def reap(self) -> int:
        return await (await self._ready()).reap()


def get_runner(settings: Settings) -> Any:
    """The cluster's runner actor, created on first use."""
    return named_actor(
        RunnerActor,
        settings,
        RUNNER_NAME,
        settings.model_dump_json(),
        max_concurrency=10_000,
        max_task_retries=0,
    )
