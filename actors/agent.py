"""One stateful actor per agent while it has work.

``linqra-agent-<agent id>`` is created on demand (by the supervisor, when a task execution is
dispatched to a passive agent: ``actors.handles.RayLauncher.dispatch_task``), runs the agent's task
executions — at most the agent's ``max_concurrency`` at once, highest ``priority`` first — and
exits after ``idle_seconds`` without work (passivation), so a thousand registered agents with ten
busy are ten processes. Its state is in the document store: a restarted or re-created actor
adopts the RUNNING task executions of its agent whose heartbeat went stale, and the
supervisor dispatches PENDING ones nobody started, so neither passivation nor a crash loses a run.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import heapq
import itertools
import logging
from typing import Any

import ray

from actors._context import process_system
from actors.handles import agent_name
from linqra.config import Settings
from linqra.errors import Conflict, NotFound
from linqra.metrics.catalogue import AGENT_PASSIVATIONS
from linqra.system import System

__all__ = ["AgentActor"]

log = logging.getLogger(__name__)
STOP_GRACE_SECONDS = 10.0  # a deleted agent's running executions get this long to cancel


class AgentActor:
    def __init__(self, settings_json: str, team_id: str, agent_id: str) -> None:
        self.settings = Settings.model_validate_json(settings_json)
        self.team_id, self.agent_id = team_id, agent_id
        self._system: System | None = None
        self._queue: list[tuple[int, int, str]] = []  # (-priority, order, task execution id)
        self._order = itertools.count()
        self._queued: set[str] = set()
        self._nested: list[str] = []
        self._running: dict[str, asyncio.Task[Any]] = {}
        self._ended: dict[str, asyncio.Event] = {}  # queued task executions someone waits for
        self._wake = asyncio.Event()
        self._idle_since = asyncio.get_running_loop().time()
        self._loop = asyncio.get_running_loop().create_task(self._work())

    async def _sys(self) -> System:
        if self._system is None:
            self._system = await process_system(self.settings)
        return self._system

    async def run(self, tx_id: str, priority: int = 5, nested: bool = False) -> None:
        """Queue a task execution of this agent (again is a no-op). ``nested`` ones — started by
        a workflow step that waits for them — start at once, outside the concurrency limit: a
        waiting parent holding the last slot would otherwise wait for itself."""
        if tx_id in self._queued or tx_id in self._running:
            return
        self._queued.add(tx_id)
        if nested:
            self._nested.append(tx_id)
        else:
            heapq.heappush(self._queue, (-priority, next(self._order), tx_id))
        self._wake.set()

    async def watch(self, tx_id: str, timeout: float) -> bool:
        """Wait, at most ``timeout`` seconds, for a task execution this actor holds to end;
        ``False`` at once when it does not hold it (the caller reads the store)."""
        running = self._running.get(tx_id)
        if running is not None:
            await asyncio.wait({running}, timeout=timeout)
            return True
        if tx_id not in self._queued:
            return False
        ended = self._ended.setdefault(tx_id, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ended.wait(), timeout)
        return True

    async def status(self) -> dict[str, Any]:
        return {
            "agent_id": self.agent_id,
            "running": sorted(self._running),
            "queued": len(self._queue),
        }

    async def _work(self) -> None:
        """Serve until idle or deleted, then end the process. Whatever happens in the loop, the
        actor exits: a loop that died and left its actor alive would hold ~140 MB forever."""
        why = "failed"
        try:
            why = await self._serve()
        except Exception:
            log.warning("agent %s loop failed: exiting", self.agent_id, exc_info=True)
        await self._exit(why)

    async def _serve(self) -> str:
        """Start what is queued, as the agent's record allows, whenever something changes; exit
        once idle for ``agents.idle_seconds`` or once the agent is gone.

        The record is read when the actor is woken — a task execution queued or ended, or the
        agent updated or deleted (:meth:`wake`, from ``RayLauncher.agent_changed``) — not on a
        timer: every idle actor read it once a second, 3,000 store reads a second at the load
        the plan for 10,000 teams assumes (docs/scaling.md). Not CPU: an idle actor's 8-10 ms
        a second are Ray's own (a bare async actor's the same)."""
        system = await self._sys()
        await self._adopt(system)
        idle_after = self.settings.agents.idle_seconds
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()  # first: a wake while the record is read is kept for the wait
            try:
                agent = await system.agents.get_agent(self.team_id, self.agent_id)
            except NotFound:
                await self._stop_deleted(system)
                return "deleted"
            except Exception:  # the store is unreachable for now: keep the loop alive
                log.warning("agent %s cannot read its record", self.agent_id, exc_info=True)
                await asyncio.sleep(1.0)
                continue
            limit = agent.max_concurrency
            while self._nested or (self._queue and len(self._running) < limit):
                tx_id = self._nested.pop(0) if self._nested else heapq.heappop(self._queue)[2]
                self._queued.discard(tx_id)
                task = loop.create_task(
                    system.agents.run_task_execution(
                        self.team_id, tx_id, system.launcher, owner=agent_name(self.agent_id)
                    )
                )
                self._running[tx_id] = task
                task.add_done_callback(functools.partial(self._done, tx_id))
            idle = not self._running and not self._queue and not self._nested
            idle_for = loop.time() - self._idle_since
            if idle and idle_for > idle_after:
                return f"idle for {idle_after:g}s"
            with contextlib.suppress(TimeoutError):  # idle: until passivation is due
                await asyncio.wait_for(
                    self._wake.wait(), timeout=idle_after - idle_for + 0.01 if idle else None
                )

    async def wake(self) -> None:
        """Read the agent's record again now: it was updated or deleted."""
        self._wake.set()

    async def _stop_deleted(self, system: System) -> None:
        """The agent was deleted: cancel what it holds. Running executions get
        :data:`STOP_GRACE_SECONDS` to stop their workflow executions, then are cancelled."""

        async def cancel_held() -> None:
            held = [*self._nested, *(q[2] for q in self._queue), *self._running]
            self._nested.clear()
            self._queue.clear()
            self._queued.clear()
            for tx_id in held:
                with contextlib.suppress(Conflict, NotFound):
                    await system.agents.request_cancel(self.team_id, tx_id)
            for ended in self._ended.values():  # whoever waited reads the CANCELLED record
                ended.set()
            self._ended.clear()

        await cancel_held()
        if self._running:
            await asyncio.wait(list(self._running.values()), timeout=STOP_GRACE_SECONDS)
        if left := list(self._running.values()):
            for task in left:
                task.cancel()  # it records itself CANCELLED ("the agent stopped")
            await asyncio.wait(left, timeout=5.0)
        await cancel_held()  # anything queued meanwhile

    async def _exit(self, why: str) -> None:
        """End this actor's process (``exit_actor`` from this background task ends it too)."""
        from ray.exceptions import AsyncioActorExit

        log.info("agent %s %s: exiting", self.agent_id, why)
        if self._system is not None:
            reason = "idle" if why.startswith("idle") else why  # idle, deleted or failed
            self._system.metrics.add(AGENT_PASSIVATIONS, reason=reason)
            with contextlib.suppress(Exception):
                await self._system.close()
        with contextlib.suppress(AsyncioActorExit):
            ray.actor.exit_actor()  # type: ignore[no-untyped-call]

    def _done(self, tx_id: str, _task: object = None) -> None:
        self._running.pop(tx_id, None)
        if (ended := self._ended.pop(tx_id, None)) is not None:
            ended.set()
        self._idle_since = asyncio.get_running_loop().time()
        self._wake.set()

    async def _adopt(self, system: System) -> None:
        """After a restart: the agent's RUNNING task executions whose owner went silent."""
        for tx in await system.agents.stale_task_executions(
            self.settings.agents.stale_after_seconds, team_id=self.team_id, agent_id=self.agent_id
        ):
            if await system.agents.release_stale(self.team_id, tx["id"], tx["heartbeat_at"]):
                await self.run(tx["id"], tx.get("priority", 5))
