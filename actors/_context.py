"""Per-process step context for Ray workers (built once per worker process and settings)."""

from __future__ import annotations

from functools import lru_cache

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
