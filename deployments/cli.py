"""The ``linqra`` command: ``up`` starts Linqra (a local Ray cluster, or ``--address``, and the
Serve gateway); every other command talks to a running Linqra.

Through the gateway's HTTP API (:mod:`deployments.remote_cli`, on :mod:`linqra_client`):
``status``, ``run`` (a workflow file or a stored workflow, followed live), ``workflows``,
``executions`` (:mod:`deployments.workflows_cli`), ``ingest`` (:mod:`deployments.ingest_cli`)
and ``chat`` (:mod:`deployments.chat_cli`). On the Ray cluster itself: ``run FILE --ray``, a
plain Ray driver (:mod:`deployments.ray_cli`), which is what a Ray job runs::

    ray job submit --address http://127.0.0.1:8265 -- linqra run configs/examples/parallel_workflow.json --ray --team acme

And on this machine's store: ``secrets`` (:mod:`deployments.secrets_cli`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from deployments.chat_cli import add_chat_command
from deployments.ingest_cli import add_ingest_command
from deployments.ports import check_ports_free
from deployments.ray_cli import address_file, init_ray, load_workflow
from deployments.remote_cli import UsageError, common_options
from deployments.secrets_cli import add_secrets_command
from deployments.status_cli import add_status_command
from deployments.tls import check_tls_ingress, serve_http_options
from deployments.workflows_cli import add_run_command, add_workflow_commands
from linqra.config import Settings, load_settings

__all__ = ["main"]

_load_workflow = load_workflow  # the name tests/test_examples.py reads workflow files with


def _say(text: str) -> None:
    print(text, flush=True)


def _healthy(url: str, timeout: float) -> bool:
    """Whether the gateway this command just started answers ``/healthz`` within ``timeout``."""
    import httpx

    from linqra_client import Linqra, LinqraError, RetryPolicy

    # polling the server this command just started on its own address: a private CA is fine
    http = httpx.Client(base_url=url, verify=False, timeout=5)
    deadline = time.monotonic() + timeout
    with Linqra(url, http_client=http, retry=RetryPolicy(max_retries=0)) as client:
        while time.monotonic() < deadline:
            try:
                if client.health().status == "ok":
                    return True
            except LinqraError:
                pass
            time.sleep(0.25)
    return False


class _Background(threading.Thread):
    """``work()`` in a thread; :meth:`result` waits for it and raises what it raised."""

    def __init__(self, work: Callable[[], object]) -> None:
        super().__init__(name="linqra-up", daemon=True)
        self._work = work
        self._error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self._work()
        except BaseException as exc:
            self._error = exc

    def result(self) -> None:
        self.join()
        if self._error is not None:
            raise self._error


def _embedded_milvus(settings: Settings) -> tuple[Settings, Any]:
    """Settings with a Milvus URI: the configured one, else an embedded Milvus Lite server's
    (loopback, data in data_dir/milvus), created but not started: the caller starts it — in
    the background, since it takes a second or two — and stops it on exit."""
    if settings.knowledge.vector_uri:
        return settings, None
    from linqra.vectors import EmbeddedMilvus

    server = EmbeddedMilvus(settings.data_dir / "milvus")
    knowledge = settings.knowledge.model_copy(update={"vector_uri": server.uri})
    return settings.model_copy(update={"knowledge": knowledge}), server


class _Phases:
    """Where ``linqra up``'s start-up time goes: each phase's wall time, in order, from the
    process's start (so the imports before :func:`cmd_up` count)."""

    def __init__(self) -> None:
        import psutil  # type: ignore[import-untyped]

        self.started = time.time() - float(psutil.Process().create_time())  # since exec
        self._last = time.monotonic()
        self._t0 = self._last - self.started
        self.laps: list[tuple[str, float]] = [("imports", self.started)]

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.laps.append((name, now - self._last))
        self._last = now

    def total(self) -> float:
        return float(self._last - self._t0)

    def __str__(self) -> str:
        return ", ".join(f"{name} {seconds:.1f}s" for name, seconds in self.laps)


def cmd_up(args: argparse.Namespace) -> int:
    phases = _Phases()
    from ray import serve

    from actors.cluster import Readiness, start_cluster
    from deployments.gateway import build_app

    phases.lap("imports for up")
    overrides: dict[str, Any] = {}
    settings = load_settings(**overrides)
    http = settings.http.model_copy(
        update={k: v for k, v in (("host", args.host), ("port", args.port)) if v}
    )
    settings = settings.model_copy(update={"http": http}).portable()
    check_ports_free(settings, address=args.address)
    check_tls_ingress(settings.http)  # one line, before anything starts
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings, milvus = _embedded_milvus(settings)  # its URI now; it starts beside Ray
    if milvus is not None:
        milvus.spawn()  # here, not in the thread: no fork racing ray.init's threads
    stopped = False
    try:  # Milvus Lite runs in its own session: nothing else stops it, whatever ends this
        milvus_started = _Background(milvus.wait_ready if milvus is not None else lambda: None)
        context, started = init_ray(settings, args.address, dashboard=True)
        phases.lap("ray.init")
        joined = not started
        start_cluster(settings)  # the actors' processes start beside Serve's
        # and warm up as they come (the gateway's own warm-up then finds them ready)
        warmed = _Background(lambda: asyncio.run(Readiness(settings).warm_up()))
        phases.lap("actors created")
        serve.start(
            http_options=serve_http_options(settings.http),
            logging_config={"enable_access_log": False, "log_level": "WARNING"},
        )
        phases.lap("serve.start")
        serve.run(build_app(settings), name="linqra", route_prefix="/", blocking=False)
        phases.lap("serve.run (the gateway replica waits for its warm-up)")
        base = f"{'https' if http.tls else 'http'}://{http.host}:{http.port}"
        # healthy means ready: /healthz answers 200 once the cluster's warm-up has finished
        healthy = _healthy(base, timeout=120)
        phases.lap("the first 200 from /healthz")
        milvus_started.result()
        phases.lap("Milvus Lite")
        with contextlib.suppress(Exception):  # the gateway's warm-up is the one that counts
            warmed.result()
        if not healthy:
            _say(f"Linqra did not become healthy at {base}/healthz; see the Ray logs")
            return 1
        left = {
            "address": context.address_info["gcs_address"],
            "auth_mode": os.environ.get("RAY_AUTH_MODE"),
        }
        address_file(settings).write_text(json.dumps(left))
        dashboard = getattr(context, "dashboard_url", None)
        _say(f"Linqra is up in {phases.total():.1f}s")
        _say(f"  start-up:       {phases}")
        _say(f"  console:        {base}/console/")
        _say(f"  API:            {base}   (docs: {base}/docs)")
        _say(
            f"  Ray dashboard:  http://{dashboard}"
            if dashboard
            else "  Ray dashboard:  (not running)"
        )
        _say(f"  store:          {settings.resolved_store_url}")
        from linqra.secrets.keyring import ENV_VAR, KEY_FILE

        if not os.environ.get(ENV_VAR, "").strip():  # the embedded profile's own key file
            key_file = (settings.data_dir / KEY_FILE).resolve()
            _say(f"  secrets:        sealed with {key_file}; set {ENV_VAR} in production")
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
        address_file(settings).unlink(missing_ok=True)
        import ray

        if joined:  # someone else's cluster: take our app away, leave the cluster running
            serve.delete("linqra")
        ray.shutdown()  # type: ignore[no-untyped-call]  # a cluster we started goes with it
        stopped = True
        return 0
    finally:
        if milvus is not None:
            milvus.stop()
        if stopped:  # (and its Milvus Lite with it)
            _say("stopped")


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
    common = common_options()
    add_status_command(sub, common)
    add_run_command(sub, common)
    add_workflow_commands(sub, common)
    add_ingest_command(sub, common)
    add_chat_command(sub, common)
    add_secrets_command(sub)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except UsageError as exc:
        print(f"linqra {getattr(args, 'name', args.command)}: {exc}", file=sys.stderr, flush=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
