"""The layout rules: the core library knows nothing of Ray, no module is over 500 lines, no
import circles (between modules, or between packages), nothing outside ``tests/`` imports it."""

from __future__ import annotations

import ast
import functools
import json
import subprocess
import sys
from collections.abc import Iterator, Mapping, Set
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE_PACKAGES = ("linqra", "actors", "deployments")
MAX_MODULE_LINES = 500


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


def test_no_module_is_over_500_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): lines
        for top in SOURCE_PACKAGES
        for path in sorted((ROOT / top).rglob("*.py"))
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}, f"split these along a seam a newcomer would guess: {long}"


# -- import rules --------------------------------------------------------------------------------
def _modules() -> dict[str, Path]:
    """``linqra.knowledge.service`` → its file, for every module of the source packages."""
    out = {}
    for top in SOURCE_PACKAGES:
        for path in (ROOT / top).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = path
    return out


def _imported_names(tree: ast.AST) -> Iterator[str]:
    """Every absolute import, function-local ones included; ``if TYPE_CHECKING:`` blocks are
    left out (they never run). ``from a.b import c`` yields ``a.b`` and ``a.b.c``."""
    for child in ast.iter_child_nodes(tree):
        if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
            continue
        if isinstance(child, ast.Import):
            yield from (alias.name for alias in child.names)
        elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
            yield child.module
            yield from (f"{child.module}.{alias.name}" for alias in child.names)
        yield from _imported_names(child)


@functools.cache
def _import_graph() -> dict[str, set[str]]:
    """Module → the modules of the source packages it imports."""
    modules = _modules()
    return {
        name: {m for m in _imported_names(ast.parse(path.read_text(), str(path))) if m in modules}
        - {name}
        for name, path in modules.items()
    }


def _package(module: str) -> str:
    """The package a module belongs to for the package rule: ``linqra.<pkg>`` inside the core
    (a top-level core module such as ``linqra.jobs`` is its own), ``actors`` or ``deployments``."""
    parts = module.split(".")
    if parts[0] != "linqra":
        return parts[0]
    return ".".join(parts[:2])


def _cycles(graph: Mapping[str, Set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def test_no_import_cycles_between_modules() -> None:
    """Function-local imports count: hiding a circle inside a function does not remove it."""
    assert _cycles(_import_graph()) == []


def test_no_package_imports_a_package_that_imports_it_back() -> None:
    """Between the packages of the core (``linqra.agents``, ``linqra.llm``, …, each top-level
    core module on its own), ``actors`` and ``deployments``: dependencies point one way, also
    through a third package."""
    packages: dict[str, set[str]] = {}
    for module, imported in _import_graph().items():
        for other in imported:
            if _package(other) != _package(module):
                packages.setdefault(_package(module), set()).add(_package(other))
    assert _cycles(packages) == []


def test_the_cycle_finder_finds_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _package("linqra.knowledge.service") == "linqra.knowledge"
    assert _package("linqra.jobs") == "linqra.jobs"
    assert _package("actors.agent") == "actors"
    local = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import linqra.system\n"
        "def f():\n    from linqra.store import open_store\n"
    )
    assert set(_imported_names(local)) == {
        "typing", "typing.TYPE_CHECKING", "linqra.store", "linqra.store.open_store",
    }  # fmt: skip


def test_nothing_outside_tests_imports_from_tests() -> None:
    """Fakes and servers the benchmarks need ship in ``linqra.testing``, not in ``tests/``."""
    offenders = []
    tops = [p for p in ROOT.iterdir() if p.name != "tests" and not p.name.startswith(".")]
    for path in sorted(p for top in tops for p in ([top] if top.is_file() else top.rglob("*"))):
        if path.suffix != ".py":
            continue
        relative = path.relative_to(ROOT)
        tree = ast.parse(path.read_text(), str(path))
        offenders += [
            f"{relative}: {name}" for name in _all_imports(tree) if name.split(".")[0] == "tests"
        ]
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in json.loads(notebook.read_text())["cells"]:
            if cell["cell_type"] != "code":
                continue
            source = "".join(cell["source"])
            code = "\n".join(
                line for line in source.splitlines() if not line.startswith(("%", "!"))
            )
            offenders += [
                f"{notebook.relative_to(ROOT)}: {name}"
                for name in _all_imports(ast.parse(code))
                if name.split(".")[0] == "tests"
            ]
    assert offenders == []


def _all_imports(tree: ast.AST) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
