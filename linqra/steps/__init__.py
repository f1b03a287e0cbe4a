"""Step targets and the default registry."""

from __future__ import annotations

from linqra.config import Settings
from linqra.steps.base import ExecutorKind, StepCall, StepContext, StepTarget, TargetRegistry
from linqra.steps.builtin import NoopTarget, TransformTarget, WaitTarget
from linqra.steps.http import HttpTarget, ServiceTarget
from linqra.steps.knowledge import KnowledgeHubTarget, MilvusTarget
from linqra.steps.llm import LLM_TARGETS, LLMTarget
from linqra.steps.orchestration import AgentStepTarget, WorkflowStepTarget

__all__ = [
    "ExecutorKind",
    "StepCall",
    "StepContext",
    "StepTarget",
    "TargetRegistry",
    "default_registry",
]


def default_registry(settings: Settings) -> TargetRegistry:
    """Built-in targets plus one service target per service in ``settings.services``."""
    registry = TargetRegistry(
        [
            TransformTarget(),
            NoopTarget(),
            WaitTarget(),
            HttpTarget(),
            MilvusTarget(),
            KnowledgeHubTarget(),
            AgentStepTarget(),
            WorkflowStepTarget(),
        ]
    )
    for name in LLM_TARGETS:
        registry.register(LLMTarget(name, settings.llm))
    services = {name: ServiceTarget(name) for name in settings.services}
    registry.set_fallback(lambda name: services.get(name))
    return registry
