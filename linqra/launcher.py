"""The launcher: where work started by a request, a step, a trigger or a driver actually runs.

One port, two implementations. :class:`InProcessLauncher` runs everything as asyncio tasks of
the calling process (tests, the notebook, drivers without a cluster); ``actors.handles.RayLauncher``
hands the same calls to the cluster's actors. Services and step targets only ever see
:class:`Launcher`, so the core library never imports Ray.

Records are the contract: a launcher is given ids of records already written (a PENDING
execution, task execution or document) and moves them on; what it loses — a process dies, an
actor is replaced — is found again by the supervisor from the records (see ``linqra.jobs``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from linqra.assistants.turn import ChatDeps
    from linqra.assistants.worker import ChatHost
    from linqra.system import System
    from linqra.workflows.runner import ExecutionRunner

__all__ = ["InProcessLauncher", "Launcher"]

log = logging.getLogger(__name__)


class Launcher(Protocol):
    """Start, wait for, cancel and resume runs; dispatch task executions; ingest documents."""

    async def submit(self, team_id: str, execution_id: str) -> None:
        """Start a PENDING workflow execution."""

    async def wait(self, team_id: str, execution_id: str, timeout: float) -> dict[str, Any]:
        """The execution's full record once terminal, or as it is after ``timeout`` seconds."""
        ...

    async def run(self, team_id: str, execution_id: str, timeout: float) -> dict[str, Any]:
        """:meth:`submit` then :meth:`wait`, in one call to wherever runs run."""

    async def cancel(self, team_id: str, execution_id: str) -> dict[str, Any]:
        """Stop a running execution (its running steps are cancelled)."""
        ...

    async def resume(self, team_id: str, execution_id: str) -> dict[str, Any]:
        """Run a FAILED, TIMEOUT or CANCELLED execution again from its unfinished steps."""
        ...

    async def dispatch_task(
        self,
        team_id: str,
        agent_id: str | None,
        tx_id: str,
        priority: int = 5,
        *,
        nested: bool = False,
    ) -> None:
        """Run a PENDING task execution on its agent (``None``: an ad hoc one). ``nested``: a
        workflow step waits for it, so it must not queue behind its own parent."""

    async def watch_task(
        self, team_id: str, agent_id: str | None, tx_id: str, timeout: float
    ) -> bool:
        """Wait, at most ``timeout`` seconds, for the end of a task execution where it runs,
        told by what runs it (no polling); ``False`` at once when this launcher cannot tell (it
        does not hold it: the caller reads the store)."""
        ...

    async def ingest(self, team_id: str, doc_id: str) -> None:
        """Ingest a PENDING document (extract, chunk, embed, index)."""

    async def ping(self) -> dict[str, Any]:
        """Whether runs can be started now (raises ``Unavailable`` if not)."""
        ...

    def schedules_changed(self) -> None:
        """A schedule was made or resumed: whatever fires schedules looks again now. Best
        effort, never raises (the scheduler also looks at least once a second)."""

    def agent_changed(self, team_id: str, agent_id: str) -> None:
        """The agent was updated or deleted: whatever runs its task executions reads it again
        now (its concurrency, or that it is gone). Best effort, never raises."""

    def chat_host(self, deps: ChatDeps) -> ChatHost:
        """Where conversations' turns run (one worker per conversation)."""
        ...

    async def close(self) -> None: ...


class InProcessLauncher:
    """Everything as asyncio tasks of this process, on the system it is bound to.

    Built before the :class:`~linqra.system.System` that uses it (the system's step targets
    need a launcher), then bound to it by ``System.open``.
    """

    def __init__(self) -> None:
        self._system: System | None = None
        self._runner: ExecutionRunner | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._task_runs: dict[str, asyncio.Task[Any]] = {}  # task execution id → its run
        self._lock = asyncio.Lock()

    def bind(self, system: System) -> None:
        self._system = system

    @property
    def system(self) -> System:
        if self._system is None:
            raise RuntimeError("InProcessLauncher used before System.open bound it")
        return self._system

    async def runner(self) -> ExecutionRunner:
        async with self._lock:
            if self._runner is None:
                runner = self.system.runner("in-process")
                await runner.start(reap=False)
                self._runner = runner
        return self._runner

    async def submit(self, team_id: str, execution_id: str) -> None:
        await (await self.runner()).submit(team_id, execution_id)

    async def wait(self, team_id: str, execution_id: str, timeout: float) -> dict[str, Any]:
        return await (await self.runner()).wait(team_id, execution_id, timeout)

    async def run(self, team_id: str, execution_id: str, timeout: float) -> dict[str, Any]:
        return await (await self.runner()).run(team_id, execution_id, timeout)

    async def cancel(self, team_id: str, execution_id: str) -> dict[str, Any]:
        return await (await self.runner()).cancel(team_id, execution_id)

    async def resume(self, team_id: str, execution_id: str) -> dict[str, Any]:
        return await (await self.runner()).resume(team_id, execution_id)

    async def dispatch_task(
        self,
        team_id: str,
        agent_id: str | None,
        tx_id: str,
        priority: int = 5,
        *,
        nested: bool = False,
    ) -> None:
        run = self._spawn(
            self.system.agents.run_task_execution(team_id, tx_id, self, owner="in-process")
        )
        self._task_runs[tx_id] = run
        run.add_done_callback(lambda _: self._task_runs.pop(tx_id, None))

    async def watch_task(
        self, team_id: str, agent_id: str | None, tx_id: str, timeout: float
    ) -> bool:
        run = self._task_runs.get(tx_id)
        if run is None:
            return False
        await asyncio.wait({run}, timeout=timeout)
        return True

    async def ingest(self, team_id: str, doc_id: str) -> None:
        self._spawn(self.system.knowledge.ingest(team_id, doc_id))

    def schedules_changed(self) -> None:
        return None  # no scheduler runs in this process: it runs as the cluster's actor

    def agent_changed(self, team_id: str, agent_id: str) -> None:
        return None  # a task execution here is an asyncio task: nothing keeps the agent's record

    def chat_host(self, deps: ChatDeps) -> ChatHost:
        from linqra.assistants.worker import InProcessChatHost

        return InProcessChatHost(deps)

    async def ping(self) -> dict[str, Any]:
        runner = await self.runner()
        return {"runner_id": runner.runner_id, "running": len(runner.running())}

    def _spawn(self, work: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("in-process work failed", exc_info=task.exception())

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        if self._runner is not None:
            await self._runner.close()
