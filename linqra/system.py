"""The composition root: every port and service one process uses, built once from the settings.

Each process that serves Linqra — a gateway replica, the runner, an agent actor, an I/O worker,
a driver script, a test — opens one :class:`System` and passes it (or the service it needs)
down; step targets reach it through their :class:`~linqra.steps.base.StepContext`. Nothing
else builds a store, an LLM service or an HTTP client. Where work runs is the launcher's
business: in process by default, on the cluster when ``actors`` hands in a ``RayLauncher``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from linqra.agents.service import AgentService
from linqra.analytics import INDEXES as ANALYTICS_INDEXES
from linqra.assistants.chat import ChatService
from linqra.assistants.conversations import ConversationRepository
from linqra.assistants.runlog import open_run_log
from linqra.assistants.service import AssistantService
from linqra.assistants.turn import ChatDeps
from linqra.auth.audit import AuditLog
from linqra.auth.authenticator import Authenticator
from linqra.auth.directory import TeamDirectory
from linqra.auth.keys import ApiKeys, load_pepper
from linqra.cache import Cache, open_cache
from linqra.config import Settings
from linqra.events import EventBus, open_event_bus
from linqra.knowledge.service import KnowledgeService
from linqra.launcher import InProcessLauncher, Launcher
from linqra.llm.service import LLMService
from linqra.llm.usage import USAGE_INDEXES
from linqra.logs import configure as configure_logging
from linqra.metrics import NOOP, Metrics, open_metrics
from linqra.ratelimit import RateLimiter, RateLimitRules, TeamTokenLimit
from linqra.runs import RunService
from linqra.scheduling.book import TriggerBook
from linqra.scheduling.hooks import HOOK_SECRETS, HookService
from linqra.secrets import TeamSecrets, load_keyring
from linqra.steps import default_registry
from linqra.steps.base import StepContext, TargetRegistry
from linqra.steps.http import HttpClients
from linqra.store import DocumentStore, open_store
from linqra.tracing import configure as configure_tracing
from linqra.workflows.async_steps import AsyncStepQueue
from linqra.workflows.engine import LocalExecutor, StepExecutor, WorkflowEngine
from linqra.workflows.runner import ExecutionRunner
from linqra.workflows.service import WorkflowService

__all__ = ["System"]


@dataclass(eq=False)
class System:
    settings: Settings
    store: DocumentStore
    cache: Cache
    registry: TargetRegistry
    workflows: WorkflowService
    llm: LLMService
    knowledge: KnowledgeService
    agents: AgentService
    assistants: AssistantService
    chat: ChatService
    triggers: TriggerBook
    launcher: Launcher
    runs: RunService
    http: HttpClients
    secrets: TeamSecrets
    hooks: HookService
    authenticator: Authenticator
    audit: AuditLog
    limiter: RateLimiter
    rate_limits: RateLimitRules
    events: EventBus | None = None
    metrics: Metrics = NOOP
    ctx: StepContext = field(init=False)

    def __post_init__(self) -> None:
        self.ctx = StepContext(self)

    @classmethod
    async def open(
        cls,
        settings: Settings,
        *,
        launcher: Launcher | None = None,
        events: EventBus | None = None,
        metrics: Metrics | None = None,
        init: bool = True,
    ) -> System:
        """Build the process's services. ``launcher``: where runs go (default: this process);
        ``events``: the event bus (default: none until :meth:`bus` opens the configured one);
        ``metrics``: the recorder (default: :func:`~linqra.metrics.open_metrics`, for a process
        without Ray; a Ray process hands in ``actors.metrics.RayMetrics``);
        ``init``: create the store's indexes (once per cluster is enough)."""
        configure_tracing(settings.tracing)
        configure_logging(settings.logging)
        timeouts = {
            "timeout_seconds": settings.store_timeout_seconds,
            "connect_timeout_seconds": settings.store_connect_timeout_seconds,
        }
        pools = settings.connections  # per process: docs/operations.md, "Production topology"
        store = open_store(
            settings.resolved_store_url,
            max_pool_size=pools.mongodb.max_pool_size,
            min_pool_size=pools.mongodb.min_pool_size,
            **timeouts,
        )
        registry = default_registry(settings)
        keyring = load_keyring(settings)
        secrets = TeamSecrets(store, keyring, settings.llm.providers, also_reseal=[HOOK_SECRETS])
        limiter = RateLimiter.from_settings(settings)
        rate_limits = RateLimitRules.from_settings(settings.rate_limits)
        tokens = TeamTokenLimit(limiter, rate_limits.llm_tokens)
        metrics = metrics if metrics is not None else open_metrics(settings)
        llm = LLMService(
            settings,
            store,
            team_keys=secrets,
            token_limit=tokens if settings.rate_limits.enabled else None,
            metrics=metrics,
        )
        cache = open_cache(
            settings.cache_url, max_connections=pools.redis.max_connections, **timeouts
        )
        hooks = HookService(
            store, keyring, cache, tolerance_seconds=settings.agents.webhook_tolerance_seconds
        )
        workflows = WorkflowService(store, registry)
        launcher = launcher if launcher is not None else InProcessLauncher()
        triggers = TriggerBook(store, on_schedule=launcher.schedules_changed)
        agents = AgentService(store, workflows, triggers, on_agent_changed=launcher.agent_changed)
        knowledge = KnowledgeService(settings, store, llm, metrics=metrics)
        runs = RunService(workflows, agents, launcher)
        assistants = AssistantService(store, agents, knowledge, llm)
        chat = ChatDeps(
            conversations=ConversationRepository(store),
            runlog=open_run_log(
                settings.cache_url,
                ttl_seconds=settings.chat.run_log_ttl_seconds,
                **timeouts,
            ),
            llm=llm,
            knowledge=knowledge,
            runs=runs,
            agents=agents,
            settings=settings.chat,
        )
        system = cls(
            authenticator=_authenticator(settings, store),
            audit=AuditLog(store, retention_days=settings.auth.audit_retention_days),
            limiter=limiter,
            rate_limits=rate_limits,
            settings=settings,
            store=store,
            cache=cache,
            registry=registry,
            workflows=workflows,
            llm=llm,
            knowledge=knowledge,
            agents=agents,
            assistants=assistants,
            chat=ChatService.hosted(assistants, launcher.chat_host(chat)),
            triggers=triggers,
            launcher=launcher,
            runs=runs,
            http=HttpClients(settings.services),
            secrets=secrets,
            hooks=hooks,
            events=events,
            metrics=metrics,
        )
        if isinstance(launcher, InProcessLauncher):
            launcher.bind(system)
        if init:
            await system.init()
        return system

    async def init(self) -> None:
        """Create every collection's indexes (idempotent)."""
        await self.workflows.init()
        await self.store.ensure_indexes(USAGE_INDEXES)
        await self.store.ensure_indexes(ANALYTICS_INDEXES)  # not on a first analytics request
        await self.knowledge.init()
        await self.agents.init()
        await self.assistants.init()
        await self.chat.deps.conversations.init()
        if isinstance(self.launcher, InProcessLauncher):  # no supervisor here: what a crashed
            await self.chat.reap()  # process left running (a stale heartbeat) ends interrupted
        await self.triggers.init()
        await self.authenticator.directory.init()
        await self.authenticator.keys.init()
        await self.audit.init()

    def bus(self) -> EventBus:
        """The event bus: the one handed in, else the configured one, opened on first use
        (``ray://``, the cluster's bus, is this process's memory bus when there is no cluster)."""
        if self.events is None:
            url = self.settings.agents.events_url
            self.events = open_event_bus(
                "memory://" if url.startswith("ray://") else url,
                redeliver_after=self.settings.agents.stale_after_seconds,
                connections=self.settings.connections,
            )
        return self.events

    def engine(
        self,
        runner_id: str,
        executor: StepExecutor | None = None,
        async_queue: AsyncStepQueue | None = None,
    ) -> WorkflowEngine:
        return WorkflowEngine(
            repo=self.workflows.executions,
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
        await self.chat.host.close()
        await self.launcher.close()
        if self.events is not None:
            await self.events.close()
        await self.knowledge.close()
        await self.llm.aclose()
        await self.http.aclose()
        await self.limiter.close()
        await self.chat.deps.runlog.close()
        if self.authenticator.verifier is not None:
            await self.authenticator.verifier.aclose()
        await self.cache.close()
        await self.store.close()
        self.metrics.close()


def _authenticator(settings: Settings, store: DocumentStore) -> Authenticator:
    auth = settings.auth
    verifier = None
    if auth.mode == "oidc":
        from linqra.auth.oidc import OidcVerifier

        verifier = OidcVerifier(auth.oidc)
    pepper = load_pepper(settings.data_dir, embedded=settings.profile == "embedded")
    keys = ApiKeys(store, pepper, cache_seconds=auth.key_cache_seconds)
    directory = TeamDirectory(store, cache_seconds=auth.key_cache_seconds)
    return Authenticator(auth, directory, keys, verifier)
