"""The chat's host actors, in process (the classes without Ray around them): a run log the host
does not hold counts as gone, at once; idle conversations are dropped from a host by its timer
and by the next message, never one whose send is under way; and a send through ``RayChatHost``
has its host made when there is none, and is a 503 (not sent twice) when its host dies under
it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from ray.exceptions import RayActorError

import actors.chat_host as chat_host
import actors.handles as handles
from actors.chat_host import ChatHostActor
from linqra.assistants.runlog import MemoryRunLog
from linqra.assistants.worker import InProcessChatHost, Send
from linqra.config import ChatSettings, Settings
from linqra.errors import Unavailable
from linqra.metrics.catalogue import CHAT_CONVERSATIONS
from linqra.metrics.memory import MemoryMetrics


@pytest.fixture
def log() -> MemoryRunLog:
    return MemoryRunLog()


@pytest.fixture
async def host(monkeypatch: pytest.MonkeyPatch, log: MemoryRunLog) -> AsyncIterator[ChatHostActor]:
    monkeypatch.setattr(chat_host, "preload", lambda: None)
    actor = ChatHostActor(Settings().model_dump_json(), 0)
    actor._host = InProcessChatHost(SimpleNamespace(runlog=log, settings=ChatSettings()))  # type: ignore[arg-type]
    yield actor
    actor._sweep.cancel()


async def test_a_run_log_the_host_holds_works_as_the_log_does(
    host: ChatHostActor, log: MemoryRunLog
) -> None:
    await log.append("team-a", "run_1", "run.created", {"run_id": "run_1"})  # as its worker does
    appended = await host.append("team-a", "run_1", "message.delta", {"text": "hi"})
    assert appended.seq == 2
    read = await host.read("team-a", "run_1", 0, 0.0, 100)
    assert [e.event for e in read] == ["run.created", "message.delta"]
    assert await host.is_finished("team-a", "run_1") is False
    await host.finish("team-a", "run_1")
    assert await host.is_finished("team-a", "run_1") is True


async def test_a_run_log_the_host_does_not_hold_is_gone_at_once(
    host: ChatHostActor, log: MemoryRunLog
) -> None:
    """Its log was in the host's process before a restart (or expired): a reader is not kept
    waiting for events that cannot come, it counts as finished (the reader goes to the store),
    and an append is refused rather than starting the log again at seq 1."""
    await log.append("team-a", "run_1", "run.created", {"run_id": "run_1"})
    read = await asyncio.wait_for(host.read("team-a", "run_lost", 5, 30.0, 100), timeout=10)
    assert read == []  # not after the 30 s the reader offered to wait
    assert await host.is_finished("team-a", "run_lost") is True
    with pytest.raises(Unavailable):
        await host.append("team-a", "run_lost", "run.interrupted", {"run_id": "run_lost"})
    await host.finish("team-a", "run_lost")
    assert not log.knows("team-a", "run_lost")
    assert not log.knows("team-b", "run_1")  # another team's id is not this run
    assert await host.read("team-b", "run_1", 0, 0.0, 100) == []


async def test_idle_conversations_are_dropped_and_the_others_kept(host: ChatHostActor) -> None:
    chat = host._host
    assert chat is not None
    idle = chat.deps.settings.idle_seconds
    old = chat.worker("team-a", "conv_old"), chat.worker("team-b", "conv_old")  # same id
    new = chat.worker("team-a", "conv_new")
    assert await host.conversations() == 3
    for worker in old:
        worker.last_active = time.monotonic() - idle - 1
    new.last_active = time.monotonic() - 1
    chat.passivate()  # what the host's timer does every chat.idle_seconds / 4
    assert await host.conversations() == 1
    assert chat.worker("team-a", "conv_new") is new
    assert chat.worker("team-a", "conv_old") is not old[0]  # the next message: a new worker


async def test_the_hosts_timer_drops_idle_conversations(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without any message coming: every ``chat.idle_seconds`` / 4 (at least 0.5 s)."""
    monkeypatch.setattr(chat_host, "preload", lambda: None)
    chat = ChatSettings(idle_seconds=1)
    actor = ChatHostActor(Settings(chat=chat).model_dump_json(), 0)
    host = actor._host = InProcessChatHost(SimpleNamespace(runlog=MemoryRunLog(), settings=chat))  # type: ignore[arg-type]
    try:
        host.worker("team-a", "conv_1").last_active = time.monotonic() - 2
        deadline = time.monotonic() + 10
        while await actor.conversations():
            assert time.monotonic() < deadline, "the idle conversation was not dropped"
            await asyncio.sleep(0.05)
    finally:
        actor._sweep.cancel()


async def test_the_hosts_timer_says_how_many_conversations_it_keeps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``linqra_chat_conversations``, set as the idle ones are dropped (the operator's view of
    what the hosts hold; summed over the hosts by Prometheus)."""
    monkeypatch.setattr(chat_host, "preload", lambda: None)
    chat = ChatSettings(idle_seconds=1)
    actor = ChatHostActor(Settings(chat=chat).model_dump_json(), 0)
    host = actor._host = InProcessChatHost(SimpleNamespace(runlog=MemoryRunLog(), settings=chat))  # type: ignore[arg-type]
    metrics = actor._metrics = MemoryMetrics()
    try:
        host.worker("team-a", "conv_1")
        host.worker("team-b", "conv_1")
        deadline = time.monotonic() + 10
        while metrics.value(CHAT_CONVERSATIONS) != 2:
            assert time.monotonic() < deadline, metrics.series(CHAT_CONVERSATIONS)
            await asyncio.sleep(0.05)
        for worker in host._workers.values():
            worker.last_active = time.monotonic() - 2
        while metrics.value(CHAT_CONVERSATIONS) != 0:
            assert time.monotonic() < deadline, "the gauge did not fall with the idle ones"
            await asyncio.sleep(0.05)
    finally:
        actor._sweep.cancel()


async def test_a_conversation_whose_send_is_under_way_is_not_dropped() -> None:
    """A send still writing its run (a store call that takes longer than ``chat.idle_seconds``
    on a busy node) keeps its worker: dropped, the run would be left to a worker no later
    message reaches, and the next one would make a second worker for the conversation."""
    writing, release = asyncio.Event(), asyncio.Event()

    async def create_run(*_: Any, **__: Any) -> Any:
        writing.set()
        await release.wait()
        raise AssertionError("not reached: the send is cancelled first")

    conversations = SimpleNamespace(create_run=create_run)
    deps = SimpleNamespace(conversations=conversations, settings=ChatSettings(idle_seconds=1))
    chat = InProcessChatHost(deps)  # type: ignore[arg-type]
    worker = chat.worker("team-a", "conv_1")
    send = Send(assistant=None, text="hi", policy="enqueue")  # type: ignore[arg-type]
    sending = asyncio.create_task(chat.send("team-a", "conv_1", send))
    await writing.wait()
    worker.last_active = time.monotonic() - 60  # as if the write had taken a minute
    chat.passivate()
    assert chat.worker("team-a", "conv_1") is worker  # kept
    sending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sending
    worker.last_active = time.monotonic() - 60
    chat.passivate()
    assert chat.active == 0  # idle now: dropped


class _Host:
    """A host's handle: ``send.remote`` answers from ``answers`` in turn (raising exceptions)."""

    def __init__(self, answers: list[Any]) -> None:
        self.answers = answers
        self.send = SimpleNamespace(remote=self._send)

    async def _send(self, team_id: str, conversation_id: str, send: Any) -> Any:
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer


async def test_a_send_has_the_host_made_when_there_is_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[tuple[Any, ...]] = []
    found = _Host([{"id": "run_1"}])

    def lookup(settings: Settings, name: str) -> Any:
        if not made:
            raise Unavailable(f"{name} is not running (yet)", retry_after=2)
        return found

    async def call(settings: Settings, name: str, method: str, *args: Any) -> None:
        made.append((name, method, *args))

    monkeypatch.setattr(handles, "lookup", lookup)
    monkeypatch.setattr(handles, "call", call)
    settings = Settings(cache_url="redis://127.0.0.1:1/0", chat=ChatSettings(hosts=4))
    chat = handles.RayChatHost(settings, None)  # type: ignore[arg-type]
    assert await chat.send("team-a", "conv_1", None) == {"id": "run_1"}  # type: ignore[arg-type]
    index = handles.chat_host_index(settings, "conv_1")
    assert made == [(handles.SUPERVISOR, "activate_chat_host", index)]


async def test_a_host_dying_under_a_send_is_a_503_and_the_send_is_not_repeated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The host may have written the run and the message before it died: sending again would
    write them twice. The caller is told to send again (its clientMessageId makes that safe),
    and the dead host's handle is forgotten so that the next send finds or makes another."""
    found = _Host([RayActorError(), {"id": "run_2"}])
    monkeypatch.setattr(handles, "lookup", lambda settings, name: found)
    forgotten: list[str] = []
    monkeypatch.setattr(handles, "forget", lambda settings, name: forgotten.append(name))
    settings = Settings(cache_url="redis://127.0.0.1:1/0")
    chat = handles.RayChatHost(settings, None)  # type: ignore[arg-type]
    with pytest.raises(Unavailable) as refused:
        await chat.send("team-a", "conv_1", None)  # type: ignore[arg-type]
    assert refused.value.retry_after == 1 and "clientMessageId" in str(refused.value)
    assert found.answers == [{"id": "run_2"}]  # sent once
    assert forgotten == [handles.chat_host_for(settings, "conv_1")]
    assert await chat.send("team-a", "conv_1", None) == {"id": "run_2"}  # type: ignore[arg-type]


def test_conversations_spread_over_the_hosts() -> None:
    settings = Settings(chat=ChatSettings(hosts=4))
    names = {handles.chat_host_for(settings, f"conv_{i}") for i in range(200)}
    assert names == {f"linqra-chat-{i}" for i in range(4)}
    assert handles.chat_host_for(settings, "conv_7") == handles.chat_host_for(settings, "conv_7")
