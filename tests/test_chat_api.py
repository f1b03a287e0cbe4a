"""Chatting with an assistant over HTTP in process (issue 12): the selected tasks run in parallel
and ground the reply (a failed and a timed-out task never fail the chat; the timed-out one is
cancelled), retrieval from the assistant's collections with numbered citations, the input and
output guardrails, resuming a stream with ``Last-Event-ID``, bad input, exact usage and cost,
and the conversation routes (listing, paging, rename, delete)."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient

from linqra.config import Settings
from linqra.testing.fake_openai import FakeOpenAI
from tests.support.http import TeamClient, until
from tests.support.sse import Event, sse

MAX_MESSAGE_CHARS = 600
KEEPALIVE = 0.5
LOCAL = {"provider": "local", "modelName": "local"}
PRICE = {"input": "2.50", "cache_read": "1.25", "output": "10.00"}  # per million tokens


@pytest.fixture
def settings(llm_settings: Settings) -> Settings:
    """OpenAI served by its fake, a small ``chat.max_message_chars`` to refuse, and quick
    keep-alives."""
    chat = llm_settings.chat.model_copy(
        update={"max_message_chars": MAX_MESSAGE_CHARS, "keepalive_seconds": KEEPALIVE}
    )
    return llm_settings.model_copy(update={"chat": chat})


# -- helpers -------------------------------------------------------------------------------------


def chat(client: Any, url: str, body: dict[str, Any]) -> list[Event]:
    """Every event of a streamed message, to its terminal one."""
    with client.stream("POST", url, json={**body, "stream": True}) as answer:
        assert answer.status_code == 200, answer.read()
        return list(sse(answer.iter_lines()))


def make_assistant(client: Any, name: str = "helper", **body: Any) -> str:
    made = client.post("/v1/assistants", json={"name": name, "defaultModel": LOCAL, **body})
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def openai_model(client: Any, name: str) -> dict[str, Any]:
    """A model of the OpenAI fake (``name`` picks its behaviour), priced for this team."""
    priced = client.put(f"/v1/models/openai:{name}/price", json=PRICE)
    assert priced.status_code == 200, priced.text
    return {"provider": "openai", "modelName": name}


def sent_to(fake: FakeOpenAI, marker: str) -> dict[str, Any]:
    """The body of the last request to the fake whose user message contains ``marker``."""
    return next(
        r["body"]
        for r in reversed(fake.requests)
        if "messages" in r["body"] and marker in r["body"]["messages"][-1]["content"]
    )


def names(events: list[Event]) -> list[str]:
    return [name for _, name, _ in events]


def shown(events: list[Event]) -> str:
    """What a client shows after these events (``message.replace`` rewrites it)."""
    text = ""
    for _, name, data in events:
        if name == "message.delta":
            text += data["text"]
        elif name == "message.replace":
            text = data["text"]
    return text


def workflow_task(client: Any, agent: str, name: str, *steps: dict[str, Any]) -> str:
    made = client.post(
        f"/v1/agents/{agent}/tasks",
        json={"name": name, "type": "WORKFLOW_EMBEDDED", "config": {"steps": list(steps)}},
    )
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def sleep_step(ms: int, key: str = "") -> dict[str, Any]:
    """A call of the local HTTP service (``quotes-service``) that answers after ``ms``."""
    return {"step": 1, "target": "quotes-service", "action": "fetch", "intent": "/sleep",
            "params": {"ms": ms, "key": key}}  # fmt: skip


def answer_step(text: str) -> dict[str, Any]:
    """A step after the call that answers ``text`` (a JMESPath object with a literal string)."""
    params = {"expression": f"{{answer: '{text}'}}", "input": "{{step1.result}}"}
    return {"step": 2, "target": "transform", "params": params}


def when(value: str) -> datetime:
    return datetime.fromisoformat(value)


# -- 1. tasks ------------------------------------------------------------------------------------
def test_selected_tasks_run_in_parallel_before_the_reply_and_their_answers_ground_it(
    client: TestClient,
) -> None:
    agent = client.post("/v1/agents", json={"name": "helpers", "max_concurrency": 4}).json()["id"]
    stock = workflow_task(
        client, agent, "stock", sleep_step(300), answer_step("The warehouse holds 42 crates.")
    )
    route = workflow_task(
        client, agent, "route", sleep_step(300), answer_step("The truck leaves at noon.")
    )
    assistant = make_assistant(
        client,
        selectedTasks=[{"taskId": stock, "timeoutSeconds": 20}, {"taskId": route}],
    )
    events = chat(
        client, f"/v1/assistants/{assistant}/chat", {"message": "How many crates does it hold?"}
    )
    order = names(events)
    assert order[:2] == ["run.created", "tasks.started"] and order[-1] == "run.completed"
    first_delta = order.index("message.delta")
    assert order[:first_delta].count("task.completed") == 2
    assert "task.completed" not in order[first_delta:]
    started = events[1][2]["tasks"]
    assert [t["task_id"] for t in started] == [stock, route]
    assert all(t["task_execution_id"] for t in started)
    results = {d["task_id"]: d for _, n, d in events if n == "task.completed"}
    for task_id, answer in ((stock, "The warehouse holds 42 crates."),
                            (route, "The truck leaves at noon.")):  # fmt: skip
        assert results[task_id]["status"] == "completed"
        assert results[task_id]["answer"] == answer
        assert results[task_id]["documents"] == [] and results[task_id]["error"] is None
    # the local model quotes its system context: the stock task's answer reached the prompt
    final = events[-1][2]
    assert final["content"] == shown(events)
    assert final["content"].startswith("[local model]") and "42 crates" in final["content"]
    assert {t["task_id"] for t in final["task_results"]} == {stock, route}
    # both ran at once: each started before the other finished (each takes at least 300 ms)
    txs = [client.get(f"/v1/task-executions/{t['task_execution_id']}").json() for t in started]
    assert all(tx["status"] == "COMPLETED" and tx["trigger"]["type"] == "CHAT" for tx in txs)
    a, b = txs
    assert when(a["started_at"]) < when(b["finished_at"])
    assert when(b["started_at"]) < when(a["finished_at"])
    conversation = events[0][2]["conversation_id"]
    reply = client.get(f"/v1/conversations/{conversation}/messages").json()["items"][-1]
    assert reply["content"] == final["content"]
    assert {t["task_id"]: t["status"] for t in reply["task_results"]} == {
        stock: "completed",
        route: "completed",
    }


def test_a_failed_and_a_timed_out_task_do_not_fail_the_chat_and_the_late_one_is_cancelled(
    client: TestClient, fake_openai: FakeOpenAI, http_service: Any
) -> None:
    agent = client.post("/v1/agents", json={"name": "helpers"}).json()["id"]
    good = workflow_task(client, agent, "good", sleep_step(10), answer_step("Stock is 42 crates."))
    broken = workflow_task(
        client,
        agent,
        "broken",
        {"step": 1, "target": "quotes-service", "action": "fetch", "intent": "/status/404"},
    )
    key = uuid.uuid4().hex
    stuck = workflow_task(client, agent, "stuck", sleep_step(20_000, key), answer_step("never"))
    assistant = make_assistant(
        client,
        defaultModel=openai_model(client, "gpt-4o-mini"),
        selectedTasks=[
            {"taskId": good},
            {"taskId": broken},
            {"taskId": stuck, "timeoutSeconds": 0.5},
        ],
    )
    marker = f"stock check {key}"
    events = chat(client, f"/v1/assistants/{assistant}/chat", {"message": marker})
    assert names(events)[-1] == "run.completed"
    results = {d["task_id"]: d for _, n, d in events if n == "task.completed"}
    assert results[good]["status"] == "completed"
    assert results[broken]["status"] == "failed" and results[broken]["error"]["code"]
    # a step's message may name an internal service: the chat shows the code and the record
    assert "http://" not in json.dumps(results[broken]["error"])
    assert results[broken]["task_execution_id"] in results[broken]["error"]["message"]
    assert results[stuck]["status"] == "timeout"
    assert results[stuck]["error"]["code"] == "timeout" and results[stuck]["answer"] is None
    # only the completed task's answer is in the system prompt the provider received
    system = sent_to(fake_openai, marker)["messages"][0]
    assert system["role"] == "system" and "Stock is 42 crates." in system["content"]
    assert "never" not in system["content"]
    # the timed-out task execution is cancelled, and its HTTP call with it
    stuck_tx = results[stuck]["task_execution_id"]
    until(
        lambda: client.get(f"/v1/task-executions/{stuck_tx}").json()["status"] == "CANCELLED",
        timeout=10,
    )
    until(lambda: http_service.state.calls.get(f"cancelled:{key}"), timeout=10)


# -- 2. retrieval --------------------------------------------------------------------------------
def upload(client: Any, collection: str, title: str, text: str) -> str:
    made = client.post(
        f"/v1/knowledge/collections/{collection}/documents", json={"title": title, "text": text}
    )
    assert made.status_code == 202, made.text
    return str(made.json()["id"])


def test_the_local_model_answers_from_the_retrieved_context_and_the_reply_cites_it(
    client: TestClient,
) -> None:
    """Offline, no keys: the labelled local model quotes what retrieval found."""
    made = client.post("/v1/knowledge/collections", json={"name": "handbook"})
    assert made.status_code == 201, made.text
    collection = made.json()["id"]
    leave = upload(
        client,
        collection,
        "Leave policy",
        "Employees get 25 days of paid leave a year. Unused days expire in March.",
    )
    badges = upload(client, collection, "Security", "Badges must be worn at all times.")
    documents = [f"/v1/knowledge/collections/{collection}/documents/{d}" for d in (leave, badges)]
    until(lambda: all(client.get(url).json()["status"] == "READY" for url in documents))
    assistant = make_assistant(client, knowledge={"collections": [collection], "topK": 1})
    question = "How many days of paid leave do employees get?"
    events = chat(client, f"/v1/assistants/{assistant}/chat", {"message": question})
    order = names(events)
    assert order[-1] == "run.completed"
    assert order.index("retrieval") < order.index("message.delta")
    retrieval = next(d for _, n, d in events if n == "retrieval")
    assert retrieval["collections"] == [collection] and retrieval["errors"] == []
    assert [(c["n"], c["document_id"], c["title"]) for c in retrieval["citations"]] == [
        (1, leave, "Leave policy")
    ]
    final = events[-1][2]
    assert final["content"].startswith("[local model] From the context:")
    assert "Employees get 25 days of paid leave a year." in final["content"]
    assert final["citations"] == retrieval["citations"]
    assert final["citations"][0]["collection"] == "handbook"
    conversation = events[0][2]["conversation_id"]
    reply = client.get(f"/v1/conversations/{conversation}/messages").json()["items"][-1]
    assert reply["role"] == "assistant" and reply["content"] == final["content"]
    assert [(c["n"], c["document_id"], c["title"]) for c in reply["citations"]] == [
        (1, leave, "Leave policy")
    ]
    assert "25 days" in reply["citations"][0]["text"]


# -- 3. guardrails -------------------------------------------------------------------------------
def test_input_guardrails_redact_what_the_provider_receives_and_refuse_blocked_messages(
    client: TestClient, fake_openai: FakeOpenAI
) -> None:
    assistant = make_assistant(
        client,
        defaultModel=openai_model(client, "gpt-4o-mini"),
        guardrails={"input": {"redactPii": ["email"], "blockedPatterns": ["(?i)password"]}},
    )
    key = uuid.uuid4().hex
    sent = client.post(
        f"/v1/assistants/{assistant}/chat",
        json={"message": f"{key}: mail jane.doe@example.com the report"},
    )
    assert sent.status_code == 200, sent.text
    received = sent_to(fake_openai, key)["messages"][-1]["content"]
    assert received == f"{key}: mail [EMAIL] the report"
    assert "jane.doe" not in json.dumps(sent_to(fake_openai, key))
    conversation = sent.json()["conversation_id"]
    messages = f"/v1/conversations/{conversation}/messages"
    assert client.get(f"/v1/conversations/{conversation}").json()["title"] == received
    stored = client.get(messages).json()["items"]
    assert stored[0]["role"] == "user" and stored[0]["content"] == received
    assert stored[0]["redactions"] == [{"kind": "email", "count": 1}]

    requests_before = len(fake_openai.requests)
    blocked = client.post(messages, json={"message": "my Password is hunter2"})
    assert blocked.status_code == 400 and blocked.json()["error"]["field"] == "message"
    assert "hunter2" not in blocked.text
    new = client.post(
        f"/v1/assistants/{assistant}/chat", json={"message": "the password is hunter2"}
    )
    assert new.status_code == 400 and new.json()["error"]["field"] == "message"
    assert len(client.get(messages).json()["items"]) == 2  # nothing stored
    listed = client.get("/v1/conversations", params={"assistant_id": assistant}).json()
    assert listed["total"] == 1  # no conversation made for the refused first message
    assert len(fake_openai.requests) == requests_before  # nothing sent


def test_output_guardrails_redact_the_reply_before_any_of_it_is_streamed(
    client: TestClient,
) -> None:
    assistant = make_assistant(
        client,
        defaultModel=openai_model(client, "gpt-4o-mini"),
        guardrails={"output": {"redactPii": ["email"]}},
    )
    events = chat(
        client,
        f"/v1/assistants/{assistant}/chat",
        {"message": "please write to bob.smith@example.org today"},
    )
    assert names(events)[-1] == "run.completed"
    released = [d["text"] for _, n, d in events if n in ("message.delta", "message.replace")]
    assert released and not any("bob" in text or "example.org" in text for text in released)
    assert "message.replace" not in names(events)  # a short match is held back, never rewritten
    expected = "Echo: please write to [EMAIL] today"
    assert shown(events) == expected and events[-1][2]["content"] == expected
    conversation = events[0][2]["conversation_id"]
    reply = client.get(f"/v1/conversations/{conversation}/messages").json()["items"][-1]
    assert reply["content"] == expected


# -- 4. resuming a stream ------------------------------------------------------------------------
def seq(event: Event) -> int:
    return int(event[0].rpartition(":")[2])


def read_some(client: TestClient, url: str, body: dict[str, Any], deltas: int) -> list[Event]:
    """The events of a streamed message up to its ``deltas``-th delta; then the connection is
    closed."""
    seen: list[Event] = []
    with client.stream("POST", url, json={**body, "stream": True}) as answer:
        assert answer.status_code == 200
        for event in sse(answer.iter_lines()):
            seen.append(event)
            if names(seen).count("message.delta") == deltas:
                break
    return seen


def test_a_stream_resumes_after_last_event_id_with_nothing_missing_or_repeated(
    client: TestClient,
) -> None:
    assistant = make_assistant(client, defaultModel=openai_model(client, "slow-20-60"))
    seen = read_some(client, f"/v1/assistants/{assistant}/chat", {"message": "a story"}, 3)
    run, conversation = seen[0][2]["run_id"], seen[0][2]["conversation_id"]
    runs = f"/v1/conversations/{conversation}/runs/{run}"
    assert client.get(runs).json()["status"] == "running"  # closing the stream did not stop it
    n = seq(seen[-1])
    assert [seq(e) for e in seen] == list(range(1, n + 1))
    with client.stream("GET", f"{runs}/stream", headers={"Last-Event-ID": seen[-1][0]}) as again:
        assert again.status_code == 200
        rest = list(sse(again.iter_lines()))
    assert [seq(e) for e in rest] == list(range(n + 1, n + 1 + len(rest)))
    assert all(e[0].startswith(f"{run}:") for e in rest)
    assert names(rest)[-1] == "run.completed"
    final = rest[-1][2]["content"]
    assert shown(seen + rest) == final and final.endswith(" w59")
    # the whole log replays the same events (without Last-Event-ID: from the start)
    with client.stream("GET", f"{runs}/stream") as replay:
        assert [e[0] for e in sse(replay.iter_lines())] == [e[0] for e in seen + rest]

    local = make_assistant(client)
    other = client.post(f"/v1/assistants/{local}/chat", json={"message": "x"}).json()
    bad = client.get(f"{runs}/stream", headers={"Last-Event-ID": f"{other['run_id']}:1"})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "Last-Event-ID"


def test_closing_the_stream_cancels_the_run_when_the_message_says_so(
    client: TestClient, fake_openai: FakeOpenAI
) -> None:
    assistant = make_assistant(client, defaultModel=openai_model(client, "slow-20-200"))
    key = uuid.uuid4().hex
    seen = read_some(
        client,
        f"/v1/assistants/{assistant}/chat",
        {"message": f"go {key}", "onDisconnect": "cancel"},
        3,
    )
    run, conversation = seen[0][2]["run_id"], seen[0][2]["conversation_id"]
    runs = f"/v1/conversations/{conversation}/runs/{run}"
    until(lambda: client.get(runs).json()["status"] == "cancelled", timeout=10)
    upstream = next(
        r for r in reversed(fake_openai.requests) if key in r["body"]["messages"][-1]["content"]
    )
    until(lambda: upstream["stream"]["closed_at"] is not None, timeout=10)
    assert upstream["stream"]["sent"] < 200
    reply = client.get(f"/v1/conversations/{conversation}/messages").json()["items"][-1]
    assert reply["status"] == "cancelled"
    assert reply["content"].startswith(shown(seen)) and reply["content"].startswith("Echo: go")
    with client.stream("GET", f"{runs}/stream", headers={"Last-Event-ID": seen[-1][0]}) as rest:
        tail = list(sse(rest.iter_lines()))
    assert names(tail)[-1] == "run.cancelled" and tail[-1][2]["content"] == reply["content"]
    assert Decimal(tail[-1][2]["cost"]) > 0


def test_a_stream_of_an_ended_run_whose_event_log_is_gone_ends(client: TestClient) -> None:
    """A ``memory://`` log is lost when its process restarts (and any log after its TTL): a
    client reconnecting to a run that ended gets its end, made from the records, and the stream
    ends — not keep-alives forever, nor a stream closed with no end."""
    assistant = make_assistant(client)
    done = client.post(f"/v1/assistants/{assistant}/chat", json={"message": "hello"}).json()
    runs = f"/v1/conversations/{done['conversation_id']}/runs/{done['run_id']}"
    system = client.app.state.system  # type: ignore[attr-defined]
    client.portal.call(system.chat.deps.runlog.close)  # type: ignore[union-attr]
    read: list[list[Event]] = []

    def reconnect() -> None:
        with client.stream(
            "GET", f"{runs}/stream", headers={"Last-Event-ID": f"{done['run_id']}:3"}
        ) as again:
            read.append(list(sse(again.iter_lines())))

    reader = threading.Thread(target=reconnect, daemon=True)
    reader.start()
    reader.join(KEEPALIVE * 20)
    assert not reader.is_alive(), "the stream of an ended run never ended"
    [[(event_id, name, end)]] = read
    assert (event_id, name) == (f"{done['run_id']}:4", "run.completed")
    reply = client.get(f"/v1/conversations/{done['conversation_id']}/messages").json()["items"][-1]
    assert end == {"run_id": done["run_id"], "status": "completed", "message_id": reply["id"],
                   "content": reply["content"], "cost": reply["cost"]}  # fmt: skip
    assert client.get(runs).json()["status"] == "completed"


# -- 5. bad input, usage and cost ----------------------------------------------------------------
def error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    return dict(response.json()["error"])


def test_unknown_and_other_teams_ids_are_404_and_bad_messages_are_400(client: TestClient) -> None:
    assistant = make_assistant(client)
    first = client.post(f"/v1/assistants/{assistant}/chat", json={"message": "hello"}).json()
    conversation, run = first["conversation_id"], first["run_id"]
    conv = f"/v1/conversations/{conversation}"
    other = TeamClient(client, "team-b")
    for method, url in [
        ("POST", f"/v1/assistants/{assistant}/chat"),
        ("POST", f"{conv}/messages"),
        ("GET", f"{conv}/messages"),
        ("GET", conv),
        ("PATCH", conv),
        ("DELETE", conv),
        ("GET", f"{conv}/runs/{run}"),
        ("GET", f"{conv}/runs/{run}/stream"),
        ("POST", f"{conv}/runs/{run}/cancel"),
    ]:
        body = {"title": "mine"} if method == "PATCH" else {"message": "hi"}
        assert other.request(method, url, json=body).status_code == 404, (method, url)
    assert client.get(conv).json()["title"] == "hello"  # untouched by the other team
    assert error(client.post("/v1/assistants/as_nope/chat", json={"message": "hi"}), 404)
    assert error(client.post("/v1/conversations/conv_nope/messages", json={"message": "hi"}), 404)
    assert error(client.get(f"{conv}/runs/run_nope"), 404)
    second = client.post(f"/v1/assistants/{assistant}/chat", json={"message": "again"}).json()
    assert error(client.get(f"{conv}/runs/{second['run_id']}"), 404)  # another conversation's
    assert error(client.get(f"{conv}/runs/{second['run_id']}/stream"), 404)

    chat_url = f"/v1/assistants/{assistant}/chat"
    for bad in ("", "   \n"):
        assert error(client.post(chat_url, json={"message": bad}), 400)["field"] == "message"
    too_long = error(client.post(chat_url, json={"message": "x" * (MAX_MESSAGE_CHARS + 1)}), 400)
    assert too_long["field"] == "message" and "chat.max_message_chars" in too_long["message"]
    at_limit = client.post(chat_url, json={"message": "y " * (MAX_MESSAGE_CHARS // 2)})
    assert at_limit.status_code == 200 and at_limit.json()["status"] == "completed"
    policy = error(client.post(chat_url, json={"message": "hi", "doubleTexting": "later"}), 400)
    assert policy["field"] == "doubleTexting"
    unknown = error(client.post(chat_url, json={"message": "hi", "mood": "happy"}), 400)
    assert unknown["field"] == "mood"

    another = make_assistant(client, name="another")
    mixed = client.post(
        f"/v1/assistants/{another}/chat", json={"message": "hi", "conversationId": conversation}
    )
    assert error(mixed, 400)["field"] == "conversationId"
    assert client.get(conv).json()["message_count"] == 2  # nothing stored by any refusal

    # a message that cannot fit the assistant's prompt with its instructions is refused at once
    tight = make_assistant(client, name="tight", contextManagement={"maxTotalTokens": 100})
    huge = error(client.post(f"/v1/assistants/{tight}/chat", json={"message": "word " * 110}), 400)
    assert huge["field"] == "message" and "maxTotalTokens" in huge["message"]
    assert client.get("/v1/conversations", params={"assistant_id": tight}).json()["total"] == 0
    fits = client.post(f"/v1/assistants/{tight}/chat", json={"message": "word " * 20})
    assert fits.status_code == 200 and fits.json()["status"] == "completed"

    for status in ("DRAFT", "INACTIVE"):
        idle = make_assistant(client, name=status.lower(), status=status)
        refused = error(client.post(f"/v1/assistants/{idle}/chat", json={"message": "hi"}), 409)
        assert refused["field"] == "status" and status in refused["message"]
        listed = client.get("/v1/conversations", params={"assistant_id": idle}).json()
        assert listed["total"] == 0


def test_json_replies_carry_usage_exact_cost_and_model_and_the_conversation_adds_them_up(
    client: TestClient,
) -> None:
    assistant = make_assistant(client, defaultModel=openai_model(client, "gpt-priced"))
    kinds = {"input_tokens": "input", "cache_read_tokens": "cache_read", "output_tokens": "output"}
    rates = {kind: Decimal(PRICE[rate]) for kind, rate in kinds.items()}
    first = client.post(f"/v1/assistants/{assistant}/chat", json={"message": "what is two"})
    assert first.status_code == 200 and first.headers["content-type"] == "application/json"
    conversation = first.json()["conversation_id"]
    second = client.post(
        f"/v1/conversations/{conversation}/messages", json={"message": "and three?"}
    )
    replies = [first.json(), second.json()]
    for reply in replies:
        assert reply["status"] == "completed" and reply["model"] == "openai:gpt-priced"
        assert reply["content"].startswith("Echo: ")
        usage = reply["usage"]
        assert set(usage) == {
            "input_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
            "output_tokens",
            "reasoning_tokens",
        }
        assert usage["input_tokens"] > 0 and usage["cache_read_tokens"] == 3
        assert usage["output_tokens"] == len(reply["content"].split())
        expected = sum(usage[kind] * rate for kind, rate in rates.items()) / Decimal(1_000_000)
        assert Decimal(reply["cost"]) == expected and reply["currency"] == "USD"
    stored = client.get(f"/v1/conversations/{conversation}/messages").json()["items"]
    assert [Decimal(m["cost"]) for m in stored if m["role"] == "assistant"] == [
        Decimal(r["cost"]) for r in replies
    ]
    totals = client.get(f"/v1/conversations/{conversation}").json()["totals"]
    assert Decimal(totals["cost"]) == sum(Decimal(r["cost"]) for r in replies)
    for kind in ("input_tokens", "cache_read_tokens", "output_tokens"):
        assert totals[kind] == sum(r["usage"][kind] for r in replies)
    assert totals["currency"] == "USD"
    # the second turn's prompt held the first one: history reaches the provider
    assert replies[1]["usage"]["input_tokens"] > replies[0]["usage"]["input_tokens"]


# -- 6. listing ----------------------------------------------------------------------------------
def test_conversations_are_listed_paged_filtered_renamed_and_deleted(client: TestClient) -> None:
    a, b = make_assistant(client, name="a"), make_assistant(client, name="b")
    made = [
        client.post(f"/v1/assistants/{a}/chat", json={"message": f"topic {i}"}).json()[
            "conversation_id"
        ]
        for i in range(3)
    ]
    client.post(f"/v1/assistants/{b}/chat", json={"message": "elsewhere"})
    assert client.get("/v1/conversations").json()["total"] == 4
    page_1 = client.get("/v1/conversations", params={"assistant_id": a, "limit": 2}).json()
    assert page_1["total"] == 3 and len(page_1["items"]) == 2 and page_1["next_offset"] == 2
    page_2 = client.get(
        "/v1/conversations", params={"assistant_id": a, "limit": 2, "offset": 2}
    ).json()
    assert len(page_2["items"]) == 1 and page_2["next_offset"] is None
    listed = [c["id"] for c in page_1["items"] + page_2["items"]]
    assert sorted(listed) == sorted(made)
    assert all(c["assistant_id"] == a for c in page_1["items"] + page_2["items"])

    conversation = made[0]
    conv = f"/v1/conversations/{conversation}"
    for text in ("second", "third"):
        assert client.post(f"{conv}/messages", json={"message": text}).status_code == 200
    first_page = client.get(f"{conv}/messages", params={"limit": 4}).json()
    rest = client.get(f"{conv}/messages", params={"limit": 4, "offset": 4}).json()
    assert first_page["total"] == 6 and first_page["next_offset"] == 4
    items = first_page["items"] + rest["items"]
    assert [m["seq"] for m in items] == [1, 2, 3, 4, 5, 6]
    assert [m["role"] for m in items] == ["user", "assistant"] * 3
    assert [m["content"] for m in items if m["role"] == "user"] == ["topic 0", "second", "third"]

    renamed = client.patch(conv, json={"title": "Renamed"})
    assert renamed.status_code == 200 and renamed.json()["title"] == "Renamed"
    assert client.get(conv).json()["title"] == "Renamed"
    assert error(client.patch(conv, json={"title": ""}), 400)["field"] == "title"
    assert client.delete(conv).status_code == 204
    assert error(client.get(conv), 404)
    assert error(client.get(f"{conv}/messages"), 404)
    assert error(client.post(f"{conv}/messages", json={"message": "hi"}), 404)
    assert error(client.delete(conv), 404)
    left = client.get("/v1/conversations", params={"assistant_id": a}).json()
    assert left["total"] == 2 and conversation not in [c["id"] for c in left["items"]]
