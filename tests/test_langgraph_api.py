"""The LangGraph Platform API subset, driven by the official ``langgraph-sdk`` client against
the app served by uvicorn, with replies from the OpenAI fake: assistants found and read, threads
made and bound by their first run, runs streamed in each mode (tokens arriving while the reply is
written), waited for, joined, resumed from ``Last-Event-ID`` and cancelled; ``multitask_strategy``
mapped onto double-texting; bad input a 400 naming the field, another team's ids a 404."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.routing import APIRoute
from langgraph_sdk import get_sync_client
from langgraph_sdk.client import LangGraphClient, SyncLangGraphClient
from langgraph_sdk.errors import BadRequestError, ConflictError, NotFoundError
from langgraph_sdk.schema import StreamPart

from deployments.app import create_app
from deployments.auth import route_permission
from deployments.routers import langgraph as lg
from linqra.config import Settings
from linqra.testing.fake_openai import FakeOpenAI
from tests.support.servers import free_port

TEAM_A = {"X-Team-Id": "team-a"}
TEAM_B = {"X-Team-Id": "team-b"}


@pytest.fixture
def settings(llm_settings: Settings) -> Settings:
    return llm_settings


@pytest.fixture
def url(settings: Settings) -> Iterator[str]:
    """The API on a free loopback port."""
    app = create_app(settings=settings)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="langgraph-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{server.config.port}"
    server.should_exit = True
    thread.join(30)


@pytest.fixture
def http(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, headers=TEAM_A, timeout=30) as client:
        yield client


@pytest.fixture
def sdk(url: str) -> SyncLangGraphClient:
    return get_sync_client(url=url, api_key=None, headers=TEAM_A)


def assistant(http: httpx.Client, name: str, model: str = "slow-10-40") -> str:
    """An assistant on the fake's ``model`` (``slow-MS-WORDS``: WORDS more words, one every
    MS), priced so that cost is real."""
    price = http.put(f"/v1/models/openai:{model}/price", json={"input": "2.5", "output": "10"})
    assert price.status_code == 200, price.text
    made = http.post(
        "/v1/assistants",
        json={"name": name, "defaultModel": {"provider": "openai", "modelName": model}},
    )
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def ask(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


def timed(parts: Iterator[StreamPart]) -> list[tuple[float, StreamPart]]:
    return [(time.monotonic(), part) for part in parts]


# -- assistants and threads ----------------------------------------------------------------------
def test_assistants_are_found_and_read_as_chat_graphs(
    http: httpx.Client, sdk: SyncLangGraphClient
) -> None:
    first = assistant(http, "Support desk")
    second = assistant(http, "Sales")
    found = sdk.assistants.search()
    assert {a["assistant_id"] for a in found} == {first, second}
    assert {a["graph_id"] for a in found} == {"chat"}
    assert [a["assistant_id"] for a in sdk.assistants.search(name="support")] == [first]
    assert sdk.assistants.search(graph_id="another-graph") == []
    page = sdk.assistants.search(limit=1, response_format="object")
    assert len(page["assistants"]) == 1 and page["next"] == "1"
    got = sdk.assistants.get(first)
    assert (got["assistant_id"], got["name"], got["version"]) == (first, "Support desk", 1)
    with pytest.raises(NotFoundError):
        sdk.assistants.get(first, headers=TEAM_B)  # another team's id


def test_a_thread_is_bound_to_its_first_runs_assistant_and_keeps_its_state(
    http: httpx.Client, sdk: SyncLangGraphClient
) -> None:
    helper = assistant(http, "helper", model="delay-1")
    thread = sdk.threads.create(metadata={"user": "u-1"})
    tid = thread["thread_id"]
    assert thread["status"] == "idle" and thread["values"] is None
    assert sdk.threads.get_state(tid)["values"] == {"messages": []}
    with pytest.raises(httpx.HTTPStatusError) as no_assistant:  # wait raises httpx's own
        sdk.runs.wait(tid, "chat", input=ask("hi"))  # the graph's name: whose?
    assert no_assistant.value.response.status_code == 400
    assert no_assistant.value.response.json()["error"]["field"] == "assistant_id"

    values = sdk.runs.wait(tid, helper, input=ask("hello there"))
    assert [(m["type"], m["content"]) for m in values["messages"]] == [
        ("human", "hello there"),
        ("ai", "Echo: hello there"),
    ]
    # now "chat" means the thread's assistant; a LangChain message dict is an input too
    run = sdk.runs.create(tid, "chat", input={"messages": [{"type": "human", "content": "again"}]})
    assert run["status"] in ("pending", "running") and run["thread_id"] == tid
    joined = sdk.runs.join(tid, run["run_id"])
    assert joined["messages"][-1]["content"] == "Echo: again"
    assert sdk.runs.get(tid, run["run_id"])["status"] == "success"

    state = sdk.threads.get_state(tid)
    messages = state["values"]["messages"]
    assert [m["type"] for m in messages] == ["human", "ai", "human", "ai"]
    assert all(m["id"].startswith("msg_") for m in messages)
    assert messages[-1]["usage_metadata"]["output_tokens"] > 0
    got = sdk.threads.get(tid)
    assert got["status"] == "idle" and got["metadata"]["user"] == "u-1"
    assert got["metadata"]["assistant_id"] == helper
    conversation = got["metadata"]["conversation_id"]
    listed = http.get(f"/v1/conversations/{conversation}/messages").json()["items"]
    assert [m["content"] for m in listed] == [m["content"] for m in messages]
    # a conversation is a thread as it is; a stateless run starts one
    assert sdk.threads.get(conversation)["values"] == got["values"]
    stateless = sdk.runs.wait(None, helper, input=ask("no thread"))
    assert stateless["messages"][-1]["content"] == "Echo: no thread"


# -- streaming -------------------------------------------------------------------------------
def test_each_stream_mode_arrives_while_the_reply_is_written(
    http: httpx.Client, sdk: SyncLangGraphClient
) -> None:
    slow = assistant(http, "slow")  # ~0.4 s a reply
    tid = sdk.threads.create()["thread_id"]
    created: list[Any] = []

    tokens = timed(
        sdk.runs.stream(
            tid,
            slow,
            input=ask("tokens please"),
            stream_mode="messages-tuple",
            on_run_created=created.append,
        )
    )
    names = [p.event for _, p in tokens]
    assert names[0] == "metadata" and names[-1] == "end"
    assert tokens[0][1].data["run_id"] == created[0]["run_id"]
    assert created[0]["thread_id"] == tid
    chunks = [(t, p.data) for t, p in tokens if p.event == "messages"]
    assert len(chunks) > 20
    message, metadata = chunks[0][1]
    assert message["type"] == "AIMessageChunk" and metadata["langgraph_node"] == "chat"
    text = "".join(c[0]["content"] for _, c in chunks)
    assert text.startswith("Echo: tokens please w0 w1")
    assert chunks[-1][0] - chunks[0][0] > 0.2, "the tokens came all at once"

    values = timed(sdk.runs.stream(tid, slow, input=ask("values"), stream_mode="values"))
    assert [p.event for _, p in values] == ["metadata", "values", "values", "end"]
    (started, before), (ended, after) = [(t, p.data) for t, p in values if p.event == "values"]
    assert before["messages"][-1] == {**before["messages"][-1], "type": "human"}
    assert after["messages"][-1]["content"].startswith("Echo: values w0")
    assert len(after["messages"]) == len(before["messages"]) + 1 == 4
    assert ended - started > 0.2, "the input state came only with the reply"

    updates = list(sdk.runs.stream(tid, slow, input=ask("updates"), stream_mode="updates"))
    assert [p.event for p in updates] == ["metadata", "updates", "end"]
    reply = updates[1].data["chat"]["messages"][0]
    assert reply["type"] == "ai" and reply["content"].startswith("Echo: updates w0")
    assert sdk.threads.get_state(tid)["values"]["messages"][-1] == {
        **reply,
        "usage_metadata": reply["usage_metadata"],
    }


class DropsTheFirstStream(httpx.AsyncBaseTransport):
    """Real HTTP, except that the first ``POST …/runs/stream`` breaks off after five tokens, as
    a network drop would; every request is recorded."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.requests: list[httpx.Request] = []
        self.responses: list[httpx.Response] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        response = await self.inner.handle_async_request(request)
        self.responses.append(response)
        if len(self.requests) > 2 or not request.url.path.endswith("/runs/stream"):
            return response
        body = response.stream
        assert isinstance(body, httpx.AsyncByteStream)

        async def cut() -> AsyncIterator[bytes]:
            tokens = 0
            async for chunk in body:
                yield chunk
                tokens += chunk.count(b"event: messages")
                if tokens >= 5:
                    await body.aclose()
                    raise httpx.ReadError("the network dropped", request=request)

        return httpx.Response(
            response.status_code, headers=response.headers, stream=_Bytes(cut()), request=request
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


class _Bytes(httpx.AsyncByteStream):
    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self.chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.chunks:
            yield chunk


async def test_a_dropped_stream_is_resumed_at_its_location_from_the_last_event_id(
    http: httpx.Client, url: str
) -> None:
    """The SDK's own reconnect: the stream breaks off, the SDK follows ``Location`` with
    ``Last-Event-ID`` and its caller sees every token once."""
    slow = assistant(http, "slow")
    transport = DropsTheFirstStream()
    async with httpx.AsyncClient(
        base_url=url, headers=TEAM_A, transport=transport, timeout=30
    ) as raw:
        client = LangGraphClient(raw)
        tid = (await client.threads.create())["thread_id"]
        parts = [
            p
            async for p in client.runs.stream(
                tid, slow, input=ask("resume me"), stream_mode="messages-tuple"
            )
        ]
        state = await client.threads.get_state(tid)
    post, again = transport.requests[1], transport.requests[2]
    run_id = parts[0].data["run_id"]
    location = transport.responses[1].headers["location"]
    assert location == f"/threads/{tid}/runs/{run_id}/stream?stream_mode=messages-tuple"
    assert (post.method, again.method, again.url.raw_path.decode()) == ("POST", "GET", location)
    assert again.headers["last-event-id"].startswith(f"{run_id}:")
    text = "".join(p.data[0]["content"] for p in parts if p.event == "messages")
    assert [p.event for p in parts][-1] == "end"
    assert text == state["values"]["messages"][-1]["content"]
    assert text.startswith("Echo: resume me w0 w1") and text.endswith("w39")


def test_join_stream_replays_from_last_event_id(
    http: httpx.Client, sdk: SyncLangGraphClient
) -> None:
    slow = assistant(http, "slow")
    tid = sdk.threads.create()["thread_id"]
    run = sdk.runs.create(tid, slow, input=ask("join me"), stream_mode="messages-tuple")
    joined = list(sdk.runs.join_stream(tid, run["run_id"]))  # every mode by default
    assert [p.event for p in joined][:2] == ["metadata", "values"]
    assert [p.event for p in joined][-3:] == ["updates", "values", "end"]
    middle = next(p for p in joined[10:] if p.id)
    rest = list(
        sdk.runs.join_stream(
            tid, run["run_id"], stream_mode="messages-tuple", last_event_id=middle.id
        )
    )
    whole = "".join(p.data[0]["content"] for p in joined if p.event == "messages")
    tail = "".join(p.data[0]["content"] for p in rest if p.event == "messages")
    assert rest[-1].event == "end" and 0 < len(tail) < len(whole) and whole.endswith(tail)


# -- cancelling and double-texting -----------------------------------------------------------
def test_cancel_stops_a_slow_run_and_keeps_its_partial_reply(
    http: httpx.Client, sdk: SyncLangGraphClient, fake_openai: FakeOpenAI
) -> None:
    slow = assistant(http, "very slow", model="slow-20-100")  # 2 s a reply
    tid = sdk.threads.create()["thread_id"]
    run = sdk.runs.create(tid, slow, input=ask("a long story"))
    parts = sdk.runs.join_stream(tid, run["run_id"], stream_mode="messages-tuple")
    shown = ""
    for part in parts:
        if part.event == "messages":
            shown += part.data[0]["content"]
        if shown.count(" ") >= 5:
            break
    asked = time.monotonic()
    sdk.runs.cancel(tid, run["run_id"], wait=True)
    assert sdk.runs.get(tid, run["run_id"])["status"] == "interrupted"
    upstream = next(r for r in reversed(fake_openai.requests) if "stream" in r)["stream"]
    assert upstream["closed_at"] is not None and upstream["closed_at"] - asked < 2.0
    assert upstream["sent"] < 100
    rest = list(parts)
    assert rest[-1].event == "end"
    kept = sdk.threads.get_state(tid)["values"]["messages"][-1]
    assert kept["type"] == "ai" and kept["content"].startswith(shown)
    assert not kept["content"].endswith("w99")


def test_multitask_strategy_is_double_texting(http: httpx.Client, sdk: SyncLangGraphClient) -> None:
    slow = assistant(http, "slow")
    tid = sdk.threads.create()["thread_id"]
    first = sdk.runs.create(tid, slow, input=ask("first"))
    with pytest.raises(ConflictError) as refused:
        sdk.runs.create(tid, slow, input=ask("second"), multitask_strategy="reject")
    assert refused.value.body["error"]["field"] == "doubleTexting"
    queued = sdk.runs.create(tid, slow, input=ask("third"), multitask_strategy="enqueue")
    assert queued["multitask_strategy"] == "enqueue"
    sdk.runs.join(tid, queued["run_id"])
    assert sdk.runs.get(tid, first["run_id"])["status"] == "success"
    replies = [m["content"] for m in sdk.threads.get_state(tid)["values"]["messages"]]
    assert [r.split(" w0")[0] for r in replies] == ["first", "Echo: first", "third", "Echo: third"]
    # interrupt: the running reply stops, the new one answers
    running = sdk.runs.create(tid, slow, input=ask("fourth"))
    waited = sdk.runs.wait(tid, slow, input=ask("fifth"), multitask_strategy="interrupt")
    assert waited["messages"][-1]["content"].startswith("Echo: fifth")
    assert sdk.runs.get(tid, running["run_id"])["status"] == "interrupted"


# -- refusals ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"stream_mode": "debug"}, "stream_mode"),
        ({"multitask_strategy": "whenever"}, "multitask_strategy"),
        ({"interrupt_before": ["chat"]}, "interrupt_before"),
        (
            {"input": {"messages": [{"role": "assistant", "content": "x"}]}},
            "input.messages[0].role",
        ),
        ({"input": {"messages": []}}, "input.messages"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(
    http: httpx.Client, sdk: SyncLangGraphClient, options: dict[str, Any], field: str
) -> None:
    local = assistant(http, "local", model="delay-1")
    tid = sdk.threads.create()["thread_id"]
    with pytest.raises(BadRequestError) as refused:
        list(sdk.runs.stream(tid, local, **{"input": ask("hi"), **options}))
    assert refused.value.body["error"]["field"] == field


def test_another_teams_ids_are_not_found(http: httpx.Client, sdk: SyncLangGraphClient) -> None:
    local = assistant(http, "local", model="delay-1")
    tid = sdk.threads.create(thread_id="my-thread")["thread_id"]
    with pytest.raises(ConflictError):
        sdk.threads.create(thread_id=tid)
    assert sdk.threads.create(thread_id=tid, if_exists="do_nothing")["thread_id"] == tid
    run = sdk.runs.create(tid, local, input=ask("mine"))
    sdk.runs.join(tid, run["run_id"])
    for call in (
        lambda: sdk.threads.get(tid, headers=TEAM_B),
        lambda: sdk.threads.get_state(tid, headers=TEAM_B),
        lambda: sdk.runs.get(tid, run["run_id"], headers=TEAM_B),
        lambda: sdk.runs.cancel(tid, run["run_id"], headers=TEAM_B),
        lambda: sdk.runs.create(tid, local, input=ask("x"), headers=TEAM_B),
    ):
        with pytest.raises(NotFoundError):
            call()
    with pytest.raises(httpx.HTTPStatusError) as waited:
        sdk.runs.wait(None, local, input=ask("x"), headers=TEAM_B)
    assert waited.value.response.status_code == 404


def test_every_route_declares_viewer_or_runner() -> None:
    declared = {
        (method, route.path): route_permission(route)
        for route in lg.router.routes
        if isinstance(route, APIRoute)
        for method in route.methods
    }
    assert len(declared) == 14
    assert set(declared.values()) == {"read", "execute"}
    assert declared[("GET", "/threads/{thread_id}/state")] == "read"
    assert declared[("POST", "/threads/{thread_id}/runs/stream")] == "execute"
    assert declared[("POST", "/threads")] == "execute"
