"""``actors.metrics.RayMetrics`` hands values to Ray a loop turn after they are recorded (off a
chain's critical path, issue 16's B17), in order, and at once where no loop runs; Ray's own
instruments are replaced by recording stand-ins (the values' way to Prometheus through Ray is
tests/test_prometheus.py's)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from actors import metrics as ray_metrics_module
from actors.metrics import RayMetrics
from linqra.metrics.catalogue import EXECUTIONS, STEP_DURATION


class _Recorded:
    def __init__(self) -> None:
        self.calls: list[tuple[str, float, dict[str, str]]] = []

    def inc(self, value: float, tags: dict[str, str]) -> None:
        self.calls.append(("inc", value, tags))

    def observe(self, value: float, tags: dict[str, str]) -> None:
        self.calls.append(("observe", value, tags))


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> _Recorded:
    stand_in = _Recorded()
    monkeypatch.setattr(ray_metrics_module, "_instrument", lambda instrument, names: stand_in)
    return stand_in


async def test_on_a_loop_values_reach_ray_on_its_next_turn_in_order(recorded: _Recorded) -> None:
    metrics = RayMetrics(team_labels=True)
    metrics.add(EXECUTIONS, team="acme", status="COMPLETED")
    metrics.observe(STEP_DURATION, 0.25, target="noop", executor="task")
    assert recorded.calls == []  # not on the caller's time
    await asyncio.sleep(0)
    assert recorded.calls == [
        ("inc", 1.0, {"status": "COMPLETED", "team": "acme"}),
        ("observe", 0.25, {"target": "noop", "executor": "task"}),
    ]
    metrics.add(EXECUTIONS, team="acme", status="FAILED")  # a later turn: handed over again
    await asyncio.sleep(0)
    assert recorded.calls[-1] == ("inc", 1.0, {"status": "FAILED", "team": "acme"})


def test_without_a_loop_values_reach_ray_at_once(recorded: _Recorded) -> None:
    RayMetrics().add(EXECUTIONS, status="COMPLETED")
    assert recorded.calls == [("inc", 1.0, {"status": "COMPLETED"})]


def test_a_loop_closed_before_its_turn_does_not_hold_later_values(recorded: _Recorded) -> None:
    metrics = RayMetrics()

    async def record_as_the_loop_stops() -> None:
        asyncio.get_running_loop().stop()  # its next turn never comes
        metrics.add(EXECUTIONS, status="COMPLETED")

    async def record() -> None:
        metrics.add(EXECUTIONS, status="FAILED")
        await asyncio.sleep(0)

    first = asyncio.new_event_loop()
    first.run_until_complete(record_as_the_loop_stops())
    first.close()
    assert recorded.calls == []
    asyncio.run(record())  # another loop of the same thread (run_sync's, say): both go out
    assert [tags["status"] for _, _, tags in recorded.calls] == ["COMPLETED", "FAILED"]


def test_each_thread_hands_over_its_own_values(recorded: _Recorded) -> None:
    metrics = RayMetrics()
    done: list[Any] = []

    def worker(status: str) -> None:
        async def record() -> None:
            metrics.add(EXECUTIONS, status=status)
            await asyncio.sleep(0)

        asyncio.run(record())
        done.append(status)

    threads = [threading.Thread(target=worker, args=(s,)) for s in ("COMPLETED", "FAILED")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(tags["status"] for _, _, tags in recorded.calls) == ["COMPLETED", "FAILED"]
