"""An actor's process tunes Python's cycle collector once its system is open
(``actors/_context.py`` ``tune_collector``); a driver's process is left as it is."""

from __future__ import annotations

import gc
from typing import Any

import pytest

from actors import _context
from actors._context import GC_THRESHOLDS, process_system
from linqra.config import Settings, TracingSettings

pytestmark = pytest.mark.ray


def test_an_actors_process_freezes_its_start_and_collects_less_often(
    ray_cluster: Any, ray_settings: Settings
) -> None:
    import ray

    @ray.remote(num_cpus=0)
    class Probe:
        def collector(self) -> tuple[tuple[int, ...], int]:
            return gc.get_threshold(), gc.get_freeze_count()

        async def open_system(self, settings_json: str) -> tuple[tuple[int, ...], int]:
            await process_system(Settings.model_validate_json(settings_json))
            return gc.get_threshold(), gc.get_freeze_count()

    probe = Probe.remote()  # type: ignore[attr-defined]
    try:
        before, frozen_before = ray.get(probe.collector.remote(), timeout=60)
        assert before == gc.get_threshold() and frozen_before == 0  # Python's defaults
        after, frozen = ray.get(
            probe.open_system.remote(ray_settings.model_dump_json()), timeout=120
        )
        assert after == GC_THRESHOLDS
        assert frozen > 10_000  # what it made to start: Ray, the models, the system
    finally:
        ray.kill(probe)


async def test_a_drivers_process_keeps_pythons_collector(
    ray_cluster: Any, ray_settings: Settings
) -> None:
    threshold, frozen = gc.get_threshold(), gc.get_freeze_count()
    system = await _context._open(ray_settings.model_copy(update={"tracing": TracingSettings()}))
    try:
        assert (gc.get_threshold(), gc.get_freeze_count()) == (threshold, frozen)
    finally:
        await system.close()
