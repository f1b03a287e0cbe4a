"""Browser tests of the web console: the app served by uvicorn on a free loopback port (one per
test module, in process: runs execute on its event loop thread), Debian's Chromium headless
driven by Playwright (``executable_path``: no browser download), and per test a fresh browser
context that records console errors and failed requests — a test fails when the page logged an
error or a request failed that the test did not expect — and leaves a screenshot in
``test-artifacts/console/``.

The fixtures are the suite's (``tests/conftest.py`` imports them)::

    def test_something(console: Console) -> None:
        page = console.open("/workflows")
        page.get_by_role("button", name="New workflow").click()
"""

from __future__ import annotations

import re
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from deployments.app import create_app
from deployments.console import CONSOLE_DIR
from tests.support.servers import free_port

__all__ = ["ARTIFACTS", "Console", "LiveApp", "browser", "console", "console_app", "serve_app"]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
AXE = Path(__file__).resolve().parents[2] / "console" / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
WAIT_MS = 15_000  # what a page may take to show what a step waits for, on a busy machine


@dataclass
class LiveApp:
    url: str
    settings: Any
    server: Any
    thread: threading.Thread

    def client(self, team: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"X-Team-Id": team}, timeout=30)


def serve_app(app: Any, port: int | None = None) -> tuple[str, Any, threading.Thread]:
    """``app`` under uvicorn in a thread on ``port`` (a free loopback port when not given);
    (url, server, thread)."""
    import uvicorn

    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"app-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    return f"http://127.0.0.1:{port}", server, thread


@pytest.fixture(scope="module")
def console_app(
    tmp_path_factory: pytest.TempPathFactory,
    http_service: Any,
    http_service_b: Any,
    fake_openai: Any,
    milvus_uri: str,
) -> Iterator[LiveApp]:
    """The whole API and the console, the OpenAI provider served by its local fake."""
    from tests.conftest import make_settings  # the suite's settings (conftest imports this module)

    assert (CONSOLE_DIR / "index.html").is_file(), (
        "the console is not built (cd console; npm run build)"
    )
    settings = make_settings(
        tmp_path_factory.mktemp("console"),
        http_service,
        http_service_b,
        fake_openai,
        milvus=milvus_uri,
    )
    url, server, thread = serve_app(create_app(settings=settings))
    yield LiveApp(url, settings, server, thread)
    server.should_exit = True
    thread.join(30)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium for one test module. Not for the session: while Playwright's sync API is
    started, this thread counts as running an event loop, and the asyncio tests of later
    modules could not run theirs."""
    from playwright.sync_api import expect, sync_playwright

    # an assertion waits as long as an action may (Playwright's own default is 5 s: a first
    # chat answer, importing its provider's SDK, took longer than that with two tests beside it)
    expect.set_options(timeout=WAIT_MS)
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield launched
        launched.close()


@dataclass
class Console:
    """One test's browser context on the console, as one team."""

    app: LiveApp
    page: Any
    team: str
    errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def open(self, path: str = "/") -> Any:
        self.page.goto(f"{self.app.url}/console{path}")
        return self.page

    def api(self) -> httpx.Client:
        """The API as this test's team, to set things up or check what the console did."""
        return self.app.client(self.team)

    def allow(self, pattern: str) -> None:
        """An error or failed request matching ``pattern`` is expected (a test of bad input)."""
        self.allowed.append(re.compile(pattern))

    def accessibility(self) -> list[str]:
        """The serious and critical axe-core violations of the page once its transitions are
        over (a drawer fading in has, for a moment, text of too little contrast). The context
        asks for reduced motion, so Mantine's transitions (drawers, modals) take no time; what
        the page still animates (a live timeline's bars) is waited for, from two frames on (a
        transition starts a frame after the element it moves appears, and a check before it
        saw none running)."""
        self.page.evaluate(
            "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"
        )
        self.page.wait_for_function(
            "() => document.getAnimations().every(a => a.playState !== 'running')"
        )
        # evaluated, not added as a <script>: the console's CSP refuses inline scripts
        self.page.evaluate(AXE.read_text())
        found = self.page.evaluate(
            "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
            ".filter(v => ['serious', 'critical'].includes(v.impact))"
            ".map(v => `${v.id}: ${v.help} (${v.nodes.map(n => n.target.join(' ')).join(', ')})`)"
        )
        return list(found)

    def unexpected(self) -> list[str]:
        return [m for m in self.errors + self.failed if not any(a.search(m) for a in self.allowed)]


@pytest.fixture
def console(
    request: pytest.FixtureRequest, browser: Any, console_app: LiveApp
) -> Iterator[Console]:
    """A fresh context (its own storage) working as a new team; screenshot on the way out."""
    team = f"ui-{uuid.uuid4().hex[:8]}"
    # reduced motion: the console then opens drawers and modals without a transition, so what
    # a test sees (and axe checks) is what stays on the screen, not a frame of a fade
    context = browser.new_context(viewport={"width": 1280, "height": 860}, reduced_motion="reduce")
    context.set_default_timeout(WAIT_MS)
    context.add_init_script(f"window.localStorage.setItem('linqra.team', {team!r});")
    page = context.new_page()
    found = Console(console_app, page, team)
    page.on("console", lambda m: m.type == "error" and found.errors.append(f"console: {m.text}"))
    page.on("pageerror", lambda e: found.errors.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: _failed(found, r))
    page.on(
        "response",
        lambda r: r.status >= 500 and found.failed.append(f"{r.status} {r.request.method} {r.url}"),
    )
    yield found
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()
    assert not found.unexpected(), found.unexpected()


def _failed(found: Console, request: Any) -> None:
    failure = request.failure or ""
    if "ERR_ABORTED" in failure:  # a stream the page closed itself (a cancel, leaving a page)
        return
    found.failed.append(f"failed: {request.method} {request.url} {failure}")
