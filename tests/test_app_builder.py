"""``serve deploy configs/serve.yaml`` builds Linqra through ``deployments.gateway.app_builder``:
the file its ``args`` name is the default, and a cluster's own ``LINQRA_CONFIG`` wins (nodes
launched by cluster.yaml or KubeRay carry their production file there)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from linqra.config import Settings


def _built(monkeypatch: pytest.MonkeyPatch, args: dict[str, Any]) -> Settings:
    import deployments.gateway as gateway

    seen: list[Settings] = []
    monkeypatch.setattr(gateway, "build_app", seen.append)  # no cluster: only the settings
    gateway.app_builder(args)
    return seen[0]


def test_the_args_config_is_read_unless_the_environment_names_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args_file, env_file = tmp_path / "args.yaml", tmp_path / "env.yaml"
    args_file.write_text("execution:\n  io_pool_size: 3\n")
    env_file.write_text("execution:\n  io_pool_size: 5\n")
    monkeypatch.delenv("LINQRA_CONFIG", raising=False)
    assert _built(monkeypatch, {"config": str(args_file)}).execution.io_pool_size == 3
    monkeypatch.setenv("LINQRA_CONFIG", str(env_file))
    assert _built(monkeypatch, {"config": str(args_file)}).execution.io_pool_size == 5
