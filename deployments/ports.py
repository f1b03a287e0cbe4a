"""One line, not a Ray traceback, when ``linqra up`` finds its ports taken.

``linqra up`` starting a local cluster binds fixed ports: the gateway's HTTP port (Serve's
proxy, ``http.port``, 8000), the Ray dashboard's (``ray.dashboard_port``, 8265; it also serves the
Jobs API) and the GCS port if ``RAY_GCS_SERVER_PORT`` pins one. Ray picks every other port free
at start (the GCS by default, workers, object manager; Serve's replica ports retry), and
``deployments.serve_config.apply_ingress_env`` picks HAProxy's. A fixed port found taken only once Ray is
up ends in a 34-line traceback and a half-started cluster, so ``check_ports_free`` looks first
and exits with one line naming the port and the setting that moves it::

    Linqra is already running on :8000 (LINQRA_HTTP__PORT to change)

One more port is fixed and cannot be moved: Ray's dashboard agent listens on 52365 on every
cluster ``ray.init()`` starts, and it is what runs Ray jobs. With a second cluster on the machine
(another ``linqra up``, a test session, a benchmark) the newer one starts without it and
``ray job submit`` to it fails with "No available agent to submit job". That port taken is worth
a warning line, not a refusal: everything else works.

Joining a cluster (``--address``, ``RAY_ADDRESS`` or ``ray.address``) checks nothing: the
dashboard and the Serve proxy then belong to that cluster, possibly on other machines, and a
proxy it already runs on the port is the one ``linqra up`` will use.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass

from linqra.config import Settings

__all__ = [
    "RAY_DASHBOARD_AGENT_PORT",
    "FixedPort",
    "agent_port_warning",
    "check_ports_free",
    "fixed_ports",
    "port_is_free",
    "taken_port_message",
]

# ray._private.ray_constants.DEFAULT_DASHBOARD_AGENT_LISTEN_PORT: ray.init() has no parameter for it
RAY_DASHBOARD_AGENT_PORT = 52365

_PROBE_TIMEOUT_SECONDS = 1.0
_HEALTH_TIMEOUT_SECONDS = 5.0  # a busy gateway's /healthz pings the store and the runner
_WILDCARD_HOSTS = {"", "0.0.0.0", "::"}


@dataclass(frozen=True)
class FixedPort:
    """A port ``linqra up`` binds as configured, with the setting that moves it."""

    host: str
    port: int
    what: str
    setting: str


def _joining(settings: Settings, address: str | None) -> bool:
    return bool(address or os.environ.get("RAY_ADDRESS") or settings.ray.address)


def fixed_ports(settings: Settings, *, address: str | None = None) -> list[FixedPort]:
    """The fixed ports ``linqra up`` would bind with these settings; none when joining a cluster."""
    if _joining(settings, address):
        return []
    ports = [
        FixedPort(settings.http.host, settings.http.port, "the gateway", "LINQRA_HTTP__PORT"),
        FixedPort(
            settings.ray.dashboard_host,
            settings.ray.dashboard_port,
            "the Ray dashboard",
            "LINQRA_RAY__DASHBOARD_PORT",
        ),
    ]
    gcs = os.environ.get("RAY_GCS_SERVER_PORT", "")
    if gcs.isdigit() and int(gcs) > 0:
        ports.append(FixedPort("0.0.0.0", int(gcs), "Ray's GCS", "RAY_GCS_SERVER_PORT"))
    return ports


def _probe_host(host: str) -> str:
    return "127.0.0.1" if host in _WILDCARD_HOSTS else host


def port_is_free(host: str, port: int) -> bool:
    """Whether a server could listen on ``host:port`` now.

    Taken if something accepts a connection there, or if binding fails. The bind sets
    ``SO_REUSEADDR`` as servers do, so connections a stopped Linqra left in TIME_WAIT do not count;
    the connection attempt catches what BSD's ``SO_REUSEADDR`` would let a bind share (a
    specific address under a wildcard listener).
    """
    try:
        with socket.create_connection((_probe_host(host), port), timeout=_PROBE_TIMEOUT_SECONDS):
            return False
    except OSError:
        pass
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host or "0.0.0.0", port))
        except OSError:
            return False
    return True


def _linqra_answers(host: str, port: int) -> bool:
    """Whether what listens on the port answers ``/healthz`` as Linqra's gateway does."""
    host = _probe_host(host)
    if ":" in host:
        host = f"[{host}]"
    url = f"http://{host}:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=_HEALTH_TIMEOUT_SECONDS) as response:
            body = response.read(64 * 1024)
    except urllib.error.HTTPError as exc:  # a degraded Linqra answers 503 with the same body
        body = exc.read(64 * 1024)
    except (OSError, ValueError):
        return False
    try:
        health = json.loads(body)
    except ValueError:
        return False
    return isinstance(health, dict) and {"status", "version", "checks"} <= health.keys()


def taken_port_message(settings: Settings, *, address: str | None = None) -> str | None:
    """The one line saying which fixed port is taken (the gateway's first), or None if all are free."""
    for fixed in fixed_ports(settings, address=address):
        if port_is_free(fixed.host, fixed.port):
            continue
        if fixed.setting == "LINQRA_HTTP__PORT" and _linqra_answers(fixed.host, fixed.port):
            return f"Linqra is already running on :{fixed.port} ({fixed.setting} to change)"
        return (
            f"Port :{fixed.port} for {fixed.what} is in use by another program "
            f"({fixed.setting} to change)"
        )
    return None


def agent_port_warning(settings: Settings, *, address: str | None = None) -> str | None:
    """A warning line if Ray's dashboard agent port is taken (the new cluster runs no jobs)."""
    if _joining(settings, address) or port_is_free("0.0.0.0", RAY_DASHBOARD_AGENT_PORT):
        return None
    return (
        f"Warning: port :{RAY_DASHBOARD_AGENT_PORT} (Ray's dashboard agent, which runs jobs) is "
        "taken, probably by another Ray cluster: `ray job submit` will not work on this one "
        "(stop the other, or join it with --address)"
    )


def check_ports_free(settings: Settings, *, address: str | None = None) -> None:
    """Exit with one line (status 1, no traceback) if a fixed port of ``linqra up`` is taken.

    Prints a warning line (stderr) if Ray's dashboard agent port is taken, and goes on.
    ``address`` is ``linqra up --address``: joining a cluster checks nothing.
    """
    message = taken_port_message(settings, address=address)
    if message is not None:
        raise SystemExit(message)
    warning = agent_port_warning(settings, address=address)
    if warning is not None:
        print(warning, file=sys.stderr, flush=True)
