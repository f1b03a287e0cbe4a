"""The conversation actor's passivation, in process (the class without Ray around it): an actor
whose first send waits for the preload — seconds on a busy node — is not idle, so it does not
passivate under that send and leave the run it is about to write with no worker; and once it has
decided to exit it refuses a new send rather than start one the exit would cut short."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

import actors.conversation as conversation
import actors.handles as handles
from actors.conversation import ConversationActor
from actors.handles import Passivating
from linqra.config import Settings


@pytest.fixture
def preload_held(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    release = threading.Event()
    monkeypatch.setattr(conversation, "preload", lambda: release.wait(60))
    yield release
    release.set()


async def test_a_send_waiting_for_the_preload_keeps_its_actor_from_passivating(
    preload_held: threading.Event,
) -> None:
    loop = asyncio.get_running_loop()
    actor = ConversationActor(Settings().model_dump_json(), "team-a", "conv_1")
    try:
        later = loop.time() + actor.settings.chat.idle_seconds + 1
        assert actor.idle_for(later) > actor.settings.chat.idle_seconds  # nothing to do here
        send = asyncio.create_task(actor.send(None))  # type: ignore[arg-type]
        await asyncio.sleep(0)  # the send runs up to its wait for the preload
        assert actor._sending == 1 and not actor._preload.done()
        assert actor.idle_for(later) == 0.0  # not idle, however long the preload takes
        send.cancel()
        with pytest.raises(asyncio.CancelledError):
            await send
        assert not actor._preload.cancelled()  # shared: the next send still finds it loading
        assert actor.idle_for(later) > actor.settings.chat.idle_seconds  # idle again
    finally:
        preload_held.set()  # before the loop closes: its executor waits for the thread
        actor._passivation.cancel()


async def test_an_actor_that_is_passivating_refuses_a_send(
    preload_held: threading.Event,
) -> None:
    """From the moment it decides to exit, a send is refused (the host waits and sends to the
    next actor) rather than started and cut short: its run would be left with no worker."""
    actor = ConversationActor(Settings().model_dump_json(), "team-a", "conv_1")
    try:
        actor._exiting = True
        with pytest.raises(Passivating):
            await actor.send(None)  # type: ignore[arg-type]
        assert actor._sending == 0
    finally:
        preload_held.set()
        actor._passivation.cancel()


async def test_the_host_sends_again_when_the_actor_it_found_was_passivating(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``Passivating`` as a caller on Ray sees it (``RayTaskError(Passivating)``): the host
    waits and sends to the actor the name finds next."""
    from ray.exceptions import RayTaskError

    refused = RayTaskError("send", "", Passivating("conv_1 is passivating"))
    answers: list[Any] = [refused.as_instanceof_cause(), {"id": "run_1"}]

    async def remote(_send: Any) -> Any:
        answer = answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    actor = SimpleNamespace(send=SimpleNamespace(remote=remote))  # passivating, then the next
    monkeypatch.setattr(handles, "_existing", lambda settings, conversation_id: actor)
    settings = Settings(cache_url="redis://127.0.0.1:1/0")
    host = handles.RayChatHost(settings, None)  # type: ignore[arg-type]
    assert await host.send("team-a", "conv_1", None) == {"id": "run_1"}  # type: ignore[arg-type]
    assert answers == []


async def test_a_send_waits_out_an_exit_that_takes_seconds_then_answers_503_at_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An actor whose exit (closing its system) outlasts the first tries is still waited out;
    one that never goes answers 503 with Retry-After once ``PASSIVATION_WAIT`` has passed,
    not before."""
    from linqra.errors import Unavailable

    refusals = {"left": 12}  # 5 s of pauses: more than five tries, less than the bound

    async def remote(_send: Any) -> Any:
        if refusals["left"]:
            refusals["left"] -= 1
            raise Passivating("conv_1 is passivating")
        return {"id": "run_1"}

    actor = SimpleNamespace(send=SimpleNamespace(remote=remote))
    monkeypatch.setattr(handles, "_existing", lambda settings, conversation_id: actor)
    now, slept = [0.0], []

    async def sleep(seconds: float) -> None:  # the pauses are counted, not waited
        slept.append(seconds)
        now[0] += seconds

    settings = Settings(cache_url="redis://127.0.0.1:1/0")
    host = handles.RayChatHost(settings, None, clock=lambda: now[0], sleep=sleep)  # type: ignore[arg-type]
    assert await host.send("team-a", "conv_1", None) == {"id": "run_1"}  # type: ignore[arg-type]
    assert len(slept) == 12 and sum(slept) < handles.PASSIVATION_WAIT

    refusals["left"], slept[:] = 10_000, []
    with pytest.raises(Unavailable) as refused:
        await host.send("team-a", "conv_1", None)  # type: ignore[arg-type]
    assert refused.value.retry_after == 1
    waited = sum(slept)
    assert handles.PASSIVATION_WAIT - 0.5 <= waited <= handles.PASSIVATION_WAIT, waited
