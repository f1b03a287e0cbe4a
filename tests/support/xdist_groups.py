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

A worker that has left the ``ray`` group lowers its CPU priority (:func:`yield_to_ray`): under
load a Ray test beside it otherwise waited longer than on the suite's single process (a first
chat's conversation actor — a new process — did not answer within 30 s in one CI run; chats
have shared a few host processes since).
"""

from __future__ import annotations

import json
import os
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


def _group(item: pytest.Item) -> str | None:
    """The name in ``item``'s ``xdist_group`` mark, if it has one."""
    mark = item.get_closest_marker("xdist_group")
    if mark is None:
        return None
    return str(mark.args[0] if mark.args else mark.kwargs["name"])


def write_groups(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In a worker: the ``xdist_group`` of each collected test, by node id."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None or GROUPS_DIR not in workerinput:
        return
    groups = {item.nodeid: group for item in items if (group := _group(item)) is not None}
    path = Path(workerinput[GROUPS_DIR]) / f"{workerinput['workerid']}.json"
    path.write_text(json.dumps(groups))


BESIDE_RAY_NICE = 5
"""The niceness a worker takes on for its first test outside the ``ray`` group: from then on it
runs only in-process tests (the Ray group is one unit, run in order, so no Ray test follows on
that worker), and the Ray tests beside it keep the CPU priority they have when the suite runs in
one process. The servers and browsers it starts after that inherit it."""

_niced = False


def yield_to_ray(item: pytest.Item) -> None:
    """In a worker, before ``item`` runs: lower this worker's priority once it leaves the Ray
    group (see :data:`BESIDE_RAY_NICE`)."""
    global _niced
    if _niced or not hasattr(item.config, "workerinput"):
        return
    if _group(item) == "ray":
        return
    os.nice(BESIDE_RAY_NICE)
    _niced = True


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
