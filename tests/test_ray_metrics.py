"""``actors.metrics.RayMetrics`` gathers values recorded on an event loop and hands them to Ray
once a flush interval (off a chain's critical path, issue 16's B17): a counter's sum per label
set, a gauge's last value, every value of a histogram. Where no loop runs they go at once; a loop
that stops with its call (``run_sync``'s) and a closing system hand theirs over then. Ray's own
instruments are replaced by recording stand-ins (the values' way to Prometheus through Ray is
tests/test_prometheus.py's)."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace
from typing import Any

import pytest

from actors import _context
from actors import metrics as ray_metrics_module
from actors.metrics import RayMetrics
from linqra.config import Settings
from linqra.metrics.catalogue import EXECUTIONS, QUEUE_DEPTH, STEP_DURATION


class _Recorded:
    def __init__(self) -> None:
        self.calls: list[tuple[str, float, dict[str, str]]] = []
        self.arrived = asyncio.Event()

    def inc(self, value: float, tags: dict[str, str]) -> None:
        self._call("inc", value, tags)

    def observe(self, value: float, tags: dict[str, str]) -> None:
        self._call("observe", value, tags)

    def set(self, value: float, tags: dict[str, str]) -> None:
        self._call("set", value, tags)

    def _call(self, kind: str, value: float, tags: dict[str, str]) -> None:
        self.calls.append((kind, value, tags))
        self.arrived.set()

    async def until(self, count: int) -> None:
        """Wait (10 s at most) until ``count`` values have reached Ray."""
        while len(self.calls) < count:
            self.arrived.clear()
            await asyncio.wait_for(self.arrived.wait(), 10)


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> _Recorded:
    stand_in = _Recorded()
    monkeypatch.setattr(ray_metrics_module, "_instrument", lambda instrument, names: stand_in)
    return stand_in


async def test_a_loops_values_are_gathered_then_handed_over_together(recorded: _Recorded) -> None:
    metrics = RayMetrics(team_labels=True, flush_seconds=0.05)
    metrics.add(EXECUTIONS, team="acme", status="COMPLETED")
    metrics.observe(STEP_DURATION, 0.25, target="noop", executor="task")
    metrics.add(EXECUTIONS, 2, team="acme", status="COMPLETED")
    metrics.set(QUEUE_DEPTH, 7, queue="async_steps")
    metrics.add(EXECUTIONS, team="acme", status="FAILED")
    metrics.observe(STEP_DURATION, 0.5, target="noop", executor="task")
    metrics.set(QUEUE_DEPTH, 3, queue="async_steps")
    await asyncio.sleep(0)
    assert recorded.calls == []  # not on the caller's time, nor on the next turn
    await recorded.until(1)
    assert recorded.calls == [
        ("inc", 3.0, {"status": "COMPLETED", "team": "acme"}),  # one sum per label set
        ("inc", 1.0, {"status": "FAILED", "team": "acme"}),
        ("set", 3.0, {"queue": "async_steps"}),  # the last value
        ("observe", 0.25, {"target": "noop", "executor": "task"}),  # every value, in order
        ("observe", 0.5, {"target": "noop", "executor": "task"}),
    ]
    metrics.add(EXECUTIONS, team="acme", status="FAILED")  # after a flush: gathered again
    await recorded.until(6)
    assert recorded.calls[5:] == [("inc", 1.0, {"status": "FAILED", "team": "acme"})]


def test_without_a_loop_values_reach_ray_at_once(recorded: _Recorded) -> None:
    RayMetrics().add(EXECUTIONS, status="COMPLETED")
    RayMetrics().observe(STEP_DURATION, 0.25, target="noop", executor="task")
    assert recorded.calls == [
        ("inc", 1.0, {"status": "COMPLETED"}),
        ("observe", 0.25, {"target": "noop", "executor": "task"}),
    ]


def test_a_loop_closed_before_its_flush_does_not_hold_later_values(recorded: _Recorded) -> None:
    metrics = RayMetrics(flush_seconds=0)

    async def record_as_the_loop_stops() -> None:
        asyncio.get_running_loop().stop()  # its next turn never comes
        metrics.add(EXECUTIONS, status="COMPLETED")

    async def record() -> None:
        metrics.add(EXECUTIONS, status="FAILED")
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    first = asyncio.new_event_loop()
    first.run_until_complete(record_as_the_loop_stops())
    first.close()
    assert recorded.calls == []
    asyncio.run(record())  # another loop of the same thread (run_sync's, say): both go out
    assert [tags["status"] for _, _, tags in recorded.calls] == ["COMPLETED", "FAILED"]


def test_each_thread_hands_over_its_own_values(recorded: _Recorded) -> None:
    metrics = RayMetrics(flush_seconds=0)
    done: list[Any] = []

    def worker(status: str) -> None:
        async def record() -> None:
            metrics.add(EXECUTIONS, status=status)
            await asyncio.sleep(0)
            await asyncio.sleep(0)

        asyncio.run(record())
        done.append(status)

    threads = [threading.Thread(target=worker, args=(s,)) for s in ("COMPLETED", "FAILED")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(tags["status"] for _, _, tags in recorded.calls) == ["COMPLETED", "FAILED"]


def test_a_loop_that_stops_with_its_call_hands_its_values_over_as_the_call_ends(
    recorded: _Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``run_sync``'s loop runs only during a call (a CPU step, an ingestion): a value it
    recorded would otherwise wait for the next call, or be lost with an idle worker."""
    metrics = RayMetrics()  # the shipped interval: its timer never fires within the call

    async def opened(settings: Settings) -> SimpleNamespace:
        return SimpleNamespace(metrics=metrics)

    async def step(system: SimpleNamespace) -> str:
        system.metrics.add(EXECUTIONS, status="COMPLETED")
        system.metrics.observe(STEP_DURATION, 0.25, target="noop", executor="task")
        return "done"

    monkeypatch.setattr(_context, "process_system", opened)
    assert _context.run_sync(Settings(), step) == "done"
    assert recorded.calls == [
        ("inc", 1.0, {"status": "COMPLETED"}),
        ("observe", 0.25, {"target": "noop", "executor": "task"}),
    ]


async def test_a_closing_system_hands_its_values_over(recorded: _Recorded) -> None:
    """An agent passivating records it, closes its system and ends its process at once."""
    metrics = RayMetrics()
    metrics.add(EXECUTIONS, status="CANCELLED")
    assert recorded.calls == []
    metrics.close()
    assert recorded.calls == [("inc", 1.0, {"status": "CANCELLED"})]
    metrics.add(EXECUTIONS, status="FAILED")  # recording after it still works
    metrics.flush()
    assert recorded.calls[1:] == [("inc", 1.0, {"status": "FAILED"})]


def test_a_value_ray_refuses_does_not_lose_the_others(
    recorded: _Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    metrics = RayMetrics()
    refuse = recorded.observe

    def observe(value: float, tags: dict[str, str]) -> None:
        if value < 0.2:
            raise ValueError("refused")
        refuse(value, tags)

    monkeypatch.setattr(recorded, "observe", observe)

    async def record() -> None:
        for value in (0.25, 0.1, 0.5):
            metrics.observe(STEP_DURATION, value, target="noop", executor="task")
        metrics.add(EXECUTIONS, status="COMPLETED")
        metrics.flush()

    asyncio.run(record())
    assert [(kind, value) for kind, value, _ in recorded.calls] == [
        ("inc", 1.0), ("observe", 0.25), ("observe", 0.5),
    ]  # fmt: skip


async def test_a_recording_that_breaks_the_contract_is_dropped_not_the_rest(
    recorded: _Recorded,
) -> None:
    """On a loop a recording's kind and number are checked as it is made, its labels once per
    label set when handed over: what is wrong is dropped (and logged once per instrument), and
    the values around it still reach Ray."""
    metrics = RayMetrics(flush_seconds=60)
    metrics.add(EXECUTIONS, status="COMPLETED")
    metrics.observe(EXECUTIONS, 1.0, status="COMPLETED")  # a counter, not a histogram
    assert metrics._warned == {EXECUTIONS.name}  # at once
    metrics.add(EXECUTIONS, -1, status="COMPLETED")  # a counter never goes down
    metrics.observe(STEP_DURATION, float("nan"), target="noop", executor="task")
    metrics.observe(STEP_DURATION, 0.5, target=["noop"], executor="task")  # not text
    assert metrics._warned == {EXECUTIONS.name, STEP_DURATION.name}
    metrics.add(EXECUTIONS, state="COMPLETED")  # not its label: found at the flush
    metrics.add(EXECUTIONS, 2, status="COMPLETED")
    metrics.observe(STEP_DURATION, 0.25, executor="task", target="noop")  # any order
    assert recorded.calls == []  # nothing handed over before the flush
    metrics.flush()
    assert recorded.calls == [
        ("inc", 3.0, {"status": "COMPLETED"}),
        ("observe", 0.25, {"target": "noop", "executor": "task"}),
    ]


async def test_in_strict_mode_a_recording_that_breaks_the_contract_raises_where_it_is_made(
    recorded: _Recorded,
) -> None:
    metrics = RayMetrics(flush_seconds=60)
    metrics.strict = True
    with pytest.raises(ValueError, match="takes labels"):
        metrics.add(EXECUTIONS, state="COMPLETED")
    metrics.add(EXECUTIONS, status="COMPLETED")
    metrics.flush()
    assert recorded.calls == [("inc", 1.0, {"status": "COMPLETED"})]
