"""An agent's actor reads its agent's record when something changes — a task execution queued
or ended, the agent updated or deleted (``wake``) — not on a timer: an idle actor read it every
second, over half the CPU of the plan for 10,000 teams (docs/scaling.md). In process: the actor's
class on a fake system that counts the reads."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace
from typing import Any

import pytest

from actors.agent import AgentActor
from linqra.config import AgentSettings, Settings
from linqra.errors import NotFound


class _Agents:
    """What the loop asks of ``system.agents``: the record (counted), nothing to adopt, and task
    executions that end when the test says."""

    def __init__(self) -> None:
        self.reads = 0
        self.deleted = False
        self.max_concurrency = 1
        self.started: list[str] = []
        self.release = asyncio.Event()

    async def get_agent(self, team_id: str, agent_id: str) -> Any:
        self.reads += 1
        if self.deleted:
            raise NotFound("gone")
        return SimpleNamespace(max_concurrency=self.max_concurrency)

    async def stale_task_executions(self, *_: Any, **__: Any) -> list[Any]:
        return []

    async def run_task_execution(self, team_id: str, tx_id: str, *_: Any, **__: Any) -> None:
        self.started.append(tx_id)
        await self.release.wait()

    async def request_cancel(self, team_id: str, tx_id: str) -> None:
        self.release.set()


async def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not within the timeout"
        await asyncio.sleep(0.01)


@pytest.fixture
async def actor() -> AsyncIterator[tuple[AgentActor, _Agents, list[str]]]:
    settings = Settings(agents=AgentSettings(idle_seconds=60))
    made = AgentActor(settings.model_dump_json(), "team-a", "ag_1")
    agents, exits = _Agents(), []

    async def exit_(why: str) -> None:  # instead of ending the process
        exits.append(why)

    made._system = SimpleNamespace(agents=agents, launcher=None)  # type: ignore[assignment]
    made._exit = exit_  # type: ignore[method-assign]
    yield made, agents, exits
    made._loop.cancel()


async def test_an_actor_reads_its_record_when_woken_queued_to_or_freed(
    actor: tuple[AgentActor, _Agents, list[str]],
) -> None:
    made, agents, exits = actor
    await _until(lambda: agents.reads == 1)  # as it starts (not again on its own: below)
    assert not exits
    await made.wake()  # updated: read again now
    await _until(lambda: agents.reads == 2)
    await made.run("tx_1")  # work: read, and started
    await _until(lambda: agents.started == ["tx_1"])
    assert agents.reads == 3
    agents.release.set()  # it ends: read once more (something may wait for the slot)
    await _until(lambda: agents.reads == 4 and not made._running)


async def test_a_deleted_agents_actor_stops_when_told_not_a_second_later(
    actor: tuple[AgentActor, _Agents, list[str]],
) -> None:
    made, agents, exits = actor
    await made.run("tx_1")
    await _until(lambda: agents.started == ["tx_1"])
    agents.deleted = True
    await made.wake()  # what RayLauncher.agent_changed sends after delete_agent
    await _until(lambda: exits == ["deleted"], timeout=5)
    assert agents.release.is_set()  # its running task execution was asked to cancel


async def test_an_idle_actor_passivates_after_idle_seconds_without_reading_meanwhile() -> None:
    settings = Settings(agents=AgentSettings(idle_seconds=1))
    made = AgentActor(settings.model_dump_json(), "team-a", "ag_1")
    agents, exits = _Agents(), []

    async def exit_(why: str) -> None:
        exits.append(why)

    made._system = SimpleNamespace(agents=agents, launcher=None)  # type: ignore[assignment]
    made._exit = exit_  # type: ignore[method-assign]
    try:
        await _until(lambda: bool(exits), timeout=10)
        assert exits == ["idle for 1s"]
        assert agents.reads == 2  # as it started, and as passivation came due: not each second
    finally:
        made._loop.cancel()
