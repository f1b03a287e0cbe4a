"""The chat orchestrator on Ray Serve: its own deployment beside the gateway, autoscaled on its
own (``ChatOrchestrator`` in ``configs/serve.yaml``).

The gateway's replicas hold a handle to it and reach every chat operation through
:class:`RemoteChat` — the same interface as :class:`~linqra.assistants.chat.ChatService`, so the
chat routes, ``/linq``, the OpenAI and LangGraph surfaces do not know the difference. A run's
events come back through a streaming ``DeploymentHandle`` (``stream=True``): the orchestrator
replica follows the run's log and yields what was written since its last read (one token, or the tokens a slow reader missed), so a token reaches the
client as the provider sends it. The turns themselves run in the chat hosts
(``actors/chat_host.py``), so an orchestrator replica that scales down or dies loses no run:
a client reconnects with ``Last-Event-ID`` and another replica follows the same log.

A client error (a :class:`~linqra.errors.LinqraError` whose status is a 4xx: an unknown or another
team's assistant, conversation or run, a bad message) comes back from the orchestrator as a
value, :class:`Refused`, which :class:`RemoteChat` raises on the gateway: raised in the
orchestrator's replica, Serve would log it at ERROR ("Request failed.") with its traceback, where
the gateway logs a client error's not at all (``docs/api.md``). Server errors are raised as they
are, and logged at ERROR by Serve and by the gateway.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

from ray import serve

from deployments.serve_config import deployment_options
from linqra.assistants.chat import ChatRequest, ChatService
from linqra.assistants.runlog import RunEvent
from linqra.config import Settings
from linqra.errors import LinqraError

__all__ = ["ChatOrchestrator", "Refused", "RemoteChat"]

T = TypeVar("T")


@dataclass(frozen=True)
class Refused:
    """A client error of the orchestrator, handed to the gateway as a value to raise there
    (type, message, field and ``retry_after`` kept: the error survives pickling)."""

    error: LinqraError


def _refused(exc: LinqraError) -> Refused:
    """``exc`` as a :class:`Refused` if it is a client error (a 4xx); else it is raised again."""
    if not 400 <= exc.status < 500:
        raise exc
    return Refused(exc)


async def _answer(call: Awaitable[T]) -> T | Refused:
    try:
        return await call
    except LinqraError as exc:
        return _refused(exc)


def _raised(answer: T | Refused) -> T:
    """The orchestrator's answer, or the client error it refused with raised here."""
    if isinstance(answer, Refused):
        raise answer.error
    return answer


@serve.deployment(**deployment_options("ChatOrchestrator"))
class ChatOrchestrator:
    """One replica: the chat service of this process's system."""

    def __init__(self, settings_json: str) -> None:
        self.settings = Settings.model_validate_json(settings_json)

    async def _chat(self) -> ChatService:
        from actors._context import process_system

        return (await process_system(self.settings)).chat

    async def send(
        self,
        team_id: str,
        request: ChatRequest,
        assistant_id: str | None,
        executed_by: str | None,
    ) -> dict[str, Any] | Refused:
        chat = await self._chat()
        return await _answer(
            chat.send(team_id, request, assistant_id=assistant_id, executed_by=executed_by)
        )

    async def cancel(
        self, team_id: str, conversation_id: str, run_id: str
    ) -> dict[str, Any] | Refused:
        return await _answer((await self._chat()).cancel(team_id, conversation_id, run_id))

    async def event_batches(
        self, team_id: str, run_id: str, after: int
    ) -> AsyncIterator[list[RunEvent] | Refused | None]:
        """The run's event batches; a client error is the last item, as a :class:`Refused`."""
        try:
            async for batch in (await self._chat()).event_batches(team_id, run_id, after):
                yield batch
        except LinqraError as exc:
            yield _refused(exc)


class RemoteChat(ChatService):
    """The chat service of a gateway replica: reads from the store here, everything that
    drives a run through the orchestrator deployment's handle."""

    def __init__(self, local: ChatService, handle: Any) -> None:
        super().__init__(local.deps, local.assistants, local.host)
        self.handle = handle

    async def send(
        self,
        team_id: str,
        request: ChatRequest,
        *,
        assistant_id: str | None = None,
        executed_by: str | None = None,
    ) -> dict[str, Any]:
        answer: dict[str, Any] | Refused = await self.handle.send.remote(
            team_id, request, assistant_id, executed_by
        )
        return _raised(answer)

    async def cancel(self, team_id: str, conversation_id: str, run_id: str) -> dict[str, Any]:
        answer: dict[str, Any] | Refused = await self.handle.cancel.remote(
            team_id, conversation_id, run_id
        )
        return _raised(answer)

    async def event_batches(
        self, team_id: str, run_id: str, after: int = 0
    ) -> AsyncIterator[list[RunEvent] | None]:
        stream = self.handle.options(stream=True).event_batches.remote(team_id, run_id, after)
        async for batch in stream:
            yield _raised(batch)
