"""Chat in the multi-node scenario (:mod:`tests.support.multinode_driver`): conversations whose
turns run in the chat hosts (``linqra-chat-<k>``, one pinned to each node), each run's stream
read from the driver through ``system.chat.events`` (:class:`~actors.handles.RayRunLog`: with
``memory://`` the log lives in the conversation's host), and counting them in the store
afterwards.

The replies come from the OpenAI fake (:class:`~linqra.testing.fake_openai.FakeOpenAI`) that
the driver serves on a loopback port, which every node of the one-machine cluster reaches. A
``slow-N-W`` model answers ``Echo: <message>`` and W more words, one every N ms, so the whole
reply is known in advance (:func:`reply_text`) and a long one is still being written when the
scenario kills its node.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from actors.chat_host import ChatHostActor, host_options
from actors.handles import chat_host_index, chat_host_name, named_actor
from linqra.assistants.conversations import MESSAGES, RUN_ACTIVE, RUN_TERMINAL, RUNS
from linqra.config import Settings
from linqra.system import System
from linqra.testing.fake_openai import FakeOpenAI
from tests.support.multinode import pin_options
from tests.support.multinode_work import TEAM

__all__ = [
    "HOST_NODES",
    "LONG",
    "MEDIUM",
    "QUICK",
    "Chat",
    "all_ended",
    "assistant_body",
    "audit_chats",
    "chat_assistants",
    "chats_ended",
    "pin_chat_hosts",
    "pinned_conversation",
    "provider_stream",
    "reply_text",
    "send",
    "streaming",
    "streams_ended",
]

QUICK = "slow-20-60"  # 1.2 s of words: the spread phase's replies
MEDIUM = "slow-50-300"  # 15 s: still being written on a node that lives when the other dies
# (the kill comes 1-2 s after both replies stream; the rest of the batch ends 10-15 s after it)
LONG = "slow-50-1200"  # 60 s: mid-answer when its node is killed, however loaded the machine
HOST_NODES = ("node_a", "node_b", "head")
"""Where the scenario puts each chat host (``linqra-chat-0`` on ``node_a`` …): ``chat.hosts`` is
three, one a node."""


def reply_text(message: str, model: str) -> str:
    """The whole reply the fake writes to ``message`` with the ``slow-N-W`` model ``model``."""
    words = int(model.rsplit("-", 1)[1])
    return " ".join(["Echo:", *message.split(), *(f"w{i}" for i in range(words))])


async def chat_assistants(system: System) -> dict[str, str]:
    """One assistant per model (each model priced for the team): model → assistant id."""
    made: dict[str, str] = {}
    for model in (QUICK, MEDIUM, LONG):
        await system.llm.overrides.set(TEAM, f"openai:{model}", {"input": "2.5", "output": "10"})
        assistant = await system.assistants.create(TEAM, assistant_body(model, model))
        made[model] = assistant.id
    return made


def assistant_body(name: str, model: str) -> dict[str, Any]:
    return {"name": name, "defaultModel": {"provider": "openai", "modelName": model}}


@dataclass
class Chat:
    """One message sent, and its run's stream as the driver read it (filled in by its reader)."""

    label: str
    conversation_id: str
    run_id: str
    message: str
    model: str
    seqs: list[int] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    text: str = ""
    deltas: int = 0
    keepalives: int = 0
    ended_at: float | None = None  # time.monotonic() when the stream ended
    error: str | None = None
    reader: asyncio.Task[None] | None = None

    @property
    def expected(self) -> str:
        return reply_text(self.message, self.model)

    def summary(self) -> dict[str, Any]:
        return {
            "conversation_id": self.conversation_id,
            "run_id": self.run_id,
            "model": self.model,
            "events": len(self.events),
            "seqs_contiguous": self.seqs == list(range(1, len(self.seqs) + 1)),
            "first_event": self.events[0] if self.events else None,
            "last_event": self.events[-1] if self.events else None,
            "keepalives": self.keepalives,
            "streamed_chars": len(self.text),
            "streamed_is_prefix": self.expected.startswith(self.text),
            "stream_ended": self.ended_at is not None,
            "stream_error": self.error,
        }


async def send(
    system: System,
    assistant_id: str,
    model: str,
    label: str,
    message: str,
    conversation_id: str | None = None,
) -> Chat:
    """Send ``message`` (in a new conversation unless ``conversation_id``) and start reading
    its run's stream in a task of this loop."""
    body: dict[str, Any] = {"message": message}
    if conversation_id is not None:
        body["conversationId"] = conversation_id
    sent = await system.chat.send(TEAM, system.chat.parse(body), assistant_id=assistant_id)
    chat = Chat(label, sent["conversation_id"], sent["run"]["id"], message, model)
    chat.reader = asyncio.get_running_loop().create_task(_read(system, chat))
    return chat


async def _read(system: System, chat: Chat) -> None:
    try:
        async for event in system.chat.events(TEAM, chat.run_id):
            if event is None:
                chat.keepalives += 1
                continue
            chat.seqs.append(event.seq)
            chat.events.append(event.event)
            if event.event == "message.delta":
                chat.text += event.data.get("text", "")
                chat.deltas += 1
            elif event.event == "message.replace":
                chat.text = event.data.get("text", "")
    except Exception as exc:  # recorded: the test says what a reader met
        chat.error = f"{type(exc).__name__}: {exc}"
    finally:
        chat.ended_at = time.monotonic()


async def pin_chat_hosts(settings: Settings, node_ids: dict[str, str]) -> None:
    """Create the chat hosts before any message, each on its node of :data:`HOST_NODES` (with
    the options the supervisor's ``activate_chat_host`` gives them; a label selector that
    falls back to any other node once that one is gone, so Ray restarts them elsewhere), and
    wait until each has opened its ``System``: a message then finds its host by name instead
    of having the supervisor place one by ``SPREAD`` (best effort: all on one node happens)."""
    assert settings.chat.hosts == len(HOST_NODES), settings.chat.hosts
    hosts = [
        named_actor(
            ChatHostActor,
            settings,
            chat_host_name(index),
            settings.model_dump_json(),
            index,
            **host_options(),
            **pin_options(node_ids[label]),
        )
        for index, label in enumerate(HOST_NODES)
    ]
    await asyncio.wait_for(
        asyncio.gather(*(host.is_finished.remote(TEAM, "warm-up") for host in hosts)), timeout=120
    )


async def pinned_conversation(
    system: System, settings: Settings, assistant_id: str, node: str
) -> str:
    """A new conversation whose host is the one on ``node`` (a label of :data:`HOST_NODES`):
    conversations are made until one's id hashes to that host (one in three)."""
    wanted = HOST_NODES.index(node)
    for _ in range(200):
        conversation = await system.chat.deps.conversations.create(
            TEAM, assistant_id, title=f"hosted on {node}"
        )
        if chat_host_index(settings, conversation.id) == wanted:
            return conversation.id
    raise AssertionError(f"no conversation id of 200 hashed to the host on {node}")


async def streaming(chats: list[Chat]) -> bool:
    """Whether every one of ``chats`` is being read mid-reply: two deltas in (so the first is
    in the store: a reply is saved as it streams), not at its end."""
    return all(c.deltas >= 2 and c.ended_at is None for c in chats)


async def streams_ended(chats: list[Chat]) -> bool:
    """Whether the driver's reader of every one of ``chats`` has come to the stream's end."""
    return all(c.ended_at is not None for c in chats)


async def all_ended(system: System, chats: list[Chat]) -> bool:
    return all((await chats_ended(system, chats)).values())


async def chats_ended(system: System, chats: list[Chat]) -> dict[str, bool]:
    """``chat_<label>`` → whether that run has reached a terminal status in the store."""
    runs = await system.store.find(RUNS, TEAM, {"id": {"$in": [c.run_id for c in chats]}})
    status = {r["id"]: r["status"] for r in runs}
    return {f"chat_{c.label}": status.get(c.run_id) in RUN_TERMINAL for c in chats}


def provider_stream(openai: FakeOpenAI, chat: Chat, since: float) -> dict[str, Any] | None:
    """How many words the fake had sent of ``chat``'s reply, and when (seconds after ``since``,
    a ``time.monotonic()`` of this process, where the fake runs) its client closed the stream."""
    for entry in reversed(openai.requests):
        body = entry["body"]
        if body.get("model") == chat.model and body["messages"][-1]["content"] == chat.message:
            stream = entry.get("stream") or {}
            closed = stream.get("closed_at")
            return {
                "words_sent": stream.get("sent"),
                "closed_s": None if closed is None else round(closed - since, 2),
            }
    return None


async def audit_chats(system: System, chats: list[Chat]) -> dict[str, Any]:
    """Count the chats' conversations in the store: every run there (one per message sent,
    none extra), its status, its reply messages (one each: nothing doubled) beside what the
    driver read of its stream and what the fake would have written in full."""
    conversations = sorted({c.conversation_id for c in chats})
    where = {"conversation_id": {"$in": conversations}}
    runs = await system.store.find(RUNS, TEAM, where, limit=10_000)
    messages = await system.store.find(MESSAGES, TEAM, where, limit=10_000)
    status = {r["id"]: r["status"] for r in runs}
    replies: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    asked: Counter[str | None] = Counter()
    for message in messages:
        if message["role"] == "assistant":
            replies[message.get("run_id")].append(message)
        elif message["role"] == "user":
            asked[message.get("run_id")] += 1
    per_chat: dict[str, dict[str, Any]] = {}
    for chat in chats:
        reply = replies.get(chat.run_id, [])
        content = reply[0]["content"] if reply else None
        per_chat[chat.label] = {
            **chat.summary(),
            "status": status.get(chat.run_id),
            "replies": len(reply),
            "user_messages": asked[chat.run_id],
            "reply_status": reply[0]["status"] if reply else None,
            "reply_chars": len(content or ""),
            "expected_chars": len(chat.expected),
            "reply_is_whole": content == chat.expected,
            "reply_is_prefix": bool(content) and chat.expected.startswith(content or ""),
            "streamed_is_stored": chat.text == content,
        }
    return {
        "started": len(chats),
        "runs_found": len(runs),
        "by_status": dict(Counter(r["status"] for r in runs)),
        "unfinished": sum(r["status"] in RUN_ACTIVE for r in runs),
        "doubled_replies": sum(len(replies.get(c.run_id, [])) > 1 for c in chats),
        "missing_replies": sum(c.run_id not in replies for c in chats),
        "chats": per_chat,
    }
