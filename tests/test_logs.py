"""Structured logs (issue 16, part 6): every line of an execution names its team, execution,
request and trace, in each process it touches; no secret reaches a log line."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

from linqra import logs, tracing
from linqra.config import LoggingSettings, Settings
from linqra.system import System

TEAM = "team-logs"
SECRET = "SUPERSECRET0123456789"
LEAKY = {"name": "leaky", "steps": [
    {"step": 1, "target": "http", "action": "fetch",
     "intent": f"http://127.0.0.1:9/api?api_key={SECRET}",
     "headers": {"Authorization": f"Bearer {SECRET}"}, "retry": {"maxAttempts": 1}},
]}  # fmt: skip


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    """JSON lines of every record the root logger sees, as a fresh process would write them."""
    stream = io.StringIO()
    handler = logs._stderr_handler(LoggingSettings(), stream)
    logs.install_filters(handler)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _parsed(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


async def test_an_executions_lines_name_its_request_team_execution_and_trace(
    system: System, lines: io.StringIO
) -> None:
    tracing.install(TracerProvider())
    try:
        wf = await system.workflows.create(TEAM, {"name": "one", "steps": [
            {"step": 1, "target": "noop"}]})  # fmt: skip
        with logs.bind(request_id="req-42"), tracing.span("request"):
            trace_id = tracing.trace_id(tracing.traceparent())
            record = await system.runs.run_execution(TEAM, 30, workflow_id=wf.id)
    finally:
        tracing.uninstall()
    assert record["status"] == "COMPLETED"
    mine = [line for line in _parsed(lines) if line.get("execution_id") == record["id"]]
    assert any("execution start" in line["message"] for line in mine)
    for line in mine:
        assert line["team"] == TEAM
        assert line["request_id"] == "req-42"
        assert line["trace_id"] == trace_id
        assert {"time", "level", "logger", "message"} <= line.keys()


async def test_no_secret_reaches_a_log_line(system: System, lines: io.StringIO) -> None:
    wf = await system.workflows.create(TEAM, LEAKY)
    record = await system.runs.run_execution(TEAM, 30, workflow_id=wf.id)
    assert record["status"] == "FAILED"
    log = logging.getLogger("linqra.test")
    url = f"https://user:{SECRET}@example.test/x?token={SECRET}"
    log.warning("calling %s with %s", url, {"Authorization": f"Bearer {SECRET}"})
    log.warning("key lq_%s and sk-proj-%s", SECRET, SECRET)
    try:
        raise RuntimeError(f"provider said no to password={SECRET}")
    except RuntimeError:
        log.exception("the call failed")
    text = lines.getvalue()
    assert "calling https://user:***@example.test/x?token=***" in text
    assert "the call failed" in text and "RuntimeError" in text
    assert SECRET not in text


def test_a_requests_lines_name_its_request_id_and_team(client: Any, lines: io.StringIO) -> None:
    created = client.post("/v1/workflows", json={"name": "one", "steps": [
        {"step": 1, "target": "noop"}]})  # fmt: skip
    answer = client.post(
        f"/v1/workflows/{created.json()['id']}/execute?wait=true",
        json={},
        headers={"X-Request-Id": "req-from-the-client"},
    )
    assert answer.status_code == 200, answer.text
    record = answer.json()
    mine = [line for line in _parsed(lines) if line.get("execution_id") == record["id"]]
    assert mine and all(line["request_id"] == "req-from-the-client" for line in mine)
    assert all(line["team"] == "team-a" for line in mine)


@pytest.mark.ray
def test_a_ray_workers_lines_are_json_with_the_executions_ids(
    ray_cluster: Any, ray_settings: Settings
) -> None:
    import asyncio

    from actors.cluster import start_cluster
    from actors.events import open_bus
    from actors.handles import RayLauncher

    start_cluster(ray_settings)

    async def run() -> dict[str, Any]:
        system = await System.open(
            ray_settings, launcher=RayLauncher(ray_settings), events=open_bus(ray_settings)
        )
        try:
            wf = await system.workflows.create(TEAM, {"name": "ray", "steps": [
                {"step": 1, "target": "wait", "params": {"seconds": 0.01}}]})  # fmt: skip
            with tracing.span("request"):  # the driver's System exports spans too
                return await system.runs.run_execution(TEAM, 60, workflow_id=wf.id)
        finally:
            await system.close()

    record = asyncio.run(run())
    assert record["status"] == "COMPLETED"
    folder = Path(ray_cluster.address_info["session_dir"]) / "logs"
    deadline = time.monotonic() + 30
    while True:  # the runner's "execution start" line, as JSON, in its worker's log
        found = []
        for path in folder.glob("worker-*"):
            for raw in path.read_text(errors="replace").splitlines():
                if record["id"] in raw and raw.startswith("{"):
                    found.append(json.loads(raw))
        starts = [line for line in found if "execution start" in line.get("message", "")]
        if starts:
            break
        assert time.monotonic() < deadline, "no JSON line of the execution in the workers' logs"
        time.sleep(0.1)
    (start,) = starts
    assert start["execution_id"] == record["id"] and start["team"] == TEAM
    assert start["trace_id"] == record["trace_id"]  # the session cluster is traced
    assert "actor_id" in start  # Ray's own fields beside ours
