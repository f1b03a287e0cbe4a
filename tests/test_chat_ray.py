"""Chat on the session's Ray cluster, through the real Serve gateway and the ChatOrchestrator
deployment: a streamed reply whose conversation's turns run in its chat host actor, a cancel
that closes the provider's stream, a reconnect with ``Last-Event-ID``, and the conversation's host
killed mid-answer — kept while the host lives even with its heartbeat stale, then ``interrupted``
with its partial reply, and the next message works on the host Ray restarted; an idle
conversation's worker is dropped from its host, which stays, and the next message makes another.
Everything else about chat is tested in process (``tests/test_chat_*.py``)."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from linqra.clock import utcnow
from linqra.config import Settings
from linqra.testing.fake_openai import FakeOpenAI
from tests.support.http import until
from tests.support.sse import sse

pytestmark = pytest.mark.ray


def slow_assistant(api: httpx.Client, model: str) -> str:
    priced = api.put(f"/v1/models/openai:{model}/price", json={"input": "2.5", "output": "10"})
    assert priced.status_code == 200, priced.text
    made = api.post(
        "/v1/assistants",
        json={"name": "slow", "defaultModel": {"provider": "openai", "modelName": model}},
    )
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def test_a_reply_streams_through_the_orchestrator_and_resumes_after_a_cut(
    api: httpx.Client,
) -> None:
    assistant = slow_assistant(api, "slow-10-40")
    body = {"message": "stream me", "stream": True}
    seen: list[tuple[str, str, dict[str, Any]]] = []
    with api.stream("POST", f"/v1/assistants/{assistant}/chat", json=body) as answer:
        assert answer.status_code == 200
        for event in sse(answer.iter_lines()):
            seen.append(event)
            if sum(name == "message.delta" for _, name, _ in seen) == 5:
                break  # the connection is cut mid-answer
    created = seen[0][2]
    conversation, run = created["conversation_id"], created["run_id"]
    last_id = seen[-1][0]
    resume = f"/v1/conversations/{conversation}/runs/{run}/stream"
    with api.stream("GET", resume, headers={"Last-Event-ID": last_id}) as rest:
        tail = list(sse(rest.iter_lines()))
    seqs = [int(i.rsplit(":", 1)[1]) for i, _, _ in seen + tail]
    assert seqs == list(range(1, len(seqs) + 1))  # nothing lost, nothing twice
    assert tail[-1][1] == "run.completed"
    text = "".join(d["text"] for _, name, d in seen + tail if name == "message.delta")
    assert text == tail[-1][2]["content"] and text.startswith("Echo: stream me w0 w1")
    stored = api.get(f"/v1/conversations/{conversation}/messages").json()["items"][-1]
    assert stored["status"] == "completed" and stored["content"] == text


def test_cancel_from_the_gateway_closes_the_provider_stream(
    gateway_url: str, fake_openai: FakeOpenAI
) -> None:
    # a team of its own: a chat host is a long-lived process, and a price set for a team it
    # looked up less than two seconds ago reaches it only then (linqra/llm/overrides.py)
    with httpx.Client(
        base_url=gateway_url, headers={"X-Team-Id": "team-cancel"}, timeout=60
    ) as api:
        _cancel_closes_the_provider_stream(api, fake_openai)


def _cancel_closes_the_provider_stream(api: httpx.Client, fake_openai: FakeOpenAI) -> None:
    assistant = slow_assistant(api, "slow-20-200")
    body = {"message": "long one", "stream": True}
    with api.stream("POST", f"/v1/assistants/{assistant}/chat", json=body) as answer:
        events = sse(answer.iter_lines())
        created = next(events)[2]
        next(e for e in events if e[1] == "message.delta")
        asked = time.monotonic()
        url = f"/v1/conversations/{created['conversation_id']}/runs/{created['run_id']}/cancel"
        assert api.post(url).json()["status"] == "cancelled"
        final = [e for e in events][-1]
    entry = next(r for r in reversed(fake_openai.requests) if r["body"]["model"] == "slow-20-200")
    closed = until(lambda: entry["stream"]["closed_at"], timeout=10)
    assert closed - asked < 2.0 and entry["stream"]["sent"] < 200
    assert final[1] == "run.cancelled" and Decimal(final[2]["cost"]) > 0


def test_a_killed_chat_host_leaves_the_run_interrupted_and_the_next_message_works(
    api: httpx.Client, ray_settings: Settings
) -> None:
    import ray

    from actors.handles import SUPERVISOR, chat_host_for

    supervisor = ray.get_actor(SUPERVISOR, namespace=ray_settings.ray.namespace)
    assistant = slow_assistant(api, "slow-20-300")
    body = {"message": "doomed", "stream": True}
    with api.stream("POST", f"/v1/assistants/{assistant}/chat", json=body) as answer:
        events = sse(answer.iter_lines())
        created = next(events)[2]
        conversation, run = created["conversation_id"], created["run_id"]
        next(e for e in events if e[1] == "message.delta")
        messages = f"/v1/conversations/{conversation}/messages"
        until(lambda: "doomed" in api.get(messages).json()["items"][-1]["content"], timeout=10)
        name, namespace = chat_host_for(ray_settings, conversation), ray_settings.ray.namespace
        actor = ray.get_actor(name, namespace=namespace)
        assert ray.get(actor.preloaded.remote(), timeout=60)  # killed after, not amid, imports
        # judged a second past stale_after from now, every heartbeat so far is stale, as if the
        # host had been starved: the supervisor asks it, it still runs the turn, the run is
        # kept (without the host's answer this reap interrupts it)
        stale = utcnow() + timedelta(seconds=ray_settings.chat.stale_after_seconds + 1)
        assert ray.get(supervisor.reap_chat_runs.remote(stale), timeout=60) == 0
        assert api.get(f"/v1/conversations/{conversation}/runs/{run}").json()["status"] == (
            "running"
        )
        ray.kill(actor, no_restart=False)  # its process dies; Ray starts the host again
        # its log died with it; the stream still ends with how the run ended: the supervisor
        # finds the silent run (its heartbeat went stale; the new host does not hold it) and
        # interrupts it
        *_, (_, last, end) = events
    assert (last, end["status"]) == ("run.interrupted", "interrupted")
    assert end["content"].startswith("Echo: doomed")
    assert api.get(f"/v1/conversations/{conversation}/runs/{run}").json()["status"] == (
        "interrupted"
    )
    reply = api.get(messages).json()["items"][-1]
    assert reply["status"] == "interrupted" and reply["content"].startswith("Echo: doomed")
    nxt = api.post(f"/v1/conversations/{conversation}/messages", json={"message": "again?"})
    assert nxt.status_code == 200, nxt.text
    assert nxt.json()["status"] == "completed"
    restarted = ray.get_actor(name, namespace=namespace)
    assert restarted == actor  # the same actor, restarted by Ray: not a new one by name
    assert int(ray.get(restarted.conversations.remote(), timeout=60)) >= 1


def test_the_websocket_works_through_the_gateways_ingress(
    api: httpx.Client, gateway_url: str
) -> None:
    import asyncio

    import websockets

    assistant = api.post("/v1/assistants", json={"name": "socket"}).json()["id"]
    first = api.post(f"/v1/assistants/{assistant}/chat", json={"message": "hi"}).json()
    url = gateway_url.replace("http://", "ws://") + (
        f"/v1/conversations/{first['conversation_id']}/ws"
    )

    async def talk() -> list[dict[str, Any]]:
        async with websockets.connect(url, additional_headers={"X-Team-Id": "team-a"}) as ws:
            await ws.send("{broken")
            frames = [json.loads(await ws.recv())]
            await ws.send(json.dumps({"type": "send", "message": "over the socket"}))
            while frames[-1].get("event") != "run.completed":
                frames.append(json.loads(await asyncio.wait_for(ws.recv(), 60)))
            return frames

    frames = asyncio.run(talk())
    assert frames[0]["type"] == "error" and frames[0]["error"]["field"] == "frame"
    deltas = [f["data"]["text"] for f in frames if f.get("event") == "message.delta"]
    assert "over the socket" in "".join(deltas) == frames[-1]["data"]["content"]


def test_an_idle_conversation_is_dropped_from_its_host_which_stays(
    api: httpx.Client, ray_settings: Settings
) -> None:
    """Many conversations share a host (no process per conversation); a conversation idle for
    ``chat.idle_seconds`` is dropped from it, the host stays, and the next message works."""
    import ray

    from actors.handles import CHAT_PREFIX, chat_host_for

    assistant = api.post("/v1/assistants", json={"name": "idle"}).json()["id"]
    conversations = []
    for i in range(2 * ray_settings.chat.hosts + 1):  # two at least share a host
        sent = api.post(f"/v1/assistants/{assistant}/chat", json={"message": f"hi {i}"})
        assert sent.status_code == 200 and sent.json()["status"] == "completed", sent.text
        conversations.append(sent.json()["conversation_id"])
    hosts = [n for n in ray.util.list_named_actors() if n.startswith(CHAT_PREFIX)]
    assert 1 <= len(hosts) <= ray_settings.chat.hosts, hosts
    conversation = conversations[0]
    namespace = ray_settings.ray.namespace
    name = chat_host_for(ray_settings, conversation)
    host = ray.get_actor(name, namespace=namespace)
    pid = _pid(name)
    assert _live(host) >= 1

    # nothing else chats on this cluster meanwhile: every worker idles out (chat.idle_seconds)
    until(lambda: _live(host) == 0, timeout=60, every=0.2)
    nxt = api.post(f"/v1/conversations/{conversation}/messages", json={"message": "back?"})
    assert nxt.status_code == 200 and nxt.json()["status"] == "completed", nxt.text
    assert _live(host) == 1
    assert _pid(name) == pid


def _live(host: Any) -> int:
    """How many conversations have a worker in ``host`` now."""
    import ray

    return int(ray.get(host.conversations.remote(), timeout=60))


def _pid(name: str) -> int:
    """The process of the live actor ``name`` (Ray's state API)."""
    from ray.util.state import list_actors

    alive = list_actors(filters=[("name", "=", name), ("state", "=", "ALIVE")], timeout=30)
    assert len(alive) == 1 and alive[0].pid is not None, alive
    return alive[0].pid
