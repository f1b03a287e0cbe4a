"""The web console as the gateway serves it: the shipped build is the build of the sources in
``console/`` (no Node needed to check), the schema its client types come from is the one served,
the files and the single-page fallback, and — in a real headless Chromium — the app's frame."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from pathlib import Path

from fastapi.testclient import TestClient

from deployments.app import create_app
from deployments.console import CONSOLE_DIR
from tests.support.browser import Console

SOURCES = Path(__file__).resolve().parents[1] / "console"
ROOTS = [
    "index.html",
    "package.json",
    "package-lock.json",
    "tsconfig.json",
    "vite.config.ts",
    "vite.widget.config.ts",
    "openapi.json",
    "src",
    "widget",
]  # as console/build-info.mjs


def _sources_hash() -> str:
    files = sorted(
        p.relative_to(SOURCES).as_posix()
        for root in ROOTS
        for p in ([SOURCES / root] if (SOURCES / root).is_file() else (SOURCES / root).rglob("*"))
        if p.is_file()
    )
    digest = hashlib.sha256()
    for name in files:
        digest.update(name.encode() + b"\0" + (SOURCES / name).read_bytes() + b"\0")
    return digest.hexdigest()


def test_the_shipped_build_is_of_the_sources_in_the_repo() -> None:
    info = json.loads((CONSOLE_DIR / "build-info.json").read_text())
    assert info["sources_sha256"] == _sources_hash(), (
        "console/ changed since deployments/console_dist was built: cd console && npm run build"
    )


def test_every_gzip_copy_is_its_file_compressed() -> None:
    packed = sorted(CONSOLE_DIR.rglob("*.gz"))
    assert packed, "the build made no .gz copies (console/build-info.mjs)"
    for gz in packed:
        assert gzip.decompress(gz.read_bytes()) == gz.with_suffix("").read_bytes(), gz.name


def test_the_console_client_types_come_from_the_served_schema() -> None:
    served = create_app().openapi()
    shipped = json.loads((SOURCES / "openapi.json").read_text())
    assert shipped == json.loads(json.dumps(served)), (
        "the API changed: regenerate console/openapi.json and the types (see docs/console.md)"
    )


def test_files_and_single_page_fallback(client: TestClient) -> None:
    assert client.get("/console", follow_redirects=False).headers["location"] == "/console/"
    index = client.get("/console/")
    assert index.status_code == 200 and '<div id="root">' in index.text
    assert index.headers["cache-control"] == "no-cache"
    policy = index.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "connect-src 'self';" in policy
    assert "frame-ancestors 'none'" in policy
    deep = client.get("/console/executions/ex_123")  # a reload on a page of the app
    assert deep.status_code == 200 and deep.text == index.text
    asset = next((CONSOLE_DIR / "assets").glob("index-*.js")).name
    got = client.get(f"/console/assets/{asset}", headers={"Accept-Encoding": "identity"})
    assert got.status_code == 200 and "immutable" in got.headers["cache-control"]
    assert "content-encoding" not in got.headers
    packed = client.get(f"/console/assets/{asset}", headers={"Accept-Encoding": "gzip"})
    assert packed.headers["content-encoding"] == "gzip"
    assert packed.headers["content-type"].startswith("text/javascript")
    assert packed.content == got.content  # decoded by the client: the same script
    assert client.get("/console/assets/missing-123.js").status_code == 404
    assert client.get("/console/missing.png").status_code == 404
    assert (CONSOLE_DIR.parent / "console.py").is_file()  # what the next line must not serve
    assert client.get("/console/%2e%2e/console.py").status_code == 404
    assert client.get("/console/a%00b").text == index.text  # a page path: the app, not a 500
    assert client.get("/console/" + "x" * 300 + ".js").status_code == 404
    named = client.get("/console/index.html")  # by its name: still never cached
    assert named.text == index.text and named.headers["cache-control"] == "no-cache"
    widget = client.get("/console/widget.js")
    assert widget.status_code == 200 and "javascript" in widget.headers["content-type"]
    assert client.get("/console/config.json").json() == {"authMode": "header"}


def test_the_frame_and_navigation(console: Console) -> None:
    page = console.open("/")
    page.get_by_role("heading", name="Overview").wait_for()
    page.get_by_text(f"Working as team {console.team}").wait_for()
    page.get_by_role("navigation", name="areas").get_by_role("link", name="Workflows").click()
    page.wait_for_url("**/console/workflows")
    page.reload()  # the deep link is served the app
    page.get_by_role("link", name="Workflows").wait_for()


MAIN_SCREENS = {
    "/": "Overview",
    "/workflows": "Workflows",
    "/executions": "Executions",
    "/agents": "Agents",
    "/assistants": "Assistants",
    "/knowledge": "Knowledge",
    "/usage": "Usage",
    "/settings": "Settings",
}


def test_main_screens_have_no_serious_accessibility_violations(console: Console) -> None:
    found: dict[str, list[str]] = {}
    for path, heading in MAIN_SCREENS.items():
        page = console.open(path)
        page.get_by_role("heading", name=re.compile(heading, re.I)).first.wait_for()
        page.wait_for_load_state("networkidle")
        if violations := console.accessibility():
            found[path] = violations
    assert not found, found
