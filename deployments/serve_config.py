"""How Ray Serve runs the gateway, read from one place: ``configs/serve.yaml``.

``serve deploy configs/serve.yaml`` reads that file itself; ``linqra up`` and
:func:`deployments.gateway.build_app` read the ``Gateway`` and ``ChatOrchestrator``
deployments' options (replicas, autoscaling, ``ray_actor_options``, ``max_ongoing_requests``)
and the logging config from it here, so both start the same application. ``LINQRA_SERVE_CONFIG`` names another file.

Serve's HTTP ingress is chosen by ``RAY_SERVE_ENABLE_HA_PROXY`` before Ray starts:
:func:`apply_ingress_env` makes HAProxy (lower latency, B5 in docs/benchmarks.md) the default
for a cluster Linqra starts; ``RAY_SERVE_ENABLE_HA_PROXY=0`` keeps Serve's Python proxy actor.
On a cluster you start yourself, set it in the ``ray start`` environment (and
``RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD=0``, which :func:`apply_ingress_env` sets too).
"""

from __future__ import annotations

import os
import socket
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "APP_NAME",
    "DEPLOYMENT",
    "apply_ingress_env",
    "deployment_options",
    "gateway_options",
    "logging_config",
    "serve_config_path",
]

APP_NAME = "linqra"
DEPLOYMENT = "Gateway"
DEFAULT_PATH = Path(__file__).resolve().parents[1] / "configs" / "serve.yaml"


def serve_config_path() -> Path:
    return Path(os.environ.get("LINQRA_SERVE_CONFIG") or DEFAULT_PATH)


@cache
def _load(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(
            f"the Serve config {path} is missing: it says how the gateway is deployed "
            "(set LINQRA_SERVE_CONFIG to its path)"
        ) from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a Serve config is a mapping")
    return data


def _app(config: dict[str, Any], path: Path) -> dict[str, Any]:
    for app in config.get("applications") or []:
        if app.get("name") == APP_NAME:
            return dict(app)
    raise ValueError(f"{path}: no application named {APP_NAME!r}")


def logging_config() -> dict[str, Any]:
    """Serve's logging config (the file's top-level ``logging_config``)."""
    path = serve_config_path()
    return dict(_load(path).get("logging_config") or {})


def gateway_options() -> dict[str, Any]:
    """Keyword arguments of ``@serve.deployment`` for the gateway (see :func:`deployment_options`)."""
    return deployment_options(DEPLOYMENT)


def deployment_options(name: str) -> dict[str, Any]:
    """Keyword arguments of ``@serve.deployment`` for deployment ``name``: its entry in the
    ``linqra`` application, with the file's logging config unless the entry has its own."""
    path = serve_config_path()
    config = _load(path)
    entries = _app(config, path).get("deployments") or []
    entry = next((dict(d) for d in entries if d.get("name") == name), None)
    if entry is None:
        raise ValueError(f"{path}: application {APP_NAME!r} has no {name!r} deployment")
    entry.setdefault("logging_config", logging_config())
    return entry


def apply_ingress_env() -> None:
    """Serve reads its ingress choice from the environment before Ray starts.

    HAProxy's own stats and metrics listeners default to fixed ports (8404, 9101) and its
    files to /tmp/haproxy-serve, so two clusters on one machine would collide: each cluster
    Linqra starts gets free ports and a short private directory for HAProxy's files.

    ``RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD=0`` runs the app on the replica's own event
    loop (the one that parses HTTP) instead of a second loop in a thread of its own: no thread
    hop each way per request and per response message. A team-scoped read holds 1.07x the
    requests/s (three interleaved runs, docs/perf/ray-profile.md "Gateway throughput"); the
    price is that a call blocking the app's loop also holds up the replica's health checks,
    and the gateway makes none (store reads go to a thread, actor handles are cached).

    Variables already set are left alone.
    """
    os.environ.setdefault("RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD", "0")
    os.environ.setdefault("RAY_SERVE_ENABLE_HA_PROXY", "1")
    if os.environ["RAY_SERVE_ENABLE_HA_PROXY"] != "1":
        return
    for name in ("RAY_SERVE_HAPROXY_STATS_PORT", "RAY_SERVE_HAPROXY_METRICS_PORT"):
        if name not in os.environ:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                os.environ[name] = str(probe.getsockname()[1])
    if "RAY_SERVE_HAPROXY_SOCKET_PATH" not in os.environ:
        # a short private directory: HAProxy refuses socket paths over 97 characters and
        # Serve adds a 56-character directory of its own
        base = Path(tempfile.mkdtemp(prefix="lq-hap-"))
        os.environ.setdefault("RAY_SERVE_HAPROXY_CONFIG_FILE_LOC", str(base / "haproxy.cfg"))
        os.environ.setdefault("RAY_SERVE_HAPROXY_SOCKET_PATH", str(base / "admin.sock"))
        os.environ.setdefault("RAY_SERVE_HAPROXY_SERVER_STATE_BASE", str(base))
        os.environ.setdefault("RAY_SERVE_HAPROXY_SERVER_STATE_FILE", str(base / "server-state"))
