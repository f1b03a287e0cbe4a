"""The API gateway on Ray Serve: each replica serves :func:`deployments.app.create_app` over this
process's :class:`~linqra.system.System`, whose launcher hands runs to the cluster's actors, and
whose chat goes through the ``ChatOrchestrator`` deployment (:mod:`deployments.orchestrator`).

:func:`build_app` starts the cluster's singleton actors (:func:`actors.cluster.start_cluster`,
idempotent) and binds the gateway with the options of ``configs/serve.yaml``
(:mod:`deployments.serve_config`); :func:`app_builder` is the entry point of
``serve deploy configs/serve.yaml``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from ray import serve

from deployments.errors import configure_error_log
from deployments.serve_config import gateway_options
from linqra.config import Settings

__all__ = ["Gateway", "app_builder", "build_app", "error_log_path"]

log = logging.getLogger(__name__)


def error_log_path(settings: Settings) -> Path:
    """Where a replica writes unexpected errors in full (stderr gets one line each)."""
    return settings.data_dir / "logs" / "gateway-errors.log"


@serve.deployment(**gateway_options())
@serve.ingress()
class Gateway:
    """One replica: the app is built once the replica's system is open."""

    def __init__(self, settings_json: str, orchestrator: Any = None) -> None:
        self.settings = Settings.model_validate_json(settings_json)
        self.orchestrator = orchestrator  # the ChatOrchestrator deployment's handle
        configure_error_log(error_log_path(self.settings))

    async def __serve_build_asgi_app__(self) -> FastAPI:
        from actors._context import process_system
        from actors.cluster import Readiness
        from deployments.app import create_app
        from deployments.orchestrator import RemoteChat
        from deployments.routers.health import HealthChecks

        system = await process_system(self.settings)
        if self.orchestrator is not None:  # chat goes through the orchestrator deployment
            system = dataclasses.replace(system, chat=RemoteChat(system.chat, self.orchestrator))
        app = create_app(system, request_id_header=False)  # Serve adds X-Request-Id
        # healthy means ready: the replica takes traffic once the cluster's warm-up has
        # finished (or REPLICA_WARM_UP_SECONDS passed: its probes then say "starting")
        checks = HealthChecks(readiness=Readiness(self.settings))
        if not await checks.ready():
            log.warning("the gateway replica starts before its warm-up has finished")
        app.state.health_checks = checks
        return app


def build_app(settings: Settings) -> Any:
    """The Serve application: the cluster's actors started, then the gateway bound to them and
    to the chat orchestrator deployment."""
    from actors.cluster import start_cluster
    from deployments.orchestrator import ChatOrchestrator

    settings = settings.portable()
    start_cluster(settings)
    shipped = settings.model_dump_json()
    orchestrator = ChatOrchestrator.bind(shipped)  # type: ignore[attr-defined]
    return Gateway.bind(shipped, orchestrator)  # type: ignore[attr-defined]


def app_builder(args: dict[str, Any]) -> Any:
    """Entry point for ``serve run`` / ``serve deploy`` with ``configs/serve.yaml``.

    ``args`` may hold ``config`` (a Linqra YAML file), used unless the environment names one
    (``LINQRA_CONFIG``: a cluster's nodes carry their own production file); everything else
    comes from ``LINQRA_*`` variables as usual.
    """
    from deployments.tls import tls_ingress_problem
    from linqra.config import load_settings

    if args.get("config"):
        os.environ.setdefault("LINQRA_CONFIG", str(args["config"]))
    settings = load_settings()
    problem = tls_ingress_problem(settings.http)  # serve deploy refuses it as linqra up does
    if problem is not None:
        raise ValueError(problem)
    return build_app(settings)
