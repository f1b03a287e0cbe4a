"""Signing in to the console with OIDC in a real headless Chromium: the Authorization Code flow
with PKCE against a real OpenID provider (node-oidc-provider, its login form), the access token
on every API call, the user's team, and an expired sign-in renewed in a popup without losing
what was typed on the page."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from deployments.app import create_app
from linqra.config import AuthSettings
from linqra.testing.oidc import OidcProvider
from tests.support.browser import WAIT_MS, serve_app
from tests.support.servers import free_port

CLIENT = "linqra-console"


@pytest.fixture(scope="module")
def signin_app(
    tmp_path_factory: pytest.TempPathFactory, http_service: Any, http_service_b: Any
) -> Iterator[tuple[str, OidcProvider]]:
    from tests.conftest import make_settings

    port = free_port()  # the provider must know the console's redirect URI before it starts
    url = f"http://127.0.0.1:{port}"
    workdir = tmp_path_factory.mktemp("oidc-console")
    with OidcProvider(workdir=workdir, browser_clients={CLIENT: [f"{url}/console/callback"]}) as op:
        oidc = op.settings(console_client_id=CLIENT, console_scopes="openid api")
        settings = make_settings(
            tmp_path_factory.mktemp("signin"),
            http_service,
            http_service_b,
            auth=AuthSettings(mode="oidc", oidc=oidc),
        )
        _, server, thread = serve_app(create_app(settings=settings), port)
        yield url, op
        server.should_exit = True
        thread.join(30)


def _sign_in_on_the_provider(page: Any, login: str) -> None:
    page.locator("input[name=login]").fill(login)
    page.locator("input[name=password]").fill("anything")  # the development form checks none
    page.get_by_role("button", name="Sign-in").click()
    page.get_by_role("button", name="Continue").click()  # consent, asked once


def test_sign_in_with_pkce_and_work_as_the_users_team(
    browser: Any, signin_app: tuple[str, OidcProvider]
) -> None:
    url, _ = signin_app
    context = browser.new_context()
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    token_requests: list[str] = []
    page.on("request", lambda r: "/token" in r.url and token_requests.append(r.post_data or ""))
    try:
        page.goto(f"{url}/console/workflows")
        page.get_by_role("heading", name="Sign in to Linqra").wait_for()
        page.get_by_role("button", name="Sign in").click()
        _sign_in_on_the_provider(page, "alice")
        page.wait_for_url(f"{url}/console/workflows")  # back where the user was going
        assert any("code_verifier=" in body for body in token_requests)  # PKCE
        page.get_by_role("link", name="Overview").click()
        page.get_by_text("Working as team team-a").wait_for()  # alice's one team, from /v1/me
        bearer = page.evaluate("() => sessionStorage.getItem('linqra.token')")
        assert bearer and bearer.count(".") == 2  # a JWT from the provider, for this tab only
        assert page.evaluate("() => JSON.stringify(localStorage)").find(bearer) == -1
        page.get_by_role("button", name="Sign out").click()
        page.get_by_role("heading", name="Sign in to Linqra").wait_for()
    finally:
        context.close()


def test_without_sign_in_the_api_is_refused(signin_app: tuple[str, OidcProvider]) -> None:
    import httpx

    url, _ = signin_app
    assert httpx.get(f"{url}/v1/workflows", headers={"X-Team-Id": "team-a"}).status_code == 401
    page = httpx.get(f"{url}/console/")
    issuer = signin_app[1].issuer
    assert f"connect-src 'self' {issuer};" in page.headers["content-security-policy"]
    assert httpx.get(f"{url}/console/config.json").json() == {
        "authMode": "oidc",
        "oidc": {"issuer": signin_app[1].issuer, "clientId": CLIENT, "scopes": "openid api"},
    }


def test_an_expired_sign_in_is_renewed_in_a_popup_keeping_the_form(
    browser: Any, signin_app: tuple[str, OidcProvider]
) -> None:
    url, _ = signin_app
    context = browser.new_context()
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    try:
        page.goto(f"{url}/console/workflows/new")
        page.get_by_role("button", name="Sign in").click()
        _sign_in_on_the_provider(page, "alice")
        editor = page.get_by_label("Workflow definition")
        typed = {"name": "kept across a sign-in", "steps": [{"step": 1, "target": "noop"}]}
        editor.fill(json.dumps(typed))
        # the token goes stale (as an expired one would: the gateway refuses it)
        page.evaluate("() => sessionStorage.setItem('linqra.token', 'e30.e30.stale')")
        page.get_by_role("button", name="Save workflow").click()
        dialog = page.get_by_role("dialog", name="Your sign-in expired")
        dialog.wait_for()
        with page.expect_popup() as opened:
            dialog.get_by_role("button", name="Sign in again").click()
        opened.value.wait_for_event("close")  # the provider still knows alice: straight back
        dialog.wait_for(state="hidden")
        assert json.loads(editor.input_value()) == typed  # what was typed is still there
        page.get_by_role("button", name="Save workflow").click()
        page.wait_for_url(re.compile(r".*/console/workflows/wf_[0-9a-f]+$"))
        page.get_by_text("kept across a sign-in").first.wait_for()
    finally:
        context.close()
