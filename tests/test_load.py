"""Load through the real gateway on Ray (issue 9): nothing hangs, everything ends terminal.

Not benchmarks: each test asserts that after a burst every team is still served within
normal time and that every execution reaches a terminal state. Before the fix, clients
giving up after 100 ms killed the gateway's store writer (creates, executes and chats hung
until the replica was killed), and 200 concurrent executions with a ``wait`` step left 179
RUNNING (149 of 200 here, with a 3 s wait). Sized for a 2-core machine.

Behind the HAProxy ingress the tests use, a client that goes away does not cancel its
handler in the replica, so the first test guards the gateway rather than reproducing the
dead writer; ``tests/test_store_load.py`` reproduces that in process.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.ray

TEAMS = [f"load-team-{i}" for i in range(6)]
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"}
NOOP = {"name": "load", "steps": [{"step": 1, "target": "noop", "params": {"ok": True}}]}


async def _impatient_creates(gateway_url: str, count: int, clients: int) -> dict[str, int]:
    """``count`` POST /v1/workflows from ``clients`` clients that each give up 20 ms after
    sending (connecting may take its time: the request is sent, then abandoned mid-flight).

    A bounded number of clients (not ``count`` at once) keeps the gateway busy with requests
    that are being handled, not queued, when their clients go away."""
    outcome = {"answered": 0, "gave_up": 0}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=0)
    slots = asyncio.Semaphore(clients)
    impatient = httpx.Timeout(
        10.0, read=0.02
    )  # 100 ms was answered in full once the store got faster
    async with httpx.AsyncClient(base_url=gateway_url, timeout=impatient, limits=limits) as client:

        async def one(i: int) -> None:
            async with slots:
                try:
                    await client.post(
                        "/v1/workflows", json=NOOP, headers={"X-Team-Id": TEAMS[i % len(TEAMS)]}
                    )
                    outcome["answered"] += 1
                except httpx.TimeoutException:
                    outcome["gave_up"] += 1

        await asyncio.gather(*(one(i) for i in range(count)))
    return outcome


def test_clients_giving_up_mid_request_leave_the_gateway_serving_every_team(
    gateway_url: str,
) -> None:
    t0 = time.monotonic()
    outcome = asyncio.run(_impatient_creates(gateway_url, 300, clients=50))
    burst = time.monotonic() - t0
    assert outcome["gave_up"] > 0, outcome  # the burst did abandon requests mid-flight

    t1 = time.monotonic()
    for team in TEAMS:  # each team creates and executes within normal time
        with httpx.Client(base_url=gateway_url, headers={"X-Team-Id": team}, timeout=30) as api:
            t = time.monotonic()
            created = api.post("/v1/workflows", json=NOOP)
            assert created.status_code == 201, created.text
            run = api.post(f"/v1/workflows/{created.json()['id']}/execute", params={"wait": "true"})
            assert run.status_code == 200, run.text
            assert run.json()["status"] == "COMPLETED" and run.json()["result"] == {"ok": True}
            health = api.get("/healthz")
            assert health.status_code == 200, health.text
            assert time.monotonic() - t < 10, f"{team} waited {time.monotonic() - t:.1f}s"
    after = time.monotonic() - t1
    print(f"\n300 impatient creates in {burst:.2f}s {outcome}; 6 teams served in {after:.2f}s")


async def _start_all(gateway_url: str, workflow_id: str, count: int, team: str) -> list[str]:
    limits = httpx.Limits(max_connections=50)
    headers = {"X-Team-Id": team}
    async with httpx.AsyncClient(
        base_url=gateway_url, headers=headers, timeout=60, limits=limits
    ) as client:

        async def one(i: int) -> str:
            response = await client.post(
                f"/v1/workflows/{workflow_id}/execute", json={"params": {"i": i}}
            )
            assert response.status_code == 202, response.text
            return str(response.json()["id"])

        return list(await asyncio.gather(*(one(i) for i in range(count))))


def test_200_concurrent_executions_with_a_wait_step_all_end_terminal(gateway_url: str) -> None:
    team = "load-waiters"
    wait_seconds = 3
    with httpx.Client(base_url=gateway_url, headers={"X-Team-Id": team}, timeout=60) as api:
        created = api.post(
            "/v1/workflows",
            json={
                "name": "waiters",
                "steps": [
                    {"step": 1, "target": "wait", "params": {"seconds": wait_seconds}},
                    {"step": 2, "target": "noop", "params": {"i": "{{params.i}}"}},
                ],
            },
        )
        assert created.status_code == 201, created.text
        workflow_id = created.json()["id"]

        t0 = time.monotonic()
        ids = asyncio.run(_start_all(gateway_url, workflow_id, 200, team))
        started = time.monotonic() - t0
        assert len(set(ids)) == 200

        def counts() -> dict[str, int]:
            out: dict[str, int] = {}
            for status in ("PENDING", "RUNNING", *sorted(TERMINAL)):
                page = api.get(
                    "/v1/executions",
                    params={"workflow_id": workflow_id, "status": status, "limit": 1},
                )
                assert page.status_code == 200, page.text
                out[status] = int(page.json()["total"])
            return out

        deadline = time.monotonic() + 90
        seen: dict[str, Any] = {}
        while time.monotonic() < deadline:
            seen = counts()
            if sum(seen[s] for s in TERMINAL) == 200:
                break
            time.sleep(0.5)
        finished = time.monotonic() - t0
        assert sum(seen[s] for s in TERMINAL) == 200, f"not terminal after 90 s: {seen}"
        assert seen["COMPLETED"] == 200, seen
        sample = api.get(f"/v1/executions/{ids[-1]}").json()
        assert sample["status"] == "COMPLETED" and sample["result"] == {"i": 199}
    print(f"\n200 waiters started in {started:.2f}s, all terminal after {finished:.2f}s: {seen}")
