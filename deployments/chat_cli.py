"""``linqra chat``: talk to an assistant from a terminal, its reply printed token by token as
the gateway streams it.

``linqra chat ASSISTANT_ID "question"`` sends one message; without a message every line read
from stdin is the next message of the same conversation (a terminal gets a ``you>`` prompt;
Ctrl-D ends). ``--conversation ID`` continues an earlier conversation, whose id is printed on
stderr at the end. Ctrl-C while a reply is written stops it (the partial reply is kept). With
``--json`` each event of the reply is one JSON line on stdout. The exit status is 1 when a reply
did not complete.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from deployments.remote_cli import complain, remote, wants_json

if TYPE_CHECKING:  # linqra_client is imported where a command runs (deployments/remote_cli.py)
    from linqra_client import Linqra

__all__ = ["add_chat_command"]


def add_chat_command(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``chat`` to the ``linqra`` command's subparsers."""
    chat = sub.add_parser(
        "chat",
        parents=[common],
        help="chat with an assistant, its reply streamed token by token",
    )
    chat.add_argument("assistant", metavar="ASSISTANT_ID")
    chat.add_argument(
        "message",
        nargs="?",
        metavar="MESSAGE",
        help="one message (without it: each line of stdin is the next message)",
    )
    chat.add_argument("--conversation", metavar="ID", help="continue this conversation")
    chat.set_defaults(func=remote(_chat), name="chat")


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _chat(client: Linqra, args: argparse.Namespace) -> int:
    assistant = client.assistants.get(args.assistant)  # an unknown id: NotFound before streaming
    conversation: str | None = args.conversation
    if conversation:
        client.conversations.get(conversation)
    if args.message is not None:
        ok, conversation = _turn(client, args, assistant.id, args.message, conversation)
        failed = not ok
    else:
        failed, conversation = _loop(client, args, assistant.id, assistant.name, conversation)
    if conversation and not wants_json(args):
        _note(
            f"(conversation {conversation}; continue it with "
            f"`linqra chat {assistant.id} --conversation {conversation}`)"
        )
    return 1 if failed else 0


def _loop(
    client: Linqra,
    args: argparse.Namespace,
    assistant_id: str,
    name: str,
    conversation: str | None,
) -> tuple[bool, str | None]:
    """One message per line of stdin until its end; whether a reply failed, the conversation."""
    interactive = sys.stdin.isatty()
    if interactive:
        _note(f"chatting with {name}: one message per line, Ctrl-D to end")
    failed = False
    while True:
        if interactive:
            print("you> ", end="", file=sys.stderr, flush=True)
        line = sys.stdin.readline()
        if not line:
            if interactive:
                _note("")
            return failed, conversation
        message = line.strip()
        if not message:
            continue
        ok, conversation = _turn(client, args, assistant_id, message, conversation)
        failed = failed or not ok


def _turn(
    client: Linqra,
    args: argparse.Namespace,
    assistant_id: str,
    message: str,
    conversation: str | None,
) -> tuple[bool, str | None]:
    """Send ``message`` and print the reply as it streams; whether it completed, and the
    conversation it is part of."""
    from linqra_client.chat_events import MessageDelta, MessageReplace, RunQueued

    stream = client.assistants.chat(assistant_id, message, conversation_id=conversation)
    as_json = wants_json(args)
    try:
        for event in stream:
            if as_json:
                print(json.dumps(event.model_dump(mode="json"), default=str), flush=True)
            elif isinstance(event, MessageDelta):
                _write(event.text)
            elif isinstance(event, MessageReplace):  # an output guardrail rewrote the reply
                _write(f"\n[rewritten] {event.text}")
            elif isinstance(event, RunQueued):
                _note(f"(queued behind {event.ahead} reply(ies))")
    except KeyboardInterrupt:
        if stream.run_id:
            stream.cancel()
        _note("\n(stopped; the partial reply is kept)")
        return False, stream.conversation_id
    if not as_json:
        _write("\n")
    final = stream.final
    if final is None or final.event != "run.completed":
        error = final.error if final is not None else None
        reason = error.get("message") if isinstance(error, dict) else error
        what = final.event.removeprefix("run.") if final is not None else "ended"
        complain("chat", f"the reply {what}" + (f": {reason}" if reason else ""))
        return False, stream.conversation_id
    return True, stream.conversation_id
