"""``linqra-supervisor``: activates agents, runs document ingestion, and finds lost work.

One named, detached, restartable actor per cluster. Every kind of durable work has a record
with a status and a heartbeat; what a dead process, a passivating agent or a lost queue
message left behind is found here from those records and started again:

* task executions PENDING that nobody started, or RUNNING whose agent went silent;
* documents PENDING or PROCESSING with a stale heartbeat (re-ingested: ingestion is idempotent);
* async steps QUEUED too long (their queue message was lost: published again);
* chat runs queued or running whose conversation's worker went silent (interrupted, with their
  partial replies kept: the next message of the conversation works).

It also prunes audit events past their retention, once an hour, and samples what metrics
cannot count as it happens (every ``metrics.sample_seconds``): the depth and age of the queues
of durable work, and how many agent actors are alive.

Workflow executions are reclaimed by the runner itself (it owns their claims).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import datetime
from typing import Any

from actors._context import process_system
from actors.agent import AgentActor
from actors.chat_host import ChatHostActor, host_options
from actors.handles import (
    AGENT_PREFIX,
    CHAT_PREFIX,
    RUNNER,
    agent_name,
    call,
    chat_host_name,
    named_actor,
)
from actors.ingest import ingest_document
from linqra.config import Settings
from linqra.metrics.catalogue import AGENT_ACTORS, QUEUE_DEPTH, QUEUE_OLDEST_AGE
from linqra.workflows.async_steps import BusAsyncStepQueue

__all__ = ["SupervisorActor"]

log = logging.getLogger(__name__)

AUDIT_PRUNE_SECONDS = 3600.0
BACKLOG_LIMIT = 1000
"""At most this many waiting items are counted per queue at each sample."""


class SupervisorActor:
    def __init__(self, settings_json: str) -> None:
        self.settings = Settings.model_validate_json(settings_json)
        self._ingesting: dict[str, asyncio.Task[None]] = {}
        self._pruned_at = -AUDIT_PRUNE_SECONDS
        self._sampled_at = -float("inf")
        self._reaper = asyncio.get_running_loop().create_task(self._reap_forever())
        _end_extra_chat_hosts(self.settings)

    async def ping(self) -> dict[str, Any]:
        return {"ingesting": len(self._ingesting), "reaping": not self._reaper.done()}

    # -- agents ---------------------------------------------------------------------------
    async def activate_agent(
        self, team_id: str, agent_id: str, tx_id: str, priority: int = 5, nested: bool = False
    ) -> None:
        """Hand a task execution to its agent's actor, creating the actor if the agent is
        passive. An actor that is passivating as we call it is replaced (three tries); if none
        answers, the next reaper pass dispatches the execution, so it is never lost."""
        from ray.exceptions import RayActorError

        for attempt in range(3):
            try:
                actor = named_actor(
                    AgentActor,
                    self.settings,
                    agent_name(agent_id),
                    self.settings.model_dump_json(),
                    team_id,
                    agent_id,
                    max_concurrency=1000,
                    max_task_retries=0,
                )
                await actor.run.remote(tx_id, priority, nested)
                return
            except RayActorError:
                await asyncio.sleep(0.2 * (attempt + 1))
        log.warning("agent %s did not take %s; the reaper will retry", agent_id, tx_id)

    # -- chat ------------------------------------------------------------------------------
    async def activate_chat_host(self, index: int) -> None:
        """Create the chat host ``linqra-chat-<index>`` if it is not there (get-or-create by
        name: callers racing for one host get the same actor); Ray restarts it when it dies,
        and the runs it was writing are interrupted by :meth:`reap_chat_runs`."""
        if not 0 <= index < self.settings.chat.hosts:
            raise ValueError(f"chat host {index} of {self.settings.chat.hosts}")
        named_actor(
            ChatHostActor,
            self.settings,
            chat_host_name(index),
            self.settings.model_dump_json(),
            index,
            **host_options(),
        )

    # -- documents -------------------------------------------------------------------------
    async def ingest(self, team_id: str, doc_id: str) -> None:
        """Start ingesting a document as a Ray task (once: a document in flight is not doubled)."""
        if doc_id in self._ingesting:
            return
        ref = ingest_document.remote(self.settings.model_dump_json(), team_id, doc_id)
        self._ingesting[doc_id] = asyncio.get_running_loop().create_task(self._await(doc_id, ref))

    async def _await(self, doc_id: str, ref: Any) -> None:
        try:
            await ref
        except Exception:  # the task died past its retries: the reaper tries again
            log.warning("ingestion of %s failed", doc_id, exc_info=True)
        finally:
            self._ingesting.pop(doc_id, None)

    async def ingesting(self) -> list[str]:
        return sorted(self._ingesting)

    # -- lost work ---------------------------------------------------------------------------
    async def reap_executions(self) -> int:
        """Stale workflow executions are adopted by the runner (it resumes them from their
        checkpoints, or fails them per ``execution.orphan_policy``)."""
        reaped: int = await call(self.settings, RUNNER, "reap")
        return reaped

    async def reap_task_executions(self) -> int:
        """Dispatch task executions nobody is running: PENDING ones never started (their agent
        was passivating, a gateway died) and RUNNING ones whose agent actor went silent."""
        system = await process_system(self.settings)
        return await system.agents.jobs.reap(
            self.settings.agents.stale_after_seconds,
            lambda tx: system.runs.dispatch(tx["team_id"], tx),
        )

    async def reap_documents(self) -> int:
        """Re-submit documents left PENDING or PROCESSING with a stale heartbeat (ingestion is
        idempotent: no release needed, a second run converges to the same vectors)."""
        system = await process_system(self.settings)
        return await system.knowledge.jobs.reap(
            self.settings.knowledge.stale_after_seconds,
            lambda doc: self.ingest(doc["team_id"], doc["id"]),
            release=False,
            skip=lambda doc: doc["id"] in self._ingesting,
        )

    async def requeue_async_steps(self) -> int:
        """Publish again async steps left QUEUED too long (a lost queue message)."""
        if self.settings.agents.async_step_workers <= 0:
            return 0
        system = await process_system(self.settings)
        queue = BusAsyncStepQueue(system.bus())
        requeued = await queue.requeue_lost(
            system.workflows.executions, self.settings.agents.stale_after_seconds
        )
        return int(requeued)

    async def reap_chat_runs(self, as_of: datetime | None = None) -> int:
        """Interrupt the chat runs whose worker is gone (``ChatService.reap``); ``as_of`` judges
        the heartbeats as if it were then (tests: a heartbeat made stale without waiting)."""
        system = await process_system(self.settings)
        return await system.chat.reap(as_of)

    async def prune_audit(self) -> int:
        """Drop audit events past ``auth.audit_retention_days``, once an hour at most."""
        now = time.monotonic()
        if now - self._pruned_at < AUDIT_PRUNE_SECONDS:
            return 0
        self._pruned_at = now
        system = await process_system(self.settings)
        return await system.audit.prune()

    async def sample_metrics(self) -> int:
        """Set the queue and agent gauges, once per ``metrics.sample_seconds`` at most; how many
        gauges were set (0: metrics off, or sampled recently)."""
        now = time.monotonic()
        if now - self._sampled_at < self.settings.metrics.sample_seconds:
            return 0
        system = await process_system(self.settings)
        if not system.metrics.enabled:
            return 0
        self._sampled_at = now
        queues = {
            "async_steps": system.workflows.executions.queued_steps,
            "task_executions": system.agents.jobs,
        }
        for queue, jobs in queues.items():
            depth, age = await jobs.backlog(BACKLOG_LIMIT)
            system.metrics.set(QUEUE_DEPTH, depth, queue=queue)
            system.metrics.set(QUEUE_OLDEST_AGE, age, queue=queue)
        system.metrics.set(AGENT_ACTORS, await asyncio.to_thread(_live_agents))
        return 2 * len(queues) + 1

    async def _reap_forever(self) -> None:
        interval = max(1.0, min(self.settings.knowledge.stale_after_seconds,
                                self.settings.execution.stale_after_seconds) / 3)  # fmt: skip
        passes = (
            self.reap_executions,
            self.reap_task_executions,
            self.reap_documents,
            self.requeue_async_steps,
            self.reap_chat_runs,
            self.prune_audit,
            self.sample_metrics,
        )
        while True:
            await asyncio.sleep(interval)
            for reap in passes:
                try:
                    await reap()
                except Exception:
                    log.warning("%s failed", reap.__name__, exc_info=True)


def _live_agents() -> int:
    """Agent actors alive in this namespace (their names, from Ray's control store)."""
    import ray

    return sum(1 for name in ray.util.list_named_actors() if name.startswith(AGENT_PREFIX))


def _end_extra_chat_hosts(settings: Settings) -> None:
    """End the chat hosts past ``chat.hosts`` (it was lowered since they were made): no
    conversation hashes to them any more, and a detached actor would otherwise stay forever."""
    import ray

    for name in ray.util.list_named_actors():
        index = name.removeprefix(CHAT_PREFIX)
        if name.startswith(CHAT_PREFIX) and index.isdigit() and int(index) >= settings.chat.hosts:
            with contextlib.suppress(ValueError):
                ray.kill(ray.get_actor(name, namespace=settings.ray.namespace), no_restart=True)
                log.info("ended %s: chat.hosts is %d", name, settings.chat.hosts)
