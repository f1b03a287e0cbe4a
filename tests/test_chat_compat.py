"""Chatting with an assistant the way existing clients already talk: Linqra's ``POST /linq``
(``link.target: assistant``) and the official ``openai`` SDK with ``model: "assistant:<id>"``,
against the app in process (a live uvicorn server where a real disconnect matters), with the
OpenAI provider served by its local fake."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest
from fastapi.testclient import TestClient

from deployments.app import create_app
from linqra.config import Settings
from linqra.linq import chat_response
from linqra.testing.fake_openai import FakeOpenAI
from tests.support.http import until

TEAM = {"X-Team-Id": "team-a"}
Http = TestClient | httpx.Client


@pytest.fixture
def settings(llm_settings: Settings) -> Settings:
    return llm_settings


@pytest.fixture
def sdk(client: TestClient) -> openai.OpenAI:
    """The openai SDK sending its requests through the in-process app, as team ``team-a``."""
    return openai.OpenAI(
        base_url=f"{client.base_url}/v1",
        api_key="unused",
        max_retries=0,
        default_headers=TEAM,
        http_client=client,
    )


def assistant(http: Http, model: str = "gpt-4o", **body: Any) -> str:
    """An assistant on the fake's ``model`` (priced, so that cost is real)."""
    price = http.put(f"/v1/models/openai:{model}/price", json={"input": "2.50", "output": "10.00"})
    assert price.status_code == 200, price.text
    made = http.post(
        "/v1/assistants",
        json={
            "name": "helper",
            "systemPrompt": "Be brief.",
            "defaultModel": {"provider": "openai", "modelName": model},
            **body,
        },
    )
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def linq_chat(assistant_id: str, message: str, conversation_id: str | None = None) -> Any:
    return {
        "link": {"target": "assistant", "action": "chat"},
        "query": {
            "intent": "support_qna",
            "params": {"userId": "ann"},
            "chat": {
                "assistantId": assistant_id,
                "conversationId": conversation_id,
                "message": message,
                "history": [],
                "context": {},
            },
        },
        "executedBy": "ann",
    }


def upstream(fake: FakeOpenAI, question: str) -> dict[str, Any]:
    """The provider request that answered ``question`` (the fake serves the whole session)."""
    return next(
        r for r in reversed(fake.requests) if r["body"]["messages"][-1]["content"] == question
    )


def stored_reply(http: Http, conversation_id: str) -> dict[str, Any]:
    items = http.get(f"/v1/conversations/{conversation_id}/messages").json()["items"]
    return dict(items[-1])


# -- /linq -------------------------------------------------------------------------------------
def test_linq_chat_answers_in_linqras_shape_and_continues_the_conversation(
    client: TestClient, fake_openai: FakeOpenAI
) -> None:
    helper = assistant(client)
    first = client.post("/linq", json=linq_chat(helper, "hello linq"))
    assert first.status_code == 200, first.text
    out = first.json()
    assert out["metadata"] == {
        "source": "assistant",
        "status": "success",
        "teamId": "team-a",
        "cacheHit": False,
        "error": None,
    }
    result = out["chatResult"]
    conversation = result["conversationId"]
    assert conversation.startswith("conv_") and result["assistantId"] == helper
    assert result["message"] == "Echo: hello linq" and result["intent"] == "support_qna"
    assert (result["modelCategory"], result["modelName"]) == ("openai-chat", "gpt-4o")
    assert result["executedTasks"] == [] and result["taskResults"] == {}
    assert result["metadata"] == {"documents": []}
    usage = result["tokenUsage"]
    assert usage["promptTokens"] > 0 and usage["completionTokens"] == 3
    assert usage["totalTokens"] == usage["promptTokens"] + usage["completionTokens"]
    reply = stored_reply(client, conversation)
    assert reply["id"] == result["messageId"] and reply["content"] == "Echo: hello linq"
    assert Decimal(usage["cost"]) == Decimal(reply["cost"]) > 0 and usage["currency"] == "USD"
    assert usage["costUsd"] == pytest.approx(float(reply["cost"]))

    second = client.post("/linq", json=linq_chat(helper, "and again", conversation)).json()
    assert second["chatResult"]["conversationId"] == conversation
    assert second["chatResult"]["message"] == "Echo: and again"
    prompt = [m["content"] for m in upstream(fake_openai, "and again")["body"]["messages"]]
    assert "hello linq" in prompt and "Echo: hello linq" in prompt  # the history was sent
    items = client.get(f"/v1/conversations/{conversation}/messages").json()["items"]
    assert [m["role"] for m in items] == ["user", "assistant", "user", "assistant"]


def test_linq_chat_bad_input_names_the_field(client: TestClient) -> None:
    helper = assistant(client)
    draft = assistant(client, status="DRAFT")
    cases: list[tuple[Any, int, str]] = [
        ({**linq_chat(helper, "x"), "link": {"target": "assistant", "action": "execute"}}, 400,
         "link.action"),
        ({"link": {"target": "assistant", "action": "chat"}, "query": {}}, 400, "query.chat"),
        ({"link": {"target": "assistant", "action": "chat"}, "query": {"chat": {"message": "x"}}},
         400, "query.chat.assistantId"),
        (linq_chat(helper, ""), 400, "query.chat.message"),
        ({**linq_chat(helper, "x"), "query": {**linq_chat(helper, "x")["query"], "workflowId": "w"}},
         400, "query.workflowId"),
        (linq_chat("asst_nope", "x"), 404, "query.chat.assistantId"),
        (linq_chat(helper, "x", "conv_nope"), 404, "query.chat.conversationId"),
        (linq_chat(draft, "x"), 409, "query.chat.assistantId"),
    ]  # fmt: skip
    for body, status, field in cases:
        answer = client.post("/linq", json=body)
        assert answer.status_code == status, (field, answer.text)
        assert answer.json()["error"]["field"] == field
    assert "DRAFT" in client.post("/linq", json=linq_chat(draft, "x")).json()["error"]["message"]


def test_linq_chat_answers_202_with_the_text_so_far_when_the_reply_takes_longer(
    settings: Settings,
) -> None:
    http_settings = settings.http.model_copy(update={"wait_timeout_seconds": 0.3})
    quick = settings.model_copy(update={"http": http_settings})
    with TestClient(create_app(settings=quick), headers=TEAM) as http:
        helper = assistant(http, model="slow-20-50")  # a second to answer
        answer = http.post("/linq", json=linq_chat(helper, "take your time"))
        assert answer.status_code == 202, answer.text
        out = answer.json()
        assert out["metadata"]["status"] == "running"
        result = out["chatResult"]
        run = f"/v1/conversations/{result['conversationId']}/runs/{result['runId']}"
        with http.stream("GET", f"{run}/stream") as rest:
            lines = [line for line in rest.iter_lines() if line.startswith("event:")]
        assert lines[-1] == "event: run.completed"
        reply = stored_reply(http, result["conversationId"])
        assert reply["content"].startswith(result["message"]) and reply["content"].endswith("w49")


def test_chat_result_carries_tasks_documents_and_the_status_in_linqras_words() -> None:
    reply = {
        "status": "cancelled",
        "message_id": "msg_1",
        "content": "Partial [1]",
        "model": "anthropic:claude-sonnet-4-5",
        "usage": {"input_tokens": 7, "cache_read_tokens": 3, "output_tokens": 2},
        "cost": "0.000125",
        "currency": "EUR",
        "citations": [
            {"n": 1, "document_id": "d1", "title": "Guide", "file_name": "g.pdf",
             "page_numbers": "3", "collection": "kc_1", "score": 0.9, "chunk_index": 4,
             "text": "snippet"}
        ],
        "task_results": [
            {"task_id": "tk_1", "task_execution_id": "tx_1", "name": "lookup",
             "status": "completed", "answer": "42", "documents": [{"id": "d"}], "error": None}
        ],
    }  # fmt: skip
    answer = chat_response(
        reply, team_id="t", assistant_id="a", conversation_id="c", run_id="r", intent=None
    ).model_dump()
    result = answer["chatResult"]
    assert answer["metadata"]["status"] == "cancelled"
    assert result["executedTasks"] == ["tk_1"]
    assert result["taskResults"]["tk_1"]["answer"] == "42"
    assert result["taskResults"]["tk_1"]["taskExecutionId"] == "tx_1"
    assert result["metadata"]["documents"][0] | {"text": None} == {
        "documentId": "d1",
        "title": "Guide",
        "fileName": "g.pdf",
        "pageNumbers": "3",
        "collectionId": "kc_1",
        "rank": 1,
        "score": 0.9,
        "chunkIndex": 4,
        "text": None,
    }
    usage = result["tokenUsage"]
    assert (usage["promptTokens"], usage["completionTokens"], usage["totalTokens"]) == (10, 2, 12)
    assert usage["costUsd"] is None and usage["cost"] == "0.000125"  # not USD: no costUsd
    assert (result["modelCategory"], result["modelName"]) == ("anthropic-chat", "claude-sonnet-4-5")
    failed = chat_response(
        {"status": "failed", "error": {"code": "provider_error", "message": "down"}},
        team_id="t",
        assistant_id="a",
        conversation_id="c",
        run_id="r",
    ).metadata
    assert (failed.status, failed.error) == ("error", {"code": "provider_error", "message": "down"})


# -- the OpenAI SDK ----------------------------------------------------------------------------
def test_openai_sdk_chats_with_an_assistant_and_continues_by_header_or_metadata(
    sdk: openai.OpenAI, client: TestClient, fake_openai: FakeOpenAI
) -> None:
    model = f"assistant:{assistant(client)}"
    raw = sdk.chat.completions.with_raw_response.create(
        model=model,
        messages=[
            {"role": "system", "content": "IGNORED system prompt"},
            {"role": "user", "content": "first question"},
        ],
    )
    conversation = raw.headers["X-Linqra-Conversation-Id"]
    completion = raw.parse()
    assert completion.choices[0].message.content == "Echo: first question"
    assert completion.choices[0].finish_reason == "stop" and completion.model == model
    assert completion.usage is not None and completion.usage.completion_tokens == 3
    linqra = (completion.model_extra or {})["linqra"]
    assert linqra["conversation_id"] == conversation and linqra["ignored_messages"] == 1
    assert linqra["status"] == "completed" and Decimal(linqra["cost"]["amount"]) > 0
    assert completion.id == f"chatcmpl-{linqra['run_id']}"
    sent = upstream(fake_openai, "first question")["body"]["messages"]
    assert sent[0] == {"role": "system", "content": "Be brief."}  # the assistant's, not ours
    assert not any("IGNORED" in (m["content"] or "") for m in sent)

    again = sdk.chat.completions.with_raw_response.create(
        model=model,
        messages=[{"role": "user", "content": "second question"}],
        extra_headers={"X-Linqra-Conversation-Id": conversation},
    )
    assert again.headers["X-Linqra-Conversation-Id"] == conversation
    assert again.parse().choices[0].message.content == "Echo: second question"
    history = [m["content"] for m in upstream(fake_openai, "second question")["body"]["messages"]]
    assert "first question" in history and "Echo: first question" in history

    third = sdk.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": [{"type": "text", "text": "third question"}]}],
        metadata={"conversation_id": conversation},
    )
    assert (third.model_extra or {})["linqra"]["conversation_id"] == conversation
    items = client.get(f"/v1/conversations/{conversation}/messages").json()["items"]
    assert [m["content"] for m in items if m["role"] == "user"] == [
        "first question",
        "second question",
        "third question",
    ]


def test_openai_sdk_streams_an_assistants_reply_with_the_real_usage(
    sdk: openai.OpenAI, client: TestClient, fake_openai: FakeOpenAI
) -> None:
    model = f"assistant:{assistant(client, model='slow-15-40')}"
    question = f"stream it {uuid.uuid4().hex[:6]}"
    stream = sdk.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": question}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, pieces, sent_at_first, finish, first, last = "", 0, None, None, None, None
    for chunk in stream:
        first = first or chunk
        for choice in chunk.choices:
            if choice.delta.content:
                pieces += 1
                text += choice.delta.content
                if sent_at_first is None:  # how far the provider was when the first piece came
                    sent_at_first = upstream(fake_openai, question)["stream"]["sent"]
            finish = choice.finish_reason or finish
        if chunk.usage is not None:
            last = chunk
    total = 1 + len(question.split()) + 40  # "Echo:", the question, 40 more words
    assert sent_at_first is not None and sent_at_first < total, "the reply was not streamed"
    assert pieces > 10 and finish == "stop" and text.startswith(f"Echo: {question} w0")
    assert first is not None and first.choices[0].delta.role == "assistant"
    conversation = (first.model_extra or {})["linqra"]["conversation_id"]
    reply = stored_reply(client, conversation)
    assert reply["content"] == text
    assert last is not None and last.usage is not None and last.choices == []
    assert last.usage.completion_tokens == reply["usage"]["output_tokens"] == total
    assert last.usage.prompt_tokens > 0
    linqra = (last.model_extra or {})["linqra"]
    assert Decimal(linqra["cost"]["amount"]) == Decimal(reply["cost"]) > 0
    assert linqra["message_id"] == reply["id"] and linqra["model"] == "openai:slow-15-40"


def test_openai_sdk_errors_name_the_field(sdk: openai.OpenAI, client: TestClient) -> None:
    user = [{"role": "user", "content": "hi"}]
    with pytest.raises(openai.NotFoundError) as missing:
        sdk.chat.completions.create(model="assistant:nope", messages=user)  # type: ignore[arg-type]
    assert missing.value.body["field"] == "model"  # type: ignore[index]
    draft = f"assistant:{assistant(client, status='DRAFT')}"
    with pytest.raises(openai.ConflictError) as conflict:
        sdk.chat.completions.create(model=draft, messages=user, stream=True)  # type: ignore[arg-type]
    assert conflict.value.body["field"] == "model"  # type: ignore[index]
    assert "DRAFT" in conflict.value.body["message"]  # type: ignore[index]
    model = f"assistant:{assistant(client)}"
    refusals: list[tuple[dict[str, Any], type[openai.APIStatusError], str]] = [
        ({"messages": [*user, {"role": "assistant", "content": "x"}]}, openai.BadRequestError,
         "messages[1].role"),
        ({"messages": [{"role": "user", "content": ""}]}, openai.BadRequestError,
         "messages[0].content"),
        ({"messages": user, "tools": [{"type": "function", "function": {"name": "f"}}]},
         openai.BadRequestError, "body.tools"),
        ({"messages": user, "extra_headers": {"X-Linqra-Conversation-Id": "conv_nope"}},
         openai.NotFoundError, "X-Linqra-Conversation-Id"),
        ({"messages": user, "metadata": {"conversation_id": "conv_nope"}}, openai.NotFoundError,
         "metadata.conversation_id"),
    ]  # fmt: skip
    for kwargs, error, field in refusals:
        with pytest.raises(error) as refused:
            sdk.chat.completions.create(model=model, **kwargs)
        assert refused.value.body["field"] == field  # type: ignore[index]


@pytest.mark.parametrize("on_disconnect", ["cancel", "continue"])
def test_a_client_leaving_mid_stream_follows_on_disconnect(
    live_url: str, fake_openai: FakeOpenAI, on_disconnect: str
) -> None:
    """A real server and a real connection closed by the SDK mid-stream."""
    with httpx.Client(base_url=live_url, headers=TEAM, timeout=30) as http:
        words = 100 if on_disconnect == "cancel" else 30
        helper = assistant(http, model=f"slow-20-{words}", onDisconnect=on_disconnect)
        sdk = openai.OpenAI(
            base_url=f"{live_url}/v1", api_key="unused", max_retries=0, default_headers=TEAM
        )
        question = f"leave early {uuid.uuid4().hex[:6]}"
        stream = sdk.chat.completions.create(
            model=f"assistant:{helper}",
            messages=[{"role": "user", "content": question}],
            stream=True,
        )
        shown = ""
        ids: dict[str, Any] = {}
        for chunk in stream:
            ids = ids or (chunk.model_extra or {})["linqra"]
            shown += "".join(c.delta.content or "" for c in chunk.choices)
            if shown.count(" ") >= 5:
                break
        stream.close()
        run = f"/v1/conversations/{ids['conversation_id']}/runs/{ids['run_id']}"
        expected = "cancelled" if on_disconnect == "cancel" else "completed"
        until(lambda: http.get(run).json()["status"] == expected, timeout=10)
        upstream_stream = upstream(fake_openai, question)["stream"]
        reply = stored_reply(http, ids["conversation_id"])
        if on_disconnect == "cancel":
            assert upstream_stream["closed_at"] is not None and upstream_stream["sent"] < words
            assert reply["status"] == "cancelled" and reply["content"].startswith(shown.strip())
        else:
            assert upstream_stream["closed_at"] is None and upstream_stream["sent"] == words + 4
            assert reply["status"] == "completed" and reply["content"].endswith(f"w{words - 1}")
