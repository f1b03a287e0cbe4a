"""Three Ray nodes on one machine (``ray.cluster_utils.Cluster``) for the multi-node scenario
(:mod:`tests.support.multinode_driver`): a head and two worker nodes of one CPU each, told apart
by custom resources (``head``, ``node_a``, ``node_b``); which node each Linqra actor is on; and
removing a worker node the way a machine dies (its processes killed, no goodbye to the GCS).

A Ray process can be connected to one cluster only, and the pytest session has its own
(``tests/conftest.py`` ``ray_cluster``): this runs in a driver process of its own.

The GCS declares a silent node dead after ``health_check_period_ms`` times
``health_check_failure_threshold``; the head here uses 0.5 s and 3 (1.2-1.8 s to see a node
gone; Ray's defaults took 14-15 s: B21 in docs/benchmarks.md, docs/scaling.md).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import ray
from ray.cluster_utils import Cluster

__all__ = ["LABELS", "ThreeNodes", "pin_options", "pinned", "wait_for"]

T = TypeVar("T")
LABELS = ("head", "node_a", "node_b")
HEALTH_CHECK = {"health_check_period_ms": 500, "health_check_failure_threshold": 3}


def wait_for(what: str, check: Callable[[], T | None], timeout: float, every: float = 0.2) -> T:
    """``check()``'s first truthy value, polled every ``every`` s; TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:g}s")
        time.sleep(every)


@ray.remote(num_cpus=0)
def _where() -> str:
    return ray.get_runtime_context().get_node_id()


class ThreeNodes:
    """``start()`` the nodes and connect this process to the head; ``shutdown()`` them."""

    def __init__(self, namespace: str, *, health_check: dict[str, int] | None = None) -> None:
        self.namespace = namespace
        self.health_check = HEALTH_CHECK if health_check is None else health_check
        self.cluster: Cluster | None = None
        self.nodes: dict[str, Any] = {}  # label -> ray._private.node.Node
        self.ids: dict[str, str] = {}  # label -> node id (hex)
        self.removed: set[str] = set()

    def start(self, runtime_env: dict[str, Any] | None = None) -> dict[str, float]:
        """Start the head and both workers, connect, and wait until the head's scheduler sees
        both workers (a task on each): actors placed before that would all land on the head."""
        t0 = time.monotonic()
        os.environ.setdefault("RAY_DEDUP_LOGS", "0")
        head_args: dict[str, Any] = {
            "num_cpus": 1,
            "resources": {"head": 1},
            "include_dashboard": False,
            "_system_config": dict(self.health_check),
        }
        self.cluster = Cluster(initialize_head=True, head_node_args=head_args)
        self.nodes["head"] = self.cluster.head_node
        for label in LABELS[1:]:
            self.nodes[label] = self.cluster.add_node(num_cpus=1, resources={label: 1})
        self.cluster.wait_for_nodes()
        t1 = time.monotonic()
        ray.init(
            address=self.cluster.address,
            namespace=self.namespace,
            log_to_driver=False,
            logging_level=logging.WARNING,
            runtime_env=runtime_env,
        )
        self.ids = {label: node.node_id for label, node in self.nodes.items()}
        seen = ray.get([_where.options(resources={label: 0.01}).remote() for label in LABELS])
        assert seen == [self.ids[label] for label in LABELS], (seen, self.ids)
        return {"nodes_s": round(t1 - t0, 2), "connect_s": round(time.monotonic() - t1, 2)}

    def label(self, node_id: str | None) -> str:
        for label, known in self.ids.items():
            if known == node_id:
                return label
        return "?"

    def actors(self) -> dict[str, dict[str, Any]]:
        """The GCS's actor table by name (the latest actor under each name, dead ones too)."""
        table = ray._private.state.actors()  # type: ignore[attr-defined]
        latest: dict[str, dict[str, Any]] = {}
        for info in table.values():
            name = info.get("Name")
            if name and (name not in latest or info["StartTime"] >= latest[name]["StartTime"]):
                latest[name] = info
        return latest

    def node_of(self, name: str) -> str | None:
        """The label of the node the ``name`` actor is on; None while it is not ALIVE."""
        info = self.actors().get(name)
        if info is None or info.get("State") != "ALIVE":
            return None
        return self.label(info["Address"]["NodeID"])

    def restarts(self, name: str) -> dict[str, Any]:
        """How often Ray restarted the ``name`` actor, its state, why it died if it did."""
        info = self.actors().get(name) or {}
        cause = str(info.get("DeathCause") or "").strip()
        return {
            "restarts": int(info.get("NumRestarts", 0)),
            "state": info.get("State"),
            **({"death": cause[:300]} if cause and info.get("State") == "DEAD" else {}),
        }

    def placement(self) -> dict[str, str | None]:
        """Every live named actor → the label of its node."""
        return {
            name: self.label(info["Address"]["NodeID"])
            for name, info in sorted(self.actors().items())
            if info.get("State") == "ALIVE"
        }

    def alive(self, label: str) -> bool:
        """Whether the GCS still counts the node as alive."""
        return any(n["NodeID"] == self.ids[label] and n["Alive"] for n in ray.nodes())  # type: ignore[no-untyped-call]

    def remove(self, label: str) -> float:
        """Kill every process of a worker node at once (SIGKILL, as a lost machine); the
        monotonic time it happened."""
        assert self.cluster is not None and label != "head"
        node = self.nodes[label]
        at = time.monotonic()
        self.cluster.remove_node(node, allow_graceful=False)
        self.removed.add(label)
        return at

    def shutdown(self) -> None:
        with contextlib.suppress(Exception):
            ray.shutdown()  # type: ignore[no-untyped-call]
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                self.cluster.shutdown()  # type: ignore[no-untyped-call]
            head = self.cluster.head_node
            if head is not None:
                with contextlib.suppress(Exception):
                    self.cluster.remove_node(head)


def pin_options(node_id: str) -> dict[str, Any]:
    """Actor options that place it on the node ``node_id`` while that node lives, and on any
    other once it is gone (a label selector with a fallback)."""
    return {
        "scheduling_strategy": "DEFAULT",
        "label_selector": {"ray.io/node-id": node_id},
        "fallback_strategy": [{"label_selector": {"ray.io/node-id": f"!{node_id}"}}],
    }


@contextlib.contextmanager
def pinned(pins: dict[str, str], nodes: ThreeNodes) -> Iterator[None]:
    """While inside, ``actors.cluster.start_cluster`` creates the actors named in ``pins``
    (name → node label) on that node — a label selector with a fallback to any other node, so
    that Ray restarts them elsewhere once it is gone (``NodeAffinitySchedulingStrategy`` with
    ``soft=True`` placed one in three elsewhere at once on a busy machine): the scenario puts the singletons on the node it removes (the worst case)
    instead of wherever ``SPREAD`` happens to."""
    import actors.cluster as cluster

    real = getattr(cluster, "named_actor")  # noqa: B009 - the name start_cluster calls

    def named_actor(cls: type, settings: Any, name: str, *args: Any, **options: Any) -> Any:
        if name in pins:
            options.update(pin_options(nodes.ids[pins[name]]))
        return real(cls, settings, name, *args, **options)

    setattr(cluster, "named_actor", named_actor)  # noqa: B010
    try:
        yield
    finally:
        setattr(cluster, "named_actor", real)  # noqa: B010
