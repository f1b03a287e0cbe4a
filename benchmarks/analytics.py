"""B18: analytics latency at 1,000,000 stored step records, on SQLite and a MongoDB wire server.

    python -m benchmarks.analytics                          # SQLite, 1,000,000 step records
    python -m benchmarks.analytics --store mongo --steps 100000
    python -m benchmarks.analytics --store both --repeat 30
    python -m benchmarks.analytics --store mongo --queries workflows_1d,steps_1d

The store holds one team's 30 days of history: ``steps / 10`` workflow executions of 20
workflows, created evenly over the 30 days before now, each with 10 step runs (2 % of the
executions fail at a random step, 1 % time out; a failed step has an error code; 20 % of the
step runs are cache hits), plus 10 % as many executions and step runs of another team (which no
answer may count). Durations are log-normal. SQLite is written through the store's own
``insert`` (group commit); MongoDB (SecantusDB, a MongoDB wire-protocol server in Python, started
here on a free port) is bulk-loaded with ``insert_many`` in the store's document format, then
the store's indexes are created through the store, as at start-up.

Measured through :class:`linqra.analytics.AnalyticsService` — the same calls the API makes — each
query ``--repeat`` times after one warm-up, p50 and p95 in ms:

* ``workflows_1d`` — success rate and duration p50/p95/p99 per workflow, last 24 h (B18's
  success-rate query: ~3,300 executions);
* ``steps_1d`` — per-step success rate and latency p95 of one workflow, last 24 h (B18's p95
  query: the step runs of ~170 executions);
* ``workflows_7d``, ``steps_7d`` — the same over the default 7 days;
* ``targets_1d`` — latency per step target across every workflow, last 24 h (~33,000 step runs);
* ``workflows_30d_hourly_trend`` is not run (14 days is the hourly limit);
  ``workflows_30d`` — every execution of the store, per workflow (the 92-day limit's case).

Target (issue 16): success-rate and p95 queries p50 ≤ 200 ms. Results:
``benchmarks/results/analytics.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from benchmarks._support import git, uptime
from linqra.analytics import AnalyticsService
from linqra.clock import iso, utcnow
from linqra.store import DocumentStore, open_store
from linqra.testing.servers import free_port, wait_port
from linqra.workflows.records import EXECUTIONS, STEP_RUNS
from linqra.workflows.service import INDEXES as WORKFLOW_INDEXES

RESULTS = Path(__file__).resolve().parent / "results" / "analytics.json"
TEAM, OTHER, WORKFLOWS, STEPS_PER_RUN, DAYS, SEED = "bench", "noise", 20, 10, 30, 18
TARGETS = [
    "http",
    "llm",
    "transform",
    "noop",
    "knowledge",
    "http",
    "transform",
    "llm",
    "wait",
    "noop",
]
BATCH = 2000


def _history(executions: int, team_seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Executions and their step runs, created evenly over the last ``DAYS`` days."""
    rng = random.Random(SEED + team_seed)
    now = utcnow()
    span = timedelta(days=DAYS)
    runs, steps = [], []
    for i in range(executions):
        created = now - span + span * (i + 0.5) / executions
        roll = rng.random()
        status = "FAILED" if roll < 0.02 else "TIMEOUT" if roll < 0.03 else "COMPLETED"
        stop = rng.randrange(STEPS_PER_RUN) if status != "COMPLETED" else STEPS_PER_RUN
        ex_id = f"ex{team_seed}_{i}"
        clock = created + timedelta(milliseconds=rng.uniform(0.2, 3))
        started = clock
        for n in range(STEPS_PER_RUN):
            cached = rng.random() < 0.2 and n < stop
            ms = 0.0 if cached else round(rng.lognormvariate(3.0, 1.0), 3)
            step_status = "COMPLETED" if n < stop else (
                status if n == stop else "SKIPPED")  # fmt: skip
            end = clock + timedelta(milliseconds=ms)
            steps.append({
                "id": f"{ex_id}:{n + 1}:1", "execution_id": ex_id, "step": n + 1, "run": 1,
                "target": TARGETS[n], "action": None, "executor": "io" if n % 3 else "inline",
                "status": step_status, "cache_hit": cached if step_status != "SKIPPED" else None,
                "attempts": 0 if cached or step_status == "SKIPPED" else 1 + (rng.random() < 0.05),
                "started_at": iso(clock), "finished_at": iso(end), "duration_ms": ms,
                "error": {"code": "http_503" if status == "FAILED" else "timeout",
                          "message": "failed"} if n == stop else None,
            })  # fmt: skip
            clock = end
        runs.append({
            "id": ex_id, "workflow_id": f"wf_{i % WORKFLOWS}", "workflow_version": 1,
            "workflow_name": f"workflow {i % WORKFLOWS}", "status": status,
            "created_at": iso(created), "started_at": iso(started), "finished_at": iso(clock),
            "duration_ms": round((clock - started).total_seconds() * 1000, 3),
            "result": {"label": rng.choice(["a", "b", "c"])} if status == "COMPLETED" else None,
            "source": "api",
        })  # fmt: skip
    return runs, steps


async def _seed_store(
    store: DocumentStore, docs: dict[str, list[dict[str, Any]]], team: str
) -> None:
    for collection, items in docs.items():
        for start in range(0, len(items), BATCH):
            chunk = items[start : start + BATCH]
            await asyncio.gather(*(store.insert(collection, team, d) for d in chunk))


async def _seed_mongo(url: str, docs: dict[str, list[dict[str, Any]]], team: str) -> None:
    from pymongo import AsyncMongoClient

    client: Any = AsyncMongoClient(url)
    db = client.get_default_database()
    for collection, items in docs.items():
        for start in range(0, len(items), BATCH):
            rows = [
                {**{k: v for k, v in d.items() if k != "id"}, "_id": d["id"], "team_id": team}
                for d in items[start : start + BATCH]
            ]
            await db[collection].insert_many(rows, ordered=False)
    await client.close()


@contextmanager
def _mongo_server() -> Iterator[str]:
    port, storage = free_port(), tempfile.mkdtemp(prefix="b18-secantus-")
    proc = subprocess.Popen(
        [sys.executable, "-m", "secantus", "--host", "127.0.0.1", "--port", str(port),
         "--storage-path", storage],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_port(port, timeout=60, proc=proc)
        yield f"mongodb://127.0.0.1:{port}/b18"
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)
        shutil.rmtree(storage, ignore_errors=True)


def _queries(service: AnalyticsService) -> dict[str, Any]:
    day = iso(utcnow() - timedelta(days=1))
    month = iso(utcnow() - timedelta(days=DAYS + 1))
    return {
        "workflows_1d": lambda: service.runs(TEAM, "workflows", start=day),
        "steps_1d": lambda: service.steps(TEAM, workflow_id="wf_3", start=day),
        "workflows_7d": lambda: service.runs(TEAM, "workflows"),
        "steps_7d": lambda: service.steps(TEAM, workflow_id="wf_3"),
        "targets_1d": lambda: service.steps(TEAM, start=day, sort="p95"),
        "workflows_30d": lambda: service.runs(TEAM, "workflows", start=month),
    }


async def _measure(
    store: DocumentStore, repeat: int, executions: int, only: list[str]
) -> dict[str, Any]:
    service = AnalyticsService(store)
    await service.init()
    out: dict[str, Any] = {}
    for name, query in _queries(service).items():
        if only and name not in only:
            continue
        answer = await query()  # warm-up, and a check of what it counted
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            await query()
            times.append((time.perf_counter() - t0) * 1000)
        times.sort()
        counted = sum(i["runs"] for i in answer["items"])
        out[name] = {
            "p50_ms": round(statistics.median(times), 1),
            "p95_ms": round(times[max(0, math.ceil(0.95 * len(times)) - 1)], 1),
            "groups": answer["total"],
            "runs_counted": counted,
        }
        print(f"  {name:<16} p50 {out[name]['p50_ms']:>8.1f} ms  p95 {out[name]['p95_ms']:>8.1f} ms"
              f"  ({counted:,} runs in {answer['total']} groups)  load {_load()}", flush=True)  # fmt: skip
    if "workflows_30d" in out:  # every execution of the team, none of the other's
        assert out["workflows_30d"]["runs_counted"] == executions, out["workflows_30d"]
    return out


def _megabytes(folder: str) -> int:
    return round(sum(p.stat().st_size for p in Path(folder).iterdir()) / 2**20)


def _load() -> str:
    return uptime().rsplit("load average:", 1)[-1].strip()


async def _run_store(
    kind: str, steps: int, repeat: int, only: list[str], url: str = ""
) -> dict[str, Any]:
    executions = steps // STEPS_PER_RUN
    mine, noise = _history(executions, 1), _history(executions // 10, 2)
    print(f"{kind}: {executions:,} executions, {len(mine[1]):,} step runs (+10 % another team)",
          flush=True)  # fmt: skip
    result: dict[str, Any] = {"executions": executions, "step_runs": len(mine[1])}
    t0 = time.perf_counter()
    if kind == "sqlite":
        folder = tempfile.mkdtemp(prefix="b18-")
        store = open_store(f"sqlite:///{folder}/b18.db", timeout_seconds=120)
        await store.ensure_indexes(WORKFLOW_INDEXES)
        await _seed_store(store, {EXECUTIONS: mine[0], STEP_RUNS: mine[1]}, TEAM)
        await _seed_store(store, {EXECUTIONS: noise[0], STEP_RUNS: noise[1]}, OTHER)
        result["seed_seconds"] = round(time.perf_counter() - t0, 1)
        result["file_mb"] = _megabytes(folder)
        try:
            result["queries"] = await _measure(store, repeat, executions, only)
        finally:
            await store.close()
            shutil.rmtree(folder, ignore_errors=True)
        return result
    await _seed_mongo(url, {EXECUTIONS: mine[0], STEP_RUNS: mine[1]}, TEAM)
    await _seed_mongo(url, {EXECUTIONS: noise[0], STEP_RUNS: noise[1]}, OTHER)
    store = open_store(url, timeout_seconds=600, connect_timeout_seconds=120)  # a busy server
    t1 = time.perf_counter()
    await store.ensure_indexes(WORKFLOW_INDEXES)
    result["seed_seconds"] = round(t1 - t0, 1)
    result["index_seconds"] = round(time.perf_counter() - t1, 1)
    try:
        result["queries"] = await _measure(store, repeat, executions, only)
    finally:
        await store.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", choices=["sqlite", "mongo", "both"], default="sqlite")
    parser.add_argument("--steps", type=int, default=1_000_000, help="step records of the team")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--queries", default="", help="comma-separated names (default: all)")
    args = parser.parse_args()
    only = [q for q in args.queries.split(",") if q]
    stores = ["sqlite", "mongo"] if args.store == "both" else [args.store]
    result: dict[str, Any] = {
        "benchmark": "B18",
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "commit": git("rev-parse", "--short", "HEAD"),
        "python": platform.python_version(),
        "uptime_before": uptime(),
        "repeat": args.repeat,
    }
    for kind in stores:
        if kind == "mongo":
            with _mongo_server() as url:
                result[kind] = asyncio.run(_run_store(kind, args.steps, args.repeat, only, url))
        else:
            result[kind] = asyncio.run(_run_store(kind, args.steps, args.repeat, only))
    result["uptime_after"] = uptime()
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    runs = previous.get("runs", [])
    runs.append(result)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"runs": runs}, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
