"""``linqra status``: is Linqra up, who am I to it, and what is it running.

The gateway's ``/healthz`` (asked once: a degraded gateway's checks are shown, not waited out),
``/v1/me`` and the team's running and pending executions when credentials are given; then, when
a Ray cluster is named (``--address``, ``$RAY_ADDRESS``, the one a running ``linqra up`` left),
the cluster's resources and the runner actor (:func:`deployments.ray_cli.ray_section`). Exit 1
when the gateway is not healthy or does not answer.
"""

from __future__ import annotations

import argparse
from typing import Any

from deployments.ray_cli import ray_section
from deployments.remote_cli import (
    CREDENTIALS_HINT,
    emit_json,
    has_credentials,
    remote,
    say,
    wants_json,
)
from linqra_client import Linqra, RetryPolicy, Unavailable

__all__ = ["add_status_command"]


def add_status_command(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``status`` to the ``linqra`` command's subparsers."""
    status = sub.add_parser(
        "status",
        parents=[common],
        help="the gateway's health, who you are, what runs; the Ray cluster's when one is found",
    )
    status.add_argument(
        "--address",
        help="a Ray cluster to report on (default: $RAY_ADDRESS, else a running `linqra up`'s)",
    )
    status.set_defaults(func=cmd_status, name="status")


def cmd_status(args: argparse.Namespace) -> int:
    """The gateway's ``/healthz``, ``/v1/me`` and the team's active executions; then, when a Ray
    cluster is found, its resources and the runner actor. Exit 1 when the gateway is not
    healthy (or does not answer), else 0."""
    code = remote(_gateway_status, needs_credentials=False)(args)
    if code == 2:  # bad arguments: nothing else to report
        return code
    if not wants_json(args):
        ray_section(args.address)
    return code


def _gateway_status(client: Linqra, args: argparse.Namespace) -> int:
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
    healthy = health.get("status") == "ok"
    if not wants_json(args):
        checks = ", ".join(f"{k} {v}" for k, v in (health.get("checks") or {}).items())
        detail = (
            f"version {health.get('version', '?')}; {checks}" if checks else health.get("error")
        )
        say(f"gateway:    {client.base_url} {health['status']} ({detail})")
    if not has_credentials(args):
        if not wants_json(args):
            say(f"you:        no credentials: {CREDENTIALS_HINT}")
    else:
        me = report["me"] = client.me()
        report["executions"] = running = {
            status: client.executions.list(status=status, limit=1).page().total
            for status in ("RUNNING", "PENDING")
        }
        report["workflows"] = client.workflows.list(limit=1).page().total
        if not wants_json(args):
            who = me.user_id or (f"API key {me.key_id}" if me.key_id else None)
            by = f"{who}, " if who else ""
            say(f"you:        {by}team {me.team_id} as {me.role} (signed in by {me.source})")
            say(
                f"executions: {running['RUNNING']} running, {running['PENDING']} pending; "
                f"{report['workflows']} workflow(s)"
            )
    if wants_json(args):
        emit_json(report)
    return 0 if healthy else 1
