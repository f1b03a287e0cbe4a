"""Names of the cluster's actors, looking them up, and the Ray implementation of the launcher.

Every Linqra actor is named in the cluster's namespace, so any process finds it by name.
:func:`named_actor` gets or creates one: ``actors.cluster.start_cluster`` creates the
singletons (the span exporter among them, when tracing is on), and the supervisor creates agent
actors and the chat hosts; a process's first batch of spans creates the span exporter where it
is missing (``actors/tracing.py``). Everything else only looks them up. A lookup or call
that fails because the actor is gone or restarting is :class:`~linqra.errors.Unavailable` (503
with ``Retry-After``), never a Ray error: callers see the core library's error tree.

Naming rule: the core concept lives in ``linqra/X``, the actor that hosts it on Ray in
``actors/X`` (``linqra/workflows/runner.py`` → ``actors/runner.py``, ``linqra/events`` →
``actors/events.py``, ``linqra/scheduling/scheduler.py`` → ``actors/scheduler.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import zlib
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import ray
from ray.exceptions import RayActorError

from linqra.assistants.turn import ChatDeps
from linqra.assistants.worker import ChatHost, Send
from linqra.config import Settings
from linqra.errors import LinqraError, NotFound, Unavailable

if TYPE_CHECKING:
    from linqra.assistants.runlog import RunEvent, RunLog

__all__ = [
    "ASYNC_PREFIX",
    "EVENTS",
    "IO_PREFIX",
    "RUNNER",
    "SCHEDULER",
    "SUPERVISOR",
    "RayChatHost",
    "RayLauncher",
    "RayRunLog",
    "agent_name",
    "call",
    "chat_host_for",
    "chat_host_index",
    "chat_host_name",
    "forget",
    "lookup",
    "named_actor",
    "placement",
    "runner_for",
    "runner_name",
    "runner_names",
]

log = logging.getLogger(__name__)

RUNNER = "linqra-runner"
"""Runs workflow executions (``actors/runner.py``); with ``execution.runners`` > 1 the first of
:func:`runner_names`."""
SCHEDULER = "linqra-scheduler"
"""Fires cron schedules and event triggers (``actors/scheduler.py``)."""
SUPERVISOR = "linqra-supervisor"
"""Activates agents, runs ingestion, finds lost work (``actors/supervisor.py``)."""
EVENTS = "linqra-events"
"""The in-cluster event bus for ``events_url: ray://`` (``actors/events.py``)."""
IO_PREFIX = "linqra-io-"
"""``linqra-io-0`` …: the I/O step pool (``actors/io_pool.py``)."""
ASYNC_PREFIX = "linqra-async-"
"""``linqra-async-0`` …: workers of queued async steps (``actors/async_steps.py``)."""
AGENT_PREFIX = "linqra-agent-"
CHAT_PREFIX = "linqra-chat-"
"""``linqra-chat-0`` …: the chat's hosts, each keeping many conversations' workers
(``actors/chat_host.py``)."""


def runner_name(index: int) -> str:
    """``linqra-runner``, then ``linqra-runner-1`` …: the runner actors (``execution.runners``);
    each one's runner id is its name."""
    return RUNNER if index == 0 else f"{RUNNER}-{index}"


def runner_names(settings: Settings) -> list[str]:
    return [runner_name(i) for i in range(settings.execution.runners)]


def runner_for(settings: Settings, work_id: str) -> str:
    """The runner that is sent ``work_id`` (an execution or a task execution): a hash of the id,
    so every replica sends one execution's submit, wait, cancel and resume to the same runner.
    Which runner owns it afterwards is the record's ``runner_id`` (a reaper may adopt it)."""
    count = settings.execution.runners
    return RUNNER if count == 1 else runner_name(zlib.crc32(work_id.encode()) % count)


def agent_name(agent_id: str) -> str:
    """``linqra-agent-<agent id>``: the actor of one busy agent (``actors/agent.py``)."""
    return f"{AGENT_PREFIX}{agent_id}"


def chat_host_name(index: int) -> str:
    """``linqra-chat-<index>``: one of the ``chat.hosts`` chat hosts."""
    return f"{CHAT_PREFIX}{index}"


def chat_host_index(settings: Settings, conversation_id: str) -> int:
    """Which host keeps ``conversation_id``'s worker: a hash of the id, so every replica sends
    one conversation's messages, cancels and reads to the same one."""
    return zlib.crc32(conversation_id.encode()) % settings.chat.hosts


def chat_host_for(settings: Settings, conversation_id: str) -> str:
    """The name of the host that keeps ``conversation_id``'s worker."""
    return chat_host_name(chat_host_index(settings, conversation_id))


HEAD_NODE_RESOURCE = "node:__internal_head__"
"""A resource only the head node has (Ray sets it): the head is the one node a cluster cannot
lose without losing everything, so state kept only in memory lives there."""


def placement(name: str) -> dict[str, Any]:
    """Where the ``name`` actor runs (docs/scaling.md, "Multi-node"): the ``ray://`` event bus,
    whose log is its memory, on the head node; every other actor ``SPREAD`` over the nodes, so
    one node's loss takes a share of the pools with it, and Ray restarts the detached ones on the
    nodes left (their state is in the store). On one node both mean that node."""
    if name == EVENTS:
        return {"resources": {HEAD_NODE_RESOURCE: 0.001}}
    return {"scheduling_strategy": "SPREAD"}


def named_actor(cls: type, settings: Settings, name: str, *args: Any, **options: Any) -> Any:
    """The cluster's one ``name`` actor of ``cls``, created on first use: detached, restarted by
    Ray when its process (or its node) dies, holding no CPU (it waits on I/O), placed by
    :func:`placement` unless ``options`` say otherwise."""
    defaults: dict[str, Any] = {
        "name": name,
        "namespace": settings.ray.namespace,
        "get_if_exists": True,
        "lifetime": "detached",
        "num_cpus": 0,
        "max_restarts": -1,
        **placement(name),
    }
    return ray.remote(cls).options(**{**defaults, **options}).remote(*args)  # type: ignore[attr-defined]


_HANDLES: dict[tuple[str, str], Any] = {}
"""Handles looked up by this process: ``ray.get_actor`` asks the GCS every time (0.1-0.25 ms,
blocking the event loop), and a named actor keeps its handle across restarts."""


def lookup(settings: Settings, name: str) -> Any:
    """The named actor's handle; :class:`Unavailable` if it does not exist (now)."""
    key = (settings.ray.namespace, name)
    handle = _HANDLES.get(key)
    if handle is None:
        try:
            handle = ray.get_actor(name, namespace=settings.ray.namespace)
        except ValueError:
            raise Unavailable(f"{name} is not running (yet)", retry_after=2) from None
        _HANDLES[key] = handle
    return handle


def forget(settings: Settings, name: str) -> None:
    """Look ``name`` up afresh next time (its actor died, or was replaced under the name)."""
    _HANDLES.pop((settings.ray.namespace, name), None)


async def call(settings: Settings, name: str, method: str, *args: Any, **kwargs: Any) -> Any:
    """Call ``method`` of the named actor; a dead or restarting actor is :class:`Unavailable`.

    A cached handle whose actor was replaced under the name (killed for good, then created
    again) is retried once with the new actor. Every method called this way moves records on by
    compare-and-set (a claim, a cancel request), so a call the old actor took before it died is
    not done twice."""
    handle = lookup(settings, name)
    try:
        return await getattr(handle, method).remote(*args, **kwargs)
    except RayActorError:
        forget(settings, name)
        try:
            fresh = lookup(settings, name)
        except Unavailable:
            fresh = None
        if fresh is None or fresh == handle:  # handles compare by actor id
            raise Unavailable(f"{name} is restarting", retry_after=2) from None
    try:
        return await getattr(fresh, method).remote(*args, **kwargs)
    except RayActorError:
        forget(settings, name)
        raise Unavailable(f"{name} is restarting", retry_after=2) from None


class RayLauncher:
    """The :class:`~linqra.launcher.Launcher` of a cluster: runs go to a runner actor
    (:func:`runner_for`), task executions to their agent's actor (activated by the supervisor
    when it is passive), documents to the supervisor's ingestion tasks."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._wakes: set[asyncio.Task[None]] = set()

    def _runner(self, work_id: str) -> str:
        return runner_for(self.settings, work_id)

    async def submit(self, team_id: str, execution_id: str) -> None:
        await call(self.settings, self._runner(execution_id), "submit", team_id, execution_id)

    async def wait(self, team_id: str, execution_id: str, timeout: float) -> dict[str, Any]:
        result: dict[str, Any] = await call(
            self.settings, self._runner(execution_id), "wait", team_id, execution_id, timeout
        )
        return result

    async def run(self, team_id: str, execution_id: str, timeout: float) -> dict[str, Any]:
        result: dict[str, Any] = await call(
            self.settings, self._runner(execution_id), "run", team_id, execution_id, timeout
        )
        return result

    async def cancel(self, team_id: str, execution_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await call(
            self.settings, self._runner(execution_id), "cancel", team_id, execution_id
        )
        return result

    async def resume(self, team_id: str, execution_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await call(
            self.settings, self._runner(execution_id), "resume", team_id, execution_id
        )
        return result

    async def dispatch_task(
        self,
        team_id: str,
        agent_id: str | None,
        tx_id: str,
        priority: int = 5,
        *,
        nested: bool = False,
    ) -> None:
        if agent_id is None:  # ad hoc: no agent, the runner's loop runs it
            await call(self.settings, self._runner(tx_id), "run_task", team_id, tx_id)
            return
        for attempt in range(3):
            try:  # the agent is busy: hand it over directly
                actor = ray.get_actor(agent_name(agent_id), namespace=self.settings.ray.namespace)
                await actor.run.remote(tx_id, priority, nested)
                return
            except ValueError:  # passive: the supervisor creates its actor
                await call(
                    self.settings, SUPERVISOR, "activate_agent",
                    team_id, agent_id, tx_id, priority, nested,
                )  # fmt: skip
                return
            except RayActorError:  # passivating as we called it: once more
                await asyncio.sleep(0.2 * (attempt + 1))
        log.warning("agent %s did not take %s; the supervisor will retry", agent_id, tx_id)

    async def watch_task(
        self, team_id: str, agent_id: str | None, tx_id: str, timeout: float
    ) -> bool:
        if agent_id is None:  # ad hoc: the runner's loop runs it; the store tells
            return False
        try:
            actor = ray.get_actor(agent_name(agent_id), namespace=self.settings.ray.namespace)
            return bool(await actor.watch.remote(tx_id, timeout))
        except (ValueError, RayActorError):  # passive or gone: the store tells
            return False

    async def ingest(self, team_id: str, doc_id: str) -> None:
        await call(self.settings, SUPERVISOR, "ingest", team_id, doc_id)

    def chat_host(self, deps: ChatDeps) -> ChatHost:
        return RayChatHost(self.settings, deps)

    async def ping(self) -> dict[str, Any]:
        try:
            result: dict[str, Any] = await asyncio.wait_for(
                call(self.settings, RUNNER, "ping"), timeout=5
            )
        except TimeoutError:
            raise Unavailable(f"{RUNNER} did not answer within 5 s", retry_after=2) from None
        return result

    def schedules_changed(self) -> None:
        task = asyncio.get_running_loop().create_task(self._wake_scheduler())
        self._wakes.add(task)  # the loop keeps only a weak reference
        task.add_done_callback(self._wakes.discard)

    def agent_changed(self, team_id: str, agent_id: str) -> None:
        task = asyncio.get_running_loop().create_task(self._wake_agent(agent_id))
        self._wakes.add(task)
        task.add_done_callback(self._wakes.discard)

    async def _wake_agent(self, agent_id: str) -> None:
        """Tell the agent's actor, if it has one, to read its record (``actors/agent.py``)."""
        try:
            actor = ray.get_actor(agent_name(agent_id), namespace=self.settings.ray.namespace)
            await actor.wake.remote()
        except (ValueError, RayActorError):  # passive, or passivating: nothing reads it
            pass
        except Exception:
            log.debug("agent %s was not told of a change", agent_id, exc_info=True)

    async def _wake_scheduler(self) -> None:
        try:  # through call(): a handle to a scheduler replaced under its name is looked up anew
            await call(self.settings, SCHEDULER, "wake")
        except Exception:  # not running (yet): it reads the schedules as it starts
            log.debug("the scheduler was not told of a schedule", exc_info=True)

    async def close(self) -> None:
        return None


class RayChatHost(ChatHost):
    """The conversations' workers in the cluster's chat hosts (``actors/chat_host.py``)."""

    def __init__(self, settings: Settings, deps: ChatDeps) -> None:
        self.settings = settings
        if settings.cache_url.startswith("memory:"):  # runs' logs live in their hosts
            runlog = RayRunLog(settings, deps.runlog, deps.conversations)
            deps = dataclasses.replace(deps, runlog=runlog)
        self.deps = deps

    async def send(self, team_id: str, conversation_id: str, send: Send) -> dict[str, Any]:
        """Send to the conversation's host, which the supervisor creates first when there is
        none; a host Ray is restarting takes the send once it is back.

        A host that dies while the send is under way is a 503, not a send again: the host may
        have written the run and the message before it died, and a second send would write them
        twice. The client sends again, with the same ``clientMessageId`` to be sure."""
        index = chat_host_index(self.settings, conversation_id)
        name = chat_host_name(index)
        try:
            host = lookup(self.settings, name)
        except Unavailable:  # not made yet: the supervisor makes it (get-or-create)
            await call(self.settings, SUPERVISOR, "activate_chat_host", index)
            host = lookup(self.settings, name)
        try:
            result: dict[str, Any] = await host.send.remote(team_id, conversation_id, send)
        except RayActorError:
            forget(self.settings, name)  # killed for good: the next send makes another
            raise Unavailable(
                "the conversation's host stopped during the send; send the message again "
                "(with the same clientMessageId, it is not taken twice)",
                retry_after=1,
            ) from None
        return result

    async def cancel(self, team_id: str, conversation_id: str, run_id: str) -> bool:
        name = chat_host_for(self.settings, conversation_id)
        try:
            return bool(await call(self.settings, name, "cancel", team_id, conversation_id, run_id))
        except Unavailable:
            return False

    async def holds(self, team_id: str, conversation_id: str, run_id: str) -> bool:
        """Asks the conversation's host; gone, dead or silent for ``chat.stale_after_seconds``
        (at most 5 s; the supervisor asks about a batch of runs at once) is ``False``."""
        name = chat_host_for(self.settings, conversation_id)
        wait = min(self.settings.chat.stale_after_seconds, 5.0)
        args = (team_id, conversation_id, run_id)
        try:
            return bool(await asyncio.wait_for(call(self.settings, name, "holds", *args), wait))
        except (Unavailable, TimeoutError):
            return False

    async def close(self) -> None:
        return None


class RayRunLog:
    """The run log when the cache is ``memory://`` on a cluster: each run's log lives in its
    conversation's host (``local`` is this process's own, used by a host for its runs); readers
    elsewhere reach it by the run's conversation. A host that died lost its runs' logs: a read
    finds nothing and the run counts as finished."""

    def __init__(self, settings: Settings, local: RunLog, deps_conversations: Any) -> None:
        self.settings = settings
        self.local = local
        self.conversations = deps_conversations
        self._owner: OrderedDict[tuple[str, str], str] = OrderedDict()

    async def _host(self, team_id: str, run_id: str) -> str | None:
        """The name of the host that keeps ``run_id``'s log; ``None`` for a run not found."""
        key = (team_id, run_id)
        conversation = self._owner.get(key)
        if conversation is None:
            try:
                conversation = (await self.conversations.get_run(team_id, run_id)).conversation_id
            except NotFound:
                return None
            self._owner[key] = conversation
            if len(self._owner) > 10_000:
                self._owner.popitem(last=False)
        return chat_host_for(self.settings, conversation)

    async def append(
        self, team_id: str, run_id: str, event: str, data: Mapping[str, Any]
    ) -> RunEvent:
        host = await self._host(team_id, run_id)
        if host is None:
            raise Unavailable("the run's conversation is not active", retry_after=1)
        try:
            appended: RunEvent = await call(
                self.settings, host, "append", team_id, run_id, event, dict(data)
            )
        except Unavailable:
            raise Unavailable("the run's conversation is not active", retry_after=1) from None
        return appended

    async def read(
        self, team_id: str, run_id: str, after: int = 0, *, wait: float = 0.0, limit: int = 1000
    ) -> list[RunEvent]:
        host = await self._host(team_id, run_id)
        if host is None:
            return []
        try:
            events: list[RunEvent] = await call(
                self.settings, host, "read", team_id, run_id, after, wait, limit
            )
        except Unavailable:
            return []
        return events

    async def finish(self, team_id: str, run_id: str) -> None:
        host = await self._host(team_id, run_id)
        if host is not None:
            with contextlib.suppress(LinqraError):
                await call(self.settings, host, "finish", team_id, run_id)

    async def is_finished(self, team_id: str, run_id: str) -> bool:
        host = await self._host(team_id, run_id)
        if host is None:
            return True
        try:
            return bool(await call(self.settings, host, "is_finished", team_id, run_id))
        except Unavailable:
            return True

    async def close(self) -> None:
        await self.local.close()
