"""The core library knows nothing of Ray."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_linqra_package_never_imports_ray() -> None:
    offenders = []
    for path in (ROOT / "linqra").rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [
                f"{path.relative_to(ROOT)}: {n}"
                for n in names
                if n == "ray" or n.startswith("ray.")
            ]
    assert offenders == []


def test_importing_the_whole_core_does_not_load_ray() -> None:
    code = (
        "import sys, pkgutil, importlib, linqra\n"
        "for m in pkgutil.walk_packages(linqra.__path__, 'linqra.'): importlib.import_module(m.name)\n"
        "print('ray' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "False"


def test_card_layout_exists() -> None:
    for name in (
        "linqra",
        "actors",
        "deployments",
        "configs",
        "tests",
        "notebooks",
        "benchmarks",
        "docs",
        "cluster.yaml",
        "pyproject.toml",
        "README.md",
        ".ci/run",
        "Makefile",
    ):
        assert (ROOT / name).exists(), name
