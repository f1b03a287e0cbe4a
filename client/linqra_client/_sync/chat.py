# Generated from linqra_client/_async by scripts/client_codegen.py (unasync): do not edit.
"""Assistants (``client.assistants``) and conversations (``client.conversations``): replies
streamed as typed events over SSE or a WebSocket, resumed after a cut connection, cancellable."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from linqra_client import models
from linqra_client._base import check_id, dump, validate
from linqra_client._sync.pagination import Pager
from linqra_client._sync.streams import Connect, data_of, follow
from linqra_client._ws import closed_errors, connect_ws
from linqra_client.chat_events import FINAL_EVENTS, ChatEvent, RunCreated, RunFinished, chat_event
from linqra_client.errors import APIConnectionError, StreamError

if TYPE_CHECKING:
    from linqra_client._sync.client import Linqra

__all__ = ["Assistants", "ChatSocket", "ChatStream", "Conversations"]


_API_NAMES = {
    "conversation_id": "conversationId",
    "client_message_id": "clientMessageId",
    "double_texting": "doubleTexting",
    "on_disconnect": "onDisconnect",
}


def _message_body(message: str, **options: Any) -> dict[str, Any]:
    """A message's body by the API's names (``double_texting`` → ``doubleTexting``), with a
    ``clientMessageId`` of its own when none is given: sent again, it is the same message."""
    body: dict[str, Any] = {"message": message, "stream": True}
    body.update({_API_NAMES.get(k, k): v for k, v in options.items() if v is not None})
    body.setdefault("clientMessageId", uuid.uuid4().hex)
    return body


class ChatStream:
    """A reply as it is written: iterate it for typed events (:mod:`linqra_client.chat_events`).

    The request is sent when the iteration starts. After ``run.created`` the stream knows its
    :attr:`conversation_id` and :attr:`run_id`; a cut connection is resumed from the last event
    (``Last-Event-ID``), and a message sent to an existing conversation is sent again with the
    same ``clientMessageId`` (the API answers the first run, not a second one). :attr:`text` is
    the reply so far, :attr:`final` the last event once it came."""

    def __init__(self, client: Linqra, first: Connect, conversation_id: str | None) -> None:
        self._client = client
        self._first = first
        self.conversation_id = conversation_id
        self.run_id: str | None = None
        self.text = ""
        self.final: RunFinished | None = None

    def _resume(self, last_id: str | None) -> Connect | None:
        if self.run_id and self.conversation_id:
            path = f"/v1/conversations/{self.conversation_id}/runs/{self.run_id}/stream"
            return Connect("GET", path, last_event_id=last_id)
        if self.conversation_id:  # the same clientMessageId: the first run again
            return self._first
        return None  # a new conversation cut before its first event: nothing to resume

    def __iter__(self) -> Iterator[ChatEvent]:
        for sse in follow(
            self._client,
            self._first,
            resume=self._resume,
            is_last=lambda sse: sse.event in FINAL_EVENTS,
        ):
            event = chat_event(sse.event, sse.id or None, data_of(sse))
            self._track(event)
            yield event

    def _track(self, event: ChatEvent) -> None:
        if isinstance(event, RunCreated):
            self.run_id, self.conversation_id = event.run_id, event.conversation_id
        elif event.event == "message.delta":
            self.text += str(getattr(event, "text", ""))
        elif event.event == "message.replace":
            self.text = str(getattr(event, "text", ""))
        elif isinstance(event, RunFinished):
            self.final = event
            if event.content:  # the reply as stored (an output guardrail may have rewritten it)
                self.text = event.content

    def until_done(self) -> RunFinished:
        """Read the stream to its end; the last event (``status``, ``content``, ``cost``)."""
        for _ in self:
            pass
        if self.final is None:
            raise APIConnectionError("the reply ended without its last event")
        return self.final

    def cancel(self) -> models.ChatRun:
        """Stop the reply: the provider's stream is closed, the partial reply kept."""
        if not (self.conversation_id and self.run_id):
            raise StreamError("the reply has not started yet", code="conflict")
        return self._client.conversations.cancel(self.conversation_id, self.run_id)


class Assistants:
    """Versioned assistants: a model, a system prompt, tasks and knowledge collections."""

    def __init__(self, client: Linqra) -> None:
        self._client = client

    def list(self, *, limit: int = 50) -> Pager[models.Assistant]:
        return Pager(self._client, "/v1/assistants", models.Assistant, limit=limit)

    def get(self, assistant_id: str) -> models.Assistant:
        return self._client.call(
            models.Assistant, "GET", f"/v1/assistants/{check_id(assistant_id, 'assistant_id')}"
        )

    def create(self, definition: dict[str, Any] | None = None, **fields: Any) -> models.Assistant:
        """A new assistant (``name``, ``model``, ``systemPrompt``, ``status``, ``tasks``,
        ``knowledge``, ``guardrails``, …), given as a dict or as keywords."""
        body = validate(models.CreateAssistantBody, {**(definition or {}), **fields})
        return self._client.call(models.Assistant, "POST", "/v1/assistants", json=dump(body))

    def update(
        self, assistant_id: str, definition: dict[str, Any], *, if_version: int | None = None
    ) -> models.Assistant:
        body = validate(models.UpdateAssistantBody, definition)
        return self._client.call(
            models.Assistant,
            "PUT",
            f"/v1/assistants/{check_id(assistant_id, 'assistant_id')}",
            json=dump(body),
            headers={"If-Match": str(if_version)} if if_version is not None else None,
        )

    def delete(self, assistant_id: str) -> None:
        self._client.request("DELETE", f"/v1/assistants/{check_id(assistant_id, 'assistant_id')}")

    def versions(self, assistant_id: str, *, limit: int = 50) -> Pager[models.AssistantVersion]:
        path = f"/v1/assistants/{check_id(assistant_id, 'assistant_id')}/versions"
        return Pager(self._client, path, models.AssistantVersion, limit=limit)

    def rollback(self, assistant_id: str, version: int) -> models.Assistant:
        return self._client.call(
            models.Assistant,
            "POST",
            f"/v1/assistants/{check_id(assistant_id, 'assistant_id')}/versions/{int(version)}/rollback",
        )

    def chat(
        self,
        assistant_id: str,
        message: str,
        *,
        conversation_id: str | None = None,
        double_texting: str | None = None,
        on_disconnect: str | None = None,
        client_message_id: str | None = None,
        title: str | None = None,
    ) -> ChatStream:
        """Ask the assistant; iterate the answer for typed events as it is written.
        A new conversation unless ``conversation_id``."""
        body = _message_body(
            message,
            conversation_id=conversation_id,
            double_texting=double_texting,
            on_disconnect=on_disconnect,
            client_message_id=client_message_id,
            title=title,
        )
        body = dump(validate(models.ChatBody, body))
        path = f"/v1/assistants/{check_id(assistant_id, 'assistant_id')}/chat"
        return ChatStream(self._client, Connect("POST", path, json=body), conversation_id)

    def ask(
        self, assistant_id: str, message: str, *, conversation_id: str | None = None
    ) -> models.ChatReply:
        """Ask the assistant and get the whole answer once it is complete (no stream)."""
        body = _message_body(message, conversation_id=conversation_id, stream=False)
        body = dump(validate(models.ChatBody, body))
        return self._client.call(
            models.ChatReply,
            "POST",
            f"/v1/assistants/{check_id(assistant_id, 'assistant_id')}/chat",
            json=body,
            timeout=max(self._client.timeout, 300.0),
        )


class Conversations:
    """Conversations with assistants: their messages, runs and streams."""

    def __init__(self, client: Linqra) -> None:
        self._client = client

    def list(
        self, *, assistant_id: str | None = None, limit: int = 50
    ) -> Pager[models.Conversation]:
        return Pager(
            self._client,
            "/v1/conversations",
            models.Conversation,
            params={"assistant_id": assistant_id},
            limit=limit,
        )

    def get(self, conversation_id: str) -> models.Conversation:
        return self._client.call(
            models.Conversation,
            "GET",
            f"/v1/conversations/{check_id(conversation_id, 'conversation_id')}",
        )

    def rename(self, conversation_id: str, title: str) -> models.Conversation:
        body = validate(models.Rename, {"title": title})
        return self._client.call(
            models.Conversation,
            "PATCH",
            f"/v1/conversations/{check_id(conversation_id, 'conversation_id')}",
            json=dump(body),
        )

    def delete(self, conversation_id: str) -> None:
        self._client.request(
            "DELETE", f"/v1/conversations/{check_id(conversation_id, 'conversation_id')}"
        )

    def messages(self, conversation_id: str, *, limit: int = 50) -> Pager[models.Message]:
        """The turns in order, with each reply's usage and cost."""
        path = f"/v1/conversations/{check_id(conversation_id, 'conversation_id')}/messages"
        return Pager(self._client, path, models.Message, limit=limit)

    def send(self, conversation_id: str, message: str, **options: Any) -> ChatStream:
        """The next message of a conversation, its answer streamed (as ``assistants.chat``)."""
        body = dump(validate(models.SendMessageBody, _message_body(message, **options)))
        path = f"/v1/conversations/{check_id(conversation_id, 'conversation_id')}/messages"
        return ChatStream(self._client, Connect("POST", path, json=body), conversation_id)

    def follow(
        self, conversation_id: str, run_id: str, *, last_event_id: str | None = None
    ) -> ChatStream:
        """A run's events from the start (or after ``last_event_id``), live until its end."""
        path = (
            f"/v1/conversations/{check_id(conversation_id, 'conversation_id')}"
            f"/runs/{check_id(run_id, 'run_id')}/stream"
        )
        stream = ChatStream(
            self._client, Connect("GET", path, last_event_id=last_event_id), conversation_id
        )
        stream.run_id = run_id
        return stream

    def run(self, conversation_id: str, run_id: str) -> models.ChatRun:
        return self._client.call(
            models.ChatRun,
            "GET",
            f"/v1/conversations/{check_id(conversation_id, 'conversation_id')}/runs/{check_id(run_id, 'run_id')}",
        )

    def cancel(self, conversation_id: str, run_id: str) -> models.ChatRun:
        """Stop a reply wherever it runs; a finished run is returned as it is."""
        return self._client.call(
            models.ChatRun,
            "POST",
            f"/v1/conversations/{check_id(conversation_id, 'conversation_id')}"
            f"/runs/{check_id(run_id, 'run_id')}/cancel",
        )

    def socket(self, conversation_id: str) -> ChatSocket:
        """The conversation's WebSocket: ``async with client.conversations.socket(cid) as ws``."""
        return ChatSocket(self._client, check_id(conversation_id, "conversation_id"))


class ChatSocket:
    """A conversation over ``/v1/conversations/{id}/ws``: :meth:`send` a message, iterate
    :meth:`events` for its reply. A socket that drops mid-reply is opened again and the run
    resumed from its last event (``{"type": "resume", "run_id", "last_event_id"}``)."""

    def __init__(self, client: Linqra, conversation_id: str, max_reconnects: int = 5) -> None:
        self._client = client
        self.conversation_id = conversation_id
        self._socket: Any = None
        self._run_id: str | None = None
        self._last_id: str | None = None
        self._max_reconnects = max_reconnects

    @property
    def url(self) -> str:
        base = self._client.base_url.replace("https://", "wss://").replace("http://", "ws://")
        return f"{base}/v1/conversations/{self.conversation_id}/ws"

    def connect(self) -> None:
        self._socket = connect_ws(self.url, additional_headers=self._client.headers)

    def __enter__(self) -> ChatSocket:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def _send(self, frame: dict[str, Any]) -> None:
        self._socket.send(json.dumps(frame))

    def send(self, message: str, **options: Any) -> None:
        """Send a message (``double_texting``, ``on_disconnect``, ``client_message_id``)."""
        body = _message_body(message, **options)
        body.pop("stream")
        self._send({"type": "send", **body})

    def cancel(self) -> None:
        """Cancel the reply being written (answered by its last event)."""
        if self._run_id:
            self._send({"type": "cancel", "run_id": self._run_id})

    def events(self) -> Iterator[ChatEvent]:
        """The events of the reply to the last message sent, until its last event."""
        reconnects = 0
        while True:
            try:
                raw = self._socket.recv()
            except closed_errors as exc:
                reconnects += 1
                if self._run_id is None or reconnects > self._max_reconnects:
                    raise APIConnectionError(f"the chat socket closed: {exc}") from exc
                self.connect()
                self._send(
                    {"type": "resume", "run_id": self._run_id, "last_event_id": self._last_id}
                )
                continue
            frame = json.loads(raw)
            if frame.get("type") == "error":
                error = frame.get("error") or {}
                raise StreamError(
                    str(error.get("message")), code=str(error.get("code")), field=error.get("field")
                )
            if frame.get("type") != "event":
                continue
            event = chat_event(frame["event"], frame.get("id"), frame.get("data"))
            self._last_id = event.id or self._last_id
            if isinstance(event, RunCreated):
                self._run_id = event.run_id
            yield event
            if event.event in FINAL_EVENTS:
                self._run_id = None
                return
