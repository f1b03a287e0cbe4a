"""The ``linqra`` command: ``up`` (start Linqra), ``run`` (run a workflow file as a Ray driver),
``ingest`` (files to the Knowledge Hub, :mod:`deployments.ingest_cli`), ``status``, ``secrets``
(:mod:`deployments.secrets_cli`).

``linqra run`` is a plain Ray driver: use it directly, or submit it to a cluster as a Ray job::

    ray job submit --address http://127.0.0.1:8265 -- linqra run configs/examples/parallel.json --team acme
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from deployments.ingest_cli import add_ingest_command, parse_params
from deployments.ports import check_ports_free
from deployments.secrets_cli import add_secrets_command
from deployments.tls import check_tls_ingress, serve_http_options
from linqra.config import Settings, load_settings
from linqra.status import ExecutionStatus


def _say(text: str) -> None:
    print(text, flush=True)


def _address_file(settings: Settings) -> Path:
    """Where ``linqra up`` leaves its cluster's address for ``linqra run`` and ``linqra status``."""
    return settings.data_dir / "ray-address"


def _left_address(settings: Settings) -> str | None:
    """The address a running ``linqra up`` left, with its auth mode applied to this process."""
    path = _address_file(settings)
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


def _init_ray(
    settings: Settings, address: str | None, *, dashboard: bool, join_up: bool = False
) -> tuple[Any, bool]:
    """Connect to a cluster or start a local one; ``(context, started_locally)``."""
    import ray

    address = address or os.environ.get("RAY_ADDRESS") or settings.ray.address
    if not address and join_up and (left := _left_address(settings)):
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
        num_cpus=settings.ray.num_cpus,
        namespace=settings.ray.namespace,
        logging_level=logging.WARNING,
        **kwargs,
    )
    return context, True


def _with_vector_store(settings: Settings) -> tuple[Settings, Any]:
    """Settings with a Milvus URI: the configured one, else an embedded Milvus Lite server
    (loopback, data in data_dir/milvus) that the caller stops on exit."""
    if settings.knowledge.vector_uri:
        return settings, None
    from linqra.vectors import EmbeddedMilvus

    server = EmbeddedMilvus(settings.data_dir / "milvus").start()
    knowledge = settings.knowledge.model_copy(update={"vector_uri": server.uri})
    return settings.model_copy(update={"knowledge": knowledge}), server


def _healthy(url: str, timeout: float) -> bool:
    import ssl

    # polling the server this command just started on its own address: a private CA is fine
    unverified = ssl._create_unverified_context() if url.startswith("https:") else None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5, context=unverified) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.25)
    return False


def cmd_up(args: argparse.Namespace) -> int:
    from ray import serve

    from deployments.gateway import build_app

    overrides: dict[str, Any] = {}
    settings = load_settings(**overrides)
    http = settings.http.model_copy(
        update={k: v for k, v in (("host", args.host), ("port", args.port)) if v}
    )
    settings = settings.model_copy(update={"http": http}).portable()
    check_ports_free(settings, address=args.address)
    check_tls_ingress(settings.http)  # one line, before anything starts
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    context, started = _init_ray(settings, args.address, dashboard=True)
    joined = not started
    settings, milvus = _with_vector_store(settings)
    serve.start(
        http_options=serve_http_options(settings.http),
        logging_config={"enable_access_log": False, "log_level": "WARNING"},
    )
    serve.run(build_app(settings), name="linqra", route_prefix="/", blocking=False)
    base = f"{'https' if http.tls else 'http'}://{http.host}:{http.port}"
    if not _healthy(f"{base}/healthz", timeout=120):
        _say(f"Linqra did not become healthy at {base}/healthz; see the Ray logs")
        if milvus is not None:
            milvus.stop()
        return 1
    left = {
        "address": context.address_info["gcs_address"],
        "auth_mode": os.environ.get("RAY_AUTH_MODE"),
    }
    _address_file(settings).write_text(json.dumps(left))
    dashboard = getattr(context, "dashboard_url", None)
    _say(f"Linqra is up in {time.monotonic() - t0:.1f}s")
    _say(f"  console:        {base}/console/")
    _say(f"  API:            {base}   (docs: {base}/docs)")
    _say(
        f"  Ray dashboard:  http://{dashboard}" if dashboard else "  Ray dashboard:  (not running)"
    )
    _say(f"  store:          {settings.resolved_store_url}")
    _say(
        f"  vectors:        {settings.knowledge.vector_uri}"
        + ("  (Milvus Lite, embedded)" if milvus is not None else "")
    )
    if settings.auth.mode == "header":
        _say(
            "  auth:           HEADER MODE (embedded): X-Team-Id alone picks the team, no sign-in;"
        )
        _say("                  for shared use set LINQRA_AUTH__MODE=oidc (docs/security.md)")
        _say("  try:            curl -s -H 'X-Team-Id: acme' " + base + "/v1/me")
    else:
        _say(f"  auth:           OIDC, issuer {settings.auth.oidc.issuer}")
    _say("Press Ctrl-C to stop.")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    _say("stopping…")
    _address_file(settings).unlink(missing_ok=True)
    import ray

    if joined:  # someone else's cluster: take our app away, leave the cluster running
        serve.delete("linqra")
    ray.shutdown()  # type: ignore[no-untyped-call]  # a cluster we started goes with it
    if milvus is not None:
        milvus.stop()
    return 0


def _load_workflow(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """A workflow definition from a workflow file (``POST /v1/workflows`` shape) or a Linq request file."""
    data = json.loads(path.read_text())
    if "link" in data and "query" in data:
        query = data["query"]
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


def cmd_run(args: argparse.Namespace) -> int:
    team = args.team or os.environ.get("LINQRA_TEAM")
    if not team:
        _say("linqra run: give --team TEAM (or set LINQRA_TEAM)")
        return 2
    settings = load_settings().portable()
    _left_address(settings)  # before Ray is imported: it reads RAY_AUTH_MODE at import

    import ray

    from actors.cluster import start_cluster
    from linqra.errors import LinqraError, Unavailable

    body, params = _load_workflow(Path(args.file))
    params.update(parse_params(args.param))
    _, started = _init_ray(settings, args.address, dashboard=False, join_up=True)
    milvus = None
    if started:  # our own cluster: it needs its own vector store for milvus/knowledge steps
        settings, milvus = _with_vector_store(settings)
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
    if args.json:
        _say(json.dumps(record, indent=2, default=str))
    else:
        _say(
            f"execution {record['id']}: {record['status']} in {record.get('duration_ms') or 0:.0f} ms"
        )
        for step in record["steps"]:
            line = f"  step {step['step']:>3} {step['target']:<18} {step['status']:<10} {step.get('duration_ms') or 0:8.1f} ms"
            if step.get("error"):
                line += f"  {step['error'].get('message', '')[:120]}"
            _say(line)
        _say("result: " + json.dumps(record.get("result"), default=str)[:2000])
    return 0 if record["status"] == ExecutionStatus.COMPLETED else 1


def cmd_status(args: argparse.Namespace) -> int:
    settings = load_settings()
    left = _left_address(settings)  # before Ray is imported: it reads RAY_AUTH_MODE at import
    base = f"http://{settings.http.host}:{settings.http.port}"
    try:
        with urllib.request.urlopen(f"{base}/healthz", timeout=5) as response:
            _say(f"gateway {base}: {response.read().decode()}")
    except OSError as exc:
        _say(f"gateway {base}: not reachable ({exc})")
    try:
        import ray

        address = args.address or os.environ.get("RAY_ADDRESS") or left
        ray.init(
            address=address or "auto", namespace=settings.ray.namespace, logging_level=logging.ERROR
        )
    except Exception as exc:
        _say(f"ray: no running cluster ({type(exc).__name__})")
        return 1
    _say(f"ray: {ray.cluster_resources()}")  # type: ignore[no-untyped-call]
    try:
        from actors.handles import RUNNER

        runner = ray.get_actor(RUNNER, namespace=settings.ray.namespace)
        _say(f"runner: {ray.get(runner.ping.remote(), timeout=10)}")
    except Exception as exc:
        _say(f"runner: not available ({type(exc).__name__})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="linqra", description="Linqra on Ray")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser(
        "up", help="start Linqra: a local Ray cluster (or --address) and the Serve gateway"
    )
    up.add_argument("--host")
    up.add_argument("--port", type=int)
    up.add_argument("--address", help="an existing Ray cluster (default: start a local one)")
    up.set_defaults(func=cmd_up)
    run = sub.add_parser(
        "run", help="run a workflow file (ours or a Linq request) on the Ray cluster"
    )
    run.add_argument("file")
    run.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    run.add_argument("--team", help="team id (default: $LINQRA_TEAM)")
    run.add_argument(
        "--address", help="Ray cluster address (default: $RAY_ADDRESS, else a local cluster)"
    )
    run.add_argument("--timeout", type=float, default=3600.0)
    run.add_argument("--json", action="store_true", help="print the whole execution record")
    run.set_defaults(func=cmd_run)
    add_ingest_command(sub)
    status = sub.add_parser("status", help="gateway health, Ray resources and the runner")
    status.add_argument("--address")
    status.set_defaults(func=cmd_status)
    add_secrets_command(sub)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
