"""Per-team provider secrets (issue 11, part 8): the master keyring, sealing bound to its row,
the team secrets service, the LLM layer using a team's own key, ``/v1/secrets`` and
``linqra secrets rotate``. A stored key never comes back: not in an answer, a record, a log
line or an error. LLM calls go to the local fake OpenAI server, which records the
``Authorization`` header each call carried."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import pickle
import sqlite3
import stat
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from deployments.cli import main as linqra_cli
from linqra.auth.directory import PLATFORM
from linqra.config import LLMProviderConfig, RouteConfig, Settings
from linqra.errors import NotFound, ValidationError
from linqra.llm.registry import TeamCredentials
from linqra.llm.types import Delta, Message, ModelSettings
from linqra.scheduling.hooks import HOOK_INDEX, HOOK_SECRETS, HOOKS, SYSTEM_TEAM, HookService, sign
from linqra.secrets import Keyring, KeyringError, SealError, TeamSecrets, load_keyring
from linqra.secrets.keyring import ENV_VAR, KEY_FILE, associated_data, new_key_entry
from linqra.secrets.service import TEAM_SECRETS
from linqra.system import System
from tests.conftest import make_settings
from tests.support.fake_openai import FakeOpenAI
from tests.support.servers import HttpService

GLOBAL_ENV = "LINQRA_TEST_SECRETS_OPENAI_KEY"
GLOBAL_KEY = "sk-global-key-of-the-platform-0000"
KEY_A = "sk-team-a-own-key-1234567890abcdefWXYZ"
KEY_B = "sk-team-b-own-key-0987654321zyxwvu4321"


def raw_key() -> bytes:
    return os.urandom(32)


def entry(version: int, key: bytes) -> str:
    return f"{version}:{base64.b64encode(key).decode()}"


@pytest.fixture
def settings(
    tmp_path: Path,
    http_service: HttpService,
    http_service_b: HttpService,
    fake_openai: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> Settings:
    """Embedded settings (the key file in ``tmp_path``) whose ``openai`` provider is the local
    fake with a global key from the environment, and a route ``fast`` over it."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv(GLOBAL_ENV, GLOBAL_KEY)
    base = make_settings(tmp_path, http_service, http_service_b)
    providers = {
        **base.llm.providers,
        "openai": LLMProviderConfig(
            kind="openai", base_url=fake_openai.base_url, api_key_env=GLOBAL_ENV
        ),
    }
    routes = {"fast": RouteConfig(deployments=["openai:gpt-4o-mini"], max_attempts=1)}
    llm = base.llm.model_copy(update={"providers": providers, "routes": routes})
    return base.model_copy(update={"llm": llm})


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)
    yield caplog


def stored_text(data_dir: Path) -> str:
    """Every row of every table of the embedded store, as text: records, audit events, all."""
    with sqlite3.connect(data_dir / "linqra.db") as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return "\n".join(
            repr(row) for table in tables for row in db.execute(f"SELECT * FROM {table}")
        )


def auths(fake: FakeOpenAI, marker: str) -> list[str | None]:
    """The Authorization headers of the fake's requests that carried ``marker``."""
    return [r["auth"] for r in fake.requests if marker in json.dumps(r["body"])]


# -- the keyring ------------------------------------------------------------------------------
def test_keys_are_versioned_newest_first_and_a_bad_entry_is_refused_without_quoting_it() -> None:
    k1, k2 = raw_key(), raw_key()
    ring = Keyring.parse(f" {entry(2, k2)} ,\n{entry(1, k1)}")
    assert ring.version == 2 and ring.versions == [2, 1]
    assert Keyring.parse(f"2:{base64.urlsafe_b64encode(k2).decode()}").version == 2
    short = base64.b64encode(b"x" * 16).decode()
    refused = {
        f"{entry(1, k1)},{entry(2, k2)}": "highest version",
        f"{entry(2, k2)},{entry(2, k1)}": "appears twice",
        f"1:{short}": "16 bytes",
        "1:not base64!": "not VERSION:BASE64KEY",
        f"0:{base64.b64encode(k1).decode()}": "positive",
        f"²:{base64.b64encode(k1).decode()}": "not VERSION:BASE64KEY",
        "1:abc": "not base64",
        " , ": "holds no key",
    }
    for text, reason in refused.items():
        with pytest.raises(KeyringError, match=reason) as caught:
            Keyring.parse(text)
        for secret in (base64.b64encode(k1).decode(), base64.b64encode(k2).decode(), short):
            assert secret not in str(caught.value)
    assert "versions=[2, 1]" in repr(ring) and base64.b64encode(k2).decode() not in repr(ring)


def test_a_sealed_value_opens_only_in_its_own_row() -> None:
    ring = Keyring.parse(entry(1, raw_key()))
    mine = associated_data("team-a", "provider:openai")
    sealed = ring.seal(KEY_A, mine)
    assert set(sealed) == {"v", "nonce", "ct"} and sealed["v"] == 1
    assert KEY_A not in json.dumps(sealed)
    assert ring.open(sealed, mine) == KEY_A
    assert ring.seal(KEY_A, mine)["ct"] != sealed["ct"]  # a fresh nonce each time
    elsewhere = [
        associated_data("team-b", "provider:openai"),  # copied into another team's row
        associated_data("team-a", "provider:anthropic"),  # into another provider's row
        associated_data("team-a", "hook:hk_1"),
    ]
    for aad in elsewhere:
        with pytest.raises(SealError, match="copied from another row"):
            ring.open(sealed, aad)
    ct = bytearray(base64.b64decode(sealed["ct"]))
    ct[0] ^= 1
    with pytest.raises(SealError, match="changed"):
        ring.open({**sealed, "ct": base64.b64encode(ct).decode()}, mine)
    with pytest.raises(SealError, match="malformed"):
        ring.open({"v": 1, "nonce": "%%%", "ct": sealed["ct"]}, mine)
    # the version is bound too: relabelled, it does not open even under the very same key
    same = raw_key()
    twice = Keyring.parse(f"{entry(2, same)},{entry(1, same)}")
    with pytest.raises(SealError, match="changed"):
        twice.open(twice.seal(KEY_A, mine) | {"v": 1}, mine)
    with pytest.raises(SealError, match="version 7"):
        ring.open({**sealed, "v": 7}, mine)


def test_the_newest_key_seals_and_older_ones_still_open() -> None:
    k1, k2 = raw_key(), raw_key()
    aad = associated_data("team-a", "provider:openai")
    old = Keyring.parse(entry(1, k1)).seal(KEY_A, aad)
    ring = Keyring.parse(f"{entry(2, k2)},{entry(1, k1)}")
    assert ring.open(old, aad) == KEY_A and not ring.is_current(old)
    new = ring.seal(KEY_A, aad)
    assert new["v"] == 2 and ring.is_current(new)
    with pytest.raises(SealError, match="does not hold"):
        Keyring.parse(entry(1, k1)).open(new, aad)


def test_the_embedded_key_file_is_made_once_mode_0600_and_production_needs_the_variable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, logger="linqra.secrets.keyring")
    embedded = Settings(data_dir=tmp_path / "data")
    first = load_keyring(embedded, environ={})
    path = tmp_path / "data" / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    aad = associated_data("t", "provider:openai")
    again = load_keyring(embedded, environ={})  # the same key, read back
    assert again.open(first.seal(KEY_A, aad), aad) == KEY_A
    notices = [r for r in caplog.records if "embedded master key file" in r.getMessage()]
    assert len(notices) == 1 and str(path) in notices[0].getMessage()
    assert path.read_text() not in caplog.text
    # another process (here: this one, forgetting it said so) finds the file made: it says so
    # only at DEBUG, or each of a cluster's processes would repeat it
    monkeypatch.setattr("linqra.secrets.keyring._announced", set())
    caplog.clear()
    load_keyring(embedded, environ={})
    assert [r.levelno for r in caplog.records if "master key file" in r.getMessage()] == []
    caplog.set_level(logging.DEBUG, logger="linqra.secrets.keyring")
    monkeypatch.setattr("linqra.secrets.keyring._announced", set())
    load_keyring(embedded, environ={})
    again_said = [r for r in caplog.records if "master key file" in r.getMessage()]
    assert [r.levelno for r in again_said] == [logging.DEBUG]
    from_env = load_keyring(embedded, environ={ENV_VAR: entry(5, raw_key())})
    assert from_env.version == 5 and from_env.source == ENV_VAR
    production = Settings.model_construct(profile="production", data_dir=tmp_path / "prod")
    with pytest.raises(KeyringError, match=ENV_VAR):
        load_keyring(production, environ={})
    assert not (tmp_path / "prod").exists()


def test_concurrent_processes_end_up_with_one_embedded_key(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    aad = associated_data("t", "n")
    # loaders racing for a missing file: all read the one that was linked into place first
    with ThreadPoolExecutor(8) as pool:
        rings = list(pool.map(lambda _: load_keyring(settings, environ={}), range(8)))
    sealed = rings[0].seal("x" * 10, aad)
    assert all(r.open(sealed, aad) == "x" * 10 for r in rings)
    assert [p.name for p in tmp_path.iterdir()] == [KEY_FILE]  # no temporary file left


def test_a_keyring_is_never_pickled() -> None:
    with pytest.raises(TypeError, match="not pickled"):
        pickle.dumps(Keyring.parse(entry(1, raw_key())))


# -- the service ------------------------------------------------------------------------------
async def test_a_team_key_is_put_listed_revealed_and_deleted_and_the_store_holds_no_value(
    system: System, logs: pytest.LogCaptureFixture
) -> None:
    secrets = system.secrets
    view = await secrets.put("team-a", "openai", f"  {KEY_A}\n")  # pasted with a line break
    assert view.provider == "openai" and view.last4 == "WXYZ" and view.key_version == 1
    assert await secrets.reveal("team-a", "openai") == KEY_A
    assert await secrets.reveal("team-b", "openai") is None
    assert await secrets.reveal("team-a", "anthropic") is None
    raw = await system.store.get(TEAM_SECRETS, "team-a", "team-a/openai")
    assert raw is not None and KEY_A not in json.dumps(raw) and raw["sealed"]["v"] == 1
    replaced = await secrets.put("team-a", "openai", KEY_B)
    assert replaced.last4 == "4321" and replaced.created_at == view.created_at
    assert await secrets.reveal("team-a", "openai") == KEY_B
    await secrets.put("team-a", "anthropic", KEY_A)
    assert [v.provider for v in await secrets.list("team-a")] == ["anthropic", "openai"]
    assert await secrets.list("team-b") == []
    await secrets.delete("team-a", "openai")
    assert await secrets.reveal("team-a", "openai") is None
    with pytest.raises(NotFound, match="no openai key"):
        await secrets.delete("team-a", "openai")
    text = stored_text(system.settings.data_dir)
    assert KEY_A not in text and KEY_B not in text
    assert KEY_A not in logs.text and KEY_B not in logs.text
    assert "provider key set: team=team-a provider=openai" in logs.text


async def test_bad_providers_and_values_are_refused_naming_the_field_never_quoting_it(
    system: System,
) -> None:
    cases = [
        ("openai", "sk-1234", "value", "8-4096"),
        ("openai", "sk-has a space-1234", "value", "printable ASCII"),
        ("openai", "sk-üñïçødé-12345678", "value", "printable ASCII"),
        ("openai", "x" * 4097, "value", "8-4096"),
        ("nowhere", KEY_A, "provider", "unknown provider 'nowhere'"),
        ("local", KEY_A, "provider", "takes no API key"),
    ]
    for provider, value, field, reason in cases:
        with pytest.raises(ValidationError, match=reason) as caught:
            await system.secrets.put("team-a", provider, value)
        assert caught.value.field == field and value not in caught.value.message
        assert caught.value.status == 400
    assert await system.secrets.list("team-a") == []


async def test_a_ciphertext_copied_into_another_teams_row_does_not_open(system: System) -> None:
    await system.secrets.put("team-a", "openai", KEY_A)
    mine = await system.store.get(TEAM_SECRETS, "team-a", "team-a/openai")
    assert mine is not None
    stolen = {k: v for k, v in mine.items() if k not in ("id", "team_id")}
    await system.store.insert(TEAM_SECRETS, "team-b", {**stolen, "id": "team-b/openai"})
    with pytest.raises(SealError, match="copied from another row"):
        await system.secrets.reveal("team-b", "openai")
    # and the LLM layer refuses the call rather than use either key for team B
    with pytest.raises(SealError):
        await system.llm.complete(
            "team-b", "openai:gpt-4o-mini", [Message("user", "hi")], ModelSettings(), caller={}
        )
    assert await system.secrets.reveal("team-a", "openai") == KEY_A


async def test_rotation_reseals_every_secret_and_webhook_secret_and_old_values_still_read(
    system: System, settings: Settings, logs: pytest.LogCaptureFixture
) -> None:
    await system.secrets.put("team-a", "openai", KEY_A)
    await system.secrets.put("team-b", "openai", KEY_B)
    hook = await system.hooks.create("team-a", "git.push")
    legacy = {"id": "hk_legacy", "topic": "git.push", "description": "", "secret": "plain-old",
              "created_at": "2026-01-01T00:00:00.000000Z", "accepted": 0, "rejected": 0}  # fmt: skip
    await system.store.insert(HOOKS, "team-b", legacy)
    await system.store.insert(HOOK_INDEX, SYSTEM_TEAM, {"id": "hk_legacy", "hook_team": "team-b"})
    # a row that does not open (sealed for another row) is counted and left alone
    bad = await system.store.get(TEAM_SECRETS, "team-a", "team-a/openai")
    assert bad is not None
    await system.store.insert(
        TEAM_SECRETS,
        "team-c",
        {**{k: bad[k] for k in bad if k != "team_id"}, "id": "team-c/openai"},
    )
    file_keys = (settings.data_dir / KEY_FILE).read_text()
    newer = Keyring.parse(f"{new_key_entry(2)}\n{file_keys}")
    assert newer.version == 2
    rotated = TeamSecrets(system.store, newer, settings.llm.providers, also_reseal=[HOOK_SECRETS])
    assert await rotated.reveal("team-a", "openai") == KEY_A  # version 1 still reads
    report = await rotated.rotate_all()
    assert (report.key_version, report.secrets, report.hooks, report.failed) == (2, 2, 2, 1)
    assert "not re-sealed: team_secrets team-c/openai of team team-c" in logs.text
    for team, key in (("team-a", KEY_A), ("team-b", KEY_B)):
        doc = await system.store.get(TEAM_SECRETS, team, f"{team}/openai")
        assert doc is not None and doc["sealed"]["v"] == 2
        assert await rotated.reveal(team, "openai") == key
        with pytest.raises(SealError, match="version 2"):  # the old keyring cannot open it now
            await system.secrets.reveal(team, "openai")
    assert [v.key_version for v in await rotated.list("team-a")] == [2]
    old_legacy = await system.store.get(HOOKS, "team-b", "hk_legacy")
    assert old_legacy is not None and old_legacy["secret"] is None
    assert old_legacy["secret_sealed"]["v"] == 2
    hooks = HookService(system.store, newer, system.cache)
    now = str(int(time.time()))
    for hook_id, secret in ((hook["id"], hook["secret"]), ("hk_legacy", "plain-old")):
        body = b'{"ref": "main"}'
        call = await hooks.verify(hook_id, body, sign(secret, now, body), now)
        assert call.hook["id"] == hook_id
    again = await rotated.rotate_all()  # nothing left to do but the row that does not open
    assert (again.secrets, again.hooks, again.failed) == (0, 0, 1)
    assert KEY_A not in logs.text and KEY_B not in logs.text and "plain-old" not in logs.text


# -- the LLM layer ----------------------------------------------------------------------------
async def test_a_teams_own_key_is_sent_for_its_calls_and_other_teams_send_the_global_key(
    system: System, fake_openai: FakeOpenAI
) -> None:
    marker = uuid.uuid4().hex

    async def chat(team: str, model: str, tag: str) -> None:
        await system.llm.complete(
            team, model, [Message("user", f"{marker} {tag}")], ModelSettings(), caller={}
        )

    await system.secrets.put("team-a", "openai", KEY_A)
    await chat("team-a", "openai:gpt-4o-mini", "a1")
    await chat("team-b", "openai:gpt-4o-mini", "b1")
    await chat("team-a", "fast", "a-route")  # a route's deployment uses the team's key too
    await chat("team-b", "fast", "b-route")
    parts: list[str] = []
    async for event in system.llm.stream(
        "team-a", "openai:gpt-4o-mini", [Message("user", f"{marker} a-stream")],
        ModelSettings(), caller={},
    ):  # fmt: skip
        if isinstance(event, Delta):
            parts.append(event.text)
    assert "a-stream" in "".join(parts)
    embedder = system.llm.embedder("openai:text-embedding-3-small")
    await system.llm.embed("team-a", embedder, [f"{marker} a-embed"], "document", caller={})
    await system.llm.embed("team-b", embedder, [f"{marker} b-embed"], "document", caller={})
    own, shared = f"Bearer {KEY_A}", f"Bearer {GLOBAL_KEY}"
    for tag, expected in [("a1", own), ("b1", shared), ("a-route", own), ("b-route", shared),
                          ("a-stream", own), ("a-embed", own), ("b-embed", shared)]:  # fmt: skip
        assert auths(fake_openai, f"{marker} {tag}") == [expected], tag
    await system.secrets.put("team-a", "openai", KEY_B)  # a new key is used from the next call
    await chat("team-a", "openai:gpt-4o-mini", "a2")
    await chat("team-a", "fast", "a-route2")
    await system.secrets.delete("team-a", "openai")  # and without one, the global key again
    await chat("team-a", "openai:gpt-4o-mini", "a3")
    assert auths(fake_openai, f"{marker} a2") == [f"Bearer {KEY_B}"]
    assert auths(fake_openai, f"{marker} a-route2") == [f"Bearer {KEY_B}"]
    assert auths(fake_openai, f"{marker} a3") == [shared]


def test_a_team_with_its_own_key_is_not_offline_when_the_provider_has_no_global_key(
    system: System, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    registry = system.llm.registry
    offline = registry.resolve("anthropic:claude-haiku-4-5")
    assert offline.fallback_reason == "no API key in ANTHROPIC_API_KEY"
    credentials = TeamCredentials("team-a", {"anthropic": KEY_A})
    own = registry.resolve("anthropic:claude-haiku-4-5", credentials=credentials)
    assert own.fallback_reason is None and own.model.provider == "anthropic"
    assert KEY_A not in repr(credentials)


# -- HTTP ----------------------------------------------------------------------------------
def test_the_secrets_api_shows_only_the_last_four_characters(
    client: TestClient, fake_openai: FakeOpenAI, settings: Settings, logs: pytest.LogCaptureFixture
) -> None:
    answers: list[str] = []

    def call(method: str, url: str, **kwargs: Any) -> Any:
        response = client.request(method, url, **kwargs)
        answers.append(response.text + json.dumps(dict(response.headers)))
        return response

    put = call("PUT", "/v1/secrets/openai", json={"value": KEY_A})
    assert put.status_code == 200, put.text
    shown = put.json()
    assert shown["provider"] == "openai" and shown["last4"] == "WXYZ"
    assert shown["key_version"] == 1 and set(shown) == {
        "provider", "last4", "key_version", "created_at", "updated_at"}  # fmt: skip
    listed = call("GET", "/v1/secrets").json()
    assert listed == {"items": [shown], "total": 1}
    assert call("GET", "/v1/secrets", headers={"X-Team-Id": "team-b"}).json()["total"] == 0
    refused = {
        ("PUT", "/v1/secrets/nowhere", KEY_A): "provider",
        ("PUT", "/v1/secrets/local", KEY_A): "provider",
        ("PUT", "/v1/secrets/openai", "sk-1234"): "value",
        ("PUT", "/v1/secrets/openai", "sk with spaces 1234"): "value",
        ("PUT", "/v1/secrets/openai", "k" * 5000): "value",
    }
    for (method, url, value), field in refused.items():
        bad = call(method, url, json={"value": value})
        assert bad.status_code == 400 and bad.json()["error"]["field"] == field, bad.text
        assert value not in bad.text
    extra = call("PUT", "/v1/secrets/openai", json={"value": KEY_B, "note": KEY_B})
    assert extra.status_code == 400 and extra.json()["error"]["field"] == "note"
    not_text = call("PUT", "/v1/secrets/openai", json={"value": 12345678901})
    assert not_text.status_code == 400 and not_text.json()["error"]["field"] == "value"
    marker = uuid.uuid4().hex
    for team in ("team-a", "team-b"):
        chat = call(
            "POST",
            "/v1/chat/completions",
            json={"model": "openai:gpt-4o-mini", "messages": [
                {"role": "user", "content": f"{marker} {team}"}]},
            headers={"X-Team-Id": team},
        )  # fmt: skip
        assert chat.status_code == 200, chat.text
    assert auths(fake_openai, f"{marker} team-a") == [f"Bearer {KEY_A}"]
    assert auths(fake_openai, f"{marker} team-b") == [f"Bearer {GLOBAL_KEY}"]
    assert call("DELETE", "/v1/secrets/openai").status_code == 204
    gone = call("DELETE", "/v1/secrets/openai")
    assert gone.status_code == 404 and gone.json()["error"]["field"] == "provider"
    assert call("GET", "/v1/secrets").json()["total"] == 0
    for text in answers:
        assert KEY_A not in text and KEY_B not in text
    stored = stored_text(settings.data_dir)
    assert KEY_A not in stored and KEY_B not in stored
    assert KEY_A not in logs.text and KEY_B not in logs.text


# -- the command ------------------------------------------------------------------------------
def test_linqra_secrets_rotate_reseals_with_the_key_put_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    k1, k2 = entry(1, raw_key()), entry(2, raw_key())
    monkeypatch.setenv("LINQRA_DATA_DIR", str(tmp_path))
    monkeypatch.setenv(ENV_VAR, k1)

    async def seed() -> str:
        system = await System.open(Settings(data_dir=tmp_path))
        try:
            await system.secrets.put("team-a", "openai", KEY_A)
            return str((await system.hooks.create("team-a", "orders"))["secret"])
        finally:
            await system.close()

    hook_secret = asyncio.run(seed())
    assert linqra_cli(["secrets", "new-key"]) == 0
    printed = capsys.readouterr().out.strip()
    assert Keyring.parse(printed).version == 2
    monkeypatch.setenv(ENV_VAR, f"{k2},{k1}")
    assert linqra_cli(["secrets", "rotate"]) == 0
    out = capsys.readouterr().out
    assert "master key version 2: 1 provider key(s), 1 webhook secret(s)" in out
    assert KEY_A not in out and hook_secret not in out

    async def check() -> None:
        system = await System.open(Settings(data_dir=tmp_path), init=False)
        try:
            doc = await system.store.get(TEAM_SECRETS, "team-a", "team-a/openai")
            assert doc is not None and doc["sealed"]["v"] == 2
            assert await system.secrets.reveal("team-a", "openai") == KEY_A
            (hook,) = await system.store.find(HOOKS, "team-a")
            assert hook["secret_sealed"]["v"] == 2
            events, _ = await system.audit.events(PLATFORM, action="secrets.rotate")
            (event,) = events
            assert event.outcome == "success" and event.actor.startswith("cli:")
            assert event.details == {
                "key_version": 2, "provider_keys": 1, "webhooks": 1, "did_not_open": 0
            }  # fmt: skip
        finally:
            await system.close()

    asyncio.run(check())
    monkeypatch.setenv(ENV_VAR, "1:nope")
    assert linqra_cli(["secrets", "rotate"]) == 1
    assert "key version 1 is 3 bytes, not 32" in capsys.readouterr().out
