"""The chat's hosts: a few actors that keep every active conversation's turns on the cluster.

A conversation's turns are serialized by its :class:`~linqra.assistants.worker.ConversationWorker`
— its queue, its active run, the double-texting decisions. The workers live in ``chat.hosts``
host actors (``linqra-chat-0`` …), a conversation in the one its id hashes to
(``actors.handles.chat_host_for``), so every gateway and orchestrator replica sends a
conversation's messages and cancels to the same worker. Each host keeps its workers in an
:class:`~linqra.assistants.worker.InProcessChatHost`, which drops a worker after
``chat.idle_seconds`` without a turn: everything it decided is in the store, and the next
message makes a new one in a microsecond.

Hosts, not an actor per conversation: a Ray actor is a process — 208 MiB, and a new
conversation's first answer after 2.2 s on a 2-core node — where a conversation in a host costs
about 57 KiB and is answered in about 20 ms (docs/scaling.md, "Unit costs"). A host is created
by the supervisor on the first message one of its conversations is sent (get-or-create by name,
so two replicas racing make one; :func:`host_options`), placed ``SPREAD`` over the nodes, and
restarted by Ray when its process or node dies. The runs it was writing stop heartbeating and
the supervisor interrupts them (``ChatService.reap``), keeping the partial replies; the
restarted host takes the next message. When the cache is ``memory://`` the runs' event logs live
in their host too, and readers on other processes read them through :meth:`ChatHostActor.read`
(``actors.handles.RayRunLog``); with Redis every replica reads Redis.

A host loads what a first turn needs — the token counter's BPE ranks (1.2 s) and the OpenAI SDK
(0.8 s) — in a thread as it starts, and a first turn that comes sooner waits for it there:
loaded by the turn itself, they held the event loop, and with it the heartbeats of every run
on the host, for a second or two. A turn whose assistant answers through another vendor's SDK
(Anthropic's 2.3 s, Google's 0.5 s) loads that one in a thread too, before the turn starts:
only the one it needs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import logging
import sys
from typing import Any

from actors._context import process_system, shipped_settings
from linqra.assistants.runlog import RunEvent
from linqra.assistants.worker import InProcessChatHost, Send
from linqra.config import LLMSettings
from linqra.errors import Unavailable
from linqra.metrics import Metrics
from linqra.metrics.catalogue import CHAT_CONVERSATIONS

__all__ = ["ChatHostActor", "host_options", "load_provider_sdk", "preload"]

log = logging.getLogger(__name__)

MAX_CALLS = 10_000
"""Calls a host takes at once. Each follower of a stream with ``memory://`` holds a read for up
to ``chat.keepalive_seconds``: ten times the 1,000 an actor of one conversation took, so that
followed streams do not keep a send, a cancel or the supervisor's ``holds`` waiting
(kept waiting, that would let it interrupt a live run). Not a concurrency group of their own:
Ray runs an async actor's groups on separate event loops, and the run log's waits are the
loop's (a read on another loop broke the streams)."""


def host_options() -> dict[str, Any]:
    """The Ray options of a chat host besides ``actors.handles.named_actor``'s defaults."""
    return {"max_concurrency": MAX_CALLS}


class ChatHostActor:
    """One of the chat's hosts (see the module); every method names the team, and a worker is
    kept per (team, conversation), so one team's ids never reach another's worker."""

    def __init__(self, settings_json: str, index: int) -> None:
        self.settings = shipped_settings(settings_json)
        self.index = index
        self._host: InProcessChatHost | None = None
        self._metrics: Metrics | None = None
        self._lock = asyncio.Lock()
        loop = asyncio.get_running_loop()
        self._preload = loop.run_in_executor(None, preload)
        self._sweep = loop.create_task(self._drop_idle())

    async def _chat(self) -> InProcessChatHost:
        async with self._lock:
            if self._host is None:
                system = await process_system(self.settings)
                deps = system.chat.deps
                local = getattr(deps.runlog, "local", deps.runlog)  # this process's own log
                self._host = InProcessChatHost(dataclasses.replace(deps, runlog=local))
                self._metrics = system.metrics
            return self._host

    async def send(self, team_id: str, conversation_id: str, send: Send) -> dict[str, Any]:
        """Start ``send``'s turn in the conversation's worker (made if it has none); its run."""
        if not self._preload.done():  # else the turn would load them again, on the loop
            await asyncio.shield(self._preload)  # a cancelled send leaves it to finish
        model = send.assistant.defaultModel
        if model is not None:
            await load_provider_sdk(self.settings.llm, model.provider)
        return await (await self._chat()).send(team_id, conversation_id, send)

    async def cancel(self, team_id: str, conversation_id: str, run_id: str) -> bool:
        """Cancel ``run_id`` if the conversation's worker here runs or queues it; whether it did."""
        host = self._host
        return host is not None and await host.cancel(team_id, conversation_id, run_id)

    async def holds(self, team_id: str, conversation_id: str, run_id: str) -> bool:
        """Whether this host runs or queues ``run_id`` (the supervisor asks before it
        interrupts a run with a stale heartbeat: a starved process is not a dead one)."""
        host = self._host
        return host is not None and await host.holds(team_id, conversation_id, run_id)

    async def conversations(self) -> int:
        """How many conversations have a worker here now (idle ones not yet dropped too)."""
        host = self._host
        return 0 if host is None else host.active

    # -- the runs' event logs, when the cache is memory:// (actors.handles.RayRunLog) --------
    # Every run's log starts here, with the ``run.created`` its worker appends (to the log
    # itself, not through these methods) before anyone learns the run's id: a run this host's
    # log does not hold had its log in a process that is gone (the host before a restart) or
    # expired. Its read finds nothing at once and it counts as finished, so a reader goes to
    # the store for how the run ended; appending to it (the supervisor's ``run.interrupted``)
    # is refused rather than starting a log at seq 1 again.
    async def _log(self, team_id: str, run_id: str) -> Any | None:
        log = (await self._chat()).deps.runlog
        knows = getattr(log, "knows", None)
        return log if knows is None or knows(team_id, run_id) else None

    async def read(
        self, team_id: str, run_id: str, after: int, wait: float, limit: int
    ) -> list[RunEvent]:
        """The run's events after ``after``, waiting up to ``wait`` seconds for one."""
        log = await self._log(team_id, run_id)
        if log is None:
            return []
        events: list[RunEvent] = await log.read(team_id, run_id, after, wait=wait, limit=limit)
        return events

    async def is_finished(self, team_id: str, run_id: str) -> bool:
        log = await self._log(team_id, run_id)
        return log is None or bool(await log.is_finished(team_id, run_id))

    async def append(self, team_id: str, run_id: str, event: str, data: dict[str, Any]) -> RunEvent:
        """Append to a run's log from another process (the supervisor's ``run.interrupted``)."""
        log = await self._log(team_id, run_id)
        if log is None:
            raise Unavailable("the run's event log is gone", retry_after=1)
        appended: RunEvent = await log.append(team_id, run_id, event, data)
        return appended

    async def finish(self, team_id: str, run_id: str) -> None:
        log = await self._log(team_id, run_id)
        if log is not None:
            await log.finish(team_id, run_id)

    async def preloaded(self) -> bool:
        """Answers once :func:`preload` is done (tests; a first turn waits for it off the loop)."""
        await self._preload
        return True

    async def _drop_idle(self) -> None:
        """Drop idle workers as time passes, not only when the next message comes, and say how
        many are left (``linqra_chat_conversations``, every ``metrics.sample_seconds``)."""
        every = min(
            max(0.5, self.settings.chat.idle_seconds / 4), self.settings.metrics.sample_seconds
        )
        while True:
            await asyncio.sleep(every)
            if self._host is not None:
                self._host.passivate()
                if self._metrics is not None:
                    self._metrics.set(CHAT_CONVERSATIONS, self._host.active)


def preload() -> None:
    """Load the token counter's ranks and the OpenAI SDK (see the module); a failure is only
    logged, the first turn then loads them itself."""
    try:
        from linqra.llm.tokens import count_tokens

        count_tokens("warm")
        import openai  # noqa: F401
    except Exception:
        log.warning("preloading the chat's modules failed", exc_info=True)


async def load_provider_sdk(llm: LLMSettings, provider: str) -> None:
    """Import the SDK of ``provider`` in a thread unless it is loaded (see the module); a failure
    is only logged, the turn then reports it as the provider's error."""
    from linqra.llm.registry import sdk_module

    module = sdk_module(llm, provider)
    if module is None or module in sys.modules:
        return
    try:
        await asyncio.to_thread(importlib.import_module, module)
    except Exception:
        log.warning("loading %s for the chat failed", module, exc_info=True)
