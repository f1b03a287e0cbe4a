"""Where the Ray paths of issue 15 spend their time: a Ray-task step, and a one-step workflow
through ``POST /v1/workflows/{id}/execute?wait=true`` (docs/perf/ray-profile.md).

    python -m benchmarks.profile_ray task [--cycles 4] [--pyspy]  # B1's path, 1 and 20 steps
    python -m benchmarks.profile_ray http [--cycles 10] [--pyspy]  # the gateway on Serve

One local Ray cluster (2 CPUs) with the cluster's actors, and a probe actor shaped like the
runner (``task``) or the gateway replica (``http``, Serve behind HAProxy as ``linqra up``). The
variants take turns; the probes wrap instances in their own processes only (a timed
executor, a store meter). ``--pyspy`` adds flame graphs; numbers go to ray-profile-<mode>.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import ray
from ray import cloudpickle, serve

from actors._context import process_system, run_sync, shipped_settings
from actors.cluster import start_cluster
from actors.executor import RayExecutor, run_cpu_step
from actors.handles import RUNNER, lookup
from benchmarks.run import NAMESPACE, _free_port, _settings
from deployments.app import create_app
from deployments.gateway import build_app
from deployments.serve_config import APP_NAME, apply_ingress_env, logging_config
from linqra.clock import parse_iso
from linqra.steps.base import StepCall
from linqra.steps.runtime import run_step_call

ROOT = Path(__file__).resolve().parent.parent
TEAM = "perf"
KEEP = 6  # runs of a variant kept per cycle, after one that warms its path up
TABLE = ("1_step_ms", "20_steps_ms", "per_step_ms", "fixed_ms")
PYSPY = ROOT / ".venv" / "bin" / "py-spy"
PYSPY_MODES = (("", "--nonblocking"), (".gil", "--nonblocking --gil"))  # --native: see the doc
SPANS = "submit_sent_to_claim claim_to_step_start step_in_worker step_end_to_run_end"
SPANS += " run_end_to_wait_return"
EXECUTE_WAIT = "http_execute_wait"
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


def _call(i: int) -> StepCall:
    return StepCall("ex_probe", TEAM, i, "noop", None, None, {"i": i}, None, {}, *CALL_TAIL)


@ray.remote
def noop(x: Any = None) -> Any:
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


class _Shipped:
    def __init__(self, settings_json: str) -> None:
        self.settings, self.settings_json = shipped_settings(settings_json), settings_json


class Plain(_Shipped):
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


class Probe(_Shipped):
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
            "cpu_step_awaited": lambda i: self.cpu.remote(_call(i), self.settings_json),
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


class GatewayProbe(_Shipped):
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


def _pids(title: str) -> list[int]:
    """Processes of this driver's cluster titled ``title…`` (another cluster may run here)."""
    import psutil

    mine = psutil.Process().children(recursive=True)
    return [p.pid for p in mine if " ".join(p.cmdline()).startswith(title)]


def _replica_url() -> str:
    """The gateway replica's direct-ingress address, from the HAProxy config Serve wrote."""
    base = Path(os.environ["RAY_SERVE_HAPROXY_CONFIG_FILE_LOC"]).parent
    config = max(base.glob("*/haproxy.cfg"), key=lambda p: p.stat().st_mtime).read_text()
    return "http://" + config.split("SERVE_REPLICA_linqra-Gateway")[1].split()[1]


def _init_ray() -> None:
    ray.init(
        address="local",
        num_cpus=2,
        namespace=NAMESPACE,
        include_dashboard=False,
        log_to_driver=False,
    )


def _seconds(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _actor(cls: type, settings: Any) -> Any:
    options = {"num_cpus": 0, "max_concurrency": 100}
    return ray.remote(cls).options(**options).remote(settings.model_dump_json())


def _interleave(variants: dict[str, Callable[[], float]], cycles: int) -> dict[str, list[float]]:
    """Each cycle runs every variant 1 + KEEP times in a row, as B1 does, and keeps the last KEEP
    (the first warms its path up); cycle 0 is all warm-up. A drift hits all variants alike."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for cycle in range(cycles + 1):
        for name, fn in variants.items():
            runs = [fn() for _ in range(1 + KEEP)][1:]
            times[name] += runs if cycle else []
    return times


def _pyspy(targets: dict[str, int], out: Path, secs: float, load: Callable[[], Any]) -> Any:
    """Flame graphs of each target pid while ``load`` repeats: ``<name>.svg`` (every thread)
    and ``<name>.gil.svg`` (only the thread holding the GIL: where Python CPU goes)."""
    made: dict[str, Any] = {"pids": targets}
    for tag, flags in PYSPY_MODES:
        cmd = f"{PYSPY} record --rate 100 --duration {int(secs)} --format flamegraph {flags}"
        procs = []
        for name, pid in targets.items():
            argv = [*cmd.split(), "--pid", str(pid), "--output", str(out / f"{name}{tag}.svg")]
            procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        time.sleep(1.0)  # py-spy attaches
        t0, n = time.perf_counter(), 0
        while time.perf_counter() - t0 < secs - 1.5:
            load()
            n += 1
        for p in procs:
            _, err = p.communicate(timeout=120)
            if p.returncode:
                print("py-spy:", err.decode()[-400:], file=sys.stderr)
        made[f"runs{tag or '.all'}"] = n
    return made


def task_mode(args: argparse.Namespace) -> dict[str, Any]:
    settings = _settings(Path(tempfile.mkdtemp(prefix="linqra-rayprof-")))
    _init_ray()
    try:
        cluster = start_cluster(settings)
        singletons = [cluster.runner, cluster.scheduler, cluster.supervisor, *cluster.io_pool]
        ray.get([a.ping.remote() for a in singletons + cluster.async_workers], timeout=120)
        probe = _actor(Probe, settings)
        ray.get(probe.setup.remote())

        def b1_path(n: int, executor: str = "task") -> float:  # B1's engine runs
            t0 = time.perf_counter()
            record = ray.get(cluster.runner.run_definition.remote(TEAM, steps(n, executor), {}))
            assert record["status"] == "COMPLETED", record.get("error")
            return time.perf_counter() - t0

        kinds: dict[str, Callable[[int], float]] = {
            "driver_raw_ref_chain": lambda n: _seconds(lambda: ray.get(ref_chain(n))),  # B1's
            "b1_run_definition": b1_path,
            "b1_run_definition_io": lambda n: b1_path(n, "io"),
            "b1_run_definition_inline": lambda n: b1_path(n, "inline"),
        }
        probed = "raw_ref_chain raw_awaited cpu_step_awaited actor_awaited engine_task engine_io"
        for v in (probed + " engine_actor engine_inline").split():
            kinds[v] = lambda n, v=v: ray.get(probe.run.remote(v, n))
        variants = {
            f"{k}/{n}": (lambda k=k, n=n: kinds[k](n) * 1000) for k in kinds for n in (1, 20)
        }
        times = _interleave(variants, args.cycles or 4)
        table = {}
        for k in kinds:
            one, twenty = statistics.median(times[f"{k}/1"]), statistics.median(times[f"{k}/20"])
            slope = (twenty - one) / 19
            values = (one, twenty, slope, one - slope)
            table[k] = {n: round(v, 3) for n, v in zip(TABLE, values, strict=True)}
        out: dict[str, Any] = {"variants": table}
        out["timed_20_steps"] = ray.get(probe.timed_runs.remote(20, KEEP * (args.cycles or 4)))
        out["timed_1_step"] = ray.get(probe.timed_runs.remote(1, KEEP * (args.cycles or 4)))
        if args.pyspy:
            worker = out["timed_20_steps"]["worker_pids"][0]
            targets = {"ray-runner-b1": _pids("ray::RunnerActor")[0], "ray-task-worker": worker}
            out["pyspy"] = _pyspy(targets, Path(args.out), args.seconds, lambda: b1_path(20))
        return out
    finally:
        ray.shutdown()


def http_mode(args: argparse.Namespace) -> dict[str, Any]:
    apply_ingress_env()  # HAProxy, as `linqra up`
    settings = _settings(Path(tempfile.mkdtemp(prefix="linqra-rayprof-")))
    _init_ray()
    try:
        port = _free_port()
        serve.start(
            http_options={"host": "127.0.0.1", "port": port}, logging_config=logging_config()
        )
        serve.run(build_app(settings), name=APP_NAME, route_prefix="/")
        url = f"http://127.0.0.1:{port}"
        http = httpx.Client(base_url=url, headers={"X-Team-Id": TEAM}, timeout=30)
        while http.get("/healthz").status_code != 200:  # serve.run returns once it is up
            time.sleep(0.1)
        body = {"name": "one-noop", "steps": [{"step": 1, "target": "noop", "params": {"a": 1}}]}
        wf = http.post("/v1/workflows", json=body).json()["id"]
        probe = _actor(GatewayProbe, settings)
        ray.get(probe.setup.remote(wf))

        def request(path: str, method: str = "GET") -> float:
            t0 = time.perf_counter()
            r = http.request(method, path, json={} if method == "POST" else None)
            elapsed = (time.perf_counter() - t0) * 1000
            assert r.status_code < 300, r.text
            if r.status_code == 202:  # untimed: the run ends before the next request starts
                http.post(f"{execute}?wait=true", json={})
            return elapsed

        execute = f"/v1/workflows/{wf}/execute"
        direct = _replica_url()  # the replica's own HTTP server, which HAProxy forwards to
        variants: dict[str, Callable[[], float]] = {
            EXECUTE_WAIT: lambda: request(f"{execute}?wait=true", "POST"),
            "http_execute_202": lambda: request(execute, "POST"),
            "http_me": lambda: request("/v1/me"),
            "replica_direct_execute_wait": lambda: request(f"{direct}{execute}?wait=true", "POST"),
            "replica_direct_me": lambda: request(f"{direct}/v1/me"),
            "asgi_execute_wait": lambda: ray.get(probe.asgi.remote(f"{execute}?wait=true", "POST")),
            "asgi_me": lambda: ray.get(probe.asgi.remote("/v1/me")),
            "gateway_calls_one_by_one": lambda: sum(phase()[k] for k in GATEWAY_CALLS),
        }
        phases: list[dict[str, float]] = []
        phase = lambda: phases.append(ray.get(probe.phases.remote())) or phases[-1]  # noqa: E731
        times = _interleave(variants, args.cycles or 10)
        phases = [p for i, p in enumerate(phases) if i > KEEP and i % (1 + KEEP)]  # as kept
        out: dict[str, Any] = {"requests_ms": {}, "gateway_calls_p50_ms": {}}
        for k, v in times.items():
            p90 = statistics.quantiles(v, n=10)[8]
            out["requests_ms"][k] = {"p50": round(statistics.median(v), 2), "p90": round(p90, 2)}
        for k in phases[0]:
            out["gateway_calls_p50_ms"][k] = round(statistics.median(p[k] for p in phases), 3)
        if args.pyspy:
            gateway, runner = _pids("ray::ServeReplica:linqra:Gateway"), _pids("ray::RunnerActor")
            targets = {"ray-gateway-execute": gateway[0], "ray-runner-execute": runner[0]}
            out["pyspy"] = _pyspy(targets, Path(args.out), args.seconds, variants[EXECUTE_WAIT])
        serve.shutdown()
        return out
    finally:
        ray.shutdown()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=("task", "http"))
    parser.add_argument("--cycles", type=int, help="4 (task), 10 (http)")
    parser.add_argument("--pyspy", action="store_true")
    parser.add_argument("--seconds", type=float, default=12.0, help="py-spy recording length")
    parser.add_argument("--out", default=str(ROOT / "docs" / "perf"))
    args = parser.parse_args(argv)
    git = f"git -C {ROOT} describe --always --dirty".split()
    result: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": subprocess.run(git, capture_output=True, text=True).stdout.strip(),
        "load_before": os.getloadavg(),
    }
    Path(args.out).mkdir(parents=True, exist_ok=True)
    result.update(task_mode(args) if args.mode == "task" else http_mode(args))
    result["load_after"] = os.getloadavg()
    text = json.dumps(result, indent=2)
    print(text)
    (Path(args.out) / f"ray-profile-{args.mode}.json").write_text(text + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
