"""With the cache in Redis, a run's events are in Redis: a stream cut on one gateway process is
resumed on another (two apps, one store, one real redis-server), from ``Last-Event-ID``,
nothing lost and nothing twice."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from deployments.app import create_app
from linqra.config import Settings
from tests.support.sse import sse

TEAM = {"X-Team-Id": "team-a"}


def test_a_stream_cut_on_one_process_resumes_on_another(
    llm_settings: Settings, redis_url: str
) -> None:
    shared = llm_settings.model_copy(update={"cache_url": redis_url}).portable()
    with (
        TestClient(create_app(settings=shared), headers=TEAM) as first,
        TestClient(create_app(settings=shared), headers=TEAM) as second,
    ):
        priced = first.put("/v1/models/openai:slow-10-60/price", json={"input": "1", "output": "2"})
        assert priced.status_code == 200
        assistant = first.post(
            "/v1/assistants",
            json={"name": "r", "defaultModel": {"provider": "openai", "modelName": "slow-10-60"}},
        ).json()["id"]
        seen: list[tuple[str, str, dict[str, Any]]] = []
        body = {"message": "across processes", "stream": True}
        with first.stream("POST", f"/v1/assistants/{assistant}/chat", json=body) as answer:
            for event in sse(answer.iter_lines()):
                seen.append(event)
                if sum(name == "message.delta" for _, name, _ in seen) == 4:
                    break
        created = seen[0][2]
        url = f"/v1/conversations/{created['conversation_id']}/runs/{created['run_id']}/stream"
        with second.stream("GET", url, headers={"Last-Event-ID": seen[-1][0]}) as rest:
            tail = list(sse(rest.iter_lines()))
    seqs = [int(i.rsplit(":", 1)[1]) for i, _, _ in seen + tail]
    assert seqs == list(range(1, len(seqs) + 1))
    assert tail[-1][1] == "run.completed"
    text = "".join(d["text"] for _, n, d in seen + tail if n == "message.delta")
    assert text == tail[-1][2]["content"] and text.startswith("Echo: across processes w0")
