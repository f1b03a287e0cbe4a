"""One actor per active conversation: the place its turns are serialized on the cluster.

``linqra-conv-<conversation id>`` is created by the supervisor on the first message
(``actors.handles.RayChatHost``; get-or-create by name, so two replicas racing make one), hosts the conversation's
:class:`~linqra.assistants.worker.ConversationWorker` — its queue, its active run, the
double-texting decisions — and exits after ``chat.idle_seconds`` without a turn (passivation):
everything it decided is in the store. A cancel sent to any gateway or orchestrator replica
reaches it by name. When the cache is ``memory://`` the runs' event logs live here too and
readers on other processes read them through :meth:`ConversationActor.read`
(``actors.handles.RayRunLog``); with Redis every replica reads Redis.

If the actor dies mid-answer, its runs stop heartbeating and the supervisor interrupts them
(``ChatService.reap``), keeping the partial replies; the next message creates a new actor.

A new actor loads what a first turn needs — the token counter's BPE ranks (1.2 s) and the OpenAI
SDK (0.8 s) — in a thread as it starts, and a first turn that comes sooner waits for it there:
loaded by the turn itself, they held the event loop, and with it the run's heartbeat, for a
second or two (a busy node's live run was once interrupted as stale before its first token). A
turn whose assistant answers through another vendor's SDK (Anthropic's 2.3 s, Google's 0.5 s)
loads that one in a thread too, before the turn starts: only the one it needs (loading every
reachable vendor's at start cost each new actor 2.8 s more CPU, and slowed first turns where
many conversations started at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import logging
import sys
from typing import Any

import ray

from actors._context import process_system, shipped_settings
from actors.handles import Passivating
from linqra.assistants.runlog import RunEvent
from linqra.assistants.worker import ConversationWorker, Send
from linqra.config import LLMSettings

__all__ = ["ConversationActor"]

log = logging.getLogger(__name__)


class ConversationActor:
    def __init__(self, settings_json: str, team_id: str, conversation_id: str) -> None:
        self.settings = shipped_settings(settings_json)
        self.team_id, self.conversation_id = team_id, conversation_id
        self._worker: ConversationWorker | None = None
        self._lock = asyncio.Lock()
        loop = asyncio.get_running_loop()
        self._started = loop.time()
        self._sending = 0  # sends under way: a first one can wait seconds for the preload
        self._exiting = False
        self._passivation = loop.create_task(self._passivate())
        self._preload = loop.run_in_executor(None, preload)

    async def _get(self) -> ConversationWorker:
        async with self._lock:
            if self._worker is None:
                system = await process_system(self.settings)
                deps = system.chat.deps
                local = getattr(deps.runlog, "local", deps.runlog)  # this process's own log
                self._worker = ConversationWorker(
                    dataclasses.replace(deps, runlog=local), self.team_id, self.conversation_id
                )
            return self._worker

    async def send(self, send: Send) -> dict[str, Any]:
        if self._exiting:
            raise Passivating(f"conversation {self.conversation_id} is passivating")
        self._sending += 1
        try:
            if not self._preload.done():  # else the turn would load them again, on the loop
                await asyncio.shield(self._preload)  # a cancelled send leaves it to finish
            model = send.assistant.defaultModel
            if model is not None:
                await load_provider_sdk(self.settings.llm, model.provider)
            return await (await self._get()).send(send)
        finally:
            self._sending -= 1

    async def cancel(self, run_id: str) -> bool:
        return await (await self._get()).cancel(run_id)

    async def holds(self, run_id: str) -> bool:
        """Whether this actor runs or queues ``run_id`` (the supervisor asks before it
        interrupts a run with a stale heartbeat: a starved process is not a dead one)."""
        return self._worker is not None and self._worker.holds(run_id)

    async def read(self, run_id: str, after: int, wait: float, limit: int) -> list[RunEvent]:
        worker = await self._get()
        return await worker.deps.runlog.read(self.team_id, run_id, after, wait=wait, limit=limit)

    async def is_finished(self, run_id: str) -> bool:
        worker = await self._get()
        return await worker.deps.runlog.is_finished(self.team_id, run_id)

    async def append(self, run_id: str, event: str, data: dict[str, Any]) -> RunEvent:
        worker = await self._get()
        return await worker.deps.runlog.append(self.team_id, run_id, event, data)

    async def finish(self, run_id: str) -> None:
        worker = await self._get()
        await worker.deps.runlog.finish(self.team_id, run_id)

    async def preloaded(self) -> bool:
        """Answers once :func:`preload` is done (tests; a first turn waits for it off the loop)."""
        await self._preload
        return True

    async def _passivate(self) -> None:
        idle = self.settings.chat.idle_seconds
        while True:
            await asyncio.sleep(max(0.5, idle / 4))
            if self.idle_for(asyncio.get_running_loop().time()) >= idle:
                # readers of the replay window are done by now (runs ended idle_seconds ago);
                # from here a send is refused, not started and cut short by the exit
                self._exiting = True
                await self._exit()  # Ray ends the process once the calls under way return
                return

    def idle_for(self, now: float) -> float:
        """Seconds without a turn, a queued run or a send under way (0 while there is one): a
        send waiting for the preload (seconds, on a busy node) must not see its actor passivate,
        or its run would be written and left with no worker."""
        worker = self._worker
        if self._sending or (worker is not None and not worker.idle):
            return 0.0
        return now - (self._started if worker is None else worker.last_active)

    async def _exit(self) -> None:
        """End this actor's process, as an idle agent's does (``actors/agent.py``)."""
        from ray.exceptions import AsyncioActorExit

        log.info("conversation %s idle: passivating", self.conversation_id)
        with contextlib.suppress(Exception):
            await (await process_system(self.settings)).close()
        with contextlib.suppress(AsyncioActorExit):
            ray.actor.exit_actor()  # type: ignore[no-untyped-call]


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
