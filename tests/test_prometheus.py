"""Linqra's metrics through Ray's metrics export into a real Prometheus (``prometheus``
fixture: Debian's binary with ``configs/prometheus.yml``, scraping the session's cluster every
second through the discovery file Ray writes), asked back through Prometheus's query API.

The session's cluster labels by team (``metrics.team_labels``), so this module's team has series
of its own and their values are exact, whatever other modules' executions are still running on
the cluster. The step and duration counts are compared with what they were once this team's
first execution had arrived."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from linqra.config import Settings
from linqra.llm.budgets import to_nanos
from linqra.llm.usage import USAGE
from linqra.system import System
from tests.support.prometheus import Prometheus
from tests.test_observability import RAY_METRICS, dashboard_queries, metric_names

pytestmark = pytest.mark.ray

TEAM = "team-prometheus"
N = 3
WORKFLOW = {
    "steps": [
        {"step": 1, "target": "transform", "params": {"expression": "`1`", "input": {}}},
        {"step": 2, "target": "openai", "action": "generate", "stream": True,
         "payload": [{"role": "user", "content": "count to three"}],
         "llmConfig": {"model": "gpt-4o"}},
    ],
}  # fmt: skip


@pytest.fixture(scope="module")
def cluster(ray_cluster: Any, ray_settings: Settings) -> Settings:
    from actors.cluster import start_cluster

    start_cluster(ray_settings)
    return ray_settings


def run_executions(settings: Settings, count: int) -> list[dict[str, Any]]:
    """``count`` executions of :data:`WORKFLOW` on the cluster's runner, one after another."""
    from actors.events import open_bus
    from actors.handles import RayLauncher

    async def run() -> list[dict[str, Any]]:
        system = await System.open(settings, launcher=RayLauncher(settings),
                                   events=open_bus(settings), init=True)  # fmt: skip
        try:
            definition = system.workflows.validate_definition(WORKFLOW)
            records = []
            for _ in range(count):
                ex = await system.runs.start_execution(TEAM, definition=definition)
                records.append(await system.runs.wait_execution(TEAM, ex["id"], 60))
            return records
        finally:
            await system.close()

    records = asyncio.run(run())
    assert [r["status"] for r in records] == ["COMPLETED"] * count, records[-1].get("error")
    return records


def usage_totals(settings: Settings) -> tuple[int, int]:
    """The output tokens and the cost in nanos of this team's usage records."""

    async def read() -> list[dict[str, Any]]:
        system = await System.open(settings, init=False)
        try:
            return await system.store.find(USAGE, TEAM, {}, limit=1000)
        finally:
            await system.close()

    docs = asyncio.run(read())
    cost = sum(to_nanos(Decimal(d["cost"])) for d in docs if d.get("cost"))
    return sum(int(d["output_tokens"]) for d in docs), cost


def test_a_runs_metrics_reach_prometheus_with_exact_values(
    cluster: Settings, prometheus: Prometheus
) -> None:
    ours = f'team="{TEAM}"'
    completed = f'sum(linqra_executions_total{{status="COMPLETED",{ours}}})'
    llm_ok = f'sum(linqra_llm_calls_total{{provider="openai",status="ok",{ours}}})'
    openai_steps = f'sum(linqra_steps_total{{target="openai",status="COMPLETED",{ours}}})'
    transform_steps = f'sum(linqra_steps_total{{target="transform",status="COMPLETED",{ours}}})'
    durations = f'sum(linqra_execution_duration_seconds_count{{status="COMPLETED",{ours}}})'

    run_executions(cluster, 1)  # this team's series start at 1: increase() has a first sample
    prometheus.wait_value(completed, 1)
    before = {q: prometheus.value(q) or 0.0 for q in (openai_steps, transform_steps, durations)}

    run_executions(cluster, N)
    prometheus.wait_value(completed, N + 1)
    # the runner records steps before their execution's end, and exports them together
    assert prometheus.value(openai_steps) == before[openai_steps] + N
    assert prometheus.value(transform_steps) == before[transform_steps] + N
    assert prometheus.value(durations) == before[durations] + N
    increase = prometheus.value(
        f'sum(increase(linqra_executions_total{{status="COMPLETED",{ours}}}[1m]))'
    )
    assert increase is not None and N <= round(increase) <= 2 * N  # extrapolated by Prometheus

    # model calls are recorded where they run (an I/O worker), with their tokens and exact cost
    prometheus.wait_value(llm_ok, N + 1)
    tokens, nanos = usage_totals(cluster)
    assert tokens > 0 and nanos > 0
    prometheus.wait_value(f'sum(linqra_llm_tokens_total{{kind="output",{ours}}})', tokens)
    prometheus.wait_value(f"sum(linqra_llm_cost_nanos_total{{{ours}}})", nanos)
    ttft = 'sum(linqra_llm_time_to_first_token_seconds_count{provider="openai"})'
    assert (prometheus.value(ttft) or 0) >= N + 1  # every step streamed
    started = f'sum(linqra_executions_started_total{{reason="submitted",{ours}}})'
    assert prometheus.value(started) == N + 1


def test_sampled_gauges_arrive(cluster: Settings, prometheus: Prometheus) -> None:
    """The supervisor's samples: queue depth and age per queue, live agent actors."""

    def sampled() -> bool:
        queues = {r["metric"]["queue"] for r in prometheus.query("linqra_queue_depth")}
        return queues == {"async_steps", "task_executions"} and bool(
            prometheus.query("linqra_agent_actors")
        )

    prometheus.wait(sampled, "the supervisor's first samples", 30)
    ages = prometheus.query("linqra_queue_oldest_age_seconds")
    assert {r["metric"]["queue"] for r in ages} == {"async_steps", "task_executions"}
    assert all(float(r["value"][1]) >= 0 for r in ages)


def test_every_dashboard_query_runs_on_prometheus(
    cluster: Settings, prometheus: Prometheus
) -> None:
    names = prometheus.metric_names()
    assert names >= RAY_METRICS, sorted(RAY_METRICS - names)
    for expr in dashboard_queries():
        prometheus.query(expr)  # parses and evaluates (an error names the query)
        assert metric_names(expr)
