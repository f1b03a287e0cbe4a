"""Per-process step context for Ray workers (built once per worker process and settings)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from linqra.config import Settings
from linqra.steps import default_registry
from linqra.steps.base import StepContext, TargetRegistry


@lru_cache(maxsize=4)
def worker_context(settings_json: str) -> tuple[TargetRegistry, StepContext]:
    from actors.agent import RayLauncher

    settings = Settings.model_validate_json(settings_json)
    ctx = StepContext(settings)
    ctx.resources["launcher"] = RayLauncher(settings)  # agent and workflow steps
    return default_registry(settings), ctx


def named_actor(cls: type, settings: Settings, name: str, *args: Any, **options: Any) -> Any:
    """The cluster's one ``name`` actor of ``cls``, created on first use: detached, restarted by
    Ray when its process dies, holding no CPU (it waits on I/O)."""
    import ray

    defaults: dict[str, Any] = {
        "name": name,
        "namespace": settings.ray.namespace,
        "get_if_exists": True,
        "lifetime": "detached",
        "num_cpus": 0,
        "max_restarts": -1,
    }
    return ray.remote(cls).options(**{**defaults, **options}).remote(*args)  # type: ignore[attr-defined]
