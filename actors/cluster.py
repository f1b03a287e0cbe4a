"""Starting Linqra on a Ray cluster: the singleton actors, created once.

``start_cluster(settings)`` is called by ``linqra up`` and by the Serve application builder
(``deployments.gateway.build_app``) before the gateway starts; it is idempotent (every actor is
named and detached, ``get_if_exists``), so a second call — another ``serve deploy``, a driver —
finds the running ones. Everything else only looks actors up by name (:mod:`actors.handles`).

Their processes start after ``start_cluster`` returns. :class:`Readiness` says when they are up
and warm — every actor answers, the runner's and the I/O pool's systems are open, the Ray worker
processes for CPU steps have started — so that the first execution after a start is as fast as
the next (the gateway's ``/healthz`` waits for it once; ``deployments/routers/health.py``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from actors import handles
from actors.alerts import ALERTS, AlertsActor
from actors.async_steps import AsyncStepWorker
from actors.events import EventBusActor
from actors.handles import call, named_actor
from actors.io_pool import start_io_worker
from actors.runner import RunnerActor
from actors.scheduler import SchedulerActor
from actors.supervisor import SupervisorActor
from linqra.config import Settings
from linqra.errors import Unavailable

__all__ = [
    "MAX_WARM_CPU_WORKERS",
    "WARM_UP_TEAM",
    "ClusterActors",
    "Readiness",
    "start_cluster",
    "warm_up_workflow",
]

MAX_WARM_CPU_WORKERS = 8
"""At most this many Ray worker processes for CPU steps are started ahead of use."""
WARM_UP_TEAM = "_linqra"
"""The team of the warm-up executions: not a valid team id (``linqra.tenancy``), so no user's."""


@dataclass(frozen=True)
class ClusterActors:
    runner: Any
    scheduler: Any
    supervisor: Any
    io_pool: list[Any]
    async_workers: list[Any]
    events: Any | None
    alerts: Any | None = None
    runners: tuple[Any, ...] = ()
    """Every runner actor, ``runner`` first (``execution.runners``)."""
    spans: Any | None = None
    """The span exporter actor, where ``tracing.otlp_url`` is set (:mod:`actors.tracing`)."""


def start_cluster(settings: Settings) -> ClusterActors:
    """Create (or find) the runners, scheduler, supervisor, event bus, I/O pool, async-step
    workers, alert evaluator and span exporter for ``settings``; Ray must be initialised."""
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
    io_pool = [start_io_worker(settings, i, named_actor) for i in range(ex.io_pool_size)]
    runners = tuple(
        named_actor(
            RunnerActor,
            settings,
            name,
            settings_json,
            name,
            max_concurrency=10_000,
            max_task_retries=0,
        )
        for name in handles.runner_names(settings)
    )
    runner = runners[0]
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
    alerts = None
    if settings.alerts.enabled:
        alerts = named_actor(AlertsActor, settings, ALERTS, settings_json, max_task_retries=0)
    spans = None
    if settings.tracing.otlp_url:
        from actors.tracing import start_span_exporter  # (OpenTelemetry's SDK: only if tracing)

        spans = start_span_exporter(settings)
    return ClusterActors(
        runner, scheduler, supervisor, io_pool, async_workers, events, alerts, runners, spans
    )


class Readiness:
    """Whether the cluster started by :func:`start_cluster` can run a first execution as fast
    as the next one (issue 15: a 3-step DAG took 3.22 s first and 0.69 s after, its actors and
    processes starting on first use)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def names(self) -> list[str]:
        """The singleton actors a first execution (or a trigger, or an async step) needs."""
        ex, agents = self.settings.execution, self.settings.agents
        names = [*handles.runner_names(self.settings), handles.SUPERVISOR, handles.SCHEDULER]
        names += [f"{handles.IO_PREFIX}{i}" for i in range(ex.io_pool_size)]
        names += [f"{handles.ASYNC_PREFIX}{i}" for i in range(agents.async_step_workers)]
        return names

    async def check(self) -> None:
        """Every singleton answers now: the runner once its system has booted and it reclaimed
        its executions, an I/O worker once its system is open. Nothing is started, no CPU
        taken; :class:`~linqra.errors.Unavailable` when one is missing or restarting."""
        calls = [call(self.settings, name, "ping") for name in self.names()]
        if self.settings.agents.events_url.startswith("ray://"):
            calls.append(call(self.settings, handles.EVENTS, "__ray_ready__"))
        await asyncio.gather(*calls)

    async def warm_up(self) -> dict[str, Any]:
        """:meth:`check`, the runners' warm CPU-step workers up, then one execution through
        the runner (:func:`warm_up_workflow`):
        the runner's path for a definition, a step on each I/O worker, and one CPU step per CPU
        slot at once. Sent by the runner itself because Ray reuses a worker process only for
        tasks of the same job, runtime environment and detached actor: worker processes that
        any other process started for CPU steps would not be the runner's. Its record (team
        :data:`WARM_UP_TEAM`); :class:`~linqra.errors.Unavailable` unless it completed."""
        import ray

        await self.check()
        runners = handles.runner_names(self.settings)  # and each runner's warm CPU workers
        await asyncio.gather(*(call(self.settings, name, "ping", warm=True) for name in runners))
        cpus = ray.cluster_resources().get("CPU", 0.0)  # type: ignore[no-untyped-call]
        slots = min(int(cpus // self.settings.execution.cpu_step_num_cpus), MAX_WARM_CPU_WORKERS)
        body = warm_up_workflow(self.settings.execution.io_pool_size, slots)
        record: dict[str, Any] = await call(
            self.settings, handles.RUNNER, "run_definition", WARM_UP_TEAM, body, {}, timeout=60
        )
        if record.get("status") != "COMPLETED":
            raise Unavailable(f"the warm-up execution ended {record.get('status')}", retry_after=2)
        return record


def warm_up_workflow(io_steps: int, cpu_steps: int) -> dict[str, Any]:
    """A DAG whose steps all start at once: ``io_steps`` steps on the I/O pool (the runner
    sends them round the pool) and ``cpu_steps`` CPU steps, each holding its CPU 50 ms so that
    each starts its own Ray worker process."""
    steps: list[dict[str, Any]] = [
        {"step": i + 1, "target": "wait", "params": {"seconds": 0}} for i in range(io_steps)
    ]
    steps += [
        {
            "step": io_steps + i + 1,
            "target": "wait",
            "executor": "task",
            "params": {"seconds": 0.05},
        }
        for i in range(cpu_steps)
    ]
    return {"mode": "dag", "steps": steps}
