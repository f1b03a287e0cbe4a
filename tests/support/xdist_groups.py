"""``make test`` on two pytest-xdist workers, each group of tests whole on one of them.

``--dist loadgroup`` keeps the tests marked ``xdist_group(name)`` on one worker: xdist adds the
group to each test's node id in the worker, and its scheduler groups by that suffix. pytest 9.2
computes node ids (``Node.nodeid`` reads ``_id``), so the suffix xdist 3.8 writes (``_nodeid``)
is lost, every test becomes a group of its own, and two workers started Ray clusters at once.
Written here, because no released xdist does it with pytest 9.2: each worker writes the group of
every test it collected to a file in a directory the controller names
(``pytest_configure_node``), and the controller's scheduler — xdist's own
``LoadScopeScheduling``, which runs each scope whole on one worker — takes a test's scope from
those files. Tests without a group are a scope each, as under xdist's ``loadgroup``.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest

GROUPS_DIR = "linqra_groups_dir"  # the key in a worker's workerinput


def enabled(config: pytest.Config) -> bool:
    return bool(config.pluginmanager.hasplugin("xdist")) and config.getoption("dist") == "loadgroup"


def configure_node(node: Any) -> None:
    """In the controller: tell the worker where to write its groups."""
    config = node.config
    directory = getattr(config, "_linqra_groups_dir", None)
    if directory is None:
        directory = config._linqra_groups_dir = tempfile.mkdtemp(prefix="linqra-xdist-groups-")
    node.workerinput[GROUPS_DIR] = directory


def write_groups(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In a worker: the ``xdist_group`` of each collected test, by node id."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None or GROUPS_DIR not in workerinput:
        return
    groups = {}
    for item in items:
        mark = item.get_closest_marker("xdist_group")
        if mark is not None:
            groups[item.nodeid] = str(mark.args[0] if mark.args else mark.kwargs["name"])
    path = Path(workerinput[GROUPS_DIR]) / f"{workerinput['workerid']}.json"
    path.write_text(json.dumps(groups))


def make_scheduler(config: pytest.Config, log: Any) -> Any:
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):  # type: ignore[misc]
        """xdist's scope scheduling, a test's scope its group (read once every worker has
        collected: ``schedule`` is the first to ask)."""

        def __init__(self, config: pytest.Config, log: Any = None) -> None:
            super().__init__(config, log)
            self._groups: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self._groups is None:
                self._groups = {}
                directory = getattr(self.config, "_linqra_groups_dir", None)
                for path in sorted(Path(directory).glob("*.json")) if directory else ():
                    self._groups.update(json.loads(path.read_text()))
            return self._groups.get(nodeid, nodeid)

    return GroupScheduling(config, log)
