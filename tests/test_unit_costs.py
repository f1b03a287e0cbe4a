"""The unit-cost benchmark (benchmarks/unit_costs.py, docs/scaling.md "Unit costs"): its process
accounting on real processes, and the plan for 10,000 teams following from the unit costs of the
last recorded run."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from benchmarks.unit_costs import LOAD, NODE, RESULTS, CpuMeter, memory, per, plan, units
from linqra.testing.servers import redis_server

BURN = (
    "import sys, time\n"
    "while time.process_time() < 0.3: pass\n"
    "print('burnt', flush=True)\n"
    "sys.stdin.read()\n"
)


@pytest.fixture(scope="module")
def recorded() -> dict:
    return json.loads(RESULTS.read_text())


def test_the_meter_counts_a_child_process_cpu_under_its_role() -> None:
    meter = CpuMeter()
    child = subprocess.Popen(
        [sys.executable, "-c", BURN], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        meter = CpuMeter({child.pid: "burner"}).start()
        assert child.stdout is not None and child.stdout.readline() == "burnt\n"
        used = meter.stop()
    finally:
        child.communicate("")
    assert 0.25 <= used["burner"] <= 1.0  # its 0.3 s, counted from its birth
    assert used["total"] >= used["burner"] + used.get("driver", 0.0) - 1e-9
    assert per(used, 3, ("burner",))["burner_ms"] == round(used["burner"] * 1000 / 3, 3)


def test_memory_is_read_per_process_of_a_role() -> None:
    before = memory("redis")["processes"]  # the suite's own redis-server may run already
    with redis_server():
        got = memory("redis")
    assert got["processes"] == before + 1
    assert 0 < got["uss_mib"] <= got["pss_mib"] <= got["rss_mib"]
    assert memory("redis")["processes"] == before  # stopped: no longer counted


def test_the_recorded_run_has_every_unit_and_its_own_plan(recorded: dict) -> None:
    assert units(recorded["measured"]) == recorded["units"]
    assert all(value > 0 for value in recorded["units"].values()), recorded["units"]
    assert recorded["plan"] == json.loads(json.dumps(plan(recorded["units"])))
    measured = recorded["measured"]
    for phase, done, total in (
        ("agents", "completed", "task_executions"),
        ("conversations", "completed", "messages"),
        ("executions", "completed", "executions"),
        ("gateway", "ok", "requests"),
    ):
        assert measured[phase][done] == measured[phase][total] > 0, phase


def test_the_node_count_follows_from_the_unit_costs(recorded: dict) -> None:
    unit = recorded["units"]
    got = plan(unit)
    chats, hosts = got["parts"]["chat hosts"], got["derived"]["chat_hosts"]
    messages = LOAD["chats"] * LOAD["messages_per_chat_per_min"] / 60
    by_cpu = math.ceil(messages * unit["chat_message_host_cpu_ms"] / 1000 / NODE["usable"])
    assert hosts == max(by_cpu, LOAD["chat_hosts_at_least"])
    run_logs = messages * LOAD["run_log_seconds"]
    assert got["derived"]["chat_run_logs_kept"] == round(run_logs)
    assert chats["memory_gib"] == round(
        hosts * unit["chat_host_mib"] / 1024
        + (LOAD["chats"] * unit["conversation_kib"] + run_logs * unit["chat_run_kib"]) / 2**20,
        1,
    )
    usable_cores, usable_gib = NODE["cores"] * NODE["usable"], NODE["memory_gib"] * NODE["usable"]
    assert got["worker_nodes_by_cores"] == math.ceil(got["cores"] / usable_cores - 1e-9)
    assert got["worker_nodes_by_memory"] == math.ceil(got["memory_gib"] / usable_gib - 1e-9)
    assert got["nodes"] == max(got["worker_nodes_by_cores"], got["worker_nodes_by_memory"]) + 1
    heavier = plan({**unit, "agent_idle_actor_mib": unit["agent_idle_actor_mib"] * 10})
    assert heavier["worker_nodes_by_memory"] > got["worker_nodes_by_memory"]
    assert heavier["worker_nodes_by_cores"] == got["worker_nodes_by_cores"]
    # a conversation is a worker in a host, not a process: a thousand more (and their runs'
    # logs) cost a fiftieth of what a thousand processes of a host's size would
    more_chats = plan(unit, {**LOAD, "chats": LOAD["chats"] + 1000})
    added = more_chats["parts"]["chat hosts"]["memory_gib"] - chats["memory_gib"]
    assert 0 < added < 1000 * unit["chat_host_mib"] / 1024 / 50
    assert more_chats["derived"]["chat_hosts"] >= hosts


def test_the_busiest_singleton_is_the_first_bottleneck(recorded: dict) -> None:
    unit = recorded["units"]
    slow_runner = plan({**unit, "execution_runner_cpu_ms": 50.0})
    assert slow_runner["first_bottleneck"] == "runner"
    steps = LOAD["steps_per_execution"] - 1
    assert slow_runner["runner_max_executions_per_s"] == round(
        1000 / (50.0 + steps * unit["step_runner_cpu_ms"])
    )
    slow_bus = plan({**unit, "ray_bus_event_cpu_ms": 100.0, "execution_runner_cpu_ms": 0.001,
                     "step_runner_cpu_ms": 0.001})  # fmt: skip
    assert slow_bus["first_bottleneck"] == "ray:// bus actor"
    assert slow_bus["singleton_cores"]["ray:// bus actor"] == LOAD["events_per_s"] * 0.1
