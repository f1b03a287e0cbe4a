"""The I/O step pool: async actors that run many I/O-bound steps as coroutines.

An HTTP or LLM step spends its time waiting, so it must not cost a worker
process: each :class:`IOStepWorker` (``num_cpus=0``) runs up to
``execution.io_concurrency`` steps at once on one event loop, and the pool has
``execution.io_pool_size`` of them.
"""

from __future__ import annotations

import logging
from typing import Any

import ray

from actors._context import worker_context
from linqra.steps.base import StepCall
from linqra.steps.runtime import StepOutcome, run_step_call

log = logging.getLogger(__name__)


class IOStepWorker:
    def __init__(self, settings_json: str) -> None:
        self.registry, self.ctx = worker_context(settings_json)

    async def execute(self, call: StepCall) -> StepOutcome:
        return await run_step_call(call, self.registry, self.ctx)

    async def ping(self) -> str:
        return "ok"


def io_pool(settings_json: str, size: int, concurrency: int, namespace: str) -> list[Any]:
    """Get or create the named pool actors (shared by the runner and driver scripts)."""
    remote_cls = ray.remote(IOStepWorker)
    return [
        remote_cls.options(  # type: ignore[attr-defined]
            name=f"linqra-io-{i}",
            namespace=namespace,
            get_if_exists=True,
            lifetime="detached",
            num_cpus=0,
            max_concurrency=concurrency,
            max_restarts=-1,
        ).remote(settings_json)
        for i in range(size)
    ]
