"""``linqra_client`` against the real HTTP API (uvicorn on a free port over an in-process
system): every resource's round trip, sync and async, and the errors as the API answers them.
Retries, cut connections and the Ray gateway are in ``tests/test_client_resilience.py``."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from deployments.app import create_app
from linqra_client import (
    AsyncLinqra,
    Conflict,
    InvalidRequest,
    Linqra,
    NotFound,
    RetryPolicy,
    ServerUnreachable,
    UploadProgress,
    chat_events,
)
from tests.conftest import make_settings
from tests.support.live import serve_in_thread
from tests.support.servers import HttpService, free_port

SUM = {"name": "sum", "type": "DATA_PROCESSING", "config": {"expression": "sum(values)"}}


def _transform(step: int, expression: str, source: object) -> dict[str, object]:
    return {
        "step": step,
        "target": "transform",
        "params": {"expression": expression, "input": source},
    }


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory,
    http_service: HttpService,
    http_service_b: HttpService,
    milvus_uri: str,
) -> Iterator[str]:
    settings = make_settings(
        tmp_path_factory.mktemp("client"), http_service, http_service_b, milvus=milvus_uri
    )
    with serve_in_thread(create_app(settings=settings)) as url:
        yield url


@pytest.fixture
def lq(gateway: str) -> Iterator[Linqra]:
    """A client of its own team (the gateway is shared by the module)."""
    with Linqra(gateway, team=f"t-{uuid.uuid4().hex[:10]}") as client:
        yield client


def test_workflows_round_trip(lq: Linqra) -> None:
    made = [
        lq.workflows.create(name=f"wf{i}", steps=[_transform(1, "a", {"a": i})]) for i in range(3)
    ]
    pager = lq.workflows.list(limit=2)
    first = pager.page()
    assert first.total == 3 and len(first.items) == 2 and first.next_offset == 2
    assert sorted(w.id for w in pager) == sorted(w.id for w in made)
    wf = made[0]
    assert lq.workflows.get(wf.id).name == "wf0"
    v2 = lq.workflows.update(
        wf.id, {"name": "wf0b", "steps": [_transform(1, "b", {"b": 2})]}, if_version=1
    )
    assert v2.version == 2 and v2.name == "wf0b"
    with pytest.raises(Conflict) as stale:
        lq.workflows.update(wf.id, {"name": "x", "steps": [_transform(1, "a", {})]}, if_version=1)
    assert stale.value.status == 409 and stale.value.request_id
    assert [v.version for v in lq.workflows.versions(wf.id)] == [2, 1]
    assert lq.workflows.version(wf.id, 1).definition["steps"][0]["params"]["expression"] == "a"
    assert lq.workflows.rollback(wf.id, 1).version == 3
    assert lq.executions.run(wf.id).result == 0
    lq.workflows.delete(wf.id)
    with pytest.raises(NotFound) as gone:
        lq.workflows.get(wf.id)
    assert gone.value.code == "not_found" and gone.value.field == "workflow_id"


def test_executions_run_watch_cancel_resume(lq: Linqra) -> None:
    dag = lq.workflows.create(
        name="dag",
        mode="dag",
        params={"n": 2},
        steps=[
            _transform(1, "n", {"n": "{{params.n}}"}),
            _transform(2, "n", {"n": 3}),
            _transform(3, "[a, b]", {"a": "{{step1.result}}", "b": "{{step2.result}}"}),
        ],
    )
    done = lq.executions.run(dag.id, {"n": 5})
    assert done.status == "COMPLETED" and done.result == [5, 3]
    assert [s.status for s in done.steps] == ["COMPLETED"] * 3
    started = lq.executions.start(dag.id, {"n": 7}, executed_by="sdk-test")
    assert lq.executions.wait(started.id, timeout=30).result == [7, 3]
    seen = list(lq.executions.watch(started.id))
    assert seen[-1].status == "COMPLETED"
    assert {(s.step, s.status) for s in lq.executions.steps(started.id)} >= {(3, "COMPLETED")}
    listed = lq.executions.list(workflow_id=dag.id, status="COMPLETED").all()
    assert {e.id for e in listed} == {done.id, started.id}

    slow = lq.workflows.create(
        name="slow", steps=[{"step": 1, "target": "wait", "params": {"seconds": 30}}]
    )
    run = lq.executions.start(slow.id)
    for record in lq.executions.watch(run.id):
        if record.steps and record.steps[0].status == "RUNNING":
            break
    assert lq.executions.cancel(run.id).status in ("CANCELLED", "RUNNING")
    assert lq.executions.wait(run.id, timeout=30).status == "CANCELLED"
    with pytest.raises(Conflict):
        lq.executions.cancel(run.id)
    resumed = lq.executions.resume(run.id)
    assert resumed.status in ("PENDING", "RUNNING")
    lq.executions.cancel(run.id)
    assert lq.executions.wait(run.id, timeout=30).status == "CANCELLED"


def test_knowledge_round_trip(lq: Linqra, tmp_path: Path) -> None:
    collection = lq.knowledge.create_collection(
        "handbook", metadata_fields={"year": "int"}, chunk_tokens=64
    )
    assert lq.knowledge.collection("handbook").id == collection.id
    assert [c.name for c in lq.knowledge.collections()] == ["handbook"]
    page = tmp_path / "leave.md"
    page.write_text("# Leave\n\nEvery employee gets thirty days of paid leave a year.\n" * 20)
    reports: list[UploadProgress] = []
    doc = lq.knowledge.upload(collection.id, page, metadata={"year": 2026}, progress=reports.append)
    assert doc.status == "READY" and doc.chunks_total and doc.chunks_done == doc.chunks_total
    sent = [r for r in reports if r.phase == "upload"]
    assert sent and sent[-1].done == sent[-1].total == page.stat().st_size
    assert reports[-1].phase == "ingest" and reports[-1].done == reports[-1].total > 0
    again = lq.knowledge.upload(collection.id, page, wait=False)
    assert again.id == doc.id
    text = lq.knowledge.add_text(
        collection.id, "note", "Parking is free on Fridays.", metadata={"year": 2020}
    )
    assert {d.id for d in lq.knowledge.documents(collection.id)} == {doc.id, text.id}
    found = lq.knowledge.search(collection.id, "paid leave days", top_k=3, filter="year >= 2025")
    assert found.results and all(h.document_id == doc.id for h in found.results)
    assert lq.knowledge.reindex(collection.id, doc.id).status in ("PENDING", "PROCESSING", "READY")
    lq.knowledge.delete_document(collection.id, text.id)
    with pytest.raises(NotFound):
        lq.knowledge.document(collection.id, text.id)
    with pytest.raises(InvalidRequest) as missing:
        lq.knowledge.upload(collection.id, tmp_path / "nope.md")
    assert missing.value.field == "path" and missing.value.status is None
    lq.knowledge.delete_collection(collection.id)


def test_assistants_conversations_and_the_socket(lq: Linqra) -> None:
    assistant = lq.assistants.create(name="helper", systemPrompt="Be brief.", status="ACTIVE")
    assert (
        lq.assistants.update(
            assistant.id, {"name": "helper", "systemPrompt": "Be kind.", "status": "ACTIVE"}
        ).version
        == 2
    )
    assert [v.version for v in lq.assistants.versions(assistant.id)] == [2, 1]
    assert lq.assistants.rollback(assistant.id, 1).version == 3
    stream = lq.assistants.chat(assistant.id, "What is Ray?")
    events = list(stream)
    assert isinstance(events[0], chat_events.RunCreated)
    assert isinstance(events[-1], chat_events.RunFinished) and events[-1].status == "completed"
    deltas = "".join(e.text for e in events if isinstance(e, chat_events.MessageDelta))
    assert deltas == stream.text == events[-1].content and "What is Ray?" in deltas
    conversation = stream.conversation_id
    assert conversation and stream.run_id and stream.final is events[-1]
    replay = [e.id for e in lq.conversations.follow(conversation, stream.run_id)]
    assert replay == [e.id for e in events]
    assert lq.conversations.cancel(conversation, stream.run_id).status == "completed"
    reply = lq.assistants.ask(assistant.id, "And Serve?", conversation_id=conversation)
    assert reply.status == "completed" and "And Serve?" in reply.content
    follow_up = lq.conversations.send(conversation, "Thanks")
    assert follow_up.until_done().status == "completed"
    with lq.conversations.socket(conversation) as socket:
        socket.send("Over the socket")
        frames = list(socket.events())
    assert frames[-1].event == "run.completed" and "Over the socket" in (frames[-1].content or "")
    messages = lq.conversations.messages(conversation).all()
    assert [m.role for m in messages] == ["user", "assistant"] * 4
    assert lq.conversations.rename(conversation, "About Ray").title == "About Ray"
    assert [c.id for c in lq.conversations.list(assistant_id=assistant.id)] == [conversation]
    lq.conversations.delete(conversation)
    with pytest.raises(NotFound):
        lq.conversations.get(conversation)
    lq.assistants.delete(assistant.id)


def test_agents_tasks_and_events(lq: Linqra) -> None:
    agent = lq.agents.create("ops", description="the ops agent")
    assert lq.agents.get(agent.id).name == "ops"
    assert lq.agents.update(agent.id, name="ops", description="changed").description == "changed"
    task = lq.agents.create_task(agent.id, SUM)
    assert [t.id for t in lq.agents.tasks(agent.id)] == [task.id]
    run = lq.tasks.execute(task.id, {"values": [1, 2, 3]}, wait=True)
    assert run.status == "COMPLETED" and run.result == 6
    assert lq.tasks.execution(run.id).id == run.id
    assert [r.id for r in lq.tasks.executions(task_id=task.id)] == [run.id]
    assert [r.id for r in lq.agents.executions(agent.id)] == [run.id]
    assert lq.tasks.disable(task.id).enabled is False and lq.tasks.enable(task.id).enabled is True
    updated = lq.tasks.update(task.id, {**SUM, "config": {"expression": "max(values)"}})
    assert updated.version == 2 and lq.tasks.versions(task.id)[0].version == 2
    assert lq.tasks.rollback(task.id, 1).version == 3
    preview = lq.tasks.next_fires("0 0 12 * * ?", timezone="Europe/Paris", count=2)
    assert len(preview.next) == 2
    adhoc = lq.tasks.execute_adhoc({"steps": [_transform(1, "x", {"x": 4})]}, wait=True)
    assert adhoc.status == "COMPLETED" and adhoc.result == 4
    published = lq.events.publish("orders.created", {"id": 1})
    assert published.topic == "orders.created"
    hook = lq.events.create_hook(topic="orders.created")
    assert [h.id for h in lq.events.hooks()] == [hook.id]
    lq.events.delete_hook(hook.id)
    assert lq.events.dead_letters().all() == []
    lq.agents.delete(agent.id)
    with pytest.raises(NotFound):
        lq.agents.get(agent.id)


def test_health_and_readiness(lq: Linqra) -> None:
    assert lq.health().checks == {"store": "ok", "runner": "ok"}
    assert lq.ready().status == "ok"


def test_llm_and_administration(lq: Linqra, gateway: str) -> None:
    assert any(m.id for m in lq.llm.models().data)
    assert lq.llm.usage(group_by="day").items == []
    budget = lq.llm.set_budget("12.50", period="month")
    assert (
        Decimal(budget.budget["amount"]) == Decimal("12.50")
        and lq.llm.budget().budget["period"] == "month"
    )
    lq.llm.delete_budget()
    price = lq.llm.set_price("openai:gpt-4o-mini", input="0.1", output="0.4")
    assert Decimal(str(price.price_per_million["input"])) == Decimal("0.1")
    lq.llm.delete_price("openai:gpt-4o-mini")
    issued = lq.admin.create_api_key("ci", role="viewer")
    assert issued.key.startswith("lq_") and [k.id for k in lq.admin.api_keys()] == [issued.id]
    with Linqra(gateway, api_key=issued.key, team="") as as_key:
        me = as_key.me()
    assert me.source == "api_key" and me.role == "viewer"
    rotated = lq.admin.rotate_api_key(issued.id)
    assert rotated.key != issued.key
    assert lq.admin.revoke_api_key(issued.id).revoked_at
    lq.admin.set_secret("openai", "sk-test-secret-value")
    shown = lq.admin.secrets()
    assert [s.provider for s in shown] == ["openai"] and "sk-test-secret-value" not in str(shown)
    lq.admin.delete_secret("openai")
    assert any(e.action for e in lq.admin.audit())


async def test_the_async_client(gateway: str) -> None:
    async with AsyncLinqra(gateway, team=f"t-{uuid.uuid4().hex[:10]}") as lq:
        wf = await lq.workflows.create(name="a", steps=[_transform(1, "x", {"x": 1})])
        assert [w.id async for w in lq.workflows.list()] == [wf.id]
        record = await lq.executions.run(wf.id)
        assert record.status == "COMPLETED"
        assert [r.status async for r in lq.executions.watch(record.id)] == ["COMPLETED"]
        assistant = await lq.assistants.create(name="a", status="ACTIVE")
        stream = lq.assistants.chat(assistant.id, "hello async")
        names = [e.event async for e in stream]
        assert names[0] == "run.created" and names[-1] == "run.completed"
        async with lq.conversations.socket(stream.conversation_id) as socket:
            await socket.send("and the socket")
            last = [e async for e in socket.events()][-1]
        assert last.event == "run.completed"
        results = await asyncio.gather(*(lq.workflows.get(wf.id) for _ in range(5)))
        assert {w.id for w in results} == {wf.id}


def test_errors_carry_the_servers_code_field_and_request_id(lq: Linqra) -> None:
    with pytest.raises(InvalidRequest) as bad:
        lq.workflows.create(name="bad", steps=[{"step": 1, "target": "nope"}])
    error = bad.value
    assert error.status == 400 and error.code == "invalid_request"
    assert error.field == "steps[0].target" and "nope" in error.message
    assert error.request_id and error.request_id == error.response.headers["x-request-id"]
    assert error.request_id in str(error)
    with pytest.raises(NotFound) as other_team:
        lq.executions.get("ex_does_not_exist")
    assert other_team.value.status == 404


def test_bad_input_is_refused_before_sending_naming_the_field() -> None:
    nowhere = Linqra(f"http://127.0.0.1:{free_port()}", team="t", retry=RetryPolicy(max_retries=0))
    cases = [
        (lambda: nowhere.workflows.create(name="", steps=[]), "name"),
        (lambda: nowhere.workflows.list(limit=0), "limit"),
        (lambda: nowhere.workflows.get("a/b"), "workflow_id"),
        (lambda: nowhere.knowledge.search("c", "q", top_k=1000), "top_k"),
        (lambda: nowhere.executions.start("wf", executed_by="x" * 300), "executedBy"),
        (lambda: nowhere.assistants.chat("a", ""), "message"),
        (lambda: nowhere.llm.set_budget("1", period="year"), "period"),
    ]
    for call, field in cases:
        with pytest.raises(InvalidRequest) as refused:
            call()
        assert refused.value.field == field and refused.value.status is None, field
    with pytest.raises(ServerUnreachable):  # and a valid call does try the (absent) server
        nowhere.workflows.get("wf_1")
    with pytest.raises(InvalidRequest):
        Linqra("127.0.0.1:8000")


def test_an_answer_that_is_not_linqras_is_an_invalid_response(http_service: HttpService) -> None:
    from linqra_client import InvalidResponse, models

    other = Linqra(http_service.url, team="t")
    with pytest.raises(InvalidResponse) as odd:  # a 200 of another service
        other.call(models.Health, "GET", "/api/people/random")
    assert odd.value.code == "invalid_response" and "Health" in odd.value.message
    with pytest.raises(NotFound) as missing:  # its 404 is not the API's envelope
        other.health()
    assert missing.value.code == "http_404"


def test_a_server_error_that_is_not_the_apis_envelope_still_maps() -> None:
    from linqra_client.errors import InternalError, error_from_response

    bare = httpx.Response(
        502, text="<html>bad gateway</html>", request=httpx.Request("GET", "http://x/")
    )
    error = error_from_response(bare)
    assert error.status == 502 and error.code == "http_502" and "bad gateway" in error.message
    odd = httpx.Response(
        500,
        json={"error": {"code": "internal", "message": "boom", "request_id": "r1"}},
        request=bare.request,
    )
    assert isinstance(error_from_response(odd), InternalError)
    assert error_from_response(odd).request_id == "r1"
