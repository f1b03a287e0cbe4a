"""Where the in-process engine's time goes: per-step overhead, store round trips, profiles.

    python -m benchmarks.profile_engine                  # chain, noop, fanout; numbers only
    python -m benchmarks.profile_engine chain --repeats 50
    python -m benchmarks.profile_engine --profile        # + cProfile dumps and py-spy flame graphs

Runs the engine as ``notebooks/quickstart.ipynb`` does — ``System.open`` over a temporary data
directory (SQLite store, memory cache), ``system.workflows.create``, then ``new_execution``,
``runner.submit`` and ``runner.wait`` — with no Ray, for three cases:

chain   a 20-step sequential chain of inline ``transform`` steps (B1's inline half), against the
        same 20 JMESPath searches in plain Python;
noop    a one-step ``noop`` workflow (what ``execute?wait=true`` costs before the HTTP hop);
fanout  100 parallel ``wait`` steps of 0.2 s in DAG mode (B2 without Ray and HTTP), against the
        slowest step the engine itself recorded.

Every store call is counted by wrapping the store *instance* (nothing in ``linqra/`` changes):
calls per method and collection, the loop-side await time of each, the writer thread's
transactions (group commits) and the time the SQLite work itself took in its thread. Each run
is split into its phases: ``new_execution``, ``submit`` (the claim), the engine's ``run`` and
``wait`` (reading the full record). A micro-benchmark of single store round trips gives the
floor that each write or read costs on this machine.

``--profile`` writes, per case, into ``--out`` (``docs/perf``): ``<case>.prof`` (cProfile of the
event-loop thread; the store's threads are not in it), ``<case>.pstats.txt`` (its top functions),
and two py-spy flame graphs of the same case re-run in a child process: ``<case>.svg`` (all
samples of all threads) and ``<case>.gil.svg`` (only the thread holding the GIL: Python CPU).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jmespath

from linqra.config import Settings
from linqra.system import System

ROOT = Path(__file__).resolve().parent.parent
TEAM = "perf"
CASES = ("chain", "noop", "fanout")
DEFAULT_REPEATS = {"chain": 40, "noop": 150, "fanout": 5}
PROFILE_REPEATS = {"chain": 150, "noop": 600, "fanout": 12}  # ~4-6 s each under py-spy
FANOUT_STEPS, FANOUT_SECONDS = 100, 0.2
CHAIN_STEPS = 20


def definition(case: str) -> dict[str, Any]:
    if case == "chain":
        first = {"expression": "@", "input": {"a": 0}}
        steps = [{"step": 1, "target": "transform", "params": first}]
        steps += [
            {
                "step": i,
                "target": "transform",
                "params": {"expression": "{a: a}", "input": f"{{{{step{i - 1}.result}}}}"},
            }
            for i in range(2, CHAIN_STEPS + 1)
        ]
        return {"name": "chain", "steps": steps}
    if case == "noop":
        return {"name": "noop", "steps": [{"step": 1, "target": "noop", "params": {"a": 1}}]}
    steps = [
        {"step": i, "target": "wait", "params": {"seconds": FANOUT_SECONDS}}
        for i in range(1, FANOUT_STEPS + 1)
    ]
    return {"name": "fanout", "mode": "dag", "steps": steps}


def step_count(case: str) -> int:
    return {"chain": CHAIN_STEPS, "noop": 1, "fanout": FANOUT_STEPS}[case]


# -- counting ---------------------------------------------------------------------------------
class StoreMeter:
    """Counts and times every call on one SQLite store instance (patched on the instance)."""

    def __init__(self, store: Any) -> None:
        self.calls: Counter[str] = Counter()
        self.await_s: defaultdict[str, float] = defaultdict(float)
        self.thread_s: defaultdict[str, float] = defaultdict(float)
        self.commits = 0
        self.committed_writes = 0
        self.commit_s = 0.0
        self.conflicts = 0
        self.tasks = 0
        self._lock = threading.Lock()
        for name in ("insert", "get", "find", "count", "update", "delete"):
            setattr(store, name, self._async(name, getattr(store, name)))
        for name in ("_insert", "_update", "_get", "_find", "_count"):
            if hasattr(store, name):
                setattr(store, name, self._sync(name, getattr(store, name)))
        self.table_ddl = (
            0  # CREATE TABLE/INDEX IF NOT EXISTS re-run after the table cache was cleared
        )
        self.cache_clears = 0
        if hasattr(store, "_table"):
            store._table = self._table(store, store._table)
            store._writer._on_rollback = self._cleared(store._writer._on_rollback)
        writer = getattr(store, "_writer", None)
        if writer is not None:
            writer._commit = self._commit(writer._commit)

    def _async(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        async def wrapped(collection: str, *args: Any, **kwargs: Any) -> Any:
            key = f"{name} {collection}"
            self.calls[key] += 1
            t0 = time.perf_counter()
            try:
                return await fn(collection, *args, **kwargs)
            finally:
                self.await_s[key] += time.perf_counter() - t0

        return wrapped

    def _sync(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*args: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args)
            except Exception as exc:
                if type(exc).__name__ == "Conflict":
                    with self._lock:
                        self.conflicts += 1
                raise
            finally:
                with self._lock:
                    self.thread_s[name] += time.perf_counter() - t0

        return wrapped

    def _table(self, store: Any, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(conn: Any, collection: str) -> Any:
            if f"c_{collection}" not in store._tables:
                with self._lock:
                    self.table_ddl += 1
            return fn(conn, collection)

        return wrapped

    def _cleared(self, fn: Callable[[], None]) -> Callable[[], None]:
        def wrapped() -> None:
            with self._lock:
                self.cache_clears += 1
            fn()

        return wrapped

    def _commit(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(conn: Any, batch: list[Any]) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(conn, batch)
            finally:
                with self._lock:
                    self.commits += 1
                    self.committed_writes += len(batch)
                    self.commit_s += time.perf_counter() - t0

        return wrapped

    def count_tasks(self) -> None:
        """Count every asyncio task created on the running loop."""
        loop = asyncio.get_running_loop()

        def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
            self.tasks += 1
            return asyncio.Task(coro, loop=loop, **kwargs)

        loop.set_task_factory(factory)  # type: ignore[arg-type]

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "calls": Counter(self.calls),
                "await_s": dict(self.await_s),
                "thread_s": dict(self.thread_s),
                "commits": self.commits,
                "committed_writes": self.committed_writes,
                "commit_s": self.commit_s,
                "conflicts": self.conflicts,
                "tasks": self.tasks,
                "table_ddl": self.table_ddl,
                "cache_clears": self.cache_clears,
            }


def delta(after: dict[str, Any], before: dict[str, Any], per: int) -> dict[str, Any]:
    """Store activity between two snapshots, divided by ``per`` (runs or step runs)."""
    calls = {k: (v - before["calls"].get(k, 0)) / per for k, v in after["calls"].items()}
    awaited = {
        k: (v - before["await_s"].get(k, 0.0)) * 1e3 / per for k, v in after["await_s"].items()
    }
    thread = {
        k: (v - before["thread_s"].get(k, 0.0)) * 1e3 / per for k, v in after["thread_s"].items()
    }
    scalar = ("commits", "committed_writes", "conflicts", "tasks", "table_ddl", "cache_clears")
    out: dict[str, Any] = {k: round((after[k] - before[k]) / per, 2) for k in scalar}
    out["commit_ms"] = round((after["commit_s"] - before["commit_s"]) * 1e3 / per, 3)
    out["calls"] = {k: round(v, 2) for k, v in sorted(calls.items()) if v}
    out["await_ms"] = {k: round(v, 3) for k, v in sorted(awaited.items()) if v}
    out["thread_ms"] = {k: round(v, 3) for k, v in sorted(thread.items()) if v}
    out["round_trips"] = round(sum(calls.values()), 2)
    return out


# -- one case ---------------------------------------------------------------------------------
async def run_once(system: System, runner: Any, workflow_id: str) -> dict[str, Any]:
    cpu0, proc0 = time.thread_time(), time.process_time()
    t0 = time.perf_counter()
    execution = await system.workflows.new_execution(TEAM, workflow_id=workflow_id)
    t1 = time.perf_counter()
    await runner.submit(TEAM, execution["id"])
    t2 = time.perf_counter()
    ended: list[float] = []
    task = runner._tasks.get(execution["id"])  # the engine's run: its end splits run from wait
    if task is not None:
        task.add_done_callback(lambda _t: ended.append(time.perf_counter()))
    record = await runner.wait(TEAM, execution["id"], timeout=120)
    t4 = time.perf_counter()
    t3 = ended[0] if ended else t4
    loop_cpu, process_cpu = time.thread_time() - cpu0, time.process_time() - proc0
    if record["status"] != "COMPLETED":
        raise RuntimeError(
            f"execution {execution['id']} ended {record['status']}: {record['error']}"
        )
    return {
        "total_ms": (t4 - t0) * 1e3,
        "new_execution_ms": (t1 - t0) * 1e3,
        "submit_ms": (t2 - t1) * 1e3,
        "run_ms": (t3 - t2) * 1e3,
        "wait_ms": (t4 - t3) * 1e3,
        "loop_cpu_ms": loop_cpu * 1e3,  # the event-loop thread's own CPU
        "process_cpu_ms": process_cpu * 1e3,  # + the writer and reader threads
        "record_duration_ms": record.get("duration_ms"),
        "slowest_step_ms": max(s["duration_ms"] or 0.0 for s in record["steps"]),
    }


async def measure(
    case: str, repeats: int, *, warmup: int = 3, profile: Path | None = None
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="linqra-perf-") as tmp:
        system = await System.open(Settings(data_dir=Path(tmp)))
        try:
            meter = StoreMeter(system.store)
            meter.count_tasks()
            workflow = await system.workflows.create(TEAM, definition(case))
            runner = system.runner("perf")
            for _ in range(warmup):
                await run_once(system, runner, workflow.id)
            before = meter.snapshot()
            profiler = cProfile.Profile() if profile else None
            if profiler:
                profiler.enable()
            runs = [await run_once(system, runner, workflow.id) for _ in range(repeats)]
            if profiler:
                profiler.disable()
                profiler.dump_stats(str(profile))
            after = meter.snapshot()
            micro = await store_floor(system) if profile is None else None
        finally:
            await system.close()
    return summarise(case, runs, delta(after, before, repeats), micro)


async def store_floor(system: System, n: int = 200) -> dict[str, float]:
    """One store round trip in isolation: sequential writes and reads of one small document."""
    store, coll = system.store, "perf_floor"
    await store.insert(coll, TEAM, {"id": "x", "n": 0})
    t0 = time.perf_counter()
    for i in range(n):
        await store.update(coll, TEAM, "x", {"n": i})
    t1 = time.perf_counter()
    for _ in range(n):
        await store.get(coll, TEAM, "x")
    t2 = time.perf_counter()
    return {
        "write_round_trip_ms": round((t1 - t0) * 1e3 / n, 3),
        "read_round_trip_ms": round((t2 - t1) * 1e3 / n, 3),
    }


def plain_chain_ms(repeats: int = 200) -> float:
    expr = jmespath.compile("{a: a}")
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        value: Any = {"a": 0}
        for _ in range(CHAIN_STEPS):
            value = expr.search(value)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def summarise(
    case: str, runs: list[dict[str, Any]], store: dict[str, Any], micro: dict[str, float] | None
) -> dict[str, Any]:
    med = {
        k: round(statistics.median(r[k] for r in runs), 3)
        for k in runs[0]
        if runs[0][k] is not None
    }
    p90 = round(sorted(r["total_ms"] for r in runs)[int(0.9 * (len(runs) - 1))], 3)
    steps = step_count(case)
    out: dict[str, Any] = {"case": case, "runs": len(runs), "steps": steps, "median": med}
    out["p90_total_ms"] = p90
    out["store_per_run"] = store
    out["store_per_step"] = {
        k: round(v / steps, 2) for k, v in store.items() if isinstance(v, int | float)
    }
    if case == "chain":
        plain = plain_chain_ms()
        out["plain_python_chain_ms"] = round(plain, 4)
        out["per_step_ms"] = round(med["total_ms"] / steps, 3)
        out["per_step_run_phase_ms"] = round(med["run_ms"] / steps, 3)
        out["ratio_vs_plain_python"] = round(med["total_ms"] / plain, 1)
    if case == "fanout":
        out["wall_over_step_seconds"] = round(med["total_ms"] / (FANOUT_SECONDS * 1e3), 3)
        ratio = [r["record_duration_ms"] / r["slowest_step_ms"] for r in runs]
        out["record_duration_over_slowest_step"] = round(statistics.median(ratio), 3)
    if micro:
        out["store_floor"] = micro
    return out


def report(result: dict[str, Any]) -> None:
    med = result["median"]
    print(f"\n== {result['case']}: {result['steps']} step(s), median of {result['runs']} runs")
    phases = ("total_ms", "new_execution_ms", "submit_ms", "run_ms", "wait_ms", "loop_cpu_ms")
    phases += ("process_cpu_ms",)
    print("   " + "  ".join(f"{p.removesuffix('_ms')} {med[p]:.2f}" for p in phases), "ms")
    print(f"   p90 total {result['p90_total_ms']:.2f} ms")
    for key in (
        "per_step_ms",
        "per_step_run_phase_ms",
        "plain_python_chain_ms",
        "ratio_vs_plain_python",
        "wall_over_step_seconds",
        "record_duration_over_slowest_step",
    ):
        if key in result:
            print(f"   {key}: {result[key]}")
    if "record_duration_ms" in med:
        print(
            f"   record duration_ms {med['record_duration_ms']}, slowest step {med['slowest_step_ms']} ms"
        )
    store = result["store_per_run"]
    print(
        f"   per run: {store['round_trips']} store calls, {store['commits']} commits "
        f"({store['committed_writes']} writes, {store['conflicts']} insert conflicts), "
        f"{store['tasks']} asyncio tasks, writer thread busy {store['commit_ms']} ms"
    )
    print(
        f"   table cache cleared {store['cache_clears']}x (rollbacks), "
        f"CREATE TABLE/INDEX IF NOT EXISTS re-run {store['table_ddl']}x"
    )
    for key, n in store["calls"].items():
        print(f"     {key:<22} {n:7.2f} calls  await {store['await_ms'].get(key, 0):8.3f} ms")
    if store["thread_ms"]:
        print("   SQLite work in threads (ms per run):", store["thread_ms"])
    if "store_floor" in result:
        print("   store floor:", result["store_floor"])


# -- profiles ---------------------------------------------------------------------------------
def write_pstats(prof: Path, text: Path, top: int = 45) -> None:
    out = io.StringIO()
    stats = pstats.Stats(str(prof), stream=out)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    text.write_text(out.getvalue())


def flame_graph(case: str, out: Path, repeats: int) -> list[Path]:
    """``<case>.svg``: every sample of every thread (py-spy's idle filter does not work on this
    VM, so waits in ``select`` and ``queue.get`` show); ``<case>.gil.svg``: only the thread that
    holds the GIL, i.e. where Python CPU goes. Both with one root per thread."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        raise SystemExit("py-spy is missing: .venv/bin/pip install py-spy")
    svgs = []
    for suffix, extra in (("svg", []), ("gil.svg", ["--gil"])):
        svg = out / f"{case}.{suffix}"
        command = [
            py_spy, "record", "--rate", "250", "--threads", *extra, "-o", str(svg), "--",
            sys.executable, "-m", "benchmarks.profile_engine", case, "--repeats", str(repeats),
        ]  # fmt: skip
        subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        svgs.append(svg)
    return svgs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", help=f"any of {', '.join(CASES)} (default: all)")
    parser.add_argument("--repeats", type=int, help="timed runs per case (after 3 warm-ups)")
    parser.add_argument("--profile", action="store_true", help="cProfile + py-spy per case")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "perf")
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    args = parser.parse_args()
    unknown = set(args.cases) - set(CASES)
    if unknown:
        parser.error(f"cases: unknown {sorted(unknown)}; choose from {', '.join(CASES)}")
    results = []
    for case in args.cases or CASES:
        repeats = args.repeats or DEFAULT_REPEATS[case]
        result = asyncio.run(measure(case, repeats))
        report(result)
        results.append(result)
        if args.profile:
            args.out.mkdir(parents=True, exist_ok=True)
            prof = args.out / f"{case}.prof"
            asyncio.run(measure(case, repeats, profile=prof))
            write_pstats(prof, args.out / f"{case}.pstats.txt")
            svgs = flame_graph(case, args.out, PROFILE_REPEATS[case])
            names = ", ".join(p.name for p in [prof, args.out / f"{case}.pstats.txt", *svgs])
            print(f"   wrote {names} in {args.out}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
