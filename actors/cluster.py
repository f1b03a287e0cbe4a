"""Starting Linqra on a Ray cluster: the singleton actors, created once.

``start_cluster(settings)`` is called by ``linqra up`` and by the Serve application builder
(``deployments.gateway.build_app``) before the gateway starts; it is idempotent (every actor is
named and detached, ``get_if_exists``), so a second call — another ``serve deploy``, a driver —
finds the running ones. Everything else only looks actors up by name (:mod:`actors.handles`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from actors import handles
from actors.async_steps import AsyncStepWorker
from actors.events import EventBusActor
from actors.handles import named_actor
from actors.io_pool import IOStepWorker
from actors.runner import RunnerActor
from actors.scheduler import SchedulerActor
from actors.supervisor import SupervisorActor
from linqra.config import Settings

__all__ = ["ClusterActors", "start_cluster"]


@dataclass(frozen=True)
class ClusterActors:
    runner: Any
    scheduler: Any
    supervisor: Any
    io_pool: list[Any]
    async_workers: list[Any]
    events: Any | None


def start_cluster(settings: Settings) -> ClusterActors:
    """Create (or find) the runner, scheduler, supervisor, event bus, I/O pool and async-step
    workers for ``settings``; Ray must be initialised."""
    settings_json = settings.model_dump_json()
    events = None
    if settings.agents.events_url.startswith("ray://"):
        events = named_actor(
            EventBusActor,
            settings,
            handles.EVENTS,
            settings.agents.stale_after_seconds,
            max_concurrency=1000,
        )
    ex = settings.execution
    io_pool = [
        named_actor(
            IOStepWorker,
            settings,
            f"{handles.IO_PREFIX}{i}",
            settings_json,
            max_concurrency=ex.io_concurrency,
        )
        for i in range(ex.io_pool_size)
    ]
    runner = named_actor(
        RunnerActor,
        settings,
        handles.RUNNER,
        settings_json,
        max_concurrency=10_000,
        max_task_retries=0,
    )
    supervisor = named_actor(
        SupervisorActor,
        settings,
        handles.SUPERVISOR,
        settings_json,
        max_concurrency=1000,
        max_task_retries=0,
    )
    scheduler = named_actor(
        SchedulerActor, settings, handles.SCHEDULER, settings_json, max_task_retries=0
    )
    async_workers = [
        named_actor(
            AsyncStepWorker,
            settings,
            f"{handles.ASYNC_PREFIX}{i}",
            settings_json,
            f"{handles.ASYNC_PREFIX}{i}",
            max_concurrency=1000,
        )
        for i in range(settings.agents.async_step_workers)
    ]
    return ClusterActors(runner, scheduler, supervisor, io_pool, async_workers, events)
