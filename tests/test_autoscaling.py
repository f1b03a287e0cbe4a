"""Serve autoscaling (issue 17, part 2): the gateway grows from one replica to several under
load and shrinks back when idle — a second copy of Linqra's gateway application on the session
cluster, autoscaled at small numbers (the shipped ones are in configs/serve.yaml) so two cores
can show it."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest

from linqra.config import Settings

pytestmark = pytest.mark.ray

APP, PREFIX, TEAM = "linqra-autoscale", "/as", "team-autoscale"
AUTOSCALING = {
    "min_replicas": 1,
    "max_replicas": 2,
    "target_ongoing_requests": 2,
    "upscale_delay_s": 0.5,
    "downscale_delay_s": 2,
    "metrics_interval_s": 0.5,
    "look_back_period_s": 1,
}


def _running(name: str) -> int:
    from ray import serve

    app = serve.status().applications.get(APP)
    if app is None or name not in app.deployments:
        return 0
    return int(app.deployments[name].replica_states.get("RUNNING", 0))


def _until(condition: Any, timeout: float, what: str) -> float:
    t0 = time.monotonic()
    while not condition():
        assert time.monotonic() - t0 < timeout, f"not within {timeout}s: {what}"
        time.sleep(0.1)
    return time.monotonic() - t0


@pytest.fixture(scope="module")
def autoscaled(gateway_url: str, ray_settings: Settings) -> Any:
    from ray import serve

    from deployments.gateway import Gateway
    from deployments.orchestrator import ChatOrchestrator

    shipped = ray_settings.model_dump_json()
    quick = {"graceful_shutdown_timeout_s": 1, "graceful_shutdown_wait_loop_s": 0.2}
    orchestrator = ChatOrchestrator.options(**quick).bind(shipped)  # type: ignore[attr-defined]
    app = Gateway.options(autoscaling_config=AUTOSCALING, **quick).bind(shipped, orchestrator)  # type: ignore[attr-defined]
    serve.run(app, name=APP, route_prefix=PREFIX)
    yield f"{gateway_url}{PREFIX}"
    serve.delete(APP)


def test_the_gateway_scales_out_under_load_and_back_in_when_idle(autoscaled: str) -> None:
    api = httpx.Client(base_url=autoscaled, headers={"X-Team-Id": TEAM}, timeout=120)
    created = api.post("/v1/workflows", json={"name": "slow", "steps": [
        {"step": 1, "target": "wait", "params": {"seconds": 2}}]})  # fmt: skip
    assert created.status_code == 201, created.text
    url = f"/v1/workflows/{created.json()['id']}/execute?wait=true"
    assert _running("Gateway") == 1

    stop = threading.Event()
    answers: list[int] = []

    def client() -> None:  # one request at a time, each held ~2 s by its execution
        with httpx.Client(base_url=autoscaled, headers={"X-Team-Id": TEAM}, timeout=120) as c:
            while not stop.is_set():
                answers.append(c.post(url, json={}).status_code)

    clients = [threading.Thread(target=client) for _ in range(8)]
    for thread in clients:
        thread.start()
    try:  # 8 requests in flight, 2 wanted per replica: it grows to its maximum, 2
        up = _until(lambda: _running("Gateway") == 2, 90, "a second replica under load")
        served = len(answers)
        _until(lambda: len(answers) > served + 8, 60, "requests answered with two replicas")
    finally:
        stop.set()
        for thread in clients:
            thread.join(120)
    assert answers and set(answers) == {200}, "every request answered while it scaled"
    down = _until(lambda: _running("Gateway") == 1, 120, "back to one replica when idle")
    print(f"second replica after {up:.1f}s of load; back to one {down:.1f}s after it stopped")
