"""``linqra status``: is Linqra up, who am I to it, what is it running — and a live summary from
Linqra's metrics.

The gateway's ``/healthz`` (asked once: a degraded gateway's checks are shown, not waited out),
``/v1/me``, the team's running and pending executions and its spend today
(``/v1/analytics/costs``) when credentials are given; then, when a Ray cluster is named
(``--address``, ``$RAY_ADDRESS``, the one a running ``linqra up`` left), the cluster's resources
and the runner actor; then the live summary (:mod:`deployments.status_live`) read from the
metrics endpoints found, in this order: ``--metrics URL``, ``--discovery FILE`` (Ray's
service-discovery file), the named Ray cluster's nodes, ``metrics.port`` of the config (a
gateway without Ray). ``--watch`` refreshes it in place until Ctrl-C; ``--json`` prints one
snapshot (with ``--watch``, one a line).

Exit 1 when the gateway is not healthy or does not answer, or when the live summary was asked
for (``--metrics``, ``--discovery``, ``--watch``) and no metrics endpoint answers; 2 for bad
arguments.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pydantic

from deployments.ray_cli import left_address
from deployments.remote_cli import (
    CREDENTIALS_HINT,
    UsageError,
    complain,
    connect,
    emit_json,
    gateway_url,
    has_credentials,
    not_running,
    remote,
    say,
    wants_json,
)
from deployments.status_live import NoEndpoint, discovery_targets, render, scrape, summarize
from linqra.config import Settings, load_settings

if TYPE_CHECKING:  # linqra_client is imported where a command runs (deployments/remote_cli.py)
    from linqra_client import Linqra

__all__ = ["add_status_command"]

NO_ENDPOINT = (
    "no metrics endpoint found: start Linqra with `linqra up` (its cluster is found by itself), "
    "name a cluster with --address or $RAY_ADDRESS, give --metrics URL or --discovery FILE "
    "(Ray's prom_metrics_service_discovery.json), or for a gateway without Ray set metrics.port "
    "($LINQRA_METRICS__PORT)"
)
EPILOG = """\
live summary, from Linqra's Prometheus metrics (docs/observability.md, "linqra status"):
  executions running now   started minus ended executions per runner process (an estimate)
  last N s                 executions ended and model calls made between two scrapes N s apart
                           (--interval), rate = increase / elapsed; error rate = errors / all
                           (executions FAILED or TIMEOUT; model calls error or failed)
  queues, agents           queue depth and oldest age, agent actors live (sampled by the
                           supervisor actor every metrics.sample_seconds)
  spend                    today: the team's exact spend from the gateway (/v1/analytics/costs,
                           the store's usage records); since the processes started: the cost
                           counter of the metrics (it restarts at 0 with its process)

endpoints, first found: --metrics URL, --discovery FILE, the Ray cluster's nodes (--address,
$RAY_ADDRESS, a running `linqra up`), metrics.port of the config (a gateway without Ray).
exit status: 1 when the gateway is not healthy or does not answer, or when --watch, --metrics
or --discovery finds no metrics endpoint that answers; 2 for bad arguments.

  linqra status --team acme                      one snapshot (two scrapes 5 s apart)
  linqra status --watch                          refresh every 10 s until Ctrl-C
  linqra status --json --interval 10             one snapshot as JSON
"""


def add_status_command(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``status`` to the ``linqra`` command's subparsers."""
    status = sub.add_parser(
        "status",
        parents=[common],
        help="the gateway's health, who you are, what runs; the Ray cluster's; a live summary "
        "from the metrics",
        description="The gateway's health, who you are and what runs; the Ray cluster's\n"
        "resources and runner; a live summary read from Linqra's metrics endpoints.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    status.add_argument(
        "--address",
        help="a Ray cluster to report on (default: $RAY_ADDRESS, else a running `linqra up`'s)",
    )
    live = status.add_argument_group("live summary")
    live.add_argument(
        "--metrics", action="append", metavar="URL", default=[],
        help="a /metrics endpoint to read (repeat for several): a node's Ray metrics export, "
        "or metrics.port of a gateway without Ray",
    )  # fmt: skip
    live.add_argument(
        "--discovery", metavar="FILE",
        help="read the endpoints from a Prometheus service-discovery file (Ray's "
        "<temp dir>/prom_metrics_service_discovery.json)",
    )  # fmt: skip
    live.add_argument(
        "--interval", type=float, default=5.0, metavar="SECONDS",
        help="seconds between the two scrapes the rates are computed from (default 5)",
    )  # fmt: skip
    live.add_argument(
        "--watch", type=float, nargs="?", const=10.0, metavar="SECONDS",
        help="refresh in place every SECONDS (default 10) until Ctrl-C",
    )  # fmt: skip
    status.set_defaults(func=cmd_status, name="status")


def cmd_status(args: argparse.Namespace) -> int:
    """See the module. Exit 0, 1 (unhealthy, unreachable) or 2 (bad arguments)."""
    for option in ("interval", "watch"):
        value = getattr(args, option, None)
        if value is not None and not 0 < value <= 3600:
            complain("status", f"--{option} takes seconds, more than 0 and at most 3600")
            return 2
    try:
        return _watch(args) if args.watch is not None else _status(args)
    except KeyboardInterrupt:  # Ctrl-C while connecting or reading: no traceback
        print(file=sys.stderr)
        return 130


def _status(args: argparse.Namespace) -> int:
    report: dict[str, Any] = {}
    code = remote(lambda client, a: _gateway_status(client, a, report), needs_credentials=False)(
        args
    )
    if code in (2, 130):  # bad arguments, or Ctrl-C: nothing else to report
        return code
    answered = "health" in report
    settings = _settings()
    cluster = _cluster(args, settings)
    if cluster is not None:
        report["ray"] = cluster
        if not wants_json(args):
            for line in _ray_lines(cluster):
                say(line)
    try:
        endpoints, source = _endpoints(args, settings, cluster)
        report["live"] = _snapshot(endpoints, source, args.interval)
    except NoEndpoint as exc:
        if _asked_for_live(args):
            complain("status", exc)
            code = max(code, 1)
        elif answered or cluster is not None:  # a status without metrics: say where they'd be
            report["live"] = {"error": str(exc)}
            if not wants_json(args):
                say(f"live:       {exc}")
    if wants_json(args):
        if answered or "live" in report or "ray" in report:
            emit_json(report)
    elif "live" in report and "error" not in report["live"]:
        for line in render(report["live"], report["live"]["source"]):
            say(line)
    return code


def _asked_for_live(args: argparse.Namespace) -> bool:
    return bool(args.metrics or args.discovery or args.watch is not None)


def _settings() -> Settings | None:
    try:
        return load_settings()
    except pydantic.ValidationError:
        return None  # the gateway part has said so (gateway_url); the rest goes without


# -- the gateway -----------------------------------------------------------------------------
def _gateway_status(client: Linqra, args: argparse.Namespace, report: dict[str, Any]) -> int:
    report.update(_gateway_report(client, args))
    if not wants_json(args):
        for line in _gateway_lines(report):
            say(line)
    return 0 if report["health"].get("status") == "ok" else 1


def _gateway_report(client: Linqra, args: argparse.Namespace) -> dict[str, Any]:
    """``/healthz``; with credentials ``/v1/me``, active executions, workflows, spend today."""
    from linqra_client import Linqra, RetryPolicy, Unavailable

    report: dict[str, Any] = {"url": client.base_url}
    try:  # a degraded gateway answers 503 with its checks: show them, do not wait and retry
        with Linqra(client.base_url, retry=RetryPolicy(max_retries=0)) as once:
            health: dict[str, Any] = once.health().model_dump(mode="json")
    except Unavailable as exc:
        try:
            health = exc.response.json() if exc.response is not None else {}
        except ValueError:
            health = {}
        health = health if isinstance(health, dict) and "checks" in health else {"error": str(exc)}
        health.setdefault("status", "degraded")
    report["health"] = health
    if has_credentials(args):
        report["me"] = client.me()
        report["executions"] = {
            status: client.executions.list(status=status, limit=1).page().total
            for status in ("RUNNING", "PENDING")
        }
        report["workflows"] = client.workflows.list(limit=1).page().total
        report["spend_today"] = _spend_today(client)
    return report


def _spend_today(client: Linqra) -> dict[str, Any]:
    """The team's exact spend since local midnight: the store's usage records, summed by
    currency (``GET /v1/analytics/costs``)."""
    from linqra_client import LinqraError

    since = datetime.now().astimezone().replace(hour=0, minute=0, second=0, microsecond=0)
    spend: dict[str, Any] = {
        "from": since.isoformat(),
        "source": "GET /v1/analytics/costs (the team's usage records in the store)",
    }
    try:
        page = client.request(
            "GET", "/v1/analytics/costs",
            params={"from": spend["from"], "group_by": "currency", "limit": 100},
        ).json()  # fmt: skip
    except LinqraError as exc:
        return {**spend, "error": str(exc)}
    items = page.get("items") or []
    spend["by_currency"] = {str(i.get("currency") or "?"): str(i["cost"]) for i in items}
    spend["calls"] = sum(int(i.get("calls") or 0) for i in items)
    spend["unpriced_calls"] = sum(int(i.get("unpriced_calls") or 0) for i in items)
    return spend


def _gateway_lines(report: dict[str, Any]) -> list[str]:
    health = report["health"]
    checks = ", ".join(f"{k} {v}" for k, v in (health.get("checks") or {}).items())
    detail = f"version {health.get('version', '?')}; {checks}" if checks else health.get("error")
    lines = [f"gateway:    {report['url']} {health['status']} ({detail})"]
    if "me" not in report:
        return [*lines, f"you:        no credentials: {CREDENTIALS_HINT}"]
    me, running = report["me"], report["executions"]
    who = me.user_id or (f"API key {me.key_id}" if me.key_id else None)
    by = f"{who}, " if who else ""
    lines.append(f"you:        {by}team {me.team_id} as {me.role} (signed in by {me.source})")
    lines.append(
        f"executions: {running['RUNNING']} running, {running['PENDING']} pending; "
        f"{report['workflows']} workflow(s)"
    )
    spend = report["spend_today"]
    since = spend["from"][11:16] + " " + spend["from"][-6:]
    if "error" in spend:
        lines.append(f"spend:      today: not available ({spend['error']})")
    else:
        amounts = ", ".join(f"{c} {v}" for c, v in spend["by_currency"].items()) or "0"
        unpriced = f", {spend['unpriced_calls']} unpriced" if spend["unpriced_calls"] else ""
        lines.append(
            f"spend:      today {amounts} for team {me.team_id} ({spend['calls']} model "
            f"call(s){unpriced} since {since}; usage records, /v1/analytics/costs)"
        )
    return lines


# -- the Ray cluster -------------------------------------------------------------------------
def _cluster(args: argparse.Namespace, settings: Settings | None) -> dict[str, Any] | None:
    """The named Ray cluster's resources, runner and nodes' metrics exports (one connection),
    ``None`` when no cluster is named; ``{"address", "error"}`` when it does not answer."""
    if settings is None:
        return None
    left = left_address(settings)  # before Ray is imported: it reads RAY_AUTH_MODE at import
    address = args.address or os.environ.get("RAY_ADDRESS") or settings.ray.address or left
    if not address:
        return None
    try:
        import ray

        ray.init(
            address=address, namespace=settings.ray.namespace, logging_level=logging.ERROR,
            log_to_driver=False,
        )  # fmt: skip
    except Exception as exc:
        # a cluster that ray.init() started (not `ray start`) takes clients with its token only
        auth = (
            ""
            if os.environ.get("RAY_AUTH_MODE")
            else "; if it uses token auth: RAY_AUTH_MODE=token"
        )
        return {
            "address": address,
            "error": f"no cluster answers at {address} ({type(exc).__name__}{auth})",
        }
    try:
        info: dict[str, Any] = {"address": address, "resources": ray.cluster_resources()}  # type: ignore[no-untyped-call]
        try:
            from actors.handles import RUNNER

            runner = ray.get_actor(RUNNER, namespace=settings.ray.namespace)
            info["runner"] = ray.get(runner.ping.remote(), timeout=10)
        except Exception as exc:
            info["runner_error"] = f"not available ({type(exc).__name__})"
        info["metrics"] = [
            f"http://{_host(n['NodeManagerAddress'])}:{n['MetricsExportPort']}/metrics"
            for n in ray.nodes()  # type: ignore[no-untyped-call]
            if n.get("Alive") and n.get("MetricsExportPort")
        ]
        return info
    finally:
        ray.shutdown()  # type: ignore[no-untyped-call]


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _ray_lines(cluster: dict[str, Any]) -> list[str]:
    """What ``linqra status`` has shown of a cluster: its resources and the runner's ping."""
    if "error" in cluster:
        return [f"ray:        {cluster['error']}"]
    runner = cluster.get("runner", cluster.get("runner_error"))
    return [f"ray: {cluster['resources']}", f"runner: {runner}"]


# -- the live summary ------------------------------------------------------------------------
def _endpoints(
    args: argparse.Namespace, settings: Settings | None, cluster: dict[str, Any] | None
) -> tuple[list[str], str]:
    """The metrics endpoints to read and where they came from (see the module)."""
    if args.metrics:
        return list(args.metrics), "--metrics"
    if args.discovery:
        return discovery_targets(Path(args.discovery)), f"the discovery file {args.discovery}"
    if cluster is not None:
        if "error" in cluster:
            raise NoEndpoint("none: the Ray cluster does not answer")
        if not cluster["metrics"]:
            raise NoEndpoint(f"the Ray cluster at {cluster['address']} lists no metrics export")
        return cluster["metrics"], f"the Ray cluster at {cluster['address']}"
    if settings is not None and settings.metrics.port:
        host = settings.metrics.host
        host = "127.0.0.1" if host in ("", "0.0.0.0", "::") else _host(host)
        return [f"http://{host}:{settings.metrics.port}/metrics"], "metrics.port of the config"
    raise NoEndpoint(NO_ENDPOINT)


def _answered(endpoints: list[str]) -> Any:
    first = scrape(endpoints)
    if not first.answered():
        why = "; ".join(f"{u} ({e})" for u, e in first.errors.items())
        raise NoEndpoint(
            f"no metrics endpoint answers: {why} — is the cluster (or the gateway with "
            "metrics.port) running? A discovery file outlives its cluster"
        )
    return first


def _snapshot(endpoints: list[str], source: str, interval: float) -> dict[str, Any]:
    """Two scrapes ``interval`` seconds apart, summarised."""
    first = _answered(endpoints)
    time.sleep(max(0.0, interval - (time.monotonic() - first.at)))
    summary = summarize(scrape(endpoints), first)
    summary["source"] = source
    return summary


def _watch(args: argparse.Namespace) -> int:
    """Frames of the gateway's lines and the live summary, every ``--watch`` seconds."""
    try:
        url = gateway_url(args)
        settings = _settings()
        endpoints, source = _endpoints(args, settings, _cluster(args, settings))
        previous = _answered(endpoints)
    except UsageError as exc:
        complain("status", exc)
        return 2
    except NoEndpoint as exc:
        complain("status", exc)
        return 1
    from linqra_client import RetryPolicy

    tty = sys.stdout.isatty() and not wants_json(args)
    current, summary = previous, summarize(previous)
    try:
        with connect(args, retry=RetryPolicy(max_retries=0)) as client:
            while True:
                summary["source"] = source
                _frame(client, args, url, summary, tty)
                deadline = current.at + float(args.watch)
                time.sleep(max(0.0, deadline - time.monotonic()))
                current = scrape(endpoints)
                summary = summarize(current, previous)
                if current.answered():  # else the next frame's rates span the gap
                    previous = current
    except KeyboardInterrupt:
        if not wants_json(args):
            print(flush=True)
        return 0


def _frame(
    client: Linqra, args: argparse.Namespace, url: str, live: dict[str, Any], tty: bool
) -> None:
    from linqra_client import LinqraError, ServerUnreachable

    try:
        gateway: dict[str, Any] = _gateway_report(client, args)
    except ServerUnreachable:
        gateway = {"url": url, "error": not_running(url)}
    except LinqraError as exc:
        gateway = {"url": url, "error": str(exc)}
    if wants_json(args):
        print(json.dumps({**gateway, "live": live}, default=_plain), flush=True)
        return
    lines = [f"gateway:    {gateway['error']}"] if "error" in gateway else _gateway_lines(gateway)
    lines += render(live, live["source"])
    lines.append(f"(every {args.watch:g} s; Ctrl-C to stop)")
    if tty:  # home, clear, the frame
        sys.stdout.write("\x1b[H\x1b[2J")
    else:
        lines.append("")
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def _plain(value: Any) -> Any:
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump(mode="json")
    return str(value)
