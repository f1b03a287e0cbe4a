"""Serve autoscaling (issue 17, part 2): the gateway and the chat orchestrator each grow from one
replica to several under load and shrink back when idle — a second copy of Linqra's application
on the session cluster, both deployments autoscaled at small numbers (the shipped ones are in
configs/serve.yaml; Serve's ``.options()`` overrides them for the copy alone) so two cores can
show it."""

from __future__ import annotations

import threading
import time
from functools import partial
from typing import Any

import httpx
import pytest

from linqra.assistants.conversations import RUN_TERMINAL
from linqra.assistants.turn import TERMINAL_EVENTS
from linqra.config import Settings
from tests.support.sse import Event, sse
from tests.test_chat_ray import slow_assistant

pytestmark = pytest.mark.ray

APP, PREFIX, TEAM = "linqra-autoscale", "/as", "team-autoscale"
CHATS = 3  # streamed chats held open at once: 3 ongoing requests want 2 replicas
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


def _until(condition: Any, timeout: float, what: str, seen: Any = None) -> float:
    t0 = time.monotonic()
    while not condition():
        assert time.monotonic() - t0 < timeout, f"not within {timeout}s: {what}" + (
            "" if seen is None else f"; seen: {seen()}"
        )
        time.sleep(0.1)
    return time.monotonic() - t0


def _chat_hosts() -> list[tuple[str, str]]:
    """Each chat host and its state (a diagnostic: ALIVE, PENDING_CREATION, …)."""
    from ray.util.state import list_actors

    try:
        found = list_actors(filters=[("class_name", "=", "ChatHostActor")], timeout=10)
    except Exception as exc:  # a diagnostic never hides the failure it explains
        return [("?", repr(exc))]
    return [(actor.name, actor.state) for actor in found]


@pytest.fixture(scope="module")
def autoscaled(gateway_url: str, ray_settings: Settings) -> Any:
    from ray import serve

    from deployments.gateway import Gateway
    from deployments.orchestrator import ChatOrchestrator

    shipped = ray_settings.model_dump_json()
    quick = {"graceful_shutdown_timeout_s": 1, "graceful_shutdown_wait_loop_s": 0.2}
    # behind HAProxy an ingress replica that stops drains for at least 30 s (Serve's
    # RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S, time for outside load balancers to let
    # go of it): the copy's gateway 1 s, or deleting the copy takes 31 s
    drain = {"RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "1"}
    actor = {**Gateway.ray_actor_options, "runtime_env": {"env_vars": drain}}  # type: ignore[attr-defined]
    orchestrator = ChatOrchestrator.options(autoscaling_config=AUTOSCALING, **quick)  # type: ignore[attr-defined]
    gateway = Gateway.options(autoscaling_config=AUTOSCALING, ray_actor_options=actor, **quick)  # type: ignore[attr-defined]
    serve.run(gateway.bind(shipped, orchestrator.bind(shipped)), name=APP, route_prefix=PREFIX)
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

    probes: list[int] = []

    def probe() -> None:  # a load balancer's probe: a new replica answers it as the others do
        with httpx.Client(base_url=autoscaled, timeout=120) as c:
            while not stop.is_set():
                probes.append(c.get("/healthz").status_code)
                stop.wait(0.05)

    clients = [threading.Thread(target=client) for _ in range(8)]
    clients.append(threading.Thread(target=probe))
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
    assert probes and set(probes) == {200}, f"a replica added under load was not ready: {probes}"
    down = _until(lambda: _running("Gateway") == 1, 120, "back to one replica when idle")
    print(f"second replica after {up:.1f}s of load; back to one {down:.1f}s after it stopped")


def test_the_chat_orchestrator_scales_out_under_streamed_chats_and_back_in_when_idle(
    autoscaled: str,
) -> None:
    api = httpx.Client(base_url=autoscaled, headers={"X-Team-Id": TEAM}, timeout=60)
    assistant = slow_assistant(api, "slow-100-1000")  # 100 s of words: none ends on its own
    assert _running("ChatOrchestrator") == 1

    stop = threading.Event()
    streams: dict[int, list[Event]] = {}

    def chat(n: int, hang_up: bool) -> None:  # one streamed reply, followed by the orchestrator
        body = {"message": f"chat {n}", "stream": True}
        if hang_up:  # the stream ends when the client goes away, and the reply with it
            body["onDisconnect"] = "cancel"
        with httpx.Client(base_url=autoscaled, headers={"X-Team-Id": TEAM}, timeout=60) as c:
            url = f"/v1/assistants/{assistant}/chat"
            with c.stream("POST", url, json=body) as answer:
                assert answer.status_code == 200
                for event in sse(answer.iter_lines()):
                    streams.setdefault(n, []).append(event)
                    if hang_up and stop.is_set():
                        break

    def answering(n: int) -> bool:
        return any(name == "message.delta" for _, name, _ in streams.get(n, []))

    def seen(n: int) -> str:  # what a chat that does not answer got, and the actors behind it
        return f"events {streams.get(n, [])}; actors {_chat_hosts()}"

    # each chat starts once the one before answers: a chat host that is new (a new process)
    # takes seconds to warm up, long enough on two busy cores for its runs' heartbeats to go
    # stale (3 s in the tests' settings) if all start at once.
    # The last one takes the orchestrator past its target (2): it grows to 2 replicas
    chats = [threading.Thread(target=chat, args=(n, n % 2 == 0)) for n in range(CHATS)]
    try:
        for n, thread in enumerate(chats[:-1]):
            thread.start()
            _until(partial(answering, n), 30, f"chat {n} answering", partial(seen, n))
        chats[-1].start()
        up = _until(lambda: _running("ChatOrchestrator") == 2, 90, "a second orchestrator")
        last = CHATS - 1
        _until(partial(answering, last), 30, "the last chat answering", partial(seen, last))
    finally:  # the even ones end with their clients hanging up, the odd ones with a cancel
        stop.set()  # through the API (their clients read on to the end of the run)
        for n, events in list(streams.items()):
            if n % 2:
                api.post(f"{_run_url(events)}/cancel")
        for thread in chats:
            thread.join(60)
    down = _until(lambda: _running("ChatOrchestrator") == 1, 120, "one orchestrator when idle")
    assert len(streams) == CHATS and not any(thread.is_alive() for thread in chats)
    assert all(events[-1][1] in TERMINAL_EVENTS for n, events in streams.items() if n % 2)
    runs = [_run_url(events) for events in streams.values()]

    def statuses() -> list[str]:
        return [api.get(run).json()["status"] for run in runs]

    # none lost with the replica that went away: every run ended
    ended = _until(lambda: RUN_TERMINAL.issuperset(statuses()), 30, "every run ended")
    print(
        f"chat orchestrator: a second replica {up:.1f}s after chat {CHATS} of {CHATS} started; "
        f"back to one {down:.1f}s after they ended; runs {statuses()} ({ended:.1f}s later)"
    )


def _run_url(events: list[Event]) -> str:
    created = events[0][2]
    return f"/v1/conversations/{created['conversation_id']}/runs/{created['run_id']}"
