"""The notebooks of ``notebooks/``, one per capability, run top to bottom with the Python client
against a live gateway; each asserts its own results, so a broken notebook fails here. And every
notebook is committed without outputs. (``quickstart.ipynb``, in process: ``test_notebook.py``.)"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from deployments.app import create_app
from linqra.config import Settings
from linqra.system import System
from tests.support.http import until
from tests.support.servers import free_port

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
CAPABILITIES = (
    "workflows",
    "llm-and-costs",
    "knowledge-and-rag",
    "agents-and-schedules",
    "assistants-and-chat",
    "operations",
)


@pytest.fixture
def settings(llm_settings: Settings) -> Settings:
    """OpenAI and Anthropic served by their local fakes (the LLM notebook calls them); the other
    notebooks use the offline ``local`` model."""
    return llm_settings


@pytest.fixture
def scheduled_url(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``live_url``'s gateway with cron schedules and event triggers firing. On Ray the
    ``linqra-scheduler`` actor fires them; the in-process gateway has no such actor, so the same
    class runs on the server's event loop over the app's own System, whose in-process bus is
    where the API publishes events."""
    import uvicorn

    from actors import scheduler

    app = create_app(settings=settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(
        target=loop.run_until_complete, args=(server.serve(),), name="live-api", daemon=True
    )
    thread.start()
    until(lambda: server.started or not thread.is_alive())
    assert server.started, "uvicorn did not start"

    async def app_system(_: Settings) -> System:
        return app.state.system  # type: ignore[no-any-return]

    async def start() -> None:
        scheduler.SchedulerActor(settings.model_dump_json())

    async def stop() -> None:
        mine = [
            task
            for task in asyncio.all_tasks()
            if task.get_coro().__qualname__.startswith("SchedulerActor.")  # type: ignore[union-attr]
        ]
        for task in mine:
            task.cancel()
        await asyncio.gather(*mine, return_exceptions=True)

    monkeypatch.setattr(scheduler, "process_system", app_system)
    asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    yield f"http://127.0.0.1:{port}"
    asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
    server.should_exit = True
    thread.join(30)
    loop.close()


def execute(name: str, workdir: Path) -> None:
    """Run the notebook top to bottom; a cell that raises (a failed ``assert``) raises
    ``CellExecutionError`` with its traceback."""
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
    ).execute()


@pytest.mark.parametrize("name", CAPABILITIES)
def test_notebook_runs_against_a_live_gateway(
    name: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url = request.getfixturevalue("scheduled_url" if name == "agents-and-schedules" else "live_url")
    # the kernel inherits this process's environment: the notebook reads where and as whom
    monkeypatch.setenv("LINQRA_URL", url)
    monkeypatch.setenv("LINQRA_TEAM", f"nb-{name}-{uuid.uuid4().hex[:8]}")
    for key in [k for k in os.environ if "proxy" in k.lower()]:
        monkeypatch.delenv(key)  # loopback only
    execute(name, tmp_path)


def test_every_notebook_is_committed_without_outputs() -> None:
    found = {path.stem for path in NOTEBOOKS.glob("*.ipynb")}
    assert set(CAPABILITIES) <= found
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
        for number, cell in enumerate(notebook.cells):
            if cell.cell_type == "code":
                where = f"{path.name} cell {number}"
                assert cell.outputs == [], f"{where} has outputs: strip them"
                assert cell.execution_count is None, f"{where} has an execution count"
