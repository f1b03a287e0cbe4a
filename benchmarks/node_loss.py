"""B21 — node loss (issue 17): runs in flight when a worker node dies, runs lost (target 0),
runs doubled, and the time until everything is back.

    python -m benchmarks.node_loss [--runs worst,ray-health-check] [--executions 6]

Three Ray nodes on this machine (``ray.cluster_utils.Cluster``, one CPU each). The scenario is
the multi-node test's (``tests/support/multinode_driver.py``, run as its own driver process:
a Ray process joins one cluster only), with the worst case pinned on the node that is killed,
``node_a``: the runner, the supervisor, the scheduler, one I/O worker and one async-step worker.
Once the batch is running (executions with four parallel 4 s I/O steps, an agent's task, a 3 s
``async: true`` step and a CPU step; two 4 s task executions; two documents being ingested),
``node_a``'s processes are killed at once (SIGKILL, no goodbye to the GCS).

Runs:

* ``worst`` — the head's node health check at 0.5 s x 3 (as the tests);
* ``ray-health-check`` — the same with Ray's default health check, to show what detection costs;
* ``io-worker`` — the runner, supervisor and scheduler elsewhere: only an I/O worker, an
  async-step worker and whatever agent ``SPREAD`` put there are lost, under a live runner;
* ``spread`` — nothing pinned: wherever ``SPREAD`` put the actors (often not the runner).

Reported per run: what was in flight; lost (records that never ended, or missing); doubled
(a step completed twice, a task started twice for one step, a chunk indexed twice); failed, with
why; seconds from the kill until the GCS saw the node dead, until each singleton answered from
another node, and until each kind of record had ended.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._support import stamp, uptime

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "node_loss.json"
WORST = [
    "--pin", "linqra-io-0=node_a", "--pin", "linqra-io-1=head",
    "--pin", "linqra-async-0=head", "--pin", "linqra-async-1=node_a",
]  # fmt: skip
RUNS: dict[str, list[str]] = {
    "worst": WORST,
    "ray-health-check": [*WORST, "--ray-health-check"],
    "io-worker": [
        "--no-default-pins", "--pin", "linqra-runner=head", "--pin", "linqra-supervisor=node_b",
        "--pin", "linqra-scheduler=node_b", *WORST, "--settle-timeout", "120",
    ],
    "spread": ["--no-default-pins"],
}  # fmt: skip


def scenario(name: str, extra: list[str], executions: int) -> dict[str, Any]:
    """One run of the driver; its JSON result."""
    with tempfile.TemporaryDirectory(prefix="linqra-b21-") as tmp:
        out = Path(tmp) / "result.json"
        command = [
            sys.executable, "-m", "tests.support.multinode_driver",
            "--out", str(out), "--data-dir", str(Path(tmp) / "data"),
            "--executions", "2", "--loss-executions", str(executions), *extra,
        ]  # fmt: skip
        load_before = uptime()
        proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
        if not out.exists():
            raise SystemExit(f"{name}: exit {proc.returncode}\n{proc.stderr[-4000:]}")
        raw: dict[str, Any] = json.loads(out.read_text())
    raw["load_before"], raw["load_after"] = load_before, uptime()
    return raw


def summary(name: str, raw: dict[str, Any]) -> dict[str, Any]:
    """The figures of one run."""
    if "error" in raw:
        return {"run": name, "error": raw["error"], "load": raw["load_after"]}
    loss = raw["loss"]
    counts = loss["counts"]
    ex, tasks, docs = counts["executions"], counts["task_executions"], counts["documents"]
    steps = counts["async_steps"]
    doubled = (
        ex["steps_completed_twice"]
        + max(0, tasks["nested_per_execution_max"] - 1)
        + docs["doubled_chunks"]
    )
    return {
        "run": name,
        "timed_out": loss["timed_out"],
        "on_lost_node": loss["actors_on_victim"],
        "lost_node_actors_after": loss["restarts"],
        "in_flight": loss["in_flight"],
        "executions": ex["by_status"],
        "runs_lost": ex["lost"] + steps["unfinished"],
        "step_runs_left_running": ex["unfinished_step_runs"],
        "runs_doubled": doubled,
        "failed_why": {
            "executions": ex["errors"],
            "task_executions": tasks["errors"],
        },
        "task_executions": tasks["by_status"],
        "nested_tasks": tasks["nested_by_status"],
        "async_steps": steps["by_status"],
        "documents": docs["by_status"],
        "detected_dead_s": loss["detected_dead_s"],
        "singletons_back_s": max(loss["singletons_back_s"].values()),
        "ended_s": loss["ended_s"],
        "recovered_s": loss["all_ended_s"],
        "new_execution_after_s": loss["after_loss"]["seconds"],
        "load_before": raw["load_before"].rsplit("load average:", 1)[-1].strip(),
        "load_after": raw["load_after"].rsplit("load average:", 1)[-1].strip(),
        "driver_total_s": raw["total_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.node_loss")
    parser.add_argument("--runs", default=",".join(RUNS), help=f"of {', '.join(RUNS)}")
    parser.add_argument("--executions", type=int, default=6, help="executions in flight")
    parser.add_argument("--raw", action="store_true", help="keep each driver's full result")
    args = parser.parse_args()
    t0 = time.monotonic()
    runs = []
    for name in args.runs.split(","):
        raw = scenario(name, RUNS[name], args.executions)
        figures = summary(name, raw)
        if args.raw:
            figures["raw"] = raw
        runs.append(figures)
        print(json.dumps(figures, indent=2), flush=True)
    result = {
        **stamp(),
        "benchmark": "B21 node loss",
        "nodes": "head + 2 workers, 1 CPU each, one machine (2 cores)",
        "runs": runs,
        "seconds": round(time.monotonic() - t0, 1),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
