"""A conversation over its WebSocket, in process: send and receive the run's events as frames,
cancel, resume from an event id, ping; bad frames are answered with an ``error`` frame and the
socket stays usable; a caller without the team or the permission is refused at the handshake."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from linqra.config import Settings


@pytest.fixture
def settings(llm_settings: Settings) -> Settings:
    return llm_settings


def conversation(client: TestClient, model: str | None = None) -> tuple[str, str]:
    body: dict[str, Any] = {"name": "socket"}
    if model:
        client.put(f"/v1/models/openai:{model}/price", json={"input": "2.5", "output": "10"})
        body["defaultModel"] = {"provider": "openai", "modelName": model}
    assistant = client.post("/v1/assistants", json=body).json()["id"]
    first = client.post(f"/v1/assistants/{assistant}/chat", json={"message": "hello"}).json()
    return assistant, str(first["conversation_id"])


def frames_until(socket: Any, event: str) -> list[dict[str, Any]]:
    seen = []
    while True:
        frame = socket.receive_json()
        seen.append(frame)
        if frame.get("type") == "event" and frame["event"] == event:
            return seen


def test_send_and_receive_the_events_as_frames(client: TestClient) -> None:
    _, conv = conversation(client)
    with client.websocket_connect(f"/v1/conversations/{conv}/ws") as socket:
        socket.send_json({"type": "ping"})
        assert socket.receive_json() == {"type": "pong"}
        socket.send_json({"type": "send", "message": "what now?"})
        frames = frames_until(socket, "run.completed")
    events = [f["event"] for f in frames]
    assert events[0] == "run.created" and "message.delta" in events
    run = frames[0]["data"]["run_id"]
    assert [f["id"] for f in frames] == [f"{run}:{n}" for n in range(1, len(frames) + 1)]
    text = "".join(f["data"]["text"] for f in frames if f["event"] == "message.delta")
    assert text == frames[-1]["data"]["content"] and "what now?" in text
    items = client.get(f"/v1/conversations/{conv}/messages").json()["items"]
    assert items[-1]["content"] == text and items[-2]["content"] == "what now?"


def test_bad_frames_get_an_error_and_the_socket_stays_usable(client: TestClient) -> None:
    _, conv = conversation(client)
    with client.websocket_connect(f"/v1/conversations/{conv}/ws") as socket:
        for raw, field in [
            ("{not json", "frame"),
            ("[1, 2]", "frame"),
            ('{"type": "dance"}', "type"),
            ('{"type": "send", "message": ""}', "message"),
            ('{"type": "send", "message": "x", "doubleTexting": "shout"}', "doubleTexting"),
            ('{"type": "cancel"}', "run_id"),
            ('{"type": "resume", "run_id": "run_x", "last_event_id": "run_y:3"}', "Last-Event-ID"),
        ]:
            socket.send_text(raw)
            frame = socket.receive_json()
            assert frame["type"] == "error", raw
            assert frame["error"]["field"] == field, (raw, frame)
        socket.send_text('{"type": "resume", "run_id": "run_nobody"}')
        assert socket.receive_json()["error"]["code"] == "not_found"
        socket.send_json({"type": "ping"})
        assert socket.receive_json() == {"type": "pong"}


def test_cancel_and_resume_over_the_socket(client: TestClient) -> None:
    _, conv = conversation(client, "slow-20-100")
    with client.websocket_connect(f"/v1/conversations/{conv}/ws") as socket:
        socket.send_json({"type": "send", "message": "go on"})
        first = frames_until(socket, "message.delta")
        run = first[0]["data"]["run_id"]
        socket.send_json({"type": "cancel", "run_id": run})
        rest: list[dict[str, Any]] = []
        while not (
            any(f.get("type") == "run" for f in rest)
            and any(f.get("event") == "run.cancelled" for f in rest)
        ):  # the cancel's answer and the run's last event, in either order
            rest.append(socket.receive_json())
        assert next(f for f in rest if f.get("type") == "run")["data"]["status"] == "cancelled"
        # a second socket resumes the same run after the second event: the rest, nothing twice
    with client.websocket_connect(f"/v1/conversations/{conv}/ws") as again:
        again.send_json({"type": "resume", "run_id": run, "last_event_id": f"{run}:2"})
        replay = frames_until(again, "run.cancelled")
    assert [f["id"] for f in replay] == [f"{run}:{n}" for n in range(3, len(replay) + 3)]


def test_the_handshake_refuses_a_foreign_conversation_or_no_team(client: TestClient) -> None:
    _, conv = conversation(client)
    with (
        pytest.raises(WebSocketDisconnect) as foreign,
        client.websocket_connect(
            f"/v1/conversations/{conv}/ws", headers={"X-Team-Id": "team-b"}
        ) as socket,
    ):
        socket.receive_json()
    assert foreign.value.code == 4404
    with (
        pytest.raises(WebSocketDisconnect) as nobody,
        client.websocket_connect(
            f"/v1/conversations/{conv}/ws", headers={"X-Team-Id": ""}
        ) as socket,
    ):
        socket.receive_json()
    assert nobody.value.code in (4400, 4401)
    # a browser cannot set headers on a WebSocket: ?team= stands for X-Team-Id
    with client.websocket_connect(
        f"/v1/conversations/{conv}/ws?team=team-a", headers={"X-Team-Id": ""}
    ) as socket:
        socket.send_json({"type": "ping"})
        assert socket.receive_json() == {"type": "pong"}
