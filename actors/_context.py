"""The one :class:`~linqra.system.System` of a Ray worker process.

Every Linqra actor and task builds its services here, once per process and settings: the
system's launcher is :class:`~actors.handles.RayLauncher` (runs go to the cluster's actors) and
its event bus the configured one (``ray://``: the cluster's bus actor), its metrics go out
through Ray's metrics export (:mod:`actors.metrics`). Synchronous Ray tasks
(CPU steps, ingestion) run their coroutines on an event loop kept by the calling thread, so their
system's connections outlive a single call. Its spans are exported by the cluster's span
exporter actor (:mod:`actors.tracing`), not by the process itself.

An actor's process tunes Python's cycle collector once its first system is open
(:func:`tune_collector`).
"""

from __future__ import annotations

import asyncio
import functools
import gc
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

from actors.events import open_bus
from actors.handles import RayLauncher
from actors.metrics import ray_metrics
from linqra import tracing
from linqra.config import Settings
from linqra.system import System

__all__ = ["GC_THRESHOLDS", "opened_system", "process_system", "run_sync", "shipped_settings"]

T = TypeVar("T")

_systems: dict[tuple[str, int], asyncio.Task[System]] = {}
_thread = threading.local()  # .loop: the calling thread's event loop (run_sync)


@functools.lru_cache(maxsize=16)
def shipped_settings(settings_json: str) -> Settings:
    """The settings a task was sent as JSON, parsed once per process: parsing ``Settings`` reads
    the environment and the YAML file again (pydantic-settings' sources), about 4 ms, which a
    CPU step paid on every run."""
    return Settings.model_validate_json(settings_json)


_content_keys: dict[int, tuple[Settings, str]] = {}


def _content_key(settings: Settings) -> str:
    """``settings`` as JSON, remembered per object: an actor passes the same object on every
    call, and dumping it again took 10-13 % of an I/O step's CPU in the worker (the object is
    kept with its key, so its id is never reused for another)."""
    known = _content_keys.get(id(settings))
    if known is None or known[0] is not settings:
        known = (settings, settings.model_dump_json())
        if len(_content_keys) > 64:
            _content_keys.clear()
        _content_keys[id(settings)] = known
    return known[1]


def _key(settings: Settings, loop: asyncio.AbstractEventLoop) -> tuple[str, int]:
    """Where ``settings``' system on ``loop`` is kept in ``_systems``."""
    return _content_key(settings), id(loop)


async def process_system(settings: Settings) -> System:
    """This process's system for ``settings`` on the running loop, opened on first use."""
    loop = asyncio.get_running_loop()
    key = _key(settings, loop)
    task = _systems.get(key)
    if task is None or (task.done() and task.exception() is not None):
        if settings.tracing.otlp_url:  # before System.open, which would export from here
            from actors.tracing import RelayExporter  # (OpenTelemetry's SDK: only if tracing)

            tracing.configure(settings.tracing, exporter=RelayExporter(settings))
        task = loop.create_task(_open(settings))
        _systems[key] = task
    return await asyncio.shield(task)


async def _open(settings: Settings) -> System:
    system = await System.open(
        settings,
        launcher=RayLauncher(settings),
        events=open_bus(settings),
        metrics=ray_metrics(settings),
        init=False,
    )
    import ray

    # an actor's process, not a driver (asked only with Ray up: asking would start it)
    if ray.is_initialized() and ray.get_runtime_context().get_actor_id() is not None:
        tune_collector()
    return system


GC_THRESHOLDS = (10_000, 20, 20)
"""Python's cycle collector in an actor's process: a young collection every 10,000 net
allocations (Python's default: 700), a full one after 400 of them (default: 100)."""
_tuned = False


def tune_collector() -> None:
    """Once per process: what it made to start (Ray, the pydantic models, Linqra's modules,
    its system: ≈ 114,000 objects in the runner) is frozen out of the cycle collector, and the
    collector runs less often (:data:`GC_THRESHOLDS`).

    Measured in the runner actor (gc callbacks timing each collection; a one-off script,
    2026-12-07, load 3-5), over a 1,000-step fan-out of 200 ms ``wait`` steps: with Python's
    defaults, 110 young, 10 middle and 0.9 full collections a run — each full one 80-90 ms
    over the whole heap, a stall of the loop every execution of the runner shares — in all
    94-132 ms of the runner's CPU a run, a fifth of it. Tuned: 16-22 ms a run and no full
    collection in eight runs; one, when it comes, walks only what was made since the freeze
    (≈ 4,300 objects). Frozen objects are still freed when nothing refers to them; only a
    cycle among them would stay, and they are the process's own lasting state. No collection
    first: in a process with its system open one found 60 objects to free among 146,000, in
    80 ms, which each of a cluster's dozen actor processes would add to its start."""
    global _tuned
    if _tuned:
        return
    _tuned = True
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def run_sync(settings: Settings, work: Callable[[System], Awaitable[T]]) -> T:
    """Run ``work(system)`` to its end on an event loop of the calling thread (for synchronous
    Ray tasks and actors: Ray calls them from one thread, so each keeps one loop and one system).

    The loop runs only while a call does; the system starts nothing that needs it between calls.
    Before, one loop thread per process ran every call: the hand-off there and back cost a CPU
    step 0.1-0.2 ms (issue 15; docs/perf/ray-profile.md, change 4)."""
    loop: asyncio.AbstractEventLoop | None = getattr(_thread, "loop", None)
    if loop is None:
        loop = _thread.loop = asyncio.new_event_loop()

    async def run() -> T:
        system = await process_system(settings)
        try:
            return await work(system)
        finally:
            system.metrics.flush()  # the loop stops with the call: no later turn hands them over

    return loop.run_until_complete(run())


def opened_system(settings: Settings) -> System | None:
    """The system :func:`run_sync` opened for ``settings`` on the calling thread, or ``None``
    (not yet, or it failed to open): for work that needs no event loop."""
    loop: asyncio.AbstractEventLoop | None = getattr(_thread, "loop", None)
    if loop is None:
        return None
    task = _systems.get(_key(settings, loop))
    if task is None or not task.done() or task.cancelled() or task.exception() is not None:
        return None
    return task.result()
