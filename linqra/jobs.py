"""Durable jobs: the one mechanism by which no piece of work is lost.

Four kinds of work outlive the process that started them — workflow executions, task
executions, document ingestions and queued async steps. Each is a stored record that is a
*job*: it waits in a ``pending`` status, an owner **claims** it by compare-and-set (two
claimants: one wins), keeps the claim alive with a **heartbeat**, and ends in a terminal status
through a compare-and-set that only an active job passes (a late writer cannot overwrite the
end). A job whose heartbeat went **stale** — its process died, its queue message was lost — is
**released** (compare-and-set on the heartbeat seen, so one reaper wins) and **re-dispatched**.

:class:`Jobs` is that life cycle over one collection, described by a :class:`JobKind` that the
collection's owner declares next to it (``EXECUTION_JOBS`` and ``ASYNC_STEP_JOBS`` in
``linqra.workflows.records``, ``TASK_JOBS`` in ``linqra.agents.executions``, ``DOCUMENT_JOBS``
in ``linqra.knowledge.collections``); the services use it for their records, and the supervisor actor (``actors/supervisor.py``) runs
:meth:`Jobs.reap` for every kind. Waiting for a job's end reads the store with back-off; where
a process can be notified (the runner awaits its own executions), the launcher's ``wait`` is
used instead and this is the fallback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from linqra.clock import iso, parse_iso, utcnow
from linqra.store import DocumentStore

__all__ = ["JobKind", "Jobs", "backoff"]

POLL_SECONDS = (0.02, 0.05, 0.1, 0.2, 0.5)
"""Back-off of :meth:`Jobs.wait` between store reads."""


@dataclass(frozen=True)
class JobKind:
    """Which collection holds the jobs and which statuses mean waiting, running and ended."""

    collection: str
    pending: str
    running: str
    terminal: frozenset[str]
    owner_field: str = "owner"
    clock_field: str = "heartbeat_at"
    """The field that says the job is alive (the heartbeat; for queued steps, when queued)."""

    @property
    def active(self) -> list[str]:
        return [self.pending, self.running]


class Jobs:
    """The durable-job life cycle over one collection of a store."""

    def __init__(self, store: DocumentStore, kind: JobKind) -> None:
        self.store = store
        self.kind = kind

    async def claim(
        self,
        team_id: str,
        job_id: str,
        owner: str,
        changes: Mapping[str, Any] | None = None,
        *,
        from_status: Sequence[str] | None = None,
    ) -> bool:
        """Take a waiting job (compare-and-set on its status); whether this caller won it."""
        kind = self.kind
        now = iso()
        return await self.store.update(
            kind.collection,
            team_id,
            job_id,
            {
                "status": kind.running,
                kind.owner_field: owner,
                kind.clock_field: now,
                **(changes or {}),
            },
            where={"status": {"$in": list(from_status or [kind.pending])}},
        )

    async def heartbeat(
        self,
        team_id: str,
        job_id: str,
        *,
        owner: str | None = None,
        changes: Mapping[str, Any] | None = None,
        where: Mapping[str, Any] | None = None,
    ) -> bool:
        """Keep an active job alive (and record ``changes``); ``False`` when it has ended or,
        with ``owner`` (and ``where``), belongs to someone else now (stop working on it)."""
        kind = self.kind
        condition: dict[str, Any] = {"status": {"$in": kind.active}, **(where or {})}
        if owner is not None:
            condition[kind.owner_field] = owner
        return await self.store.update(
            kind.collection,
            team_id,
            job_id,
            {kind.clock_field: iso(), **(changes or {})},
            where=condition,
        )

    async def finish(
        self, team_id: str, job_id: str, status: str, changes: Mapping[str, Any] | None = None
    ) -> bool:
        """End an active job (a job that already ended keeps its first end)."""
        if status not in self.kind.terminal:
            raise ValueError(f"{status!r} is not a terminal status of {self.kind.collection}")
        return await self.store.update(
            self.kind.collection, team_id, job_id,
            {"status": status, "finished_at": iso(), **(changes or {})},
            where={"status": {"$in": self.kind.active}},
        )  # fmt: skip

    async def stale(
        self,
        older_than_seconds: float,
        *,
        team_id: str | None = None,
        where: Mapping[str, Any] | None = None,
        statuses: Sequence[str] | None = None,
        limit: int = 200,
    ) -> list[dict[str, Any]]:
        """Active jobs (of one team, or of all) whose clock is older than the given age."""
        kind = self.kind
        cutoff = iso(utcnow() - timedelta(seconds=older_than_seconds))
        query = {
            "status": {"$in": list(statuses or kind.active)},
            kind.clock_field: {"$lt": cutoff},
            **(where or {}),
        }
        if team_id is not None:
            docs = await self.store.find(kind.collection, team_id, query, limit=limit)
            return [{**d, "team_id": team_id} for d in docs]
        return await self.store.scan_all_teams(kind.collection, query, limit=limit)

    async def backlog(self, limit: int = 1000) -> tuple[int, float]:
        """Jobs waiting (pending) across every team — at most ``limit`` counted — and how many
        seconds the oldest of those counted has waited by its clock (0 when none wait)."""
        kind = self.kind
        docs = await self.store.scan_all_teams(
            kind.collection, {"status": kind.pending}, limit=limit
        )
        clocks = [str(d[kind.clock_field]) for d in docs if d.get(kind.clock_field)]
        if not clocks:
            return len(docs), 0.0
        waited = (utcnow() - parse_iso(min(clocks))).total_seconds()
        return len(docs), max(waited, 0.0)

    async def release(
        self, team_id: str, job_id: str, seen: str | None, changes: Mapping[str, Any] | None = None
    ) -> bool:
        """Put a stale job back to waiting for a new owner. Compare-and-set on the clock value
        ``seen``: of two reapers, or a reaper and a late heartbeat, one wins."""
        kind = self.kind
        return await self.store.update(
            kind.collection, team_id, job_id,
            {"status": kind.pending, kind.clock_field: iso(), **(changes or {})},
            where={"status": {"$in": kind.active}, kind.clock_field: seen},
        )  # fmt: skip

    async def reap(
        self,
        older_than_seconds: float,
        redispatch: Callable[[dict[str, Any]], Awaitable[object]],
        *,
        release: bool = True,
        skip: Callable[[dict[str, Any]], bool] | None = None,
    ) -> int:
        """Re-dispatch every stale job (released first when ``release``: a RUNNING one whose
        release another reaper won is left to it); how many were re-dispatched."""
        count = 0
        for job in await self.stale(older_than_seconds):
            if skip is not None and skip(job):
                continue
            if release and not await self.release(
                job["team_id"], job["id"], job.get(self.kind.clock_field)
            ):
                continue
            await redispatch(job)
            count += 1
        return count

    async def wait(self, team_id: str, job_id: str, timeout: float) -> dict[str, Any] | None:
        """The job once terminal, or as it is after ``timeout`` seconds (``None``: no such job)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for pause in backoff():
            doc = await self.store.get(self.kind.collection, team_id, job_id)
            if doc is None or doc["status"] in self.kind.terminal:
                return doc
            if loop.time() + pause > deadline:
                return doc
            await asyncio.sleep(pause)
        raise AssertionError("unreachable")  # pragma: no cover


def backoff() -> Iterator[float]:
    """Pauses between reads of a job that has not ended: short at first, then every 0.5 s."""
    yield from POLL_SECONDS
    while True:
        yield POLL_SECONDS[-1]
