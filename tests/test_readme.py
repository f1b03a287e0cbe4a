"""Every command in README.md and docs/*.md runs as written, against a real ``linqra up``.

The ```` ```bash ```` blocks of a page run in one bash process, in order, as a reader pasting them
into one terminal would, under ``set -euo pipefail``: a command that fails, or a curl that gets a
4xx/5xx (the pages' curls use ``--fail-with-body``), fails the test. A block right after an
``<!-- not-run: reason -->`` comment is skipped; only commands that serve until Ctrl-C may be
(checked below).

Linqra runs as ``make run`` runs it (``.venv/bin/linqra up``: a local Ray cluster, the gateway,
Milvus Lite) beside the offline demo service, on free ports. That is a cluster of its own, not
the session's: the pages' ``linqra run --ray``, ``linqra status`` and ``ray job submit`` find the
cluster ``linqra up`` started through its address file and its dashboard (the other ``linqra``
commands reach its gateway at ``LINQRA_HTTP__PORT``), and a Ray job inherits
``linqra up``'s environment. The pages read where Linqra is from the environment, the same in
both processes as one config file would be: ``API`` (the gateway's URL), ``LINQRA_HTTP__PORT``,
``LINQRA_RAY__DASHBOARD_PORT``, ``LINQRA_DATA_DIR`` (where ``ray-address`` is left),
``LINQRA_SERVICES`` (the demo service's port) and ``RAY_API_SERVER_ADDRESS`` (``ray job submit``).
Nothing else is substituted.

Two things differ from a reader's machine, both because another Ray cluster may run beside this
one (the suite's own, another session's, a benchmark):

- Ray's dashboard agent, which runs jobs, listens on a free port instead of Ray's fixed 52365,
  which ``ray.init()`` offers no parameter to move; with 52365 taken the cluster would run no
  jobs ("No available agent to submit job"; ``linqra up`` warns, see ``deployments/ports.py``).
- The cluster keeps its files in a Ray temp dir of its own (``RAY_TMPDIR``) where the test writes
  its address to ``ray_current_cluster``, as ``ray start`` would: Ray points a job's driver at
  the address in that file, and without it at any cluster running on the machine.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from deployments.ports import port_is_free
from tests.support.servers import free_port, wait_port

pytestmark = pytest.mark.cluster  # `linqra up`: a Ray cluster of its own (tests/conftest.py)

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
VENV_BIN = ROOT / ".venv" / "bin"

# the only commands a not-run block may hold: they serve until Ctrl-C (or are the suite itself)
SERVING = ("make run", "make test", "make demo-service", ".venv/bin/linqra up")
# requests the pages make on purpose to show an error, each with `|| true`, and what it answers
EXPECTED_FAILURES = {"README.md": ['"field":"steps[0].target"']}
# with a key in the environment a provider would be called over the internet
PROVIDER_KEYS = {"OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY",
                 "CO_API_KEY", "COHERE_API_KEY"}  # fmt: skip

_FENCE = re.compile(r"^```(\S*)\s*$")
_NOT_RUN = re.compile(r"^<!--\s*not-run\b.*-->$")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    code: str
    run: bool

    @property
    def commands(self) -> list[str]:
        """The lines that are not comments (a reader's commands and their continuations)."""
        return [
            ln for ln in self.code.splitlines() if ln.strip() and not ln.lstrip().startswith("#")
        ]


def bash_blocks(page: Path) -> list[Block]:
    lines = page.read_text().splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if fence is None:
            i += 1
            continue
        end = i + 1
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        if fence.group(1) == "bash":
            before = next((ln.strip() for ln in reversed(lines[:i]) if ln.strip()), "")
            code = "\n".join(lines[i + 1 : end]) + "\n"
            blocks.append(Block(page, i + 1, code, run=not _NOT_RUN.match(before)))
        i = end + 1
    return blocks


def _runnable(page: Path) -> list[Block]:
    return [b for b in bash_blocks(page) if b.run]


RUN_PAGES = [page for page in PAGES if _runnable(page)]


# -- the pages themselves (no server) ----------------------------------------------------------
def test_the_pages_have_runnable_commands() -> None:
    names = {page.relative_to(ROOT).as_posix() for page in RUN_PAGES}
    assert {"README.md", "docs/agents.md", "docs/knowledge.md", "docs/operations.md"} <= names
    assert len(_runnable(ROOT / "README.md")) >= 2


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_exactly_the_blocks_that_start_servers_are_not_run(page: Path) -> None:
    for block in bash_blocks(page):
        serving = [c.startswith(SERVING) for c in block.commands]
        assert all(serving) if not block.run else not any(serving), (block.line, block.code)


@pytest.mark.parametrize("page", RUN_PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_curl_fails_on_an_error_status_and_nothing_is_left_to_fill_in(page: Path) -> None:
    expected = EXPECTED_FAILURES.get(page.name, [])
    code = "\n".join("\n".join(b.commands) for b in _runnable(page))
    for match in re.finditer(r"(?<![\w./-])curl\b.*", code):
        assert match.group(0).startswith("curl -sS --fail-with-body "), match.group(0)
    placeholders = re.findall(r"<[a-z][a-z ]*[a-z]>", code)  # <execution id>, <task id>, …
    assert not placeholders, placeholders
    assert code.count("|| true") == len(expected)


# -- the pages run against Linqra ---------------------------------------------------------------
@dataclass(frozen=True)
class Linqra:
    api: str
    http_port: int
    env: dict[str, str]  # what both terminals see: where Linqra is, no provider keys
    log: Path


def _clean_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RAY_", "LINQRA_")) and k not in PROVIDER_KEYS | {"VIRTUAL_ENV"}
    }
    # a reader's shell has no venv on its PATH: the pages say .venv/bin/… where they need it
    here = {VENV_BIN.resolve(), Path(sys.executable).parent.resolve()}
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p and Path(p).resolve() not in here]
    env["PATH"] = os.pathsep.join(path)
    return env


# Loaded by `linqra up`'s Python processes (PYTHONPATH): when Ray's node parameters are imported,
# the dashboard agent's port defaults to $LINQRA_TEST_DASHBOARD_AGENT_PORT instead of 52365.
_AGENT_PORT_HOOK = """
import importlib.util, os, sys

class _AgentPort:
    def find_spec(self, name, path=None, target=None):
        if name != "ray._private.parameter":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            init = module.RayParams.__init__

            def __init__(self, *args, **kwargs):
                kwargs.setdefault(
                    "dashboard_agent_listen_port", int(os.environ["LINQRA_TEST_DASHBOARD_AGENT_PORT"])
                )
                init(self, *args, **kwargs)

            module.RayParams.__init__ = __init__

        spec.loader.exec_module = exec_module
        return spec

sys.meta_path.insert(0, _AgentPort())
"""


def _wait_for_line(proc: subprocess.Popen[bytes], log: Path, line: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while line not in log.read_text(errors="replace"):
        if proc.poll() is not None:
            raise RuntimeError(
                f"linqra up exited with {proc.returncode}:\n{log.read_text()[-4000:]}"
            )
        if time.monotonic() > deadline:
            raise TimeoutError(f"linqra up not ready after {timeout}s:\n{log.read_text()[-4000:]}")
        time.sleep(0.2)


def _wait_until_taken(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while port_is_free("0.0.0.0", port):  # the agent listens on the node's address, not loopback
        if time.monotonic() > deadline:
            raise TimeoutError(f"Ray's dashboard agent is not on port {port}: the hook failed")
        time.sleep(0.2)


def _stop(proc: subprocess.Popen[bytes], sig: int, timeout: float) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
            return
        except subprocess.TimeoutExpired:
            pass
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


@pytest.fixture(scope="module")
def linqra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Linqra]:
    assert (VENV_BIN / "linqra").exists(), "the pages run .venv/bin/…: `make install-test` makes it"
    tmp = tmp_path_factory.mktemp("readme")
    http_port, dashboard_port, demo_port = free_port(), free_port(), free_port()
    env = {
        **_clean_env(),
        "API": f"http://127.0.0.1:{http_port}",
        "LINQRA_HTTP__PORT": str(http_port),
        "LINQRA_RAY__DASHBOARD_PORT": str(dashboard_port),
        "LINQRA_DATA_DIR": str(tmp / "data"),
        "LINQRA_SERVICES": json.dumps(
            {"quotes-service": {"urls": [f"http://127.0.0.1:{demo_port}"], "timeout_seconds": 10}}
        ),
        "RAY_API_SERVER_ADDRESS": f"http://127.0.0.1:{dashboard_port}",
    }
    site = tmp / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_AGENT_PORT_HOOK)
    agent_port = free_port()
    ray_tmp = Path(tempfile.mkdtemp(prefix="lq-ray-", dir="/tmp"))  # short: socket paths ≤ 107
    up_env = {
        **env,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")])),
        "LINQRA_TEST_DASHBOARD_AGENT_PORT": str(agent_port),
        "RAY_TMPDIR": str(ray_tmp),
    }
    demo = subprocess.Popen(
        [str(VENV_BIN / "python"), "-m", "deployments.demo", "--port", str(demo_port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    log = tmp / "linqra-up.log"
    with log.open("wb") as out:
        up = subprocess.Popen(
            [str(VENV_BIN / "linqra"), "up"],  # what `make run` runs
            cwd=ROOT, env=up_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        wait_port(demo_port, proc=demo)
        _wait_for_line(up, log, "Press Ctrl-C to stop.", timeout=300)
        _wait_until_taken(agent_port, timeout=60)  # its cluster runs jobs: the hook applied
        left = json.loads((tmp / "data" / "ray-address").read_text())
        (ray_tmp / "ray" / "ray_current_cluster").write_text(left["address"])
        yield Linqra(env["API"], http_port, env, log)
    finally:
        _stop(up, signal.SIGINT, timeout=120)  # Ctrl-C: stops the cluster it started
        _stop(demo, signal.SIGTERM, timeout=10)
        shutil.rmtree(ray_tmp, ignore_errors=True)


@pytest.mark.ray
@pytest.mark.parametrize("page", RUN_PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_the_page_runs_as_written(linqra: Linqra, page: Path, tmp_path: Path) -> None:
    parts = ["set -euo pipefail"]
    for block in _runnable(page):
        parts += [f": {page.name}:{block.line}", block.code]  # `set -x` shows where each starts
    script = tmp_path / f"{page.stem}.sh"
    script.write_text("\n".join(parts))
    out = subprocess.run(
        ["bash", "-x", str(script)],
        cwd=ROOT,
        env=linqra.env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=900,
    )
    report = (
        f"{page.name} exited {out.returncode}\n--- stdout (end)\n{out.stdout[-3000:]}\n"
        f"--- trace (end)\n{out.stderr[-5000:]}\n--- linqra up (end)\n"
        f"{linqra.log.read_text(errors='replace')[-2000:]}"
    )
    assert out.returncode == 0, report
    for answer in EXPECTED_FAILURES.get(page.name, []):
        assert answer in out.stdout, report


@pytest.mark.ray
def test_a_second_linqra_up_says_it_is_already_running(linqra: Linqra) -> None:
    out = subprocess.run(
        [str(VENV_BIN / "linqra"), "up"],
        cwd=ROOT,
        env=linqra.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1
    assert out.stderr == (
        f"Linqra is already running on :{linqra.http_port} (LINQRA_HTTP__PORT to change)\n"
    )
    assert out.stdout == ""


@pytest.mark.ray
def test_the_banner_says_once_where_the_embedded_secrets_key_is(linqra: Linqra) -> None:
    """Each of the cluster's processes loads the key file; the operator is told once, in the
    banner (and by the process that made the file), not once a process."""
    text = linqra.log.read_text(errors="replace")
    key_file = (Path(linqra.env["LINQRA_DATA_DIR"]) / "master.key").resolve()
    banner = f"  secrets:        sealed with {key_file}; set LINQRA_MASTER_KEYS in production"
    assert banner in text.splitlines()
    assert text.count("sealed with the embedded master key file") <= 1


@pytest.mark.ray
def test_the_api_docs_page_works_offline(linqra: Linqra) -> None:
    """`/docs` (linked from the README and printed by `linqra up`) loads nothing from a CDN."""
    from tests.test_docs_ui import _references

    with httpx.Client(base_url=linqra.api, timeout=30) as client:
        for page in ("/docs", "/redoc"):
            html = client.get(page).text
            refs = _references(html)
            assert refs and all(ref.startswith("/") for ref in refs), refs
            assert "https://" not in html and "http://" not in html
            for ref in refs:
                assert client.get(ref).status_code == 200, ref
