"""``linqra_client`` when things go wrong, on real servers: a 429 from the gateway's rate limit
and a 503 from a frozen MongoDB are retried after the server's ``Retry-After``; a stream whose
connection is cut (a TCP proxy in between drops it) is resumed with ``Last-Event-ID`` without a
gap or a repeat; and the client on the Ray Serve gateway."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from deployments.app import create_app
from linqra.config import RateLimitSettings
from linqra_client import Linqra, RateLimited, RetryPolicy, Unavailable, chat_events
from tests.conftest import make_settings
from tests.support.live import CuttingProxy, serve_in_thread
from tests.support.servers import HttpService, mongo_process


class Recording(RetryPolicy):
    """The default policy, noting each retry of a response (status, the wait it chose)."""

    def __init__(self, on_retry: object = None, **kwargs: float) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        object.__setattr__(self, "seen", [])
        object.__setattr__(self, "on_retry", on_retry)

    def after_response(self, attempt: int, response: httpx.Response) -> float | None:
        delay = super().after_response(attempt, response)
        self.seen.append((response.status_code, response.headers.get("retry-after"), delay))  # type: ignore[attr-defined]
        if delay is not None and callable(self.on_retry):  # type: ignore[attr-defined]
            self.on_retry()  # type: ignore[attr-defined]
        return delay


@pytest.fixture
def base_settings(
    tmp_path: Path, http_service: HttpService, http_service_b: HttpService, milvus_uri: str
):  # type: ignore[no-untyped-def]
    return make_settings(tmp_path, http_service, http_service_b, milvus=milvus_uri)


def test_a_429_is_retried_after_the_servers_retry_after(base_settings) -> None:  # type: ignore[no-untyped-def]
    limits = RateLimitSettings(team="3 per 4 seconds")
    app = create_app(settings=base_settings.model_copy(update={"rate_limits": limits}))
    with serve_in_thread(app) as url:
        strict = Linqra(url, team="busy", retry=RetryPolicy(max_retries=0))
        refused = None
        for _ in range(10):  # three pass, the fourth in the same window is refused
            try:
                strict.workflows.list().page()
            except RateLimited as exc:
                refused = exc
                break
        assert refused is not None and refused.status == 429 and refused.code == "rate_limited"
        assert refused.retry_after is not None and 0 < refused.retry_after <= 4
        policy = Recording(max_retries=5)
        patient = Linqra(url, team="busy", retry=policy)
        started = time.monotonic()
        assert patient.workflows.list().page().total == 0  # answered once the window allows
        waited = [delay for status, _, delay in policy.seen if status == 429]  # type: ignore[attr-defined]
        assert waited, "the call right after a refusal was refused too, and retried"
        assert all(status == 429 and header for status, header, _ in policy.seen)  # type: ignore[attr-defined]
        assert time.monotonic() - started >= min(waited)
        # a wait longer than the policy allows is raised at once, not slept through
        hasty = Linqra(
            url, team="busy", retry=RetryPolicy(max_retries=3, max_retry_after_seconds=0)
        )
        for _ in range(10):
            try:
                hasty.workflows.list().page()
            except RateLimited:
                break
        else:
            pytest.fail("no 429 raised")


def test_a_503_from_a_store_outage_is_retried_until_it_recovers(
    base_settings, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    with mongo_process(tmp_path / "mongo") as mongo:
        settings = base_settings.model_copy(
            update={"store_url": mongo.url, "store_timeout_seconds": 1.0}
        )
        with serve_in_thread(create_app(settings=settings)) as url:
            client = Linqra(url, team="outage")
            made = client.workflows.create(name="w", steps=[{"step": 1, "target": "noop"}])
            with pytest.raises(Unavailable) as down:
                mongo.freeze()
                Linqra(url, team="outage", retry=RetryPolicy(max_retries=0)).workflows.get(made.id)
            assert down.value.status == 503 and down.value.retry_after is not None
            policy = Recording(on_retry=mongo.thaw, max_retries=3)  # recovers during the wait
            again = Linqra(url, team="outage", retry=policy)
            mongo.freeze()
            assert again.workflows.get(made.id).id == made.id
            assert [s for s, _, _ in policy.seen] == [503]  # type: ignore[attr-defined]
            assert policy.seen[0][1] is not None  # type: ignore[attr-defined]


@pytest.fixture
def proxied(llm_settings) -> Iterator[tuple[CuttingProxy, Linqra]]:  # type: ignore[no-untyped-def]
    """A client whose connections go through a proxy the test can cut (LLMs: the local fakes)."""
    with serve_in_thread(create_app(settings=llm_settings)) as url:
        proxy = CuttingProxy(int(url.rsplit(":", 1)[1]))
        try:
            with Linqra(proxy.url, team=f"t-{uuid.uuid4().hex[:8]}") as client:
                yield proxy, client
        finally:
            proxy.close()


def test_an_execution_stream_cut_midway_resumes_where_it_left_off(
    proxied: tuple[CuttingProxy, Linqra],
) -> None:
    proxy, client = proxied
    wf = client.workflows.create(
        name="three",
        steps=[{"step": i, "target": "wait", "params": {"seconds": 0.4}} for i in (1, 2, 3)],
    )
    run = client.executions.start(wf.id)
    records, cut = [], False
    for record in client.executions.watch(run.id):
        records.append(record)
        if not cut and record.status == "RUNNING":
            proxy.cut()  # the next read fails: the client connects again
            cut = True
    assert cut and proxy.connections >= 2  # the first connection, and the resumed stream
    assert records[-1].status == "COMPLETED" and len(records[-1].steps) == 3
    dumps = [r.model_dump_json() for r in records]
    assert len(dumps) == len(set(dumps)), "an event was sent twice"
    finished = [sum(s.status == "COMPLETED" for s in r.steps or []) for r in records]
    assert finished == sorted(finished)


def test_a_chat_stream_cut_midway_resumes_without_a_gap_or_a_repeat(
    proxied: tuple[CuttingProxy, Linqra],
) -> None:
    proxy, client = proxied
    # the fake OpenAI's slow model: 40 words, one every 20 ms, so the cut comes mid-answer
    assistant = client.assistants.create(
        name="a", status="ACTIVE", defaultModel={"provider": "openai", "modelName": "slow-20-40"}
    )
    stream = client.assistants.chat(assistant.id, "Tell me about resumable streams")
    events = []
    for event in stream:
        events.append(event)
        if sum(isinstance(e, chat_events.MessageDelta) for e in events) == 3:
            proxy.cut()
    assert proxy.connections >= 2
    seqs = [int(e.id.rsplit(":", 1)[1]) for e in events if e.id]
    assert seqs == list(range(1, len(seqs) + 1))
    assert isinstance(events[-1], chat_events.RunFinished) and events[-1].status == "completed"
    deltas = "".join(e.text for e in events if isinstance(e, chat_events.MessageDelta))
    assert stream.text == events[-1].content == deltas and len(deltas.split()) >= 40


def test_a_connection_that_never_opens_is_retried_then_raised() -> None:
    from linqra_client import APIConnectionError
    from tests.support.servers import free_port

    class Counting(RetryPolicy):
        def after_error(
            self, attempt: int, method: str, error: httpx.TransportError
        ) -> float | None:
            tries.append(type(error).__name__)
            return super().after_error(attempt, method, error)

    tries: list[str] = []
    client = Linqra(
        f"http://127.0.0.1:{free_port()}",
        team="t",
        retry=Counting(max_retries=2, backoff_seconds=0.01),
    )
    with pytest.raises(APIConnectionError) as failed:
        client.workflows.create(name="w", steps=[{"step": 1, "target": "noop"}])  # a POST too
    assert "ConnectError" in str(failed.value) and tries == ["ConnectError"] * 3


@pytest.mark.ray
def test_the_client_on_the_ray_serve_gateway(gateway_url: str) -> None:
    with Linqra(gateway_url, team=f"t-{uuid.uuid4().hex[:8]}") as client:
        assert client.health().status == "ok"
        wf = client.workflows.create(
            name="on-ray",
            mode="dag",
            steps=[
                {
                    "step": 1,
                    "target": "transform",
                    "params": {"expression": "a", "input": {"a": 1}},
                },
                {
                    "step": 2,
                    "target": "transform",
                    "params": {"expression": "b", "input": {"b": 2}},
                },
            ],
        )
        record = client.executions.run(wf.id)
        assert record.status == "COMPLETED"
        assistant = client.assistants.create(name="r", status="ACTIVE")
        stream = client.assistants.chat(assistant.id, "hello from the client")
        assert stream.until_done().status == "completed" and "hello from the client" in stream.text
        follow = client.conversations.follow(stream.conversation_id, stream.run_id)
        assert [e.event for e in follow][-1] == "run.completed"


def test_an_oidc_access_token_signs_in_and_a_bad_one_is_unauthenticated(
    base_settings,
    oidc_provider,  # type: ignore[no-untyped-def]
) -> None:
    from linqra.config import AuthSettings
    from linqra_client import Unauthenticated

    oidc = base_settings.model_copy(
        update={"auth": AuthSettings(mode="oidc", oidc=oidc_provider.settings())}
    )
    with serve_in_thread(create_app(settings=oidc)) as url:
        with Linqra(url, token=oidc_provider.token("alice"), team="") as alice:
            me = alice.me()
            assert (me.source, me.user_id, me.team_id) == ("jwt", "user-alice", "team-a")
            assert alice.workflows.list().page().total == 0
        stranger = Linqra(url, token="not-a-token", team="")
        with pytest.raises(Unauthenticated) as refused:
            stranger.workflows.list().page()
        assert refused.value.status == 401 and refused.value.request_id


def test_a_call_past_its_timeout_raises_and_a_post_is_not_sent_twice(base_settings) -> None:  # type: ignore[no-untyped-def]
    from linqra_client import APITimeoutError

    with serve_in_thread(create_app(settings=base_settings)) as url:
        client = Linqra(url, team="slow")
        wf = client.workflows.create(
            name="slow", steps=[{"step": 1, "target": "wait", "params": {"seconds": 1.5}}]
        )
        hasty = Linqra(url, team="slow", timeout=0.3)
        with pytest.raises(APITimeoutError):
            hasty.executions.run(wf.id)  # POST …/execute?wait=true: not retried on a read timeout
        runs = client.executions.list(workflow_id=wf.id).all()
        assert len(runs) == 1
        assert client.executions.wait(runs[0].id, timeout=30).status == "COMPLETED"
