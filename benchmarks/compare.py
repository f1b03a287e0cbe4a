"""Side by side (issue 15, part 6): each measure of the engine beside its peer, in one run, as
ratios — ``make bench-compare``.

    python -m benchmarks.compare [--repeats 30] [--write-docs]

In one process, interleaved (engine, peer, engine, peer, …) so both see the same machine:

chain    20 sequential JMESPath ``transform`` steps through the engine (``System`` on SQLite,
         ``new_execution`` → ``submit`` → ``wait``: every step recorded) against the same 20
         searches in plain Python, and a 20-node LangGraph ``StateGraph`` doing the same
         searches (``langgraph`` from PyPI, the ``bench`` extra); per step.
fanout   100 independent steps each awaiting 200 ms (``wait`` steps, DAG mode) against
         ``asyncio.gather`` of 100 sleeps and a LangGraph graph fanning out to 100 nodes that each
         sleep 200 ms; wall time over the slowest call (200 ms).
fanout_1000  the same 1,000 wide (fewer rounds), with the process's CPU time a run beside it:
         what a wide fan-out costs the engine itself, before Ray adds its share.
noop     one ``noop`` step, the whole execution (record created, claimed, recorded, read).
retrieval (``--retrieval``) top-5 search at 100k chunks in Milvus Lite as ``linqra up`` runs it
         against NumPy brute force over the same vectors (``benchmarks.retrieval``'s Lite part).

The Ray paths (B1's Ray-task steps against a raw chain of Ray tasks, B2 through the I/O actors)
and the gateway are in ``benchmarks.run``; they need a cluster of their own.

Results are printed, written to benchmarks/results/compare.json and, with ``--write-docs``,
as the table between the markers of docs/benchmarks.md's "Side by side" section.
"""

from __future__ import annotations

import argparse
import asyncio
import operator
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypedDict

import jmespath

from benchmarks._support import publish, stamp

RESULTS = Path(__file__).resolve().parent / "results" / "compare.json"
BEGIN, END = "<!-- compare: written by python -m benchmarks.compare -->", "<!-- end of compare -->"
STEPS, FAN, WIDE, SLEEP = 20, 100, 1000, 0.2
EXPRESSION = "a"


TIMES = "\u00d7"


class _State(TypedDict):
    value: Any


class _Fan(TypedDict):
    done: Annotated[list[int], operator.add]


def _langgraph_chain() -> Any:
    from langgraph.graph import END as LG_END
    from langgraph.graph import START, StateGraph

    search = jmespath.compile(EXPRESSION)
    graph = StateGraph(_State)
    for i in range(STEPS):
        graph.add_node(f"n{i}", lambda s: {"value": {"a": search.search(s["value"])}})
        graph.add_edge(START if i == 0 else f"n{i - 1}", f"n{i}")
    graph.add_edge(f"n{STEPS - 1}", LG_END)
    return graph.compile()


def _langgraph_fanout(width: int = FAN) -> Any:
    from langgraph.graph import END as LG_END
    from langgraph.graph import START, StateGraph

    graph = StateGraph(_Fan)
    for i in range(width):

        async def node(_: _Fan, i: int = i) -> dict[str, list[int]]:
            await asyncio.sleep(SLEEP)
            return {"done": [i]}

        graph.add_node(f"n{i}", node)
        graph.add_edge(START, f"n{i}")
        graph.add_edge(f"n{i}", LG_END)
    return graph.compile()


async def _timed(fn: Callable[[], Awaitable[Any]], cpu: list[float] | None = None) -> float:
    c0 = time.process_time()
    t0 = time.perf_counter()
    await fn()
    elapsed = (time.perf_counter() - t0) * 1000
    if cpu is not None:
        cpu.append((time.process_time() - c0) * 1000)
    return elapsed


async def measure(repeats: int) -> dict[str, Any]:
    from linqra.config import Settings
    from linqra.system import System

    with tempfile.TemporaryDirectory() as tmp:
        system = await System.open(Settings(data_dir=Path(tmp)))
        runner = system.runner("compare")
        team = "bench"

        async def engine(definition: dict[str, Any]) -> Callable[[], Awaitable[Any]]:
            wf = await system.workflows.create(team, {"name": "w", **definition})

            async def run() -> None:
                ex = await system.workflows.new_execution(team, workflow_id=wf.id, params={})
                await runner.submit(team, ex["id"])
                record = await runner.wait(team, ex["id"], 60)
                assert record["status"] == "COMPLETED", record["status"]

            return run

        chain_steps = [
            {"step": i + 1, "target": "transform",
             "params": {"expression": EXPRESSION, "input": {"a": 1} if i == 0 else f"{{{{step{i}.result}}}}"}}
            for i in range(STEPS)
        ]  # fmt: skip
        engine_chain = await engine({"steps": chain_steps})
        engine_fan = await engine({
            "mode": "dag",
            "steps": [{"step": i + 1, "target": "wait", "params": {"seconds": SLEEP}} for i in range(FAN)],
        })  # fmt: skip
        engine_wide = await engine({
            "mode": "dag",
            "steps": [{"step": i + 1, "target": "wait", "params": {"seconds": SLEEP}} for i in range(WIDE)],
        })  # fmt: skip
        engine_noop = await engine({"steps": [{"step": 1, "target": "noop"}]})
        search = jmespath.compile(EXPRESSION)

        async def plain_chain() -> None:
            value: Any = {"a": 1}
            for _ in range(STEPS):
                value = {"a": search.search(value)}

        async def plain_fan() -> None:
            await asyncio.gather(*(asyncio.sleep(SLEEP) for _ in range(FAN)))

        async def plain_wide() -> None:
            await asyncio.gather(*(asyncio.sleep(SLEEP) for _ in range(WIDE)))

        lg_chain, lg_fan, lg_wide = _langgraph_chain(), _langgraph_fanout(), _langgraph_fanout(WIDE)

        async def langgraph_chain() -> None:
            await lg_chain.ainvoke({"value": {"a": 1}})

        async def langgraph_fan() -> None:
            await lg_fan.ainvoke({"done": []})

        async def langgraph_wide() -> None:
            await lg_wide.ainvoke({"done": []})

        cases = {
            "chain": {
                "engine": engine_chain,
                "plain_python": plain_chain,
                "langgraph": langgraph_chain,
            },
            "fanout": {
                "engine": engine_fan,
                "asyncio_gather": plain_fan,
                "langgraph": langgraph_fan,
            },
            "fanout_1000": {
                "engine": engine_wide,
                "asyncio_gather": plain_wide,
                "langgraph": langgraph_wide,
            },
            "noop": {"engine": engine_noop},
        }
        rounds_of = {"fanout": max(5, repeats // 5), "fanout_1000": max(5, repeats // 6)}
        times: dict[str, dict[str, list[float]]] = {c: {k: [] for k in v} for c, v in cases.items()}
        cpu: dict[str, list[float]] = {k: [] for k in cases["fanout_1000"]}
        for case, runs in cases.items():
            for fn in runs.values():  # warm-up
                await fn()
            for _ in range(rounds_of.get(case, repeats)):
                for name, fn in runs.items():
                    used = cpu[name] if case == "fanout_1000" else None
                    times[case][name].append(await _timed(fn, used))
        await system.close()
    medians = {c: {k: statistics.median(v) for k, v in t.items()} for c, t in times.items()}
    chain, fan, wide = medians["chain"], medians["fanout"], medians["fanout_1000"]
    return {
        "chain_per_step_ms": {k: round(v / STEPS, 4) for k, v in chain.items()},
        "chain_engine_over_langgraph": round(chain["engine"] / chain["langgraph"], 2),
        "chain_engine_over_plain_python": round(chain["engine"] / chain["plain_python"], 1),
        "fanout_over_slowest_call": {k: round(v / (SLEEP * 1000), 3) for k, v in fan.items()},
        "fanout_1000_over_slowest_call": {k: round(v / (SLEEP * 1000), 3) for k, v in wide.items()},
        "fanout_1000_cpu_ms": {k: round(statistics.median(v), 1) for k, v in cpu.items()},
        "noop_execution_ms": round(medians["noop"]["engine"], 3),
    }


def _table(result: dict[str, Any]) -> str:
    c, f = result["chain_per_step_ms"], result["fanout_over_slowest_call"]
    w, u = result["fanout_1000_over_slowest_call"], result["fanout_1000_cpu_ms"]
    return "\n".join([
        BEGIN,
        "",
        f"{result['when']}, commit {result['commit']}, load {result['load']}: "
        "`python -m benchmarks.compare` (in process; medians).",
        "",
        "| measure | Linqra | peer | ratio |",
        "| --- | --- | --- | --- |",
        f"| 20 inline `transform` steps, per step | {c['engine']:.3f} ms | LangGraph {c['langgraph']:.3f} ms a node | **{result['chain_engine_over_langgraph']}{TIMES}** |",
        f"| the same | {c['engine']:.3f} ms | plain Python {c['plain_python']:.4f} ms | {result['chain_engine_over_plain_python']}{TIMES} |",
        f"| 100 parallel 200 ms waits, wall / 200 ms | {f['engine']} | LangGraph {f['langgraph']}, `asyncio.gather` {f['asyncio_gather']} | {round(f['engine'] / f['langgraph'], 2)}{TIMES} LangGraph |",
        f"| 1,000 parallel 200 ms waits, wall / 200 ms | {w['engine']} | LangGraph {w['langgraph']}, `asyncio.gather` {w['asyncio_gather']} | **{round(w['engine'] / w['langgraph'], 2)}{TIMES} LangGraph** |",
        f"| the same, CPU time a run | {u['engine']:.0f} ms | LangGraph {u['langgraph']:.0f} ms, `asyncio.gather` {u['asyncio_gather']:.0f} ms | {round(u['engine'] / u['langgraph'], 2)}{TIMES} LangGraph |",
        f"| one `noop` step, a whole execution | {result['noop_execution_ms']:.2f} ms | — | |",
        *_retrieval_rows(result.get("retrieval")),
        "",
        END,
    ])  # fmt: skip


def _retrieval_rows(lite: dict[str, Any] | None) -> list[str]:
    if not lite:
        return []
    rows = []
    for key, label in (("team", "team only"), ("category_10pct", "a 10 % filter")):
        r = lite["search"][key]
        rows.append(
            f"| top-5 search, {lite['rows'] // 1000}k chunks, Milvus Lite ({label}; recall@10 "
            f"{r['recall_at_10']}) | {r['p50_ms']:.1f} ms | NumPy brute force "
            f"{r['numpy_p50_ms']:.1f} ms | **{r['ratio_p50']}{TIMES}** |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--retrieval", action="store_true", help="also B23's 100k Lite measure")
    args = parser.parse_args()
    result = {**stamp(), **asyncio.run(measure(args.repeats))}
    if args.retrieval:
        from benchmarks.retrieval import lite

        result["retrieval"] = asyncio.run(lite())
    publish(result, RESULTS, (BEGIN, END), _table(result), args.write_docs)


if __name__ == "__main__":
    main()
