"""The cluster's alert evaluator (``actors/alerts.py``): started with the other singletons by
``start_cluster``, it evaluates a team's rule from the shared store and publishes its alert on
the team's topic of the cluster's event bus."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from linqra.alerts import rules_of
from linqra.config import Settings
from linqra.system import System

pytestmark = pytest.mark.ray

TEAM = "team-alerts-ray"


@pytest.fixture(scope="module")
def cluster(ray_cluster: Any, ray_settings: Settings) -> Any:
    from actors.cluster import start_cluster

    return start_cluster(ray_settings)


def test_the_cluster_evaluates_rules_and_publishes_alerts_on_the_teams_topic(
    cluster: Any, ray_settings: Settings
) -> None:
    import ray

    from actors.alerts import ALERTS
    from actors.events import open_bus

    assert cluster.alerts is not None
    assert ray.get_actor(ALERTS, namespace=ray_settings.ray.namespace) is not None

    async def run() -> tuple[dict[str, Any], list[Any], Any]:
        system = await System.open(ray_settings, events=open_bus(ray_settings), init=True)
        try:
            rules = rules_of(system)
            subscription = await system.bus().subscribe(
                f"linqra.{TEAM}.ops", "alerts-ray-test", "t1"
            )
            rule = await rules.create(TEAM, {
                "name": "any backlog", "signal": "queue_backlog", "comparison": ">=",
                "threshold": 0, "channels": [{"type": "event", "topic": "ops"}],
            })  # fmt: skip
            report = await asyncio.wrap_future(cluster.alerts.tick.remote().future())
            events = await subscription.fetch(10, 10.0)
            await subscription.close()
            return report, events, await rules.get(TEAM, rule.id)
        finally:
            await system.close()

    report, events, rule = asyncio.run(run())
    # fired by this tick, or by the actor's own loop just before it
    assert report.get("error") is None and report["evaluated"] >= 1, report
    assert rule.state is not None and rule.state.state == "firing"
    [event] = [e.event for e in events if e.event.payload["alert"]["rule_id"] == rule.id]
    assert event.payload["type"] == "alert.firing"
    ping = ray.get(cluster.alerts.ping.remote(), timeout=30)
    assert ping["running"] and ping["ticks"] >= 1
