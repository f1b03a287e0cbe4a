"""One chat turn, from the user's stored message to the stored reply, told as events.

A :class:`Turn` runs where its conversation's runs are serialized (a
:class:`~linqra.assistants.worker.ConversationWorker`) and writes everything it does to the run's
event log (:mod:`linqra.assistants.runlog`), which is what every client stream reads:

1. ``tasks.started`` — the assistant's selected tasks start as ordinary task executions, all at
   once, with the user's message as input; at the same time its knowledge collections are
   searched (``retrieval``). Each task has its own timeout; a task that fails or times out is a
   ``task.completed`` with that status and never fails the chat (a timed-out one is cancelled).
2. The prompt (:func:`~linqra.assistants.prompt.build_prompt`): system prompt, task answers,
   numbered snippets, the history window, the message.
3. The reply, streamed from the provider token by token: ``message.delta`` as the output
   guardrails release text, ``message.replace`` when one rewrites released text; the partial
   text is stored every ``chat.save_every_seconds``.
4. ``message.completed`` (content, citations, usage by token kind, exact cost, model), then
   ``run.completed``.

Cancelled (its task is cancelled: a cancel request, an ``interrupt``, a disconnect with
``onDisconnect: cancel``) — the provider's stream is closed by the cancellation itself (the
SDK's HTTP response is closed when the generator unwinds), running tasks are cancelled, the
partial reply is stored ``cancelled`` with the usage record the LLM service wrote for the tokens
already generated, and ``run.cancelled`` carries its text and cost. An error is ``run.failed``
with the error's public code and message (never a provider's raw text, which may echo a key).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from linqra.assistants.guardrails import Delta as Released
from linqra.assistants.guardrails import OutputFilter
from linqra.assistants.prompt import build_prompt, citations, prompt_budget
from linqra.errors import LinqraError
from linqra.llm.budgets import DEFAULT_OUTPUT_ESTIMATE
from linqra.llm.service import Completion
from linqra.llm.types import Delta, Message, ModelSettings, parse_settings
from linqra.resilience import to_the_end
from linqra.status import TASK_TERMINAL

if TYPE_CHECKING:
    from linqra.agents.service import AgentService
    from linqra.assistants.conversations import ConversationRepository
    from linqra.assistants.models import Assistant
    from linqra.assistants.runlog import RunLog
    from linqra.config import ChatSettings
    from linqra.knowledge.service import KnowledgeService
    from linqra.llm.service import LLMService
    from linqra.runs import RunService

__all__ = ["TERMINAL_EVENTS", "ChatDeps", "Turn", "assistant_budget"]

log = logging.getLogger(__name__)

TERMINAL_EVENTS = frozenset({"run.completed", "run.cancelled", "run.failed", "run.interrupted"})
_USAGE_KINDS = (
    "input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
)


@dataclass(frozen=True, slots=True)
class ChatDeps:
    """What a turn needs from the process's system."""

    conversations: ConversationRepository
    runlog: RunLog
    llm: LLMService
    knowledge: KnowledgeService
    runs: RunService
    agents: AgentService
    settings: ChatSettings


class Turn:
    """One run of a conversation: :meth:`run` until a terminal, recorded state."""

    def __init__(
        self,
        deps: ChatDeps,
        team_id: str,
        assistant: Assistant,
        run: Mapping[str, Any],
        user_message: Mapping[str, Any],
    ) -> None:
        self.deps = deps
        self.team_id = team_id
        self.assistant = assistant
        self.run_id: str = run["id"]
        self.conversation_id: str = run["conversation_id"]
        self.executed_by = run.get("executed_by")
        self.user = user_message
        self.reply_id: str | None = None
        self.released = ""  # what clients have been sent of the reply
        self.filter = OutputFilter(assistant.guardrails.output)
        self.task_results: list[dict[str, Any]] = []
        self.snippets: list[Mapping[str, Any]] = []
        self._tx_ids: list[str] = []
        self._saved_at = 0.0
        self.finishing = False

    # -- events ---------------------------------------------------------------------------------
    async def emit(self, event: str, data: Mapping[str, Any]) -> None:
        await self.deps.runlog.append(self.team_id, self.run_id, event, dict(data))

    @property
    def caller(self) -> dict[str, Any]:
        return {
            "type": "chat",
            "run_id": self.run_id,
            "conversation_id": self.conversation_id,
            "assistant_id": self.assistant.id,
            "executed_by": self.executed_by,
        }

    # -- the run --------------------------------------------------------------------------------
    async def run(self) -> str:
        """Run the turn; its terminal status (``completed``, ``cancelled`` or ``failed``).
        Cancelling the task that awaits this cancels the turn (re-raised once recorded)."""
        repo = self.deps.conversations
        beat: asyncio.Task[None] | None = None
        try:
            if not await repo.set_run_status(
                self.team_id, self.run_id, "running", expect=("queued",)
            ):
                return "cancelled"  # cancelled (or interrupted) while it waited
            beat = asyncio.get_running_loop().create_task(self._heartbeat(asyncio.current_task()))
            await self._answer()
        except asyncio.CancelledError:
            await to_the_end(self._stop("cancelled"))  # recorded, even if cancelled again
            raise
        except Exception as exc:
            await to_the_end(self._stop("failed", exc))
            return "failed"
        finally:
            if beat is not None:
                beat.cancel()
        return "completed"

    async def _answer(self) -> None:
        a, repo, text = self.assistant, self.deps.conversations, self.user["content"]
        cm = a.contextManagement
        self.task_results, self.snippets, history = await asyncio.gather(
            self._tasks(),
            self._retrieve(),
            repo.history(
                self.team_id,
                self.conversation_id,
                before_seq=self.user["seq"],
                limit=cm.maxRecentMessages,
            ),
        )
        model_ref = a.defaultModel.ref() if a.defaultModel else None
        settings = _model_settings(a)
        prompt = build_prompt(
            system_prompt=a.systemPrompt,
            history=[_message(m) for m in history],
            user_message=text,
            task_results=self.task_results,
            snippets=self.snippets,
            max_recent_messages=cm.maxRecentMessages,
            max_total_tokens=assistant_budget(self.deps.llm, a),
        )
        self.snippets = list(prompt.snippets)
        reply, _ = await repo.append(
            self.team_id,
            self.conversation_id,
            role="assistant",
            content="",
            status="streaming",
            run_id=self.run_id,
        )
        self.reply_id = reply.id
        done: Completion | None = None
        stream = self.deps.llm.stream(
            self.team_id, model_ref, prompt.messages, settings, caller=self.caller
        )
        # closed here, not by the loop's finalizer later, if the turn is cancelled between two
        # parts (releasing one): the stream records what the cut reply cost as it closes, and
        # _stop reads that record next (a cut in mid-release lost the partial reply's cost)
        async with contextlib.aclosing(stream):
            async for item in stream:
                if isinstance(item, Delta):
                    await self._release(self.filter.feed(item.text))
                elif isinstance(item, Completion):
                    done = item
        await self._release(self.filter.finish())
        assert done is not None
        usage = {k: getattr(done.response.usage, k) for k in _USAGE_KINDS}
        cost = str(done.cost.amount) if done.cost else None
        currency = done.cost.currency if done.cost else None
        content, cited = self.filter.final_text, citations(self.snippets)
        model = f"{done.response.provider}:{done.response.model}"
        await repo.finish_message(
            self.team_id,
            self.reply_id,
            status="completed",
            content=content,
            usage=usage,
            cost=cost,
            currency=currency,
            model=model,
            citations=cited,
            task_results=self.task_results,
        )
        final = {
            "message_id": self.reply_id,
            "content": content,
            "citations": cited,
            "task_results": self.task_results,
            "usage": usage,
            "cost": cost,
            "currency": currency,
            "model": model,
        }
        self.finishing = True  # from here a heartbeat no longer stops the turn
        await self.emit("message.completed", final)
        if await repo.set_run_status(self.team_id, self.run_id, "completed", expect=("running",)):
            await self.emit(
                "run.completed", {"run_id": self.run_id, "status": "completed", **final}
            )
        await self.deps.runlog.finish(self.team_id, self.run_id)

    async def _release(self, emits: list[Any]) -> None:
        for emit in emits:
            if isinstance(emit, Released):
                self.released += emit.text
                await self.emit("message.delta", {"message_id": self.reply_id, "text": emit.text})
            else:  # a rule rewrote what was already sent
                self.released = emit.text
                await self.emit("message.replace", {"message_id": self.reply_id, "text": emit.text})
        now = time.monotonic()
        if emits and now - self._saved_at >= self.deps.settings.save_every_seconds:
            self._saved_at = now
            await self.deps.conversations.update_message(
                self.team_id, self.reply_id or "", {"content": self.released}
            )

    async def _heartbeat(self, turn: asyncio.Task[Any] | None) -> None:
        """Say the run is alive; stop the turn when its record says to: a cancel asked on a
        replica that could not reach this worker (``cancel_requested``), or the run already
        ended elsewhere (interrupted by the supervisor after a long stall)."""
        every, repo = self.deps.settings.heartbeat_seconds, self.deps.conversations
        while True:
            await asyncio.sleep(every)
            with contextlib.suppress(LinqraError):
                alive = await repo.heartbeat_run(self.team_id, self.run_id)
                if not alive or (await repo.get_run(self.team_id, self.run_id)).cancel_requested:
                    if turn is not None and not self.finishing:
                        turn.cancel()
                    return

    # -- tasks and retrieval --------------------------------------------------------------------
    async def _tasks(self) -> list[dict[str, Any]]:
        selected = self.assistant.selectedTasks
        if not selected:
            return []
        started = await asyncio.gather(*(self._start_task(choice) for choice in selected))
        await self.emit(
            "tasks.started",
            {
                "tasks": [
                    {"task_id": c.taskId, "task_execution_id": tx["id"] if tx else None}
                    for c, tx, _ in started
                ]
            },
        )
        return list(
            await asyncio.gather(*(self._task_result(c, tx, early) for c, tx, early in started))
        )

    async def _start_task(
        self, choice: Any
    ) -> tuple[Any, dict[str, Any] | None, dict[str, Any] | None]:
        """``(choice, its task execution, None)``, or ``(choice, None, a failed result)``."""
        try:
            tx = await self.deps.runs.run_task(
                self.team_id,
                choice.taskId,
                input={
                    "message": self.user["content"],
                    "conversation_id": self.conversation_id,
                    "assistant_id": self.assistant.id,
                },
                trigger={"type": "CHAT", "run_id": self.run_id},
            )
        except LinqraError as exc:  # deleted or disabled since the assistant was saved
            return choice, None, _failed(choice.taskId, exc)
        self._tx_ids.append(tx["id"])
        return choice, tx, None

    async def _task_result(
        self, choice: Any, tx: dict[str, Any] | None, early: dict[str, Any] | None
    ) -> dict[str, Any]:
        if tx is None:
            assert early is not None
            result = early
        else:
            doc = await self.deps.runs.wait_task_execution(
                self.team_id, tx["id"], choice.timeoutSeconds
            )
            if doc["status"] not in TASK_TERMINAL:
                with contextlib.suppress(LinqraError):
                    await self.deps.agents.request_cancel(self.team_id, tx["id"])
                doc = {**doc, "status": "TIMEOUT"}
            result = _normalise(choice.taskId, doc)
        await self.emit("task.completed", result)
        return result

    async def _retrieve(self) -> list[Mapping[str, Any]]:
        knowledge = self.assistant.knowledge
        if knowledge is None or not knowledge.collections:
            return []
        found = await asyncio.gather(
            *(
                self.deps.knowledge.search(
                    self.team_id,
                    name,
                    query=self.user["content"],
                    top_k=knowledge.topK,
                    caller=self.caller,
                )
                for name in knowledge.collections
            ),
            return_exceptions=True,
        )
        snippets: list[Mapping[str, Any]] = []
        errors = []
        for name, hits in zip(knowledge.collections, found, strict=True):
            if isinstance(hits, BaseException):
                if not isinstance(hits, LinqraError):
                    raise hits
                errors.append({"collection": name, **_public_error(hits)})
                continue
            snippets += hits
        snippets.sort(key=lambda s: -float(s.get("score") or 0))
        snippets = snippets[: knowledge.topK]
        await self.emit(
            "retrieval",
            {
                "collections": knowledge.collections,
                "citations": citations(snippets),
                "errors": errors,
            },
        )
        return snippets

    # -- stopping -------------------------------------------------------------------------------
    async def _stop(self, status: str, exc: BaseException | None = None) -> None:
        """Record a turn that did not finish: tasks cancelled, the partial reply and its cost."""
        repo = self.deps.conversations
        for tx_id in self._tx_ids:
            with contextlib.suppress(LinqraError):
                await self.deps.agents.request_cancel(self.team_id, tx_id)
        usage, cost, currency = await self._spent()
        error = None
        if exc is not None:
            error = _public_error(exc)
            if not isinstance(exc, LinqraError) or exc.status >= 500:
                log.error("chat run %s failed", self.run_id, exc_info=exc)
        content = self.released
        if self.reply_id is not None:
            await repo.finish_message(
                self.team_id,
                self.reply_id,
                status=status,
                content=content,
                usage=usage,
                cost=cost,
                currency=currency,
                citations=citations(self.snippets),
                task_results=self.task_results,
                error=error,
            )
        if not await repo.set_run_status(
            self.team_id, self.run_id, status, expect=("running", "queued")
        ):  # it ended elsewhere (interrupted by the supervisor, which said so in the log)
            await self.deps.runlog.finish(self.team_id, self.run_id)
            return
        await self.emit(
            f"run.{status}",
            {
                "run_id": self.run_id,
                "status": status,
                "message_id": self.reply_id,
                "content": content,
                "usage": usage,
                "cost": cost,
                "currency": currency,
                "error": error,
            },
        )
        await self.deps.runlog.finish(self.team_id, self.run_id)

    async def _spent(self) -> tuple[dict[str, int], str | None, str | None]:
        """What the run's LLM calls cost (the LLM service records a cancelled call too)."""
        records = await self.deps.llm.usage.of_run(self.team_id, self.run_id)
        usage = {k: sum(int(r.get(k) or 0) for r in records) for k in _USAGE_KINDS}
        priced = [r for r in records if r.get("cost") is not None]
        if not priced:
            return usage, None, None
        return usage, str(sum(Decimal(r["cost"]) for r in priced)), priced[0].get("currency")


def assistant_budget(llm: LLMService, assistant: Assistant) -> int:
    """The tokens ``assistant``'s prompt may use (:func:`~linqra.assistants.prompt.prompt_budget`
    of its ``maxTotalTokens``, its model's context window and its reply's ``max_tokens``)."""
    model = assistant.defaultModel
    price = llm.catalogue.price(model.provider, model.modelName) if model else None
    return prompt_budget(
        assistant.contextManagement.maxTotalTokens,
        price.context_window if price else None,
        _model_settings(assistant).max_tokens or DEFAULT_OUTPUT_ESTIMATE,
    )


def _model_settings(assistant: Assistant) -> ModelSettings:
    model = assistant.defaultModel
    return parse_settings(model.settings if model else {}, "defaultModel.settings")


def _message(stored: Any) -> Message:
    data = stored if isinstance(stored, Mapping) else stored.model_dump()
    return Message(data["role"], data.get("content") or "")


def _normalise(task_id: str, tx: Mapping[str, Any]) -> dict[str, Any]:
    """A task execution as ``{status, answer, documents[], error}`` with the citation shape."""
    status = str(tx.get("status") or "").lower()
    result = tx.get("result")
    answer: Any = result
    documents: list[Any] = []
    if isinstance(result, Mapping):
        answer = next(
            (result[k] for k in ("answer", "text", "content", "result") if k in result), result
        )
        documents = list(result.get("documents") or result.get("citations") or [])
    error = None
    if status == "timeout":
        error = {"code": "timeout", "message": "the task did not finish in time"}
    elif status in ("failed", "cancelled"):  # the code only: a step's message may name
        raw = tx.get("error")  # internal services, and chat events reach widget visitors; the
        code = raw.get("code") if isinstance(raw, Mapping) else None  # team reads the whole
        error = {  # error in the task execution's record
            "code": code or status,
            "message": f"the task {status}; see task execution {tx.get('id')}",
        }
    return {
        "task_id": task_id,
        "task_execution_id": tx.get("id"),
        "name": tx.get("task_name"),
        "status": status,
        "answer": answer if isinstance(answer, str) or answer is None else _text(answer),
        "documents": documents,
        "error": error,
    }


def _public_error(exc: BaseException) -> dict[str, str]:
    """What a chat's events and records say of an error: our own refusals (4xx: a budget, a
    limit, a bad setting) as they are; a provider's or a server's failure by its code only —
    its message may quote a vendor's answer or name an internal address, and chat events reach
    widget visitors (the log has the whole error)."""
    if isinstance(exc, LinqraError) and exc.status < 500 and not exc.code.startswith("provider"):
        return {"code": exc.code, "message": exc.message}
    code = exc.code if isinstance(exc, LinqraError) else "internal_error"
    return {"code": code, "message": f"the reply failed ({code}); the gateway log has the cause"}


def _failed(task_id: str, exc: LinqraError) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "task_execution_id": None,
        "name": None,
        "status": "failed",
        "answer": None,
        "documents": [],
        "error": {"code": exc.code, "message": exc.message},
    }


def _text(value: Any) -> str:
    import json

    return json.dumps(value, default=str, ensure_ascii=False)[:4000]
