"""``/docs`` and ``/redoc`` work offline: every asset they load is served by the app itself."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from deployments.docs_ui import mount_docs

# src="…", href="…", url: '…' and url: "…" — everything a page can load
_REFERENCES = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url\s*:\s*["']([^"']+)["']""")


def _app() -> FastAPI:
    app = FastAPI(title="Docs test", docs_url=None, redoc_url=None)

    @app.get("/v1/things", tags=["things"])
    async def things() -> dict[str, list[str]]:
        return {"items": []}

    mount_docs(app)
    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://linqra.test") as client:
        yield client


def _references(html: str) -> list[str]:
    return [a or b for a, b in _REFERENCES.findall(html)]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_the_pages_reference_only_this_server(client: httpx.AsyncClient, page: str) -> None:
    response = await client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    refs = _references(html)
    assert refs, html
    assert all(ref.startswith("/") and not ref.startswith("//") for ref in refs), refs
    assert "http://" not in html and "https://" not in html, html
    assert "cdn" not in html.lower()


async def test_the_assets_they_reference_are_served(client: httpx.AsyncClient) -> None:
    expected = {".js": "javascript", ".css": "text/css", ".png": "image/png"}
    seen = set()
    for page in ("/docs", "/redoc"):
        for ref in _references((await client.get(page)).text):
            if ref == "/openapi.json":
                continue
            response = await client.get(ref)
            assert response.status_code == 200, ref
            suffix = ref[ref.rindex(".") :]
            assert expected[suffix] in response.headers["content-type"], (ref, response.headers)
            assert len(response.content) > 1000, ref
            seen.add(suffix)
    assert seen == set(expected)
    bundle = await client.get("/docs-assets/swagger-ui-bundle.js")
    assert b"SwaggerUIBundle" in bundle.content


async def test_swagger_ui_reads_the_apps_openapi_document(client: httpx.AsyncClient) -> None:
    html = (await client.get("/docs")).text
    assert "url: '/openapi.json'" in html
    assert "oauth2RedirectUrl: window.location.origin + '/docs/oauth2-redirect'" in html
    schema = (await client.get("/openapi.json")).json()
    assert "/v1/things" in schema["paths"]
    assert not any(path.startswith(("/docs", "/redoc")) for path in schema["paths"])


async def test_the_oauth2_redirect_page_is_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs/oauth2-redirect")
    assert response.status_code == 200
    assert "oauth2" in response.text and "https://" not in response.text


@pytest.mark.parametrize(
    "path", ["/docs-assets/core.py", "/docs-assets/..%2Fcore.py", "/docs-assets/missing.js"]
)
async def test_nothing_but_the_assets_is_served(client: httpx.AsyncClient, path: str) -> None:
    assert (await client.get(path)).status_code == 404


async def test_paths_follow_the_root_path_behind_a_proxy() -> None:
    transport = httpx.ASGITransport(app=_app(), root_path="/linqra")
    async with httpx.AsyncClient(transport=transport, base_url="http://linqra.test") as client:
        html = (await client.get("/linqra/docs")).text
    assert "url: '/linqra/openapi.json'" in html
    assert all(ref.startswith("/linqra/") for ref in _references(html)), _references(html)


def test_an_app_without_an_openapi_document_is_refused() -> None:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    with pytest.raises(ValueError, match="openapi_url=None"):
        mount_docs(app)
