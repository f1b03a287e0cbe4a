"""A client error of the ChatOrchestrator deployment (an unknown or another team's assistant,
conversation or run) answers the same 4xx as before and leaves no ERROR line and no traceback in
the Serve log; a server error is still logged at ERROR.

The gateway's chat goes through :class:`deployments.orchestrator.RemoteChat` to the real
orchestrator class, behind :class:`ServeHandle`: a handle that does what Serve does between the
two deployments (arguments and answers pickled; a method that raises is logged as
``ray.serve._private.replica`` logs it, and reaches the caller as a ``RayTaskError``).
"""

from __future__ import annotations

import dataclasses
import logging
import pickle
from collections.abc import AsyncIterator, Iterator
from typing import Any, cast

import pytest
from fastapi.testclient import TestClient
from ray.exceptions import RayTaskError

from deployments.app import create_app
from deployments.orchestrator import ChatOrchestrator, RemoteChat
from linqra.assistants.chat import ChatService
from linqra.config import Settings
from linqra.errors import NotFound, RateLimited, StoreError

LOCAL = {"provider": "local", "modelName": "local"}
SERVE_LOGGER = "ray.serve"  # ray.serve._private.constants.SERVE_LOGGER_NAME


def _crossed(value: Any) -> Any:
    return pickle.loads(pickle.dumps(value))


def _failed(method: str, exc: Exception) -> Exception:
    """What Serve does with an exception a replica's method raised: ``Request failed.`` at ERROR
    with the traceback in the replica's log, and a ``RayTaskError`` that is also the original
    exception's type for the caller."""
    logging.getLogger(SERVE_LOGGER).exception("Request failed.")
    ray_task_error: Any = RayTaskError  # untyped
    error = ray_task_error(method, "", _crossed(exc), proctitle="replica", ip="127.0.0.1")
    return cast(Exception, error.as_instanceof_cause())


class _Method:
    def __init__(self, target: Any, name: str, stream: bool) -> None:
        self.target, self.name, self.stream = target, name, stream

    def remote(self, *args: Any) -> Any:
        method = getattr(self.target, self.name)
        args = _crossed(args)
        if self.stream:
            return self._stream(method(*args))
        return self._call(method(*args))

    async def _call(self, answer: Any) -> Any:
        try:
            return _crossed(await answer)
        except Exception as exc:
            raise _failed(self.name, exc) from None

    async def _stream(self, items: AsyncIterator[Any]) -> AsyncIterator[Any]:
        try:
            async for item in items:
                yield _crossed(item)
        except Exception as exc:
            raise _failed(self.name, exc) from None


class ServeHandle:
    """A ``DeploymentHandle`` to ``target`` in this process (see the module docstring)."""

    def __init__(self, target: Any, *, stream: bool = False) -> None:
        self.target, self.stream = target, stream

    def options(self, *, stream: bool = False) -> ServeHandle:
        return ServeHandle(self.target, stream=stream)

    def __getattr__(self, name: str) -> _Method:
        return _Method(self.target, name, self.stream)


@dataclasses.dataclass
class Gateway:
    http: TestClient
    chat: ChatService  # the orchestrator's (this process's) chat service
    remote: RemoteChat  # the gateway's, through the handle
    direct: Any  # the system without the orchestrator
    routed: Any  # the system whose chat goes through the orchestrator

    def directly(self, method: str, url: str, team: str = "team-a", **kw: Any) -> Any:
        """The same request answered without the orchestrator (as before it existed)."""
        self.http.app.state.system = self.direct  # type: ignore[attr-defined]
        try:
            return self.http.request(method, url, headers={"X-Team-Id": team}, **kw)
        finally:
            self.http.app.state.system = self.routed  # type: ignore[attr-defined]


@pytest.fixture
def gateway(settings: Settings) -> Iterator[Gateway]:
    """The in-process API whose chat goes through the orchestrator, as in the Serve gateway."""
    with TestClient(create_app(settings=settings), headers={"X-Team-Id": "team-a"}) as http:
        app: Any = http.app
        system = app.state.system
        orchestrator = ChatOrchestrator.func_or_class(settings.model_dump_json())  # type: ignore[attr-defined]

        async def this_process_chat() -> ChatService:
            return system.chat  # type: ignore[no-any-return]

        orchestrator._chat = this_process_chat
        remote = RemoteChat(system.chat, ServeHandle(orchestrator))
        routed = dataclasses.replace(system, chat=remote)
        app.state.system = routed
        try:
            yield Gateway(http, system.chat, remote, system, routed)
        finally:
            app.state.system = system  # the lifespan closes the one it opened


def _logged_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Every record at ERROR or above, or with a traceback."""
    return [
        f"{r.name} {r.levelname} {r.getMessage()}"
        for r in caplog.records
        if r.levelno >= logging.ERROR or r.exc_info
    ]


def _without_request_id(response: Any) -> tuple[int, dict[str, Any]]:
    body = response.json()
    body["error"].pop("request_id", None)
    return response.status_code, body


def test_unknown_and_other_teams_ids_are_the_same_404_and_log_no_error(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    http = gateway.http
    made = http.post("/v1/assistants", json={"name": "helper", "defaultModel": LOCAL})
    assert made.status_code == 201, made.text
    assistant = made.json()["id"]
    first = http.post(f"/v1/assistants/{assistant}/chat", json={"message": "hello"})
    assert first.status_code == 200 and first.json()["status"] == "completed", first.text
    conv, run = first.json()["conversation_id"], first.json()["run_id"]

    caplog.set_level(logging.DEBUG)
    caplog.clear()
    refused = [
        ("team-a", "POST", "/v1/assistants/as_nope/chat", {"message": "hi"}),
        ("team-a", "POST", "/v1/chat/completions",
         {"model": "assistant:as_nope", "messages": [{"role": "user", "content": "hi"}]}),
        ("team-a", "POST", "/v1/conversations/conv_nope/messages", {"message": "hi"}),
        ("team-a", "POST", f"/v1/conversations/{conv}/runs/run_nope/cancel", {}),
        ("team-b", "POST", f"/v1/assistants/{assistant}/chat", {"message": "hi"}),
        ("team-b", "POST", f"/v1/conversations/{conv}/messages", {"message": "hi"}),
        ("team-b", "POST", f"/v1/conversations/{conv}/runs/{run}/cancel", {}),
    ]  # fmt: skip
    for team, method, url, body in refused:
        answer = http.request(method, url, json=body, headers={"X-Team-Id": team})
        assert answer.status_code == 404, (url, answer.text)
        assert answer.json()["error"]["code"] == "not_found"
        before = gateway.directly(method, url, team, json=body)
        assert _without_request_id(answer) == _without_request_id(before), url
    assert _logged_errors(caplog) == []


def test_a_refused_stream_raises_its_error_at_the_gateway_and_logs_no_error(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    async def batches() -> list[Any]:
        return [b async for b in gateway.remote.event_batches("team-a", "run_nope", 0)]

    caplog.set_level(logging.DEBUG)
    portal = gateway.http.portal
    assert portal is not None
    with pytest.raises(NotFound) as raised:
        portal.call(batches)
    assert raised.value.to_dict() == {
        "code": "not_found",
        "message": "run 'run_nope' not found",
        "field": "run_id",
    }
    assert _logged_errors(caplog) == []


def test_a_rate_limit_keeps_its_retry_after_and_logs_no_error(
    gateway: Gateway, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def limited(*args: Any, **kwargs: Any) -> Any:
        err = RateLimited("too many chats", field="team")
        err.retry_after = 7  # type: ignore[attr-defined]
        raise err

    monkeypatch.setattr(gateway.chat, "send", limited)
    caplog.set_level(logging.DEBUG)
    answer = gateway.http.post("/v1/assistants/as_any/chat", json={"message": "hi"})
    assert answer.status_code == 429, answer.text
    assert answer.headers["Retry-After"] == "7"
    error = answer.json()["error"]
    assert (error["code"], error["message"], error["field"]) == (
        "rate_limited",
        "too many chats",
        "team",
    )
    assert _logged_errors(caplog) == []


@pytest.mark.parametrize(
    ("raised", "status"),
    [(RuntimeError("boom"), 500), (StoreError("the store is down", retry_after=2), 503)],
)
def test_a_server_error_in_the_orchestrator_is_still_logged_at_error(
    gateway: Gateway,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    raised: Exception,
    status: int,
) -> None:
    async def failing(*args: Any, **kwargs: Any) -> Any:
        raise raised

    monkeypatch.setattr(gateway.chat, "send", failing)
    caplog.set_level(logging.DEBUG)
    answer = gateway.http.post("/v1/assistants/as_any/chat", json={"message": "hi"})
    assert answer.status_code == status, answer.text
    serve_errors = [
        r
        for r in caplog.records
        if r.name == SERVE_LOGGER and r.levelno == logging.ERROR and r.exc_info
    ]
    assert [r.getMessage() for r in serve_errors] == ["Request failed."]
