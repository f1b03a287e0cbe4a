"""Issue 17 part 2: Ray's cluster autoscaler, exercised for real on one machine with its fake
multi-node provider (``provider: type: fake_multinode``): Linqra's actors on a head without a
CPU, a workflow whose CPU step (``executor: task``) is a Ray task wanting a CPU; the pending task
makes the autoscaler add a worker node, the step runs there, the execution completes, and the
idle node goes away after ``idle_timeout_minutes`` (0.05: 3 s).

The scenario runs once, in a driver process of its own (``tests/support/autoscaler.py``: a Ray
process joins one cluster only, and the session has its own), as the multi-node tests do; it
starts no cluster the session or anyone else uses, and stops none (no ``ray stop``). Select with
``pytest -m multinode``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.multinode

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory, milvus_uri: str) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("autoscaler") / "result.json"
    command = [sys.executable, "-m", "tests.support.autoscaler", "--out", str(out),
               "--vector-uri", milvus_uri]  # fmt: skip
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.exists(), f"exit {proc.returncode}: {proc.stdout[-2000:]}{proc.stderr[-4000:]}"
    found: dict[str, Any] = json.loads(out.read_text())
    assert "error" not in found, f"{found['error']}\n{proc.stderr[-4000:]}"
    return found


def test_a_pending_cpu_step_makes_a_node_appear_and_the_execution_completes(
    result: dict[str, Any],
) -> None:
    assert result["nodes_before"] == 0  # the head has no CPU: nothing to run the step on
    assert 1 <= result["nodes_added"] <= 2  # the node type's max_workers
    assert result["node_up_s"] <= result["ended_s"]
    assert result["status"] == "COMPLETED", result["execution_error"]
    assert result["steps"] == {"1": "COMPLETED", "2": "COMPLETED"}


def test_the_idle_node_goes_away_and_nothing_is_left_running(result: dict[str, Any]) -> None:
    assert result["node_gone_s"] > result["ended_s"]  # removed when idle, not before
    assert result["left_running"] == 0  # every process of the fake cluster ended
    print(
        f"node up {result['node_up_s']}s after submitting, execution ended {result['ended_s']}s,"
        f" node gone {result['node_gone_s']}s; whole driver {result['total_s']}s"
    )
