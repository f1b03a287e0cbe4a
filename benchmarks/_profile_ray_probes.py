"""The probes of :mod:`benchmarks.profile_ray`: what runs inside the cluster — B1's workflow and
raw chain, a timed ``run_cpu_step``, executors that time or reroute task steps, a store meter,
and the probe actors shaped like the runner (:class:`Probe`) and a gateway replica
(:class:`GatewayProbe`). Pickled by value: Ray's workers need not import this file.
"""

from __future__ import annotations

import itertools
import os
import statistics
import sys
import time
from collections import Counter
from typing import Any

import httpx
import ray
from ray import cloudpickle

from actors._context import process_system, run_sync, shipped_settings
from actors.executor import RayExecutor, run_cpu_step
from actors.handles import RUNNER, lookup
from deployments.app import create_app
from linqra.clock import parse_iso
from linqra.steps.base import StepCall
from linqra.steps.runtime import run_step_call

__all__ = [
    "GATEWAY_CALLS",
    "TEAM",
    "ActorExecutor",
    "GatewayProbe",
    "Plain",
    "Probe",
    "Shipped",
    "TimedExecutor",
    "meter",
    "noop",
    "probe_actor",
    "ref_chain",
    "step_call",
    "steps",
    "timed_cpu_step",
]

TEAM = "perf"
SPANS = "submit_sent_to_claim claim_to_step_start step_in_worker step_end_to_run_end"
SPANS += " run_end_to_wait_return"
GATEWAY_CALLS = ("new_execution", "get_actor", "submit", "wait")
STORE_METHODS = ("insert", "get", "find", "update", "count")
MARKS_ = "enter submitted worker_start settings on_loop target_done worker_end awaited"
PHASES_ = "submit_call to_worker worker_settings worker_to_loop_and_system worker_target"
MARKS, PHASES = tuple(MARKS_.split()), (*PHASES_.split(), "worker_back", "result_to_runner")
TIMED = (
    "total",
    "before_first_step",
    "after_last_step",
    *PHASES,
    "between_steps",
    "between_steps_store",
)
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers need not import this file


def steps(n: int, executor: str = "task") -> dict[str, Any]:
    """B1's workflow: ``n`` sequential ``noop`` steps (a Ray task each unless ``executor``)."""
    body = [
        {"step": i, "target": "noop", "params": {"i": i}, "executor": executor}
        for i in range(1, n + 1)
    ]
    return {"steps": body}


CALL_TAIL = (None, False, "task", 30.0, 1, 0.2, 10.0, 2.0)  # llm_config … backoff_multiplier


def step_call(i: int) -> StepCall:
    """The ``StepCall`` of a ``noop`` step ``i`` of the probe's execution."""
    return StepCall("ex_probe", TEAM, i, "noop", None, None, {"i": i}, None, {}, *CALL_TAIL)


@ray.remote
def noop(x: Any = None) -> Any:
    """B1's bare task: ``x`` back."""
    return x


def ref_chain(n: int) -> Any:
    """B1's baseline: ``n`` tasks, each given the previous one's ObjectRef; the last ref."""
    ref = noop.remote(0)
    for _ in range(n - 1):
        ref = noop.remote(ref)
    return ref


@ray.remote(max_retries=0)
def timed_cpu_step(call: StepCall, settings_json: str) -> tuple[Any, list[float]]:
    """``run_cpu_step``, timestamped: entry, settings, on the loop, target done, end; its pid."""
    marks = [time.perf_counter()]
    settings = shipped_settings(settings_json)
    marks.append(time.perf_counter())

    async def work(system: Any) -> Any:
        marks.append(time.perf_counter())
        outcome = await run_step_call(call, system.registry, system.ctx)
        marks.append(time.perf_counter())
        return outcome

    outcome = run_sync(settings, work)
    return outcome, [*marks, time.perf_counter(), float(os.getpid())]


class Shipped:
    """A class whose instances are made from the settings' JSON, as Ray ships them."""

    def __init__(self, settings_json: str) -> None:
        self.settings, self.settings_json = shipped_settings(settings_json), settings_json


class Plain(Shipped):
    """A sync actor: a CPU step as a call to a warm worker instead of a task."""

    def noop(self, x: Any = None) -> Any:
        return x

    def execute(self, call: StepCall) -> Any:  # what run_cpu_step does, in a warm actor
        return run_cpu_step._function(call, self.settings_json)


class ActorExecutor(RayExecutor):
    """What-if: task steps go to warm actors (no worker lease per step)."""

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        actor = ray.remote(Plain).options(num_cpus=0)
        self.workers = itertools.cycle([actor.remote(self._settings_json)])

    async def execute(self, call: StepCall) -> Any:
        return await next(self.workers).execute.remote(call)


class TimedExecutor(RayExecutor):
    """``RayExecutor`` recording each task step's phases (perf_counter: one clock per machine)."""

    def __init__(self, settings: Any, log: list[dict[str, float]]) -> None:
        super().__init__(settings)
        self.log = log
        self._timed = timed_cpu_step.options(num_cpus=settings.execution.cpu_step_num_cpus)

    async def execute(self, call: StepCall) -> Any:
        t0 = time.perf_counter()
        ref = self._timed.remote(call, self._settings_json)
        t1 = time.perf_counter()
        outcome, m = await ref
        step = dict(zip((*MARKS[2:-1], "pid"), m, strict=True))
        self.log.append({"enter": t0, "submitted": t1, "awaited": time.perf_counter(), **step})
        return outcome


def meter(store: Any) -> tuple[Counter[str], list[tuple[float, float]]]:
    """Wraps this process's store instance: calls by method and collection, (start, end) of each."""
    calls: Counter[str] = Counter()
    spans: list[tuple[float, float]] = []

    def wrap(fn: Any, name: str) -> Any:
        async def timed(collection: str, *args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return await fn(collection, *args, **kwargs)
            finally:
                calls[f"{name}:{collection}"] += 1
                spans.append((t0, time.perf_counter()))

        return timed

    for name in STORE_METHODS:
        setattr(store, name, wrap(getattr(store, name), name))
    return calls, spans


class Probe(Shipped):
    """Runs the variants inside the cluster, in a process shaped like the runner actor."""

    async def setup(self) -> int:
        self.system = await process_system(self.settings)
        self.calls, self.spans = meter(self.system.store)
        self.step_log: list[dict[str, float]] = []
        self.runners = {
            "engine_task": self.system.runner("probe", RayExecutor(self.settings)),
            "engine_actor": self.system.runner("probe-actor", ActorExecutor(self.settings)),
            "engine_timed": self.system.runner("t", TimedExecutor(self.settings, self.step_log)),
        }
        self.plain = ray.remote(Plain).options(num_cpus=0).remote(self.settings_json)
        self.cpu = run_cpu_step.options(num_cpus=self.settings.execution.cpu_step_num_cpus)
        await self.plain.noop.remote()
        return os.getpid()

    async def run(self, variant: str, n: int) -> float:
        """One run of ``variant`` with ``n`` steps; seconds."""
        awaited = {  # one call at a time, each result back here before the next call
            "raw_awaited": lambda i: noop.remote(i),
            "cpu_step_awaited": lambda i: self.cpu.remote(step_call(i), self.settings_json),
            "actor_awaited": lambda i: self.plain.noop.remote(i),
        }
        t0 = time.perf_counter()
        if variant == "raw_ref_chain":  # B1's baseline, from an actor
            await ref_chain(n)
        elif variant in awaited:
            for i in range(1, n + 1):
                await awaited[variant](i)
        else:  # engine_io: the same runner, every step `executor: io` (the I/O pool's actors)
            executor = {"engine_inline": "inline", "engine_io": "io"}.get(variant, "task")
            runner = self.runners.get(variant, self.runners["engine_task"])
            await self._engine(runner, steps(n, executor))
        return time.perf_counter() - t0

    async def _engine(self, runner: Any, body: dict[str, Any]) -> dict[str, Any]:
        definition = self.system.workflows.validate_definition(body)
        ex = await self.system.workflows.new_execution(TEAM, definition=definition)
        await runner.submit(TEAM, ex["id"])
        record = await runner.wait(TEAM, ex["id"], 60)
        assert record["status"] == "COMPLETED", record.get("error")
        return record

    async def timed_runs(self, n: int, repeats: int) -> dict[str, Any]:
        """Runs of ``n`` timed task steps: medians of each phase (ms), store calls per run."""
        per_run, calls = [], Counter[str]()
        for _ in range(repeats):
            self.step_log.clear()
            self.spans.clear()
            before = Counter(self.calls)
            t0 = time.perf_counter()
            await self._engine(self.runners["engine_timed"], steps(n))
            per_run.append(_split(self.step_log, self.spans, t0, time.perf_counter()))
            calls += self.calls - before
        out: dict[str, Any] = {k: round(statistics.median(r[k] for r in per_run), 3) for k in TIMED}
        out["store_calls_per_run"] = {k: v / repeats for k, v in sorted(calls.items())}
        out["worker_pids"] = sorted({int(s["pid"]) for s in self.step_log})
        return out


def _split(
    log: list[dict[str, float]], spans: list[tuple[float, float]], t0: float, t1: float
) -> dict[str, float]:
    """One engine run in ms: before, each step's phases (summed), between steps, after."""
    ms: Counter[str] = Counter()
    ms["total"] = (t1 - t0) * 1000
    ms["before_first_step"] = (log[0]["enter"] - t0) * 1000
    ms["after_last_step"] = (t1 - log[-1]["awaited"]) * 1000
    for s in log:
        for name, (a, b) in zip(PHASES, itertools.pairwise(MARKS), strict=True):
            ms[name] += (s[b] - s[a]) * 1000
    for prev, nxt in itertools.pairwise(log):
        lo, hi = prev["awaited"], nxt["enter"]
        ms["between_steps"] += (hi - lo) * 1000
        ms["between_steps_store"] += sum(
            (min(b, hi) - max(a, lo)) * 1000 for a, b in spans if a < hi and b > lo
        )
    return ms


class GatewayProbe(Shipped):
    """An async actor with this process's system and the cluster's launcher (as a gateway
    replica has), and the same FastAPI app served over ASGI in it."""

    async def setup(self, workflow_id: str) -> int:
        self.system = await process_system(self.settings)
        self.workflow_id = workflow_id
        app = httpx.ASGITransport(app=create_app(self.system))
        self.client = httpx.AsyncClient(
            transport=app, base_url="http://probe", headers={"X-Team-Id": TEAM}
        )
        return os.getpid()

    async def phases(self) -> dict[str, float]:
        """One execution as the route runs it, each call timed and aligned with the times the
        runner recorded (wall clock, µs resolution): ms."""
        launcher, t = self.system.launcher, [time.perf_counter()]
        ex = await self.system.workflows.new_execution(TEAM, workflow_id=self.workflow_id)
        t.append(time.perf_counter())
        runner = lookup(self.settings, RUNNER)  # what each launcher call does first
        t, w = [*t, time.perf_counter()], [time.time()]
        await launcher.submit(TEAM, ex["id"])
        t.append(time.perf_counter())
        record = await launcher.wait(TEAM, ex["id"], 30)
        t, w = [*t, time.perf_counter()], [*w, time.time()]
        await runner.running.remote()
        t.append(time.perf_counter())
        assert record["status"] == "COMPLETED", record
        names = (*GATEWAY_CALLS, "runner_noop_call")
        out = {n: (b - a) * 1000 for n, a, b in zip(names, t, t[1:], strict=False)}
        step = record["steps"][0]
        when = [parse_iso(d["started_at"]).timestamp() for d in (record, step)]
        when += [parse_iso(d["finished_at"]).timestamp() for d in (step, record)]
        at = [w[0], *when, w[1]]
        pairs = zip(SPANS.split(), itertools.pairwise(at), strict=True)
        return out | {f"runner:{n}": (b - a) * 1000 for n, (a, b) in pairs}

    async def asgi(self, path: str, method: str = "GET") -> float:
        t0 = time.perf_counter()
        response = await self.client.request(method, path, json={} if method == "POST" else None)
        assert response.status_code < 300, response.text
        return (time.perf_counter() - t0) * 1000


def probe_actor(cls: type, settings: Any) -> Any:
    """An actor of ``cls`` (a :class:`Shipped`) with no CPU and 100 calls at a time."""
    options = {"num_cpus": 0, "max_concurrency": 100}
    return ray.remote(cls).options(**options).remote(settings.model_dump_json())
