"""The Ray side of the ``linqra`` command: finding (or starting) a Ray cluster, ``linqra run
FILE --ray`` — a plain Ray driver that runs a workflow file through the cluster's runner actor —
and the Ray section of ``linqra status``.

The driver form is what a Ray job runs::

    ray job submit --address http://127.0.0.1:8265 -- linqra run configs/examples/parallel_workflow.json --ray --team acme

Everything else the CLI does goes through the gateway's HTTP API (:mod:`deployments.remote_cli`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from deployments.remote_cli import UsageError, parse_params
from linqra.config import Settings, load_settings
from linqra.logs import ray_logging_config
from linqra.status import ExecutionStatus

__all__ = [
    "address_file",
    "cmd_run_ray",
    "init_ray",
    "left_address",
    "load_workflow",
    "ray_section",
    "with_vector_store",
]


def _say(text: str) -> None:
    print(text, flush=True)


def address_file(settings: Settings) -> Path:
    """Where ``linqra up`` leaves its cluster's address for ``linqra run`` and ``linqra status``."""
    return settings.data_dir / "ray-address"


def left_address(settings: Settings) -> str | None:
    """The address a running ``linqra up`` left, with its auth mode applied to this process."""
    path = address_file(settings)
    if not path.is_file():
        return None
    try:
        left = json.loads(path.read_text())
    except ValueError:
        return None
    # A cluster that ray.init() started uses token auth (~/.ray/auth_token); a client connecting
    # by address must say so, or the GCS refuses it.
    if left.get("auth_mode"):
        os.environ.setdefault("RAY_AUTH_MODE", str(left["auth_mode"]))
    return str(left["address"])


def init_ray(
    settings: Settings, address: str | None, *, dashboard: bool, join_up: bool = False
) -> tuple[Any, bool]:
    """Connect to a cluster or start a local one; ``(context, started_locally)``."""
    import ray

    address = address or os.environ.get("RAY_ADDRESS") or settings.ray.address
    if not address and join_up and (left := left_address(settings)):
        try:  # the cluster of a running `linqra up`
            context = ray.init(
                address=left, namespace=settings.ray.namespace, logging_level=logging.WARNING
            )
            return context, False
        except Exception:
            _say("(the cluster `linqra up` left an address for is gone; starting a local one)")
    if address:
        context = ray.init(
            address=address, namespace=settings.ray.namespace, logging_level=logging.WARNING
        )
        return context, False
    from deployments.serve_config import apply_ingress_env

    apply_ingress_env()
    kwargs: dict[str, Any] = {}
    if dashboard:
        kwargs.update(
            include_dashboard=True,
            dashboard_host=settings.ray.dashboard_host,
            dashboard_port=settings.ray.dashboard_port,
        )
    context = ray.init(
        address="local",  # a new local cluster, not one a `ray start` on this machine left
        num_cpus=settings.ray.num_cpus,
        namespace=settings.ray.namespace,
        logging_level=logging.WARNING,
        # every worker's lines as JSON with their extras (request, team, execution, trace ids)
        logging_config=ray.LoggingConfig(**ray_logging_config(settings.logging)),
        **kwargs,
    )
    return context, True


def with_vector_store(settings: Settings) -> tuple[Settings, Any]:
    """Settings with a Milvus URI: the configured one, else an embedded Milvus Lite server
    (loopback, data in data_dir/milvus) that the caller stops on exit."""
    if settings.knowledge.vector_uri:
        return settings, None
    from linqra.vectors import EmbeddedMilvus

    server = EmbeddedMilvus(settings.data_dir / "milvus").start()
    knowledge = settings.knowledge.model_copy(update={"vector_uri": server.uri})
    return settings.model_copy(update={"knowledge": knowledge}), server


def load_workflow(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """A workflow definition from a workflow file (``POST /v1/workflows`` shape) or a Linq
    request file (``{link, query}``: its ``query.workflow`` steps, mode, timeout and params)."""
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise UsageError(f"{path} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a JSON object (a workflow or a Linq request)")
    if "link" in data and "query" in data:
        query = data["query"] if isinstance(data["query"], dict) else {}
        body = {"steps": query.get("workflow") or []}
        for key in ("mode", "timeoutSeconds", "params"):
            if key in query:
                body[key] = query[key]
        return body, {}
    body = {k: v for k, v in data.items() if k in ("mode", "steps", "timeoutSeconds", "params")}
    return body, {}


def _find_runner(settings: Settings, timeout: float = 30.0) -> Any:
    """The joined cluster's runner, asked again for ``timeout`` s (a busy GCS, a restart)."""
    from actors.handles import RUNNER, lookup
    from linqra.errors import Unavailable

    deadline = time.monotonic() + timeout
    while True:
        try:
            return lookup(settings, RUNNER)
        except Unavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def cmd_run_ray(args: argparse.Namespace) -> int:
    """``linqra run FILE --ray``: run a workflow file as a Ray driver through the runner actor of
    the cluster at ``--address``/``$RAY_ADDRESS``/``linqra up``'s, else of a local one."""
    team = getattr(args, "team", None) or os.environ.get("LINQRA_TEAM")
    if not team:
        _say("linqra run: give --team TEAM (or set LINQRA_TEAM)")
        return 2
    path = Path(args.target)
    if not path.is_file():
        _say(f"linqra run: --ray runs a workflow file; no such file: {args.target}")
        return 2
    settings = load_settings().portable()
    left_address(settings)  # before Ray is imported: it reads RAY_AUTH_MODE at import

    import ray

    from actors.cluster import start_cluster
    from linqra.errors import LinqraError, Unavailable

    body, params = load_workflow(path)
    params.update(parse_params(args.param))
    _, started = init_ray(settings, args.address, dashboard=False, join_up=True)
    milvus = None
    if started:  # our own cluster: it needs its own vector store for milvus/knowledge steps
        settings, milvus = with_vector_store(settings)
    # our own cluster gets its actors; a running one is used as it is (a driver that joined
    # never creates actors there with its own settings)
    try:
        runner = start_cluster(settings).runner if started else _find_runner(settings)
    except Unavailable:
        _say(
            f"linqra run: the cluster at {ray.get_runtime_context().gcs_address} runs no Linqra "
            f"in namespace {settings.ray.namespace!r} (start one with `linqra up`, or give "
            "--address / RAY_ADDRESS of the cluster that does)"
        )
        return 2
    try:
        record = ray.get(
            runner.run_definition.remote(
                team, body, params, executed_by="linqra-run", timeout=args.timeout
            )
        )
    except LinqraError as exc:
        _say(f"invalid workflow: {exc}")
        return 2
    finally:
        if milvus is not None:
            ray.shutdown()  # type: ignore[no-untyped-call]
            milvus.stop()
    if getattr(args, "json", False):
        _say(json.dumps(record, indent=2, default=str))
    else:
        took = record.get("duration_ms")
        _say(
            f"execution {record['id']}: {record['status']} in "
            + (f"{took:.0f} ms" if took is not None else "n/a")
        )
        for step in record["steps"]:
            ran = step.get("duration_ms")
            line = f"  step {step['step']:>3} {step['target']:<18} {step['status']:<10} " + (
                f"{ran:8.1f} ms" if ran is not None else "     n/a   "
            )
            if step.get("error"):
                line += f"  {step['error'].get('message', '')[:120]}"
            _say(line)
        _say("result: " + json.dumps(record.get("result"), default=str)[:2000])
    return 0 if record["status"] == ExecutionStatus.COMPLETED else 1


def ray_section(address: str | None) -> None:
    """``linqra status``'s Ray lines — the cluster's resources and the runner actor — when a
    cluster is named (``--address``, ``$RAY_ADDRESS``, the one a running ``linqra up`` left);
    nothing when none is, and one line when the named one does not answer."""
    settings = load_settings()
    left = left_address(settings)  # before Ray is imported: it reads RAY_AUTH_MODE at import
    address = address or os.environ.get("RAY_ADDRESS") or settings.ray.address or left
    if not address:
        return
    try:
        import ray

        ray.init(address=address, namespace=settings.ray.namespace, logging_level=logging.ERROR)
    except Exception as exc:
        _say(f"ray:        no cluster answers at {address} ({type(exc).__name__})")
        return
    try:
        _say(f"ray: {ray.cluster_resources()}")  # type: ignore[no-untyped-call]
        try:
            from actors.handles import RUNNER

            runner = ray.get_actor(RUNNER, namespace=settings.ray.namespace)
            _say(f"runner: {ray.get(runner.ping.remote(), timeout=10)}")
        except Exception as exc:
            _say(f"runner: not available ({type(exc).__name__})")
    finally:
        ray.shutdown()  # type: ignore[no-untyped-call]
