"""What-ifs behind docs/perf/engine-profile.md: the profile's cases with candidate changes patched in.

    .venv/bin/python docs/perf/whatif.py chain noop --repeats 30 --rounds 3
    .venv/bin/python docs/perf/whatif.py fanout --repeats 4 --rounds 2 --variants baseline w1 w8

A measuring aid, not a design: each variant monkeypatches private parts of ``linqra`` in this
process only (nothing in the tree changes) to estimate what a change would save before anyone
builds it. The variants run interleaved, ``--rounds`` times, because this 2-core machine is
shared and its load moves between minutes. Variants (combine with ``+``, e.g. ``w1+w2+w3``):

w1   the end record of a step is a plain ``update`` of its RUNNING record (no insert that fails
     with Conflict first);
w2   + no RUNNING record for ``inline`` steps: their end record is one insert;
w3   ``asyncio.wait_for`` without its extra Task per call (``asyncio.timeout``, as 3.12 does);
w6   + end records of inline steps buffered and written together (group commit) before the next
     non-inline step's record and before the execution's end;
w8   the SQLite write hand-off without ``concurrent.futures`` / ``wrap_future`` /
     ``asyncio.timeout`` (the writer answers an asyncio future through ``call_soon_threadsafe``);
w9   SQLite writes committed on the event-loop thread (no thread hop; also no group commit);
mem  an in-memory store on the loop: no thread, no SQL, no JSON — the engine's own floor;
log  root logging at INFO into a file (as in a process that configures logging).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sqlite3
import statistics
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import linqra.store.sqlite as sqlite_store
import linqra.system
from benchmarks.profile_engine import measure
from linqra.errors import Conflict
from linqra.store.base import check_filter, matches, require_team
from linqra.workflows import records

Repo = records.ExecutionRepository
ORIGINAL = {
    "save": Repo.save_step_run,
    "transition": Repo.transition,
    "wait_for": asyncio.wait_for,
    "open_store": linqra.system.open_store,
    "write": sqlite_store.SQLiteStore._write,
}


class MemoryStore:
    """A document store in dicts on the event loop (enough of the port for the engine)."""

    def __init__(self) -> None:
        self.data: dict[str, dict[str, dict[str, Any]]] = {}

    async def ensure_indexes(self, specs: Any) -> None:
        return None

    async def insert(self, collection: str, team_id: str, doc: dict[str, Any]) -> None:
        table = self.data.setdefault(collection, {})
        if doc["id"] in table:
            raise Conflict(f"{collection} {doc['id']!r} already exists")
        table[doc["id"]] = {**doc, "team_id": require_team(team_id)}

    async def get(self, collection: str, team_id: str, doc_id: str) -> dict[str, Any] | None:
        doc = self.data.get(collection, {}).get(doc_id)
        return dict(doc) if doc and doc["team_id"] == team_id else None

    async def find(
        self,
        collection: str,
        team_id: str | None,
        where: Any = None,
        *,
        sort: Any = (),
        limit: int = 100,
        skip: int = 0,
    ) -> list[dict[str, Any]]:
        where = check_filter(where)
        docs = [
            dict(d)
            for d in self.data.get(collection, {}).values()
            if (team_id is None or d["team_id"] == team_id) and matches(d, where)
        ]
        for field, direction in reversed(list(sort)):
            docs.sort(key=lambda d: (d.get(field) is None, d.get(field)), reverse=direction < 0)
        return docs[skip : skip + limit]

    async def count(self, collection: str, team_id: str, where: Any = None) -> int:
        return len(await self.find(collection, team_id, where, limit=10**9))

    async def update(
        self, collection: str, team_id: str, doc_id: str, changes: Any, *, where: Any = None
    ) -> bool:
        doc = self.data.get(collection, {}).get(doc_id)
        if doc is None or doc["team_id"] != team_id:
            return False
        if where and not matches(doc, check_filter(where)):
            return False
        doc.update(changes)
        return True

    async def delete(self, collection: str, team_id: str, doc_id: str) -> bool:
        return self.data.get(collection, {}).pop(doc_id, None) is not None

    async def scan_all_teams(
        self, collection: str, where: Any, *, sort: Any = (), limit: int = 100
    ) -> list[dict[str, Any]]:
        return await self.find(collection, None, where, sort=sort, limit=limit)

    async def check(self, timeout: float) -> None:
        return None

    async def close(self) -> None:
        return None


# -- w1, w2, w6: fewer step-record writes -------------------------------------------------------
async def save_direct_update(self: Any, team_id: str, run: dict[str, Any]) -> None:
    written: set[str] = self.__dict__.setdefault("_written", set())
    if run["id"] in written:
        changes = {k: v for k, v in run.items() if k not in ("id", "team_id")}
        await self.store.update(records.STEP_RUNS, team_id, run["id"], changes)
        return
    await self.store.insert(records.STEP_RUNS, team_id, run)
    written.add(run["id"])


async def save_inline_once(self: Any, team_id: str, run: dict[str, Any]) -> None:
    if run.get("status") == "RUNNING" and run.get("executor") == "inline":
        return
    await save_direct_update(self, team_id, run)


async def _flush(self: Any) -> None:
    buffered = self.__dict__.pop("_buffer", [])
    if buffered:  # queued at once, so the writer commits them in one transaction
        await asyncio.gather(*(save_direct_update(self, team, doc) for team, doc in buffered))


async def save_write_behind(self: Any, team_id: str, run: dict[str, Any]) -> None:
    if run.get("executor") == "inline":
        if run.get("status") != "RUNNING":
            self.__dict__.setdefault("_buffer", []).append((team_id, dict(run)))
        return
    await _flush(self)
    await save_direct_update(self, team_id, run)


async def transition_after_flush(self: Any, *args: Any, **kwargs: Any) -> bool:
    await _flush(self)
    return await ORIGINAL["transition"](self, *args, **kwargs)


# -- w3: no Task per step call -------------------------------------------------------------------
async def wait_for_without_task(aw: Any, timeout: float | None) -> Any:
    async with asyncio.timeout(timeout):
        return await aw


# -- w8, w9: the write hand-off ------------------------------------------------------------------
class LoopFuture:
    """What the writer thread needs of a concurrent future, answering an asyncio future."""

    __slots__ = ("fut", "loop", "state")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop, self.fut, self.state = loop, loop.create_future(), "pending"

    def set_running_or_notify_cancel(self) -> bool:
        if self.fut.cancelled():
            return False
        self.state = "running"
        return True

    def done(self) -> bool:
        return self.state == "done"

    def set_result(self, value: Any) -> None:
        self.state = "done"
        self.loop.call_soon_threadsafe(_answer, self.fut, value, None)

    def set_exception(self, exc: BaseException) -> None:
        self.state = "done"
        self.loop.call_soon_threadsafe(_answer, self.fut, None, exc)


def _answer(fut: asyncio.Future[Any], value: Any, exc: BaseException | None) -> None:
    if fut.done():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(value)


async def write_cheap_handoff(self: Any, fn: Any, *args: Any) -> Any:
    self._writer._ensure_thread()
    handle = LoopFuture(asyncio.get_running_loop())
    self._writer._queue.put((fn, args, handle))
    try:
        return await handle.fut
    except sqlite3.Error as exc:
        raise sqlite_store._translate(exc) from exc


async def write_on_loop(self: Any, fn: Any, *args: Any) -> Any:
    conn = self.__dict__.get("_loop_conn")
    if conn is None:
        conn = self.__dict__["_loop_conn"] = self._connect()
    conn.execute("BEGIN IMMEDIATE")
    try:
        value = fn(conn, *args)
    except BaseException:
        conn.execute("ROLLBACK")
        self._forget_tables()
        raise
    conn.execute("COMMIT")
    return value


@contextlib.contextmanager
def patched(variant: str) -> Iterator[None]:
    parts = set(variant.split("+")) - {"baseline"}
    unknown = parts - {"w1", "w2", "w3", "w6", "w8", "w9", "mem", "log"}
    if unknown:
        raise SystemExit(f"--variants: unknown {sorted(unknown)}")
    handler = logging.FileHandler("/tmp/linqra-whatif.log") if "log" in parts else None
    try:
        if parts & {"w1", "w2", "w6"}:
            Repo.save_step_run = save_direct_update  # type: ignore[method-assign]
        if "w2" in parts:
            Repo.save_step_run = save_inline_once  # type: ignore[method-assign]
        if "w6" in parts:
            Repo.save_step_run = save_write_behind  # type: ignore[method-assign]
            Repo.transition = transition_after_flush  # type: ignore[method-assign]
        if "w3" in parts:
            asyncio.wait_for = wait_for_without_task
        if "w8" in parts:
            sqlite_store.SQLiteStore._write = write_cheap_handoff  # type: ignore[method-assign]
        if "w9" in parts:
            sqlite_store.SQLiteStore._write = write_on_loop  # type: ignore[method-assign]
        if "mem" in parts:
            linqra.system.open_store = lambda url, **kw: MemoryStore()  # type: ignore[assignment]
        if handler is not None:
            logging.getLogger().addHandler(handler)
            logging.getLogger().setLevel(logging.INFO)
        yield
    finally:
        Repo.save_step_run = ORIGINAL["save"]  # type: ignore[method-assign]
        Repo.transition = ORIGINAL["transition"]  # type: ignore[method-assign]
        asyncio.wait_for = ORIGINAL["wait_for"]
        linqra.system.open_store = ORIGINAL["open_store"]
        sqlite_store.SQLiteStore._write = ORIGINAL["write"]  # type: ignore[method-assign]
        if handler is not None:
            logging.getLogger().removeHandler(handler)
            logging.getLogger().setLevel(logging.WARNING)
            handler.close()


DEFAULT_VARIANTS = [
    "baseline",
    "w1",
    "w1+w2",
    "w1+w2+w3",
    "w1+w2+w3+w6",
    "w8",
    "w9",
    "w1+w2+w3+w8",
    "w1+w3+w6+w9",
    "log",
    "mem",
    "w1+w2+w3+mem",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", default=["chain", "noop"])
    parser.add_argument("--repeats", type=int, default=30, help="timed runs per case and variant")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of all variants")
    parser.add_argument("--variants", nargs="*", default=DEFAULT_VARIANTS)
    args = parser.parse_args()
    for case in args.cases:
        seen: dict[str, list[dict[str, Any]]] = {v: [] for v in args.variants}
        for _ in range(args.rounds):
            for variant in args.variants:
                with patched(variant):
                    seen[variant].append(asyncio.run(measure(case, args.repeats)))
        steps = seen[args.variants[0]][0]["steps"]
        print(
            f"\n== {case}: medians of {args.repeats} runs; median [min-max] of {args.rounds} rounds"
        )
        for variant, results in seen.items():
            total = [r["median"]["total_ms"] for r in results]
            cpu = statistics.median(r["median"]["loop_cpu_ms"] for r in results)
            store = results[-1]["store_per_run"]
            line = (
                f"  {variant:<16} total {statistics.median(total):7.2f} ms "
                f"[{min(total):.2f}-{max(total):.2f}]  per step {statistics.median(total) / steps:6.3f}"
                f"  loop cpu {cpu:6.2f}  store calls {store['round_trips']:5.1f}"
                f"  commits {store['commits']:5.1f}  tasks {store['tasks']:5.1f}"
            )
            if case == "fanout":
                ratio = statistics.median(r["record_duration_over_slowest_step"] for r in results)
                line += f"  duration/slowest step {ratio:.3f}"
            print(line)


if __name__ == "__main__":
    main()
