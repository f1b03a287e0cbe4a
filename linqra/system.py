"""Wiring: the ports and services one process needs, built from the settings."""

from __future__ import annotations

from dataclasses import dataclass

from linqra.agents.service import AgentService
from linqra.cache import Cache, open_cache
from linqra.config import Settings
from linqra.knowledge.service import KnowledgeService
from linqra.llm.service import LLMService
from linqra.llm.usage import USAGE_INDEXES
from linqra.steps import default_registry
from linqra.steps.base import StepContext, TargetRegistry
from linqra.store import DocumentStore, open_store
from linqra.workflows.async_steps import AsyncStepQueue
from linqra.workflows.engine import LocalExecutor, StepExecutor, WorkflowEngine
from linqra.workflows.runner import ExecutionRunner
from linqra.workflows.service import WorkflowService

__all__ = ["System"]


@dataclass
class System:
    settings: Settings
    store: DocumentStore
    cache: Cache
    registry: TargetRegistry
    service: WorkflowService
    ctx: StepContext
    llm: LLMService
    knowledge: KnowledgeService
    agents: AgentService

    @classmethod
    async def open(cls, settings: Settings, *, init: bool = True) -> System:
        store = open_store(
            settings.resolved_store_url,
            timeout_seconds=settings.store_timeout_seconds,
            connect_timeout_seconds=settings.store_connect_timeout_seconds,
        )
        registry = default_registry(settings)
        llm = LLMService(settings, store)
        workflows = WorkflowService(store, registry)
        system = cls(
            settings,
            store,
            open_cache(
                settings.cache_url,
                timeout_seconds=settings.store_timeout_seconds,
                connect_timeout_seconds=settings.store_connect_timeout_seconds,
            ),
            registry,
            workflows,
            StepContext(settings),
            llm,
            KnowledgeService(settings, store, llm),
            AgentService(store, workflows),
        )
        if init:
            await system.service.init()
            await store.ensure_indexes(USAGE_INDEXES)
            await system.knowledge.init()
            await system.agents.init()
        return system

    def engine(
        self,
        runner_id: str,
        executor: StepExecutor | None = None,
        async_queue: AsyncStepQueue | None = None,
    ) -> WorkflowEngine:
        return WorkflowEngine(
            repo=self.service.executions,
            registry=self.registry,
            executor=executor or LocalExecutor(self.registry, self.ctx),
            cache=self.cache,
            ctx=self.ctx,
            settings=self.settings.execution,
            runner_id=runner_id,
            async_queue=async_queue,
        )

    def runner(
        self,
        runner_id: str,
        executor: StepExecutor | None = None,
        async_queue: AsyncStepQueue | None = None,
    ) -> ExecutionRunner:
        return ExecutionRunner(
            self.engine(runner_id, executor, async_queue), self.settings.execution
        )

    async def close(self) -> None:
        await self.knowledge.close()
        await self.llm.aclose()
        await self.ctx.aclose()
        await self.cache.close()
        await self.store.close()
